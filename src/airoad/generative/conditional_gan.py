"""A conditional GAN: both players see the class label, so G draws the digit it is asked for.

The generator gets the label through a learned embedding joined to the noise:
``G(z, y) = MLP([z, E_g[y]])`` (Mirza & Osindero, 2014). The discriminator can take the label in
two ways, both here:

- concatenation: ``D(x, y) = MLP([x, E_d[y]])``, the label embedding joined to the pixels at
  the input (the original conditional GAN);
- projection (Miyato & Koyama, 2018): a label-free body maps the image to features ``h = phi(x)``
  and the logit is ``psi(h) + E_d[y] . h``: an unconditional score plus the inner product of the
  features with the label's embedding. The paper derives this form from the log density ratio
  of a class-conditional softmax model, and it lets the label act on every feature at the end
  instead of being diluted at the input.

The game and its losses are the ``gan`` lab's (``airoad.generative.gan``, imported, not
copied): the non-saturating G loss and BCE for D, on logits. Real and fake images in a D step
share the same labels, so one label-bound callable ``D(., y)`` fits ``gan.discriminator_step``
unchanged, and ``G(., y)`` fits ``gan.generator_step``.

Labels are long tensors (n,) in ``0 .. n_classes - 1``; an out-of-range label is a ValueError
naming the range (``nn.Embedding`` alone would say only "index out of range in self").
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from airoad.generative import gan

IMAGE_PIXELS = gan.IMAGE_PIXELS


def check_labels(labels: torch.Tensor, n: int, n_classes: int) -> torch.Tensor:
    """Return ``labels`` if it is an integer tensor of shape (n,) with values in 0..n_classes-1.

    Otherwise raise ValueError with one sentence saying what was wrong (the dtype, the shape,
    or the smallest/largest label and the valid range). Skipped while ``torch.jit`` traces a
    module (a traced graph cannot branch on values; the serving layer checks labels itself).
    """
    if torch.jit.is_tracing():
        return labels
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor (torch.long), not {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), one per image; got {tuple(labels.shape)}")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(
            f"labels must be in 0..{n_classes - 1}; got values from {int(labels.min())} "
            f"to {int(labels.max())}"
        )
    return labels


class ConditionalGenerator(nn.Module):
    """G(z, y): noise (n, latent_dim) and labels (n,) -> images (n, 1, 28, 28) in [-1, 1].

    The label's embedding ``E[y]`` (``nn.Embedding(n_classes, embed_dim)``) is concatenated
    after the noise, ``[z, E[y]]`` of width latent_dim + embed_dim, and fed to the ``gan`` lab's
    MLP generator (``Linear -> LeakyReLU(0.2)`` per hidden width, ``Linear -> tanh``).
    """

    def __init__(
        self,
        latent_dim: int = 64,
        n_classes: int = 10,
        embed_dim: int = 16,
        hidden: tuple[int, ...] = (256, 512),
    ):
        super().__init__()
        self.latent_dim, self.n_classes = latent_dim, n_classes
        self.embed = nn.Embedding(n_classes, embed_dim)
        self.net = gan.Generator(latent_dim + embed_dim, hidden)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Images (n, 1, 28, 28) in [-1, 1] for noise z (n, latent_dim) and labels (n,)."""
        labels = check_labels(labels, z.shape[0], self.n_classes)
        return self.net(torch.cat([z, self.embed(labels)], dim=1))


def projection_term(h: torch.Tensor, embedding: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The projection discriminator's class term (n,): ``out_i = embedding[labels_i] . h_i``.

    h: features (n, d); embedding: one row per class (n_classes, d); labels: (n,) long. Gather
    the n rows and take the row-wise inner product (no (n, n_classes) matrix is formed).
    Gradients flow to h and to the gathered rows of the embedding only.
    """
    return (embedding[labels] * h).sum(dim=1)


class ProjectionDiscriminator(nn.Module):
    """D(x, y) with a projection (Miyato & Koyama, 2018): logits (n,) for images and labels.

    ``h = phi(x)``: the ``gan`` lab's MLP body (flatten, ``Linear -> LeakyReLU(0.2)`` per width
    in ``hidden``), so h is (n, hidden[-1]). Logit ``= psi(h) + E[y] . h`` with ``psi`` the
    ``gan`` discriminator's head (``Linear(hidden[-1], 1)``) and ``E`` an
    ``nn.Embedding(n_classes, hidden[-1])``; the class term is `projection_term`.
    """

    def __init__(self, n_classes: int = 10, hidden: tuple[int, ...] = (512, 256)):
        super().__init__()
        self.n_classes = n_classes
        self.base = gan.Discriminator(hidden)  # base.body is phi, base.head is psi
        self.embed = nn.Embedding(n_classes, hidden[-1])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """phi(x): features (n, hidden[-1]) of images (n, 1, 28, 28) or (n, 784)."""
        return self.base.body(x.reshape(x.shape[0], -1))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Logits (n,) = psi(phi(x)) + E[y] . phi(x)."""
        labels = check_labels(labels, x.shape[0], self.n_classes)
        h = self.features(x)
        return self.base.head(h).squeeze(1) + projection_term(h, self.embed.weight, labels)


class ConcatDiscriminator(nn.Module):
    """D(x, y) by concatenation: logits (n,) of an MLP on ``[x_flat, E[y]]``.

    The 784 pixels and the label's embedding ``E[y]`` (``nn.Embedding(n_classes, embed_dim)``)
    are joined into one (n, 784 + embed_dim) input, then ``Linear -> LeakyReLU(0.2)`` per width
    in ``hidden`` and ``Linear(hidden[-1], 1)`` to one logit.
    """

    def __init__(
        self, n_classes: int = 10, embed_dim: int = 16, hidden: tuple[int, ...] = (512, 256)
    ):
        super().__init__()
        self.n_classes = n_classes
        self.embed = nn.Embedding(n_classes, embed_dim)
        widths = (IMAGE_PIXELS + embed_dim, *hidden)
        layers: list[nn.Module] = []
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [nn.Linear(w_in, w_out), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers, nn.Linear(widths[-1], 1))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Logits (n,) for images x (n, 1, 28, 28) or (n, 784) and labels (n,)."""
        labels = check_labels(labels, x.shape[0], self.n_classes)
        joined = torch.cat([x.reshape(x.shape[0], -1), self.embed(labels)], dim=1)
        return self.net(joined).squeeze(1)


# ---------------------------------------------------------------- one training step


def bind_labels(module: nn.Module, labels: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``lambda x: module(x, labels)``: a one-argument player for the ``gan`` lab's steps."""
    return lambda x: module(x, labels)


def discriminator_step(
    generator: ConditionalGenerator,
    discriminator: nn.Module,
    opt_d: torch.optim.Optimizer,
    real: torch.Tensor,
    labels: torch.Tensor,
    z: torch.Tensor,
    real_label: float = 1.0,
) -> dict[str, float]:
    """One D update: real images (n, 1, 28, 28) with their labels (n,) against ``G(z, labels)``.

    The fakes are drawn for the same labels as the real batch, so D sees each label once real
    and once fake. This is ``gan.discriminator_step`` on the label-bound players (`bind_labels`):
    it zeroes D's gradients, detaches the fakes (G gets no gradient), steps ``opt_d`` only and
    returns ``d_loss``, ``d_real`` and ``d_fake`` (means before the update).
    """
    return gan.discriminator_step(
        bind_labels(generator, labels),
        bind_labels(discriminator, labels),
        opt_d,
        real,
        z,
        real_label,
    )


def generator_step(
    generator: ConditionalGenerator,
    discriminator: nn.Module,
    opt_g: torch.optim.Optimizer,
    z: torch.Tensor,
    labels: torch.Tensor,
    loss: str = "nonsaturating",
) -> dict[str, float]:
    """One G update on ``D(G(z, labels), labels)`` with the chosen ``gan`` G loss.

    ``gan.generator_step`` on the label-bound players: only ``opt_g`` steps, so D does not
    move. Returns ``g_loss`` and ``d_fake_g`` (mean D(G(z, y)) before the update).
    """
    return gan.generator_step(
        bind_labels(generator, labels), bind_labels(discriminator, labels), opt_g, z, loss
    )


# ---------------------------------------------------------------- sampling


def class_labels(n_per_class: int, n_classes: int = 10) -> torch.Tensor:
    """Labels (n_per_class * n_classes,) long, class by class: 0,0,...,1,1,...,9,9."""
    return torch.arange(n_classes).repeat_interleave(n_per_class)


@torch.no_grad()
def sample(generator: ConditionalGenerator, labels: torch.Tensor, seed: int) -> torch.Tensor:
    """Images (n, 1, 28, 28) in [0, 1] for labels (n,): ``(G(z, labels) + 1) / 2`` with
    ``z = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))``.
    Runs G in eval mode and puts back the mode it was in."""
    was_training = generator.training
    generator.eval()
    z = torch.randn(
        len(labels), generator.latent_dim, generator=torch.Generator().manual_seed(seed)
    )
    images = (generator(z, labels) + 1) / 2
    generator.train(was_training)
    return images

"""A GAN with multilayer perceptrons: a generator and a discriminator trained against each other.

The generator G maps noise z ~ N(0, I) of ``latent_dim`` numbers to a 28x28 image in [-1, 1]
(tanh). The discriminator D maps an image to one logit ``l``; ``D(x) = sigmoid(l)`` is its
belief that x is real. Training alternates two steps (Goodfellow et al., 2014):

- D step: minimise ``-log D(x) - log(1 - D(G(z)))`` (binary cross-entropy: real -> 1, fake -> 0)
  with G's output detached, so no gradient reaches G;
- G step: the original minimax game asks G to minimise ``log(1 - D(G(z)))``, whose gradient
  vanishes when D confidently rejects the fakes (early in training). The non-saturating loss
  ``-log D(G(z))`` has the same fixed point and a strong gradient exactly there.

Every loss is written on logits with ``softplus`` (``-log sigmoid(l) = softplus(-l)``,
``-log(1 - sigmoid(l)) = softplus(l)``), which is exact and never takes the log of 0.

Two remedies for mode collapse (G drawing only a few kinds of digit) are included: one-sided
label smoothing (``real_label`` < 1: D is asked for 0.9 on real images, never for fakes) and the
minibatch standard deviation feature (Karras et al., 2018): D sees how varied the whole batch
is, so a batch of near-identical fakes is easy to reject.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IMAGE_SHAPE = (1, 28, 28)
IMAGE_PIXELS = 28 * 28


class Generator(nn.Module):
    """MLP generator: (n, latent_dim) noise -> (n, 1, 28, 28) images in [-1, 1].

    ``Linear -> LeakyReLU(0.2)`` for each width in ``hidden``, then ``Linear -> tanh`` to 784
    pixels, reshaped to (n, 1, 28, 28).
    """

    def __init__(self, latent_dim: int = 64, hidden: tuple[int, ...] = (256, 512)):
        super().__init__()
        self.latent_dim = latent_dim
        widths = (latent_dim, *hidden)
        layers: list[nn.Module] = []
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [nn.Linear(w_in, w_out), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers, nn.Linear(widths[-1], IMAGE_PIXELS), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Images (n, 1, 28, 28) in [-1, 1] from noise z (n, latent_dim)."""
        return self.net(z).view(-1, *IMAGE_SHAPE)


def minibatch_std(h: torch.Tensor) -> torch.Tensor:
    """Append one feature to h (n, d): the batch's mean standard deviation, giving (n, d + 1).

    For each of the d features take the standard deviation over the n rows (biased, i.e.
    ``unbiased=False``, plus 1e-8 inside the square root), average those d numbers and append
    the same scalar to every row. Gradients flow through it to every row.
    """
    std = torch.sqrt(h.var(dim=0, unbiased=False) + 1e-8).mean()
    return torch.cat([h, std.expand(h.shape[0], 1)], dim=1)


class Discriminator(nn.Module):
    """MLP discriminator: (n, 1, 28, 28) images -> (n,) logits (``D(x) = sigmoid(logit)``).

    Flatten, ``Linear -> LeakyReLU(0.2)`` for each width in ``hidden``, then ``Linear`` to one
    logit. With ``use_minibatch_std`` the last hidden layer's output goes through
    `minibatch_std` first, so the final Linear takes ``hidden[-1] + 1`` inputs.
    """

    def __init__(self, hidden: tuple[int, ...] = (512, 256), use_minibatch_std: bool = False):
        super().__init__()
        self.use_minibatch_std = use_minibatch_std
        widths = (IMAGE_PIXELS, *hidden)
        layers: list[nn.Module] = []
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [nn.Linear(w_in, w_out), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(widths[-1] + int(use_minibatch_std), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (n,) for images x (n, 1, 28, 28) or (n, 784)."""
        h = self.body(x.reshape(x.shape[0], -1))
        if self.use_minibatch_std:
            h = minibatch_std(h)
        return self.head(h).squeeze(1)


# ---------------------------------------------------------------- losses (on logits)


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, real_label: float = 1.0
) -> torch.Tensor:
    """D's loss: mean BCE(real, real_label) + mean BCE(fake, 0), on logits.

    ``BCE(l, t) = t softplus(-l) + (1 - t) softplus(l)``; with ``real_label = 1`` this is
    ``mean(-log D(x)) + mean(-log(1 - D(G(z))))``. ``real_label`` < 1 is one-sided label
    smoothing (only the real targets move). The two means may have different lengths.
    """
    t = real_label
    real = t * F.softplus(-real_logits) + (1.0 - t) * F.softplus(real_logits)
    return real.mean() + F.softplus(fake_logits).mean()


def generator_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """G's non-saturating loss: ``mean(-log D(G(z))) = mean(softplus(-l))``.

    Its gradient with respect to a logit is ``-(1 - D(G(z)))``: close to -1 when D rejects the
    fake (D(G(z)) near 0), so G learns fastest when it is worst.
    """
    return F.softplus(-fake_logits).mean()


def generator_loss_minimax(fake_logits: torch.Tensor) -> torch.Tensor:
    """G's original minimax loss: ``mean(log(1 - D(G(z)))) = mean(-softplus(l))``.

    Its gradient with respect to a logit is ``-D(G(z))``: it vanishes when D rejects the fake,
    which is why G barely moves early in training with this loss.
    """
    return -F.softplus(fake_logits).mean()


GENERATOR_LOSSES = {
    "nonsaturating": generator_loss_nonsaturating,
    "minimax": generator_loss_minimax,
}


# ---------------------------------------------------------------- one training step


def discriminator_step(
    generator: nn.Module,
    discriminator: nn.Module,
    opt_d: torch.optim.Optimizer,
    real: torch.Tensor,
    z: torch.Tensor,
    real_label: float = 1.0,
) -> dict[str, float]:
    """One update of D on a batch of real images (n, 1, 28, 28) and fakes G(z).

    ``opt_d.zero_grad()`` first (the G step leaves gradients in D), the fakes are
    ``G(z).detach()`` (no graph through G, G's ``.grad`` untouched), then `discriminator_loss`,
    backward and ``opt_d.step()``. Returns the loss, mean D(x) and mean D(G(z)) before the update.
    """
    opt_d.zero_grad()
    fake = generator(z).detach()
    real_logits, fake_logits = discriminator(real), discriminator(fake)
    loss = discriminator_loss(real_logits, fake_logits, real_label)
    loss.backward()
    opt_d.step()
    return {
        "d_loss": loss.item(),
        "d_real": torch.sigmoid(real_logits).mean().item(),
        "d_fake": torch.sigmoid(fake_logits).mean().item(),
    }


def generator_step(
    generator: nn.Module,
    discriminator: nn.Module,
    opt_g: torch.optim.Optimizer,
    z: torch.Tensor,
    loss: str = "nonsaturating",
) -> dict[str, float]:
    """One update of G: minimise the chosen G loss (``"nonsaturating"`` or ``"minimax"``) of
    D's logits on G(z), stepping only ``opt_g`` (D's parameters do not change; gradients left
    in D are cleared by the next D step). Returns the loss and mean D(G(z)) before the update.
    """
    opt_g.zero_grad()
    fake_logits = discriminator(generator(z))
    value = GENERATOR_LOSSES[loss](fake_logits)
    value.backward()
    opt_g.step()
    return {"g_loss": value.item(), "d_fake_g": torch.sigmoid(fake_logits).mean().item()}


# ---------------------------------------------------------------- sampling and mode coverage


@torch.no_grad()
def sample(generator: Generator, n: int, seed: int) -> torch.Tensor:
    """n images (n, 1, 28, 28) in [0, 1] from seeded noise: ``(G(z) + 1) / 2`` with
    ``z = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))``.
    Runs G in eval mode and puts back the mode it was in."""
    was_training = generator.training
    generator.eval()
    z = torch.randn(n, generator.latent_dim, generator=torch.Generator().manual_seed(seed))
    images = (generator(z) + 1) / 2  # tanh keeps G(z) in [-1, 1]
    generator.train(was_training)
    return images


def class_coverage(labels: torch.Tensor, n_classes: int = 10) -> dict[str, object]:
    """How many modes a generator covers, from classifier labels (n,) of its samples.

    Returns ``counts`` (n_classes,) per class, ``entropy_bits`` of the class frequencies
    (``-sum p log2 p`` with ``0 log 0 = 0``: log2(10) = 3.32 bits when all ten digits are
    equally common, 0 when one digit is all it draws) and ``covered``, the number of classes
    holding at least 1% of the samples.
    """
    if labels.numel() == 0:
        raise ValueError("class_coverage needs at least one label: generate some samples first")
    counts = torch.bincount(labels.reshape(-1).long(), minlength=n_classes).double()
    p = counts / counts.sum()
    entropy = -torch.where(p > 0, p * torch.log2(p), torch.zeros_like(p)).sum()
    return {
        "counts": counts.long(),
        "entropy_bits": abs(float(entropy)),  # abs: a one-class sum is -0.0
        "covered": int((p >= 0.01).sum()),
    }

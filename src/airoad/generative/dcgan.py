"""DCGAN on 28x28 images, and the same networks trained as a WGAN with a gradient penalty.

The DCGAN rules (Radford et al., 2016) that made convolutional GANs train reliably:

- no pooling: D halves the image with stride-2 convolutions, G doubles it with stride-2
  transposed convolutions, so each network learns its own down- and up-sampling;
- batch norm in both networks, except G's output layer and D's input layer;
- ReLU in G with a tanh output (images in [-1, 1]), LeakyReLU(0.2) in D;
- no fully connected hidden layers: G's first layer is a 7x7 transposed convolution of the
  noise seen as a (latent_dim, 1, 1) image, D's last layer a 7x7 convolution to one logit;
- weights drawn from N(0, 0.02) (batch norm scales from N(1, 0.02)), Adam with beta1 = 0.5.

The DCGAN is trained with the non-saturating loss of `airoad.generative.gan` (its
``discriminator_step`` and ``generator_step`` work on any pair of modules).

WGAN-GP (Gulrajani et al., 2017) keeps G and swaps D for a critic f with unbounded scores. The
critic maximises ``mean f(x) - mean f(G(z))``, an estimate of the Wasserstein-1 distance if f
is 1-Lipschitz; instead of clipping weights, a penalty ``lambda * mean((||grad_x f(x_hat)|| -
1)^2)`` on random points x_hat of the segments between real and fake images keeps the gradient
norm near 1. The penalty is per image, so the critic must not use batch norm (it would mix the
images of a batch); it is differentiated again when the critic steps (``create_graph=True``).
"""

from __future__ import annotations

import torch
from torch import nn

LEAK = 0.2  # LeakyReLU slope in D and the critic


def generator_stages(latent_dim: int, width: int) -> nn.Sequential:
    """G's three stages, each a block that upsamples (shapes for a batch of n):

    1. ``ConvTranspose2d(latent_dim, 2*width, 7, stride 1, no padding, bias=False) ->
       BatchNorm2d -> ReLU``: (n, latent_dim, 1, 1) -> (n, 2*width, 7, 7)
    2. ``ConvTranspose2d(2*width, width, 4, stride 2, padding 1, bias=False) -> BatchNorm2d ->
       ReLU``: -> (n, width, 14, 14)
    3. ``ConvTranspose2d(width, 1, 4, stride 2, padding 1) -> Tanh``: -> (n, 1, 28, 28)

    The convolutions before a batch norm have no bias (the norm's shift replaces it).
    """
    w2 = 2 * width
    return nn.Sequential(
        nn.Sequential(
            nn.ConvTranspose2d(latent_dim, w2, 7, 1, 0, bias=False), nn.BatchNorm2d(w2), nn.ReLU()
        ),
        nn.Sequential(
            nn.ConvTranspose2d(w2, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        ),
        nn.Sequential(nn.ConvTranspose2d(width, 1, 4, 2, 1), nn.Tanh()),
    )


def discriminator_stages(width: int, batch_norm: bool = True) -> nn.Sequential:
    """D's (or the critic's) three stages, each a block that downsamples:

    1. ``Conv2d(1, width, 4, stride 2, padding 1) -> LeakyReLU(0.2)``: (n, 1, 28, 28) ->
       (n, width, 14, 14) (no batch norm on the input layer)
    2. ``Conv2d(width, 2*width, 4, stride 2, padding 1, bias=not batch_norm) -> BatchNorm2d
       (only if batch_norm) -> LeakyReLU(0.2)``: -> (n, 2*width, 7, 7)
    3. ``Conv2d(2*width, 1, 7)``: -> (n, 1, 1, 1), one raw score per image
    """
    w2 = 2 * width
    middle = [nn.Conv2d(width, w2, 4, 2, 1, bias=not batch_norm)]
    middle += [nn.BatchNorm2d(w2)] if batch_norm else []
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, width, 4, 2, 1), nn.LeakyReLU(LEAK)),
        nn.Sequential(*middle, nn.LeakyReLU(LEAK)),
        nn.Sequential(nn.Conv2d(w2, 1, 7)),
    )


def init_weights(module: nn.Module, seed: int) -> nn.Module:
    """DCGAN initialisation in place, seeded: every Conv2d / ConvTranspose2d weight from
    N(0, 0.02), every BatchNorm2d scale from N(1, 0.02); all biases (conv and norm) zero.
    Returns the module."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02, generator=g)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02, generator=g)
        else:
            continue
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    return module


class Generator(nn.Module):
    """DCGAN generator: (n, latent_dim) noise -> (n, 1, 28, 28) images in [-1, 1].

    ``self.stages`` is `generator_stages` (latent_dim, width); forward views z as
    (n, latent_dim, 1, 1) and runs the stages in order.
    """

    def __init__(self, latent_dim: int = 64, width: int = 32):
        super().__init__()
        self.latent_dim = latent_dim
        self.stages = generator_stages(latent_dim, width)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Images (n, 1, 28, 28) from noise z (n, latent_dim)."""
        return self.stages(z.view(z.shape[0], self.latent_dim, 1, 1))


class Discriminator(nn.Module):
    """DCGAN discriminator (``batch_norm=True``) or WGAN-GP critic (``batch_norm=False``):
    (n, 1, 28, 28) images -> (n,) raw scores (logits for the DCGAN).

    ``self.stages`` is `discriminator_stages` (width, batch_norm); forward runs them and
    flattens the (n, 1, 1, 1) output to (n,).
    """

    def __init__(self, width: int = 32, batch_norm: bool = True):
        super().__init__()
        self.stages = discriminator_stages(width, batch_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores (n,) for images x (n, 1, 28, 28)."""
        return self.stages(x).flatten()


# ---------------------------------------------------------------- WGAN-GP


def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """The critic's Wasserstein loss ``mean f(G(z)) - mean f(x)`` (minimised; its negative is
    the critic's estimate of the Wasserstein distance). The two means may differ in length."""
    return fake_scores.mean() - real_scores.mean()


def wgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """G's Wasserstein loss ``-mean f(G(z))``: G wants the critic to score its fakes high."""
    return -fake_scores.mean()


def interpolate(real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Points on the segments between paired images: ``eps * real + (1 - eps) * fake``.

    real, fake: (n, 1, 28, 28) (any (n, ...) works); eps: (n,) numbers in [0, 1], one per pair,
    broadcast over the image. eps = 1 gives the real image, eps = 0 the fake. Raises
    ValueError when real and fake differ in shape or eps does not hold one number per pair.
    """
    if real.shape != fake.shape or eps.shape != real.shape[:1]:
        raise ValueError(
            f"interpolate needs real and fake of one shape and one eps per pair: got real "
            f"{tuple(real.shape)}, fake {tuple(fake.shape)}, eps {tuple(eps.shape)}"
        )
    e = eps.reshape(-1, *([1] * (real.dim() - 1)))
    return e * real + (1 - e) * fake


def gradient_penalty(
    critic: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    eps: torch.Tensor,
    weight: float = 10.0,
) -> torch.Tensor:
    """``weight * mean_i (||grad_x f(x_hat_i)||_2 - 1)^2`` at ``x_hat = interpolate(real, fake,
    eps)``.

    x_hat is made a leaf that requires grad; the per-image gradients come from one
    ``torch.autograd.grad(f(x_hat).sum(), x_hat, create_graph=True)`` (image i's score depends
    only on image i, so the gradient of the sum holds each image's own gradient), and
    ``create_graph=True`` keeps the graph so the penalty can be differentiated with respect to
    the critic's parameters. Take the norms with ``torch.linalg.vector_norm``: where a gradient
    is all zeros its derivative is 0, while ``sqrt(sum(g ** 2))`` would give NaN. Returns a
    scalar.
    """
    x_hat = interpolate(real, fake, eps).detach().requires_grad_(True)
    (grads,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    norms = torch.linalg.vector_norm(grads.flatten(1), dim=1)
    return weight * ((norms - 1) ** 2).mean()


def critic_step(
    generator: nn.Module,
    critic: nn.Module,
    opt_c: torch.optim.Optimizer,
    real: torch.Tensor,
    z: torch.Tensor,
    eps: torch.Tensor,
    gp_weight: float = 10.0,
) -> dict[str, float]:
    """One update of the critic: minimise ``critic_loss(f(x), f(G(z))) + gradient_penalty``.

    ``opt_c.zero_grad()`` first, fakes are ``G(z).detach()`` (G gets no gradient), the penalty
    uses the given eps (n,); backward and ``opt_c.step()``. Returns, before the update,
    ``c_loss`` (the total), ``wasserstein`` (``mean f(x) - mean f(G(z))``) and ``gp``.
    """
    opt_c.zero_grad()
    fake = generator(z).detach()
    w_loss = critic_loss(critic(real), critic(fake))
    gp = gradient_penalty(critic, real, fake, eps, gp_weight)
    loss = w_loss + gp
    loss.backward()
    opt_c.step()
    return {"c_loss": loss.item(), "wasserstein": -w_loss.item(), "gp": gp.item()}


def wgan_generator_step(
    generator: nn.Module, critic: nn.Module, opt_g: torch.optim.Optimizer, z: torch.Tensor
) -> dict[str, float]:
    """One update of G on `wgan_generator_loss` of the critic's scores of G(z), stepping only
    ``opt_g`` (``opt_g.zero_grad()`` first). Returns ``g_loss`` before the update."""
    opt_g.zero_grad()
    loss = wgan_generator_loss(critic(generator(z)))
    loss.backward()
    opt_g.step()
    return {"g_loss": loss.item()}

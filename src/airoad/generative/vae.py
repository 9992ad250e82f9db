"""A variational autoencoder for binary images: the reparameterisation trick, the ELBO and an
importance-weighted estimate of log p(x).

The encoder maps an image x (D = 784 pixels in {0, 1}) to a diagonal Gaussian
q(z|x) = N(mu, diag(exp(logvar))) over a latent z of L dimensions; the decoder maps z to D
Bernoulli logits, p(x|z) = prod_d Bernoulli(x_d; sigmoid(logit_d)); the prior is p(z) = N(0, I).
Training maximises the evidence lower bound (ELBO):

    log p(x) >= E_q[log p(x|z)] - KL(q(z|x) || p(z))

with one sample z = mu + exp(logvar / 2) * eps, eps ~ N(0, I) (the reparameterisation trick: the
noise is an input, so gradients reach mu and logvar), and the KL in closed form.

The functions take tensors, not a model, so other labs (the conditional VAE) reuse them as they
are. Every log-probability is summed over the last dimension (pixels or latent units) and keeps
the leading ones: shapes (k, n, D) -> (k, n).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

LOG_2PI = math.log(2 * math.pi)


def reparameterize(
    mu: Tensor, logvar: Tensor, k: int = 1, generator: torch.Generator | None = None
) -> Tensor:
    """k samples z = mu + exp(logvar / 2) * eps of N(mu, diag(exp(logvar))), shape (k, *mu.shape).

    Draw the noise in ONE call, ``eps = torch.randn((k, *mu.shape), generator=generator, ...)``
    with mu's dtype, so the same generator seed gives the same z everywhere. z is a
    differentiable function of mu and logvar: dz/dmu = 1 and dz/dlogvar = exp(logvar / 2) eps / 2.
    """
    eps = torch.randn((k, *mu.shape), generator=generator, dtype=mu.dtype, device=mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) in closed form, summed over the last dimension.

    ``0.5 * sum(mu^2 + exp(logvar) - 1 - logvar)``: (..., L) -> (...). Always >= 0; zero only
    when mu = 0 and logvar = 0.
    """
    return 0.5 * torch.sum(mu.pow(2) + logvar.exp() - 1.0 - logvar, dim=-1)


def log_normal(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dimension (inputs broadcast).

    ``-0.5 * sum(log(2 pi) + logvar + (z - mu)^2 / exp(logvar))``; the standard normal prior is
    ``log_normal(z, zeros, zeros)``. Divide by exp(logvar) as ``* exp(-logvar)``: no overflow.
    """
    return -0.5 * torch.sum(LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar), dim=-1)


def bernoulli_log_likelihood(logits: Tensor, x: Tensor) -> Tensor:
    """log p(x|z) = sum_d [x_d log sigmoid(l_d) + (1 - x_d) log sigmoid(-l_d)] over the last dim.

    logits (..., D) and x (..., D) broadcast (e.g. (k, n, D) against (n, D)); x may be any
    value in [0, 1]. Work from the logits (``-binary_cross_entropy_with_logits``), never from
    sigmoid probabilities: log(sigmoid(l)) of a large negative l would be log(0).
    """
    logits, x = torch.broadcast_tensors(logits, x)
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=-1)


def elbo(x: Tensor, logits: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """The per-image ELBO with the closed-form KL: log p(x|z) - KL(q(z|x) || p(z)), shape (n,).

    x (n, D) images in [0, 1]; logits (n, D) decoded from one z ~ q(z|x); mu, logvar (n, L).
    Training minimises ``-elbo(...).mean()`` (nats per image).
    """
    return bernoulli_log_likelihood(logits, x) - gaussian_kl(mu, logvar)


def log_importance_weights(
    x: Tensor, logits: Tensor, z: Tensor, mu: Tensor, logvar: Tensor
) -> Tensor:
    """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x) for k samples z_i ~ q(z|x), shape (k, n).

    x (n, D); logits (k, n, D) decoded from z (k, n, L); mu, logvar (n, L). The average of w_i
    is an unbiased estimate of p(x), so ``log_mean_exp`` of these is a lower bound on log p(x)
    that tightens as k grows (Burda et al., 2016); with k = 1 it is the single-sample ELBO.
    """
    prior = log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
    return bernoulli_log_likelihood(logits, x) + prior - log_normal(z, mu, logvar)


def log_mean_exp(log_w: Tensor, dim: int = 0) -> Tensor:
    """log(mean(exp(log_w))) along ``dim``, stably: ``logsumexp(log_w, dim) - log(k)``.

    Log-weights of images are around -90 nats or lower and float32 underflows to 0 below about
    exp(-103), so never exponentiate directly.
    """
    return torch.logsumexp(log_w, dim=dim) - math.log(log_w.shape[dim])


class VAE(nn.Module):
    """An MLP VAE: encoder D -> hidden -> (mu, logvar) of L; decoder L -> reversed hidden -> D logits.

    ``encoder`` (Linear+ReLU stack), then two heads ``to_mu`` and ``to_logvar``; ``decoder`` is a
    Linear+ReLU stack ending in the Linear ``to_logits``. Images enter flat, (n, D), in [0, 1].
    """

    def __init__(
        self, in_dim: int = 784, hidden: tuple[int, ...] = (512, 256), latent_dim: int = 16
    ):
        super().__init__()
        self.latent_dim = latent_dim
        enc, dec = [in_dim, *hidden], [latent_dim, *reversed(hidden)]
        # Linear + ReLU pairs; the ReLU after the last layer too, since a head follows
        self.encoder = nn.Sequential(
            *[m for a, b in zip(enc, enc[1:]) for m in (nn.Linear(a, b), nn.ReLU())]
        )
        self.to_mu = nn.Linear(hidden[-1], latent_dim)
        self.to_logvar = nn.Linear(hidden[-1], latent_dim)
        self.decoder = nn.Sequential(
            *[m for a, b in zip(dec, dec[1:]) for m in (nn.Linear(a, b), nn.ReLU())]
        )
        self.to_logits = nn.Linear(hidden[0], in_dim)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, logvar) of q(z|x), each (n, L): the two heads on the encoder's features of x (n, D)."""
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: Tensor) -> Tensor:
        """Bernoulli logits (..., D) of p(x|z) for latents z (..., L): ``to_logits(decoder(z))``."""
        return self.to_logits(self.decoder(z))

    def forward(
        self, x: Tensor, k: int = 1, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Encode x (n, D), draw k latents per image with `reparameterize`, decode them.

        Returns (logits (k, n, D), z (k, n, L), mu (n, L), logvar (n, L)).
        """
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, k, generator)
        return self.decode(z), z, mu, logvar

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n images from the prior: the Bernoulli means sigmoid(decode(z)), z ~ N(0, I), (n, D).

        Draw ``z = torch.randn(n, latent_dim, generator=generator)`` in the weights' dtype.
        """
        dtype = self.to_logits.weight.dtype
        z = torch.randn(n, self.latent_dim, generator=generator, dtype=dtype)
        return torch.sigmoid(self.decode(z))

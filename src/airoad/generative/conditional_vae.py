"""A class-conditional VAE: the `vae` lab's model with the label given to both networks.

The label y (one of C classes) enters as a one-hot vector c = one_hot(y), concatenated to the
encoder's input and to the decoder's latent (Sohn et al., 2015, "conditional VAE"):

    q(z | x, y) = N(mu(x, c), diag(exp(logvar(x, c))))      encoder sees [x, c]   (n, D + C)
    p(x | z, y) = prod_d Bernoulli(sigmoid(logits(z, c)_d))  decoder sees [z, c]   (n, L + C)
    p(z)        = N(0, I)                                    the prior ignores y

and training maximises the conditional ELBO, a lower bound on log p(x | y):

    log p(x | y) >= E_q[log p(x | z, y)] - KL(q(z | x, y) || p(z))

It has the same form as the unconditional ELBO, so the tensor pieces come unchanged from
`airoad.generative.vae` (`reparameterize`, `elbo`); this module holds only what is new: the
one-hot code, the conditional model, its ELBO and one training step. Because the decoder is
told the class, z is free to carry what the label does not say (slant, thickness, width): the
same z decoded under ten labels writes ten digits in one style.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from airoad.generative.vae import elbo, reparameterize


def one_hot(labels: Tensor, n_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Labels (...,) long in 0..n_classes-1 -> one-hot codes (..., n_classes) of ``dtype``.

    ``F.one_hot(labels, n_classes).to(dtype)``: row i is 1 at column labels[i], 0 elsewhere.
    torch itself rejects a label outside the range (negative or >= n_classes).
    """
    return F.one_hot(labels, n_classes).to(dtype)


class ConditionalVAE(nn.Module):
    """An MLP conditional VAE: encoder [x, c] (D + C) -> hidden -> (mu, logvar) of L; decoder
    [z, c] (L + C) -> reversed hidden -> D logits, with c = one_hot(y, C).

    ``encoder`` (Linear+ReLU stack) then the heads ``to_mu`` and ``to_logvar``; ``decoder`` (a
    Linear+ReLU stack) then the Linear ``to_logits``. Images enter flat, (n, D), in [0, 1];
    labels are (n,) long.
    """

    def __init__(
        self,
        in_dim: int = 784,
        n_classes: int = 10,
        hidden: tuple[int, ...] = (512, 256),
        latent_dim: int = 16,
    ):
        super().__init__()
        self.n_classes, self.latent_dim = n_classes, latent_dim
        enc, dec = [in_dim + n_classes, *hidden], [latent_dim + n_classes, *reversed(hidden)]
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

    def encode(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, logvar) of q(z|x,y), each (n, L): the two heads on ``encoder(cat([x, c], -1))``.

        x (n, D), y (n,) long; c = one_hot(y, C) in x's dtype.
        """
        h = self.encoder(torch.cat([x, one_hot(y, self.n_classes, x.dtype)], dim=-1))
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: Tensor, y: Tensor) -> Tensor:
        """Bernoulli logits (..., n, D) of p(x|z,y): ``to_logits(decoder(cat([z, c], -1)))``.

        z (..., n, L) (e.g. k latents per image, (k, n, L)), y (n,) long; the one-hot c (n, C) is
        expanded over z's leading dimensions so every latent of image i gets label y[i].
        """
        c = one_hot(y, self.n_classes, z.dtype).expand(*z.shape[:-1], self.n_classes)
        return self.to_logits(self.decoder(torch.cat([z, c], dim=-1)))

    def forward(
        self, x: Tensor, y: Tensor, k: int = 1, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Encode (x, y), draw k latents per image with `vae.reparameterize`, decode them with y.

        Returns (logits (k, n, D), z (k, n, L), mu (n, L), logvar (n, L)).
        """
        mu, logvar = self.encode(x, y)
        z = reparameterize(mu, logvar, k, generator)
        return self.decode(z, y), z, mu, logvar

    def elbo(self, x: Tensor, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The conditional ELBO per image, (n,): `vae.elbo(x, logits, mu, logvar)` for one z ~ q(z|x,y).

        log p(x|z,y) - KL(q(z|x,y) || N(0, I)), with the logits decoded from that z and the label.
        """
        logits, _, mu, logvar = self(x, y, 1, generator)
        return elbo(x, logits[0], mu, logvar)

    @torch.no_grad()
    def sample(self, labels: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One image per label from the prior: Bernoulli means sigmoid(decode(z, labels)), (n, D).

        Draw ``z = torch.randn(n, latent_dim, generator=generator)`` in the weights' dtype, n =
        len(labels); every value is in [0, 1].
        """
        dtype = self.to_logits.weight.dtype
        z = torch.randn(len(labels), self.latent_dim, generator=generator, dtype=dtype)
        return torch.sigmoid(self.decode(z, labels))


def train_step(
    model: ConditionalVAE,
    optimizer: torch.optim.Optimizer,
    x: Tensor,
    y: Tensor,
    generator: torch.Generator | None = None,
) -> float:
    """One update on -ELBO averaged over the batch (nats per image); returns that loss.

    ``loss = -model.elbo(x, y, generator).mean()``, then zero the gradients, backward, step.
    """
    loss = -model.elbo(x, y, generator).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()

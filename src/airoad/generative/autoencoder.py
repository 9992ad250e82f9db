"""Autoencoders: squeeze an image through a small code and rebuild it.

An autoencoder is an encoder ``z = f(x)`` and a decoder ``x_hat = g(z)`` trained together to make
``g(f(x))`` close to ``x``. The code ``z`` is smaller than the image, so the pair must keep what
matters about the digit and drop the rest. Three variants share the code here:

- `DenseAutoencoder`: Linear layers on the flattened 784 pixels (a 2-d code can be plotted);
- `ConvAutoencoder`: strided convolutions down to a (C, 7, 7) code, transposed convolutions
  (`ConvTranspose2d`, written here as a matmul plus an overlap-add) back up to 28x28;
- a denoising autoencoder: either model trained on `corrupt`-ed inputs against the CLEAN images.

Decoders return logits; ``sigmoid(logits)`` are pixel intensities in [0, 1]. Images are float
tensors in [0, 1] of shape (n, 1, 28, 28).

An autoencoder is not a generative model by itself: nothing says where in code space the
training images landed. `fit_gaussian` and `LatentSampler` fit a Gaussian to the training codes
and decode draws from it, the simplest way to turn it into a sampler (and a poor one).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

CORRUPTIONS = ("gaussian", "mask")
LOSSES = ("bce", "mse")


# ---------------------------------------------------------------- losses and corruption


def bce_with_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of pixel logits against targets in [0, 1], summed over each image's
    pixels and averaged over the batch (a scalar).

    Per pixel ``-t log s(l) - (1 - t) log(1 - s(l))`` with ``s`` the sigmoid. Written as
    ``max(l, 0) - l t + log(1 + exp(-|l|))`` it never takes the log of 0 or exponentiates a large
    positive number, so logits of +-1000 stay finite.
    """
    per_pixel = logits.clamp(min=0) - logits * target + torch.log1p(torch.exp(-logits.abs()))
    return per_pixel.flatten(1).sum(1).mean()


def reconstruction_loss(
    logits: torch.Tensor, target: torch.Tensor, kind: str = "bce"
) -> torch.Tensor:
    """The loss a model trains on: ``"bce"`` (`bce_with_logits`) or ``"mse"`` (squared error
    between ``sigmoid(logits)`` and the target), each summed over pixels, averaged over images."""
    if kind == "bce":
        return bce_with_logits(logits, target)
    if kind == "mse":
        return (torch.sigmoid(logits) - target).pow(2).flatten(1).sum(1).mean()
    raise ValueError(f"loss kind '{kind}' is unknown: choose one of {', '.join(LOSSES)}")


def corrupt(
    x: torch.Tensor, kind: str, level: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A noisy copy of images ``x`` in [0, 1] for the denoising autoencoder (same shape).

    ``"gaussian"``: add N(0, level^2) noise to every pixel, then clip to [0, 1].
    ``"mask"``: set each pixel to 0 with probability ``level`` (in [0, 1]), keep it otherwise.
    Draws come from ``generator`` (seeded by the caller), so a run is reproducible.
    """
    if kind == "gaussian":
        if not level >= 0:
            raise ValueError(f"gaussian noise level is {level}: it must be a std >= 0")
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return (x + level * noise).clamp(0.0, 1.0)
    if kind == "mask":
        if not 0 <= level <= 1:
            raise ValueError(f"mask level is {level}: it must be a probability in [0, 1]")
        drop = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device) < level
        return x.masked_fill(drop, 0.0)
    raise ValueError(f"corruption '{kind}' is unknown: choose one of {', '.join(CORRUPTIONS)}")


# ---------------------------------------------------------------- the transposed convolution


def conv_transpose2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
) -> torch.Tensor:
    """The transposed convolution of x (n, C_in, H, W) with a square kernel (C_in, C_out, k, k).

    Every input pixel stamps its own copy of the kernel, scaled by its values, onto the output
    at ``stride`` times its position; overlapping stamps add up. As matrices: the stamps are
    ``W^T x`` (a (C_out k k) column per input pixel, one matmul), and ``F.fold`` (col2im) adds
    each column into its k x k window. This is exactly the gradient of a strided convolution
    with respect to its input, which is why it upsamples. The output is
    ``H_out = (H - 1) stride - 2 padding + k + output_padding`` (``padding`` crops that many
    rows and columns from each border; ``output_padding`` < stride adds rows at the bottom/right).
    """
    c_in, c_out, k = (int(n) for n in weight.shape[:3])  # int(): plain numbers under tracing
    if x.shape[1] != c_in:
        raise ValueError(f"input has {x.shape[1]} channels but the weight expects {c_in}")
    if not 0 <= output_padding < stride:
        raise ValueError(f"output_padding {output_padding} must be >= 0 and < stride {stride}")
    h_out = (x.shape[2] - 1) * stride - 2 * padding + k + output_padding
    w_out = (x.shape[3] - 1) * stride - 2 * padding + k + output_padding
    stamps = weight.reshape(c_in, c_out * k * k).T @ x.flatten(2)  # (n, C_out k k, H W)
    out = F.fold(stamps, (h_out, w_out), kernel_size=k, stride=stride, padding=padding)
    return out if bias is None else out + bias[:, None, None]


class ConvTranspose2d(nn.Module):
    """`conv_transpose2d` as a layer, with ``nn.ConvTranspose2d``'s weight layout and init."""

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, stride: int = 1, padding: int = 0,
        output_padding: int = 0,
    ):  # fmt: skip
        super().__init__()
        self.stride, self.padding, self.output_padding = stride, padding, output_padding
        self.weight = nn.Parameter(torch.empty(c_in, c_out, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(c_out))
        # torch's default: Kaiming-uniform with a = sqrt(5); fan_in = C_out k k for this layout
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        bound = 1 / math.sqrt(c_out * kernel_size * kernel_size)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, C_in, H, W) -> (n, C_out, H_out, W_out), see `conv_transpose2d`."""
        return conv_transpose2d(
            x, self.weight, self.bias, self.stride, self.padding, self.output_padding
        )


# ---------------------------------------------------------------- the models


class Autoencoder(nn.Module):
    """What every autoencoder here does with the ``encoder`` and ``decoder`` its subclass builds."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (n, 1, 28, 28) -> codes ((n, latent_dim) dense, (n, channels, 7, 7) conv)."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (as `encode` returns them) -> pixel logits (n, 1, 28, 28)."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction logits ``decode(encode(x))``, shape (n, 1, 28, 28)."""
        return self.decode(self.encode(x))


class DenseAutoencoder(Autoencoder):
    """784 -> hidden -> latent_dim -> hidden -> 784 with ReLUs between Linear layers.

    ``encoder``: Flatten, Linear(784, hidden), ReLU, Linear(hidden, latent_dim): (n, 1, 28, 28)
    -> (n, latent_dim). ``decoder``: Linear(latent_dim, hidden), ReLU, Linear(hidden, 784),
    Unflatten: (n, latent_dim) -> logits (n, 1, 28, 28). The code itself has no activation.
    """

    def __init__(self, latent_dim: int = 2, hidden: int = 256):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, latent_dim)
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, 784),
            nn.Unflatten(1, (1, 28, 28)),
        )  # fmt: skip


class ConvAutoencoder(Autoencoder):
    """Convolutions down to a (latent_channels, 7, 7) code and transposed convolutions back up.

    ``encoder`` (channels = (c1, c2)): Conv(1, c1, 3, pad 1), ReLU, Conv(c1, c2, 4, stride 2,
    pad 1) [14x14], ReLU, Conv(c2, c2, 4, stride 2, pad 1) [7x7], ReLU, Conv(c2, latent, 1).
    ``decoder``: Conv(latent, c2, 3, pad 1), ReLU, ConvTranspose2d(c2, c2, 4, stride 2, pad 1)
    [14x14], ReLU, ConvTranspose2d(c2, c1, 4, stride 2, pad 1) [28x28], ReLU,
    Conv(c1, 1, 3, pad 1) -> logits. Kernel 4 with stride 2 and padding 1 exactly halves
    (doubles) the size, so no output_padding is needed. ``upsample`` is the transposed-conv
    layer class: ours by default, or ``nn.ConvTranspose2d`` (same weight layout, so the two
    models load each other's state_dict).
    """

    def __init__(
        self, latent_channels: int = 4, channels: tuple[int, int] = (16, 32),
        upsample: type[nn.Module] = ConvTranspose2d,
    ):  # fmt: skip
        super().__init__()
        c1, c2 = channels
        self.latent_shape = (latent_channels, 7, 7)
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c2, c2, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c2, latent_channels, 1),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, c2, 3, padding=1), nn.ReLU(),
            upsample(c2, c2, 4, stride=2, padding=1), nn.ReLU(),
            upsample(c2, c1, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c1, 1, 3, padding=1),
        )  # fmt: skip


# ---------------------------------------------------------------- training


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    loss: str = "bce",
    corruption: str | None = None,
    level: float = 0.0,
    generator: torch.Generator | None = None,
) -> float:
    """One optimisation step on a batch of clean images x; returns the loss before the step.

    With ``corruption`` set, the model sees ``corrupt(x, corruption, level, generator)`` but is
    scored against the clean x: that is the whole denoising autoencoder. Order: corrupt, zero
    the gradients, ``reconstruction_loss(model(input), x, loss)``, backward, optimizer step.
    """
    inputs = x if corruption is None else corrupt(x, corruption, level, generator)
    optimizer.zero_grad()
    value = reconstruction_loss(model(inputs), x, loss)
    value.backward()
    optimizer.step()
    return float(value.detach())


# ---------------------------------------------------------------- latents: paths and samples


def interpolate(a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` evenly spaced points from a to b: ``(1 - t) a + t b`` for t = 0 ... 1, stacked
    on a new first axis (steps, *a.shape). On codes, decode them; on pixels, it is a cross-fade."""
    if steps < 2:
        raise ValueError(f"steps is {steps}: an interpolation needs at least its two ends")
    t = torch.linspace(0.0, 1.0, steps, dtype=a.dtype).reshape(-1, *([1] * a.dim()))
    return a + t * (b - a)


def fit_gaussian(z: torch.Tensor, ridge: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (d,) and Cholesky factor L (d, d) of a Gaussian fitted to codes z (n, d).

    The covariance is the unbiased ``(z - mean)^T (z - mean) / (n - 1)``; ``ridge`` is added to
    its diagonal so a code that never varies still has a factor. ``L L^T = cov + ridge I`` and
    ``mean + eps @ L.T`` with ``eps ~ N(0, I)`` is a draw from the fitted Gaussian.
    """
    if z.dim() != 2 or len(z) < 2:
        raise ValueError(f"fit_gaussian needs codes of shape (n >= 2, d); got {tuple(z.shape)}")
    mean = z.mean(0)
    centred = z - mean
    cov = centred.T @ centred / (len(z) - 1)
    eye = torch.eye(z.shape[1], dtype=z.dtype)
    return mean, torch.linalg.cholesky(cov + ridge * eye)


class LatentSampler(nn.Module):
    """A generator from an autoencoder: Gaussian noise -> fitted code distribution -> decoder.

    ``forward(eps)`` with eps (n, d) standard normal returns ``sigmoid(decoder(z))`` in [0, 1],
    shape (n, 1, 28, 28), where ``z = mean + eps @ scale_tril.T`` reshaped to (n, *latent_shape).
    """

    def __init__(
        self, decoder: nn.Module, mean: torch.Tensor, scale_tril: torch.Tensor,
        latent_shape: tuple[int, ...],
    ):  # fmt: skip
        super().__init__()
        self.decoder = decoder
        self.latent_shape = tuple(latent_shape)
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("scale_tril", scale_tril.detach().clone())

    def forward(self, eps: torch.Tensor) -> torch.Tensor:
        """Noise (n, d) -> images (n, 1, 28, 28) in [0, 1]."""
        z = self.mean + eps @ self.scale_tril.T
        return torch.sigmoid(self.decoder(z.reshape(-1, *self.latent_shape)))

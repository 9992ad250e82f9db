"""CycleGAN: translate images between two domains with no paired examples (Zhu et al., 2017).

The domains here are two real handwriting sets: MNIST (28x28) and scikit-learn's 8x8 digits,
brought to 28x28 by `upsample_digits`. Two generators translate, ``G: digits -> MNIST`` and
``F: MNIST -> digits``, and two discriminators judge, ``D_mnist`` (is this a real MNIST digit?)
and ``D_digits`` (is this a real upsampled 8x8 digit?). Nobody says which MNIST image goes with
which digit; three losses make the translation meaningful anyway:

- adversarial (least squares, as in the paper): ``mean((D(G(x)) - 1)^2)`` pulls G's output into
  the MNIST domain; D minimises ``0.5 [mean((D(real) - 1)^2) + mean(D(fake)^2)]``;
- cycle consistency: ``|F(G(x)) - x|_1`` and ``|G(F(y)) - y|_1``: a translation must keep
  enough of the input to undo it, which is what stops G drawing any MNIST digit it likes;
- identity: ``|G(y) - y|_1`` for an MNIST image y (and ``|F(x) - x|_1``): an image already in
  the target domain should pass through unchanged, which keeps ink where it was.

Images are (n, 1, 28, 28) in [-1, 1] (tanh outputs); `translate` maps from and to [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DIGITS_MAX = 16.0  # scikit-learn's digits count ink in 4x4 blocks: values 0..16
BOX = 20  # MNIST digits are scaled into a 20x20 box, centred in 28x28
SIZE = 28

# ---------------------------------------------------------------- the 8x8 -> 28x28 upsampler


def bilinear_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """The (n_out, n_in) float64 matrix A with ``A @ v`` = 1-D linear interpolation of v.

    Same convention as ``F.interpolate(mode="bilinear", align_corners=False)``: output pixel i
    samples the input at ``s = (i + 0.5) * n_in / n_out - 0.5``, clamped below at 0; with
    ``i0 = floor(s)``, ``i1 = min(i0 + 1, n_in - 1)`` and ``w = s - i0`` the row holds
    ``1 - w`` at i0 and ``w`` at i1 (each row sums to 1). A 2-D image X is then ``A X A^T``.
    """
    s = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
    i0 = s.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    w = s - i0
    a = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    a.index_put_((rows, i0), 1 - w, accumulate=True)
    a.index_put_((rows, i1), w, accumulate=True)
    return a


def upsample_digits(x: torch.Tensor, box: int = BOX, size: int = SIZE) -> torch.Tensor:
    """scikit-learn digits (n, 64) or (n, 8, 8), values 0..16 -> (n, 1, size, size) in [0, 1].

    Divide by 16, resize the 8x8 grid bilinearly to ``box`` x ``box`` (``A X A^T`` with
    ``A = bilinear_matrix(8, box)``), then pad with zeros to ``size`` x ``size``, centred
    (the extra pixel goes right/bottom when ``size - box`` is odd): the MNIST layout. Linear
    interpolation mixes neighbours with weights summing to 1, so the range stays [0, 1].
    Raises ValueError for NaN or values outside 0..16. Keeps the input's float dtype
    (float32 for integer input).
    """
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        x = x.float()
    if x.numel() and (torch.isnan(x).any() or x.min() < 0 or x.max() > DIGITS_MAX):
        raise ValueError("digits pixels must be numbers in 0..16 (scikit-learn's load_digits)")
    x = x.reshape(-1, 8, 8) / DIGITS_MAX
    a = bilinear_matrix(8, box).to(x.dtype)
    big = a @ x @ a.T  # (n, box, box)
    lo = (size - box) // 2
    return F.pad(big, (lo, size - box - lo, lo, size - box - lo))[:, None]


# ---------------------------------------------------------------- the networks


class ResidualBlock(nn.Module):
    """``x + conv(relu(norm(conv(x))))`` style block at constant width c: two 3x3 convs with
    InstanceNorm (affine), ReLU after the first; the input is added to the second's output."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1),
            nn.InstanceNorm2d(c, affine=True),
            nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1),
            nn.InstanceNorm2d(c, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, c, h, w) -> (n, c, h, w): ``x + body(x)``."""
        return x + self.body(x)


class Generator(nn.Module):
    """Image-to-image generator: (n, 1, 28, 28) in [-1, 1] -> (n, 1, 28, 28) in (-1, 1).

    With ``channels = (c1, c2)``: a 3x3 conv 1 -> c1, a 4x4 stride-2 conv c1 -> c2 (28 -> 14),
    ``n_res`` `ResidualBlock`s at c2, a 4x4 stride-2 transposed conv c2 -> c1 (14 -> 28), each
    conv followed by InstanceNorm (affine) and ReLU, then a 3x3 conv c1 -> 1 and tanh (all
    convs padding 1). InstanceNorm normalises each image on its own, so an image's output does
    not depend on the rest of the batch, and train and eval mode compute the same thing.
    """

    def __init__(self, channels: tuple[int, int] = (16, 32), n_res: int = 2):
        super().__init__()
        c1, c2 = channels
        self.net = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1),
            nn.InstanceNorm2d(c1, affine=True),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 4, stride=2, padding=1),
            nn.InstanceNorm2d(c2, affine=True),
            nn.ReLU(),
            *[ResidualBlock(c2) for _ in range(n_res)],
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1),
            nn.InstanceNorm2d(c1, affine=True),
            nn.ReLU(),
            nn.Conv2d(c1, 1, 3, padding=1),
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translated images (n, 1, 28, 28) in (-1, 1) from images x (n, 1, 28, 28)."""
        return self.net(x)


class Discriminator(nn.Module):
    """PatchGAN discriminator: (n, 1, 28, 28) -> (n, 1, 7, 7) scores, one per image patch.

    With ``channels = (c1, c2)``: a 4x4 stride-2 conv 1 -> c1 (28 -> 14), LeakyReLU(0.2), a 4x4
    stride-2 conv c1 -> c2 (14 -> 7), LeakyReLU(0.2), a 3x3 conv c2 -> 1 (all padding 1). No
    normalisation, so score (i, j) depends only on its receptive field (input rows and columns
    ``4i - 7 .. 4i + 10`` and ``4j - 7 .. 4j + 10``). The scores are raw (no sigmoid): the
    least-squares loss wants real -> 1, fake -> 0.
    """

    def __init__(self, channels: tuple[int, int] = (16, 32)):
        super().__init__()
        c1, c2 = channels
        self.net = nn.Sequential(
            nn.Conv2d(1, c1, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(c1, c2, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(c2, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Patch scores (n, 1, 7, 7) for images x (n, 1, 28, 28)."""
        return self.net(x)


class CycleGAN(nn.Module):
    """The four networks: ``g`` (digits -> MNIST), ``f`` (MNIST -> digits), ``d_mnist`` and
    ``d_digits``. `generator_parameters` and `discriminator_parameters` feed two optimisers."""

    def __init__(
        self,
        g_channels: tuple[int, int] = (16, 32),
        n_res: int = 2,
        d_channels: tuple[int, int] = (16, 32),
    ):
        super().__init__()
        self.g = Generator(g_channels, n_res)
        self.f = Generator(g_channels, n_res)
        self.d_mnist = Discriminator(d_channels)
        self.d_digits = Discriminator(d_channels)

    def generator_parameters(self) -> list[nn.Parameter]:
        """The parameters of g, then f."""
        return [*self.g.parameters(), *self.f.parameters()]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        """The parameters of d_mnist, then d_digits."""
        return [*self.d_mnist.parameters(), *self.d_digits.parameters()]


# ---------------------------------------------------------------- losses


def lsgan_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """D's least-squares loss ``0.5 * (mean((real - 1)^2) + mean(fake^2))`` on raw scores.

    The two means are over all elements (images and patches) and may have different sizes.
    """
    return 0.5 * (((real_scores - 1) ** 2).mean() + (fake_scores**2).mean())


def lsgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """A generator's least-squares loss ``mean((D(fake) - 1)^2)``: it wants every patch of its
    fakes scored as real. Unlike the log loss its gradient grows with the distance from 1."""
    return ((fake_scores - 1) ** 2).mean()


def cycle_loss(x: torch.Tensor, reconstructed: torch.Tensor) -> torch.Tensor:
    """Cycle consistency ``mean |reconstructed - x|`` (L1) for a round trip such as F(G(x))."""
    return (reconstructed - x).abs().mean()


def identity_loss(x: torch.Tensor, mapped: torch.Tensor) -> torch.Tensor:
    """Identity ``mean |mapped - x|`` (L1) for an image already in a generator's target domain,
    e.g. ``mapped = G(y)`` for an MNIST image y."""
    return (mapped - x).abs().mean()


def generator_objective(
    model: CycleGAN,
    x_digits: torch.Tensor,
    x_mnist: torch.Tensor,
    lambda_cycle: float = 10.0,
    lambda_identity: float = 5.0,
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Both generators' loss on a batch of each domain (n, 1, 28, 28) in [-1, 1].

    With ``fake_mnist = g(x_digits)`` and ``fake_digits = f(x_mnist)``, returns
    ``(terms, fake_mnist, fake_digits)`` where terms holds the tensors
    ``adv_g = lsgan_generator_loss(d_mnist(fake_mnist))``, ``adv_f`` (same with d_digits and
    fake_digits), ``cycle_digits = cycle_loss(x_digits, f(fake_mnist))``,
    ``cycle_mnist = cycle_loss(x_mnist, g(fake_digits))``,
    ``identity_g = identity_loss(x_mnist, g(x_mnist))``,
    ``identity_f = identity_loss(x_digits, f(x_digits))`` and
    ``total = adv_g + adv_f + lambda_cycle (cycle_digits + cycle_mnist)
    + lambda_identity (identity_g + identity_f)``. With ``lambda_identity = 0`` the identity
    terms are reported as 0 and the two extra generator passes are skipped.
    """
    fake_mnist, fake_digits = model.g(x_digits), model.f(x_mnist)
    terms = {
        "adv_g": lsgan_generator_loss(model.d_mnist(fake_mnist)),
        "adv_f": lsgan_generator_loss(model.d_digits(fake_digits)),
        "cycle_digits": cycle_loss(x_digits, model.f(fake_mnist)),
        "cycle_mnist": cycle_loss(x_mnist, model.g(fake_digits)),
    }
    if lambda_identity > 0:
        terms["identity_g"] = identity_loss(x_mnist, model.g(x_mnist))
        terms["identity_f"] = identity_loss(x_digits, model.f(x_digits))
    else:
        terms["identity_g"] = terms["identity_f"] = x_mnist.new_zeros(())
    terms["total"] = (
        terms["adv_g"]
        + terms["adv_f"]
        + lambda_cycle * (terms["cycle_digits"] + terms["cycle_mnist"])
        + lambda_identity * (terms["identity_g"] + terms["identity_f"])
    )
    return terms, fake_mnist, fake_digits


def discriminator_objective(
    discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor
) -> torch.Tensor:
    """`lsgan_discriminator_loss` of the discriminator on real images and on ``fake.detach()``
    (the generator that made the fakes gets no gradient from D's loss)."""
    return lsgan_discriminator_loss(discriminator(real), discriminator(fake.detach()))


def train_step(
    model: CycleGAN,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    x_digits: torch.Tensor,
    x_mnist: torch.Tensor,
    lambda_cycle: float = 10.0,
    lambda_identity: float = 5.0,
) -> dict[str, float]:
    """One CycleGAN update on a batch of each domain: generators first, then discriminators.

    1. ``opt_g.zero_grad()``, `generator_objective`, ``total.backward()``, ``opt_g.step()``
       (opt_g holds g and f; D gets gradients here but is not stepped).
    2. ``opt_d.zero_grad()`` (clearing those), then the sum of `discriminator_objective` for
       ``d_mnist`` (real x_mnist vs fake_mnist) and ``d_digits`` (real x_digits vs
       fake_digits), using the fakes made in step 1 (before G's update), backward,
       ``opt_d.step()``.
    Returns every generator term as a float plus ``d_mnist`` and ``d_digits`` (D losses).
    """
    opt_g.zero_grad()
    terms, fake_mnist, fake_digits = generator_objective(
        model, x_digits, x_mnist, lambda_cycle, lambda_identity
    )
    terms["total"].backward()
    opt_g.step()

    opt_d.zero_grad()
    d_mnist = discriminator_objective(model.d_mnist, x_mnist, fake_mnist)
    d_digits = discriminator_objective(model.d_digits, x_digits, fake_digits)
    (d_mnist + d_digits).backward()
    opt_d.step()
    out = {k: float(v.detach()) for k, v in terms.items()}
    return out | {"d_mnist": float(d_mnist.detach()), "d_digits": float(d_digits.detach())}


@torch.no_grad()
def translate(generator: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Translate images (n, 1, 28, 28) in [0, 1] and return them in [0, 1]:
    ``(generator(2 x - 1) + 1) / 2`` in batches of ``batch_size``, in eval mode (the
    generator's previous mode is put back)."""
    was_training = generator.training
    generator.eval()
    parts = [
        generator(images[i : i + batch_size] * 2 - 1) for i in range(0, len(images), batch_size)
    ]
    generator.train(was_training)
    if not parts:
        return images.new_zeros((0, *images.shape[1:]))
    return (torch.cat(parts) + 1) / 2

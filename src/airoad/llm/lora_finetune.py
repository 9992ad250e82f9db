"""Parameter-efficient fine-tuning from scratch: LoRA (low-rank adapters) and a bottleneck adapter.

A pretrained linear layer computes ``y = x W^T`` with a frozen ``W`` of shape (out, in). LoRA
(Hu et al., 2021) learns a low-rank update beside it::

    y = x W^T + (alpha / r) * dropout(x) A^T B^T        A: (r, in), B: (out, r), r << in, out

Only A and B train: ``r * (in + out)`` numbers instead of ``in * out``. B starts at zero, so the
wrapped model starts as exactly the pretrained one, and A starts like ``nn.Linear``'s weight
(Kaiming-uniform, bound ``1 / sqrt(in)``), so B's first gradient is not zero. After training
the update folds into the weight, ``W' = W + (alpha / r) B A``, and inference costs nothing extra.

A bottleneck adapter (Houlsby et al., 2019) instead adds a small MLP after a sublayer,
``h + up(gelu(down(h)))``, with ``up`` zero-initialised: also the identity at the start, but it
adds layers (and latency) that cannot be merged away.

The helpers wrap the ``nn.Linear`` layers of any model by the end of their names (``q_proj``,
``v_proj`` in a Llama) and freeze everything else, as peft's ``LoraConfig(target_modules=...)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class LoRALinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update: ``base(x) + s * dropout(x) A^T B^T``.

    ``base`` is any module with ``in_features`` / ``out_features`` that maps (..., in) to
    (..., out) (an ``nn.Linear``, or a quantised linear layer); its parameters are frozen.
    ``lora_A`` (r, in) is initialised as ``nn.init.kaiming_uniform_(A, a=sqrt(5))`` drawn from
    ``generator``, ``lora_B`` (out, r) with zeros, and ``scaling = alpha / r``. Dropout (rate
    ``dropout``) acts only on the adapter's input, never on the base path.
    """

    def __init__(
        self,
        base: nn.Module,
        r: int = 8,
        alpha: float = 16.0,
        dropout: float = 0.0,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if r < 1:
            raise ValueError(f"LoRA rank r must be >= 1, got {r}")
        self.base = base.requires_grad_(False)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        dtype = getattr(base, "compute_dtype", None) or next(base.parameters()).dtype
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, dtype=dtype))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, dtype=dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5), generator=generator)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., out): the frozen base output plus the scaled low-rank update."""
        update = self.dropout(x) @ self.lora_A.T @ self.lora_B.T  # never forms the (out, in) matrix
        return self.base(x) + self.scaling * update

    def delta_weight(self) -> torch.Tensor:
        """The update as a full matrix, ``scaling * B @ A``: shape (out, in)."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` whose weight is ``W + scaling * B A`` (bias copied, if any).

        Only for an ``nn.Linear`` base; the result holds new tensors and needs no gradient.
        """
        base, w = self.base, self.base.weight
        out = nn.utils.skip_init(  # no random draw that would be overwritten anyway
            nn.Linear,
            base.in_features,
            base.out_features,
            base.bias is not None,
            device=w.device,
            dtype=w.dtype,
        )
        with torch.no_grad():
            out.weight.copy_(base.weight + self.delta_weight())
            if base.bias is not None:
                out.bias.copy_(base.bias)
        return out.requires_grad_(False)


class BottleneckAdapter(nn.Module):
    """A sublayer followed by a residual bottleneck MLP: ``h + up(gelu(down(h)))``, ``h = base(x)``.

    ``down`` is ``nn.Linear(d, bottleneck)`` (PyTorch's default initialisation, drawn from
    ``generator``), ``up`` is ``nn.Linear(bottleneck, d)`` with zero weight and bias, where ``d``
    is ``base.out_features``. ``base`` is frozen; only ``down`` and ``up`` train.
    """

    def __init__(
        self, base: nn.Module, bottleneck: int = 16, generator: torch.Generator | None = None
    ):
        super().__init__()
        self.base = base.requires_grad_(False)
        d, w = base.out_features, next(base.parameters())
        self.down = nn.utils.skip_init(nn.Linear, d, bottleneck, device=w.device, dtype=w.dtype)
        self.up = nn.utils.skip_init(nn.Linear, bottleneck, d, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            bound = 1.0 / math.sqrt(d)  # nn.Linear's own default, drawn from our generator
            self.down.weight.uniform_(-bound, bound, generator=generator)
            self.down.bias.uniform_(-bound, bound, generator=generator)
            self.up.weight.zero_()
            self.up.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., out): the base output plus the adapter's residual correction."""
        h = self.base(x)
        return h + self.up(F.gelu(self.down(h)))


def wrap_linears(
    model: nn.Module, target_modules: Sequence[str], make: Callable[[nn.Module], nn.Module]
) -> list[str]:
    """Replace every ``nn.Linear`` whose qualified name ends with one of ``target_modules`` (a
    whole name component: ``"q_proj"`` matches ``layers.0.self_attn.q_proj``) by ``make(layer)``,
    in place. Returns the replaced names in ``named_modules`` order; raises ``ValueError`` when
    nothing matches."""
    names = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name.split(".")[-1] in set(target_modules)
    ]
    if not names:
        raise ValueError(f"no nn.Linear named any of {list(target_modules)} in the model")
    for name in names:  # collected first: replacing while iterating would revisit new modules
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, make(getattr(parent, child)))
    return names


def add_lora(
    model: nn.Module,
    target_modules: Sequence[str] = ("q_proj", "v_proj"),
    r: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
    seed: int = 0,
) -> list[str]:
    """Freeze ``model`` and wrap its target linear layers in ``LoRALinear`` (in place), all drawn
    from one generator seeded with ``seed`` in module order. Only the LoRA A and B matrices are
    left trainable. Returns the wrapped names (as ``wrap_linears``)."""
    model.requires_grad_(False)
    gen = torch.Generator().manual_seed(seed)
    return wrap_linears(model, target_modules, lambda lin: LoRALinear(lin, r, alpha, dropout, gen))


def add_adapters(
    model: nn.Module,
    target_modules: Sequence[str] = ("o_proj", "down_proj"),
    bottleneck: int = 16,
    seed: int = 0,
) -> list[str]:
    """Freeze ``model`` and wrap its target layers in ``BottleneckAdapter`` (in place), one
    generator seeded with ``seed``; only the adapters train. Returns the wrapped names."""
    model.requires_grad_(False)
    gen = torch.Generator().manual_seed(seed)
    return wrap_linears(model, target_modules, lambda lin: BottleneckAdapter(lin, bottleneck, gen))


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every ``LoRALinear`` inside ``model`` by its ``merged()`` ``nn.Linear`` (in place)
    and return the model: the same function, with no adapter left."""
    names = [name for name, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, getattr(parent, child).merged())
    return model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) numbers of parameters; a tied tensor counts once."""
    params = list(model.parameters())  # .parameters() already yields a shared tensor once
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)

"""The vision-transformer runner's pieces: one training loop on a CPU-second budget (used for
the ViT and for the cnn lab's FashionCNN alike), the checks against torch's layers, and the
figures. Split from the runner to keep each file short.

The clock is ``time.process_time``: CPU seconds of this process summed over its threads, counted
only around training steps (evaluation is not charged to either model). Wall time is recorded
beside it; it grows when other jobs share the machine, CPU time does not.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from airoad.labs.contract import RunContext
from airoad.labs.kit import figure
from airoad.labs.runners.cnn import CLASSES
from airoad.labs.runners.cnn import evaluate as accuracy
from airoad.neural.cnn import augment
from airoad.transformer import vision_transformer as ref
from airoad.transformer.gpt_training import lr_at, make_optimizer

SCHEDULE_TICKS = 1000  # the warm-up + cosine curve is indexed by thousandths of the budget


def train_for_budget(
    model: nn.Module,
    data: tuple[torch.Tensor, ...],
    budget_cpu_s: float,
    max_lr: float,
    config: Any,
    ctx: RunContext,
    label: str,
) -> list[dict]:
    """AdamW with warm-up + cosine decay over `budget_cpu_s` CPU seconds of training steps.

    data = (X, y, X_curve, y_curve). The learning rate follows the fraction of the budget used,
    so any model finishes its schedule exactly when its time is up. Returns the curve: test
    accuracy on the curve images at every `curve_points`-th of the budget.
    """
    X, y, Xc, yc = data
    torch.manual_seed(config.seed)  # dropout masks
    gen = torch.Generator().manual_seed(config.seed)
    opt = make_optimizer(model, max_lr, config.weight_decay)
    warm = max(1, round(config.warmup_fraction * SCHEDULE_TICKS))
    used, wall0, steps, seen = 0.0, time.perf_counter(), 0, 0
    curve = [_point(model, Xc, yc, 0.0, 0.0, 0, 0)]
    marks = iter(ctx.track(range(1, config.curve_points + 1), f"training {label}"))
    next_mark = next(marks) * budget_cpu_s / config.curve_points
    while used < budget_cpu_s:
        order = torch.randperm(len(X), generator=gen)
        for i in range(0, len(X) - config.batch_size + 1, config.batch_size):
            tick = min(int(used / budget_cpu_s * SCHEDULE_TICKS), SCHEDULE_TICKS)
            lr = lr_at(tick, max_lr, warm, SCHEDULE_TICKS, config.min_lr_ratio * max_lr)
            cpu0 = time.process_time()
            _step(model, opt, lr, X, y, order[i : i + config.batch_size], gen, config)
            used += time.process_time() - cpu0
            steps, seen = steps + 1, seen + config.batch_size
            if used >= next_mark:
                wall = time.perf_counter() - wall0
                curve.append(_point(model, Xc, yc, used, wall, steps, seen / len(X)))
                next_mark = next(marks, budget_cpu_s + 1) * budget_cpu_s / config.curve_points
            if used >= budget_cpu_s:
                break
    return curve


def _step(model, opt, lr: float, X, y, idx, gen, config: Any) -> None:
    """One AdamW update on a batch (random crop + flip first when crop_padding > 0)."""
    model.train()
    for group in opt.param_groups:
        group["lr"] = lr
    xb = augment(X[idx], config.crop_padding, gen, flip=True) if config.crop_padding else X[idx]
    loss = F.cross_entropy(model(xb), y[idx])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _point(model, X, y, cpu: float, wall: float, steps: int, epochs: float) -> dict:
    acc = accuracy(model, X, y)
    return {"cpu_seconds": cpu, "wall_seconds": wall, "steps": steps, "epochs": epochs, "acc": acc}


# ---------------------------------------------------------------- checks against torch


def torch_twin_accuracy(vit: ref.VisionTransformer, X: torch.Tensor, y: torch.Tensor) -> float:
    """Test accuracy of the trained ViT with nn.Conv2d as the patch embedding and every block
    replaced by nn.TransformerEncoderLayer carrying the trained weights."""
    d, p = vit.head.in_features, vit.patch_size
    conv = nn.Conv2d(vit.patch_embed.in_channels, d, p, stride=p)
    conv.weight.data = vit.patch_embed.proj.weight.detach().view_as(conv.weight).clone()
    conv.bias.data = vit.patch_embed.proj.bias.detach().clone()
    layers = [torch_layer(block) for block in vit.blocks]

    def forward(images: torch.Tensor) -> torch.Tensor:
        patches = conv(images).flatten(2).transpose(1, 2)
        h = vit.pos_emb(torch.cat([vit.cls_token.expand(len(images), -1, -1), patches], 1))
        for layer in layers:
            h = layer(h)
        return vit.head(vit.norm(h[:, 0]))

    twin = _Wrapped(forward, [conv, *layers])
    return accuracy(twin, X, y)


def torch_layer(block: ref.ViTBlock) -> nn.TransformerEncoderLayer:
    """nn.TransformerEncoderLayer (pre-LN, GELU, batch_first) with a ViTBlock's weights."""
    d = block.norm1.weight.shape[0]
    layer = nn.TransformerEncoderLayer(
        d,
        block.self_attn.n_heads,
        block.ff.linear1.out_features,
        0.0,
        "gelu",
        batch_first=True,
        norm_first=True,
    )
    ours = {k.removeprefix("ff."): v for k, v in block.state_dict().items()}
    layer.load_state_dict(ours)  # strict: every name matches once "ff." is dropped
    return layer.to(block.norm1.weight.dtype)


class _Wrapped(nn.Module):
    """A forward function and the modules it uses, so `eval()` reaches all of them."""

    def __init__(self, forward, modules: list[nn.Module]):
        super().__init__()
        self.parts, self._forward = nn.ModuleList(modules), forward

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._forward(images)


# ---------------------------------------------------------------- figures


def accuracy_figure(curves: dict[str, list[dict]], target: float, ctx: RunContext) -> None:
    with figure(ctx, "accuracy_vs_cpu_seconds", 1, 2, figsize=(11, 4)) as (_, ax):
        for name, curve in curves.items():
            acc = [c["acc"] for c in curve]
            ax[0].plot([c["cpu_seconds"] for c in curve], acc, "o-", ms=3, label=name)
            ax[1].plot([c["epochs"] for c in curve], acc, "o-", ms=3, label=name)
        for a, xlabel in zip(ax, ("training CPU seconds (process_time)", "epochs")):
            a.axhline(target, color="grey", ls=":", label=f"{target:.0%}")
            a.set(xlabel=xlabel, ylabel="test accuracy (curve images)")
            a.set_ylim(max(0.5, min(c["acc"] for v in curves.values() for c in v[1:]) - 0.02), 1)
            a.legend()
        ax[0].set_title("same CPU budget for both")
        ax[1].set_title("the same runs against passes over the training set")


def rollout_figure(vit: ref.VisionTransformer, X, y, images: np.ndarray, ctx: RunContext):
    """Test images beside the class token's attention rollout over their patches."""
    n = len(X)
    vit.eval()
    with torch.no_grad():
        logits, attentions = vit.forward_with_attention(X)
    maps = ref.class_token_map(ref.attention_rollout(attentions), vit.grid).numpy()
    pred = logits.argmax(1)
    with figure(ctx, "attention_rollout", 2, n, figsize=(1.5 * n, 3.6)) as (fig, axes):
        for k in range(n):
            axes[0, k].imshow(images[k], cmap="gray")
            axes[0, k].set_title(f"{CLASSES[int(y[k])]}\n-> {CLASSES[int(pred[k])]}", fontsize=7)
            axes[1, k].imshow(images[k], cmap="gray")
            axes[1, k].imshow(
                maps[k], cmap="inferno", alpha=0.6, extent=(-0.5, 27.5, 27.5, -0.5), vmin=0
            )
            for a in axes[:, k]:
                a.axis("off")
        fig.suptitle("test images (true -> predicted) and the class token's attention rollout")


def position_figure(vit: ref.VisionTransformer, ctx: RunContext) -> None:
    """Cosine similarity of each patch's learned position vector with every other patch's."""
    g = vit.grid
    pos = F.normalize(vit.pos_emb.weight.detach()[1:], dim=1)  # (N, D), class token dropped
    sim = (pos @ pos.T).reshape(g, g, g, g).numpy()
    with figure(ctx, "position_similarity", g, g, figsize=(1.1 * g, 1.1 * g)) as (fig, axes):
        for r in range(g):
            for c in range(g):
                axes[r, c].imshow(sim[r, c], cmap="viridis", vmin=-1, vmax=1)
                axes[r, c].set_xticks([])
                axes[r, c].set_yticks([])
        fig.suptitle(
            "cosine similarity of each patch's\nposition vector with every patch's", fontsize=9
        )

"""Figures of the transformer-block runner: stability sweep, early training, positions."""

from __future__ import annotations

import math

import numpy as np

from airoad.labs.kit import figure
from airoad.transformer import transformer_block as ref


def stability_figure(sweep: list[dict], unigram: float, twin: dict, config, ctx) -> None:
    from matplotlib import colormaps

    ceiling = unigram + 0.6  # diverged (NaN) and off-scale runs are drawn at this height
    floor = min(v for r in sweep for _, v in r["curve"] if math.isfinite(v)) - 0.05
    with figure(ctx, "stability", 1, 3, figsize=(15, 4.2)) as (fig, ax):
        for layout, colour in (("post-LN", "tab:red"), ("pre-LN", "tab:blue")):
            rows = [r for r in sweep if r["layout"] == layout]
            vals = [ceiling if r["diverged"] else min(r["val_loss"], ceiling) for r in rows]
            ax[0].plot([r["lr"] for r in rows], vals, "o-", color=colour, label=layout)
            for r in (r for r in rows if r["diverged"]):
                ax[0].annotate("NaN", (r["lr"], ceiling), color=colour, ha="center")
            panel = ax[1] if layout == "post-LN" else ax[2]
            for i, r in enumerate(rows):
                colour_i = colormaps["viridis"](i / max(1, len(rows) - 1))
                panel.plot(*zip(*r["curve"]), color=colour_i, label=f"lr {r['lr']:g}")
            panel.axhline(unigram, color="grey", ls=":")
            panel.set(xlabel="step", ylabel="validation loss (nats/char)", ylim=(floor, ceiling))
            panel.set_title(f"{layout}: validation curves")
            panel.legend(fontsize=8)
        ax[0].plot([twin["lr"]], [twin["torch"]["val_loss"]], "k*", ms=12, label="torch layers")
        ax[0].axhline(unigram, color="grey", ls=":", label=f"unigram {unigram:.2f}")
        ax[0].set(xscale="log", xlabel="learning rate (constant, no warm-up)")
        ax[0].set_ylabel(f"validation loss after {config.steps} steps (nats/char)")
        ax[0].set_title(f"{config.n_layers}-layer char LM on Shakespeare")
        ax[0].legend(fontsize=8)


def early_training_figure(sweep: list[dict], unigram: float, lr: float, ctx) -> None:
    """Every step of both layouts at one learning rate: loss and gradient norm."""
    with figure(ctx, "early_training", 1, 2, figsize=(11, 4)) as (fig, ax):
        for r in (r for r in sweep if r["lr"] == lr):
            colour = "tab:red" if r["layout"] == "post-LN" else "tab:blue"
            steps = np.arange(1, len(r["train_loss"]) + 1)
            ax[0].plot(steps, r["train_loss"], color=colour, lw=0.8, label=r["layout"])
            ax[1].plot(steps, r["grad_norm"], color=colour, lw=0.8, label=r["layout"])
        ax[0].axhline(unigram, color="grey", ls=":", label=f"unigram {unigram:.2f}")
        ax[0].set(xlabel="step", ylabel="training loss of the batch (nats/char)")
        ax[0].set_title(f"every step at lr {lr:g}, no warm-up")
        ax[1].set(xlabel="step", ylabel="gradient norm (all weights)", yscale="log")
        ax[1].set_title("gradient norm before each update")
        for a in ax:
            a.legend(fontsize=8)


def positions_figure(positions: list[dict], rope_curves: dict, config, ctx) -> None:
    with figure(ctx, "positions", 1, 3, figsize=(15, 4)) as (fig, ax):
        table = ref.sinusoidal_positions(config.seq_len, config.d_model).numpy()
        im = ax[0].imshow(table.T, aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
        ax[0].set(xlabel="position", ylabel="dimension", title="sinusoidal table")
        fig.colorbar(im, ax=ax[0])
        for m, scores in rope_curves.items():
            width, style = (3, "-") if m == 0 else (1.2, "--")
            ax[1].plot(scores, lw=width, ls=style, label=f"query at position {m}")
        ax[1].set(xlabel="offset n - m", ylabel="q . k after RoPE")
        ax[1].set_title("RoPE: the score depends on the offset only")
        ax[1].legend(fontsize=8)
        for row in positions:
            label = f"{row['position']} {row['val_loss']:.3f}"
            ax[2].plot(*zip(*row["curve"]), "-o", ms=3, label=label)
        ax[2].set(xlabel="step", ylabel="validation loss (nats/char)")
        ax[2].set_title(f"position encodings, pre-LN, lr {config.positions_lr:g}")
        ax[2].legend(fontsize=8)

"""The video-diffusion runner's pieces: seeded clip batches, training, DDIM sampling, the
yardstick on frames, the saved clip sampler and the figures."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from airoad.generative import diffusion
from airoad.generative import video_diffusion as ref
from airoad.generative.metrics import Yardstick, frechet_from_features
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure

SEED_STRIDE = 1_000_003  # batch b of run seed s draws its motions from seed s * stride + b


def clips(images: np.ndarray, config: Any, seed: int) -> Tensor:
    """Moving-digit clips (n, T, H, W) in [0, 1] of the given digit images, seeded."""
    out, _ = ref.moving_digit_clips(
        images, config.n_frames, config.size, config.digit_size, config.max_speed, seed
    )
    return out


def schedule(config: Any) -> diffusion.Schedule:
    """The noise schedule the model is trained and sampled with."""
    maker = diffusion.cosine_schedule if config.schedule == "cosine" else diffusion.linear_schedule
    return maker(config.diffusion_steps)


def new_model(config: Any, frame_embedding: bool | None = None) -> ref.VideoDenoiser:
    """A seeded, untrained denoiser of the config's size (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return ref.VideoDenoiser(
            config.channels,
            config.n_heads,
            config.n_frames,
            config.frame_embedding if frame_embedding is None else frame_embedding,
            config.full_res_attention,
        )


def train(
    model: ref.VideoDenoiser, digits: np.ndarray, config: Any, ctx: RunContext
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Adam on the noise-prediction loss, a fresh batch of clips every step (new digits, new
    seeded motions); the mean loss of every ``log_every`` steps is logged. Returns the
    exponential moving average of the weights (decay ``ema_decay``: it smooths the last few
    hundred steps' noise out of the sampler) and the log."""
    sched = schedule(config)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay))
    rng = torch.Generator().manual_seed(config.seed)
    np_rng = np.random.default_rng(config.seed)
    log, window = [], []
    model.train()
    for step in ctx.track(range(1, config.steps + 1), "training the video denoiser"):
        idx = np_rng.integers(0, len(digits), config.batch_size)
        x0 = clips(digits[idx], config, config.seed * SEED_STRIDE + step)[:, None] * 2 - 1
        loss = diffusion.noise_prediction_loss(model, x0, sched, rng)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update_parameters(model)
        window.append(loss.item())
        if step % config.log_every == 0 or step == config.steps:
            log.append({"step": step, "loss": float(np.mean(window))})
            window = []
    return ema.module.eval(), log


@torch.no_grad()
def sample(model: nn.Module, n: int, config: Any, seed: int, batch: int = 125) -> Tensor:
    """n clips (n, T, H, W) in [0, 1] by deterministic DDIM (x0 clipped to [-1, 1] per step)."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    shape = (1, config.n_frames, config.size, config.size)
    sched, out = schedule(config), []
    for start in range(0, n, batch):
        x_t = torch.randn((min(batch, n - start), *shape), generator=g)
        x = diffusion.ddim_sample(model, x_t.shape, sched, config.ddim_steps, x_T=x_t, clip=1.0)
        out.append(x[:, 0])
    return torch.cat(out).add(1).div(2).clamp(0, 1)


# ---------------------------------------------------------------- the yardstick on frames


def frames_28(clip_batch: Tensor) -> Tensor:
    """Every frame of (n, T, H, W) clips upsampled (bilinear) to (n * T, 1, 28, 28) in [0, 1]."""
    frames = clip_batch.reshape(-1, 1, *clip_batch.shape[-2:])
    return F.interpolate(frames, size=(28, 28), mode="bilinear", align_corners=False).clamp(0, 1)


def noise_clips(reference: Tensor, n: int, seed: int) -> Tensor:
    """The trivial generator: per-pixel Gaussian noise with the reference clips' per-pixel
    (over clips and frames) mean and standard deviation, clipped to [0, 1]; (n, T, H, W)."""
    frames = reference.reshape(-1, *reference.shape[-2:])
    mean, std = frames.mean(0), frames.std(0)
    g = torch.Generator().manual_seed(seed)
    return (mean + std * torch.randn((n, *reference.shape[1:]), generator=g)).clamp(0, 1)


def frame_score(ys: Yardstick, reference_features: np.ndarray, clip_batch: Tensor) -> float:
    """Fréchet distance between the yardstick features of the clips' frames and the reference."""
    return frechet_from_features(ys.features(frames_28(clip_batch)), reference_features)


def attention_vs_torch(model: nn.Module, config: Any) -> float:
    """Max |ours - nn.MultiheadAttention| of the trained model's first 8x8 temporal attention on
    random features (the frame embedding added to the sequences for both)."""
    ours = model.mid1.attn
    c = ours.out_proj.in_features
    mha = nn.MultiheadAttention(c, config.n_heads, batch_first=True)
    mha.load_state_dict(
        {"in_proj_weight": ours.in_proj.weight, "in_proj_bias": ours.in_proj.bias,
         "out_proj.weight": ours.out_proj.weight, "out_proj.bias": ours.out_proj.bias}
    )  # fmt: skip
    x = torch.randn(2, c, config.n_frames, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        seq = x.permute(0, 3, 4, 2, 1).reshape(-1, config.n_frames, c)
        if ours.frame_embedding is not None:
            seq = seq + ours.frame_embedding
        theirs = mha(seq, seq, seq, need_weights=False)[0]
        mine = ours(x).permute(0, 3, 4, 2, 1).reshape(-1, config.n_frames, c)
    return float((mine - theirs).abs().max())


# ---------------------------------------------------------------- the saved clip sampler


class ClipSampler(nn.Module):
    """Noise (n, T * H * W) -> clips (n, T, H, W) in [-1, 1]: DDIM with a fixed step count."""

    def __init__(self, model: nn.Module, config: Any):
        super().__init__()
        self.model, self.sched, self.ddim_steps = model, schedule(config), config.ddim_steps
        self.shape = (1, config.n_frames, config.size, config.size)

    def forward(self, noise: Tensor) -> Tensor:
        x_t = noise.reshape(-1, *self.shape)
        x = diffusion.ddim_sample(self.model, x_t.shape, self.sched, self.ddim_steps, x_T=x_t,
                                  clip=1.0)  # fmt: skip
        return x[:, 0].clamp(-1, 1)


def sampler_writer(model: nn.Module, config: Any, score: float) -> Callable[[Path], None]:
    """Writes generator.pt (a TorchScript trace of `ClipSampler`) and lab.json (kind
    "video-generator": not an image generator, so the serving lab does not load it)."""

    def write(folder: Path) -> None:
        model.eval()
        sampler = ClipSampler(model, config)
        example = torch.randn(2, config.n_frames * config.size**2)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the DDIM steps are constants
            traced = torch.jit.trace(sampler, example, check_trace=False)
        traced.save(str(folder / "generator.pt"))
        spec = {
            "kind": "video-generator",
            "latent_dim": config.n_frames * config.size**2,
            "frames": config.n_frames,
            "size": config.size,
            "n_labels": 0,
            "output_range": [-1.0, 1.0],
            "ddim_steps": config.ddim_steps,
            "dataset": "mnist",
            "module": "airoad.generative.video_diffusion.VideoDenoiser",
            "yardstick_score": score,
        }
        (folder / "lab.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")

    return write


# ---------------------------------------------------------------- figures


def strip_figure(ctx: RunContext, name: str, clip_batch: Tensor, title: str) -> None:
    """One row per clip, one column per frame (time runs left to right)."""
    n, t = clip_batch.shape[:2]
    with figure(ctx, name, n, t, figsize=(1.1 * t, 1.15 * n + 0.4)) as (fig, axes):
        for i, row in enumerate(np.atleast_2d(axes)):
            for j, ax in enumerate(row):
                ax.imshow(clip_batch[i, j].numpy(), cmap="gray", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0:
                    ax.set_title(f"t={j}", fontsize=8)
        fig.suptitle(title)


def training_and_motion_figure(
    ctx: RunContext, log: list[dict], real: Tensor, generated: Tensor, k: int = 6
) -> None:
    """The loss curve; the centre-of-mass paths of k real and k generated clips."""
    with figure(ctx, "training_and_motion", 1, 3, figsize=(14, 4.2)) as (fig, axes):
        axes[0].plot([r["step"] for r in log], [r["loss"] for r in log])
        axes[0].set(title="noise-prediction loss", xlabel="step", ylabel="MSE", yscale="log")
        size = real.shape[-1]
        for ax, batch, tag in ((axes[1], real, "real"), (axes[2], generated, "generated")):
            com = ref.centre_of_mass(batch[:k])
            for i in range(len(com)):
                ax.plot(com[i, :, 1], com[i, :, 0], "o-", ms=3, c=f"C{i}")
                ax.plot(com[i, 0, 1], com[i, 0, 0], "s", ms=6, c=f"C{i}")
            ax.set(title=f"{tag} clips: centre-of-mass paths\n(square = frame 0)",
                   xlim=(0, size - 1), ylim=(size - 1, 0), aspect="equal")  # fmt: skip


# ---------------------------------------------------------------- measures


def yardstick_scores(generated: Tensor, data: dict, config: Any) -> dict[str, float]:
    """Frame scores of generated, held-out real (the floor) and per-pixel noise clips (the
    baseline), each on the first eval_frames frames, against the reference clips' frames."""
    ys, n = Yardstick("mnist"), config.eval_frames
    reference = ys.features(frames_28(data["reference"]))[:n]

    def score(batch: Tensor) -> float:
        return frechet_from_features(ys.features(frames_28(batch)[:n]), reference)

    noise = noise_clips(data["reference"], len(data["reference"]), config.seed + 7)
    m = {"score": score(generated), "floor": score(data["other"]), "baseline": score(noise)}
    return m | {"score_over_floor": m["score"] / m["floor"],
                "score_over_baseline": m["score"] / m["baseline"]}  # fmt: skip


def shuffle_frames(clip_batch: Tensor, seed: int) -> Tensor:
    """Each clip's frames in a seeded random order: the same frames, the motion destroyed."""
    n, t = clip_batch.shape[:2]
    order = torch.argsort(torch.rand(n, t, generator=torch.Generator().manual_seed(seed)), dim=1)
    return clip_batch[torch.arange(n)[:, None], order]


def motion_metrics(real: Tensor, generated: Tensor, seed: int) -> dict[str, Any]:
    """`motion_stats` of real, generated and frame-shuffled real clips, and a verdict: do the
    generated digits step as far as real ones (within 25%) with a jerk closer to the real
    clips' than to shuffled frames'?"""
    m: dict[str, Any] = {}
    for tag, batch in (
        ("real", real),
        ("gen", generated),
        ("shuffled", shuffle_frames(real, seed)),
    ):
        m |= {f"{tag}_{k}": v for k, v in ref.motion_stats(batch).items()}
    speed_ok = abs(m["gen_step"] - m["real_step"]) <= 0.25 * m["real_step"]
    smooth = m["gen_jerk"] < (m["real_jerk"] + m["shuffled_jerk"]) / 2
    m["motion_verdict"] = (
        "the generated digits move like the real ones (step within 25% of the real clips', "
        "jerk closer to real clips than to shuffled frames)"
        if speed_ok and smooth
        else "the generated motion is not real-like yet ("
        + ("step within 25% of real" if speed_ok else "step off by more than 25%")
        + ", "
        + ("jerk closer to real than to shuffled" if smooth else "jerk closer to shuffled frames")
        + ")"
    )
    return m

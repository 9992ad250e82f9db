"""Runner for autoencoder: dense, convolutional and denoising autoencoders on MNIST.

1. Four models on MNIST: a dense autoencoder with a 2-d code (the latent map), a wider dense
   one, a convolutional one with a (C, 7, 7) code, and the same conv model trained as a
   denoising autoencoder (noisy inputs, clean targets). Test MSE and BCE (ours beside torch's).
2. Our transposed convolution beside nn.ConvTranspose2d with the trained weights (outputs, time).
3. Denoising: noisy test digits cleaned by the plain and the denoising conv model.
4. Sampling: a Gaussian fitted to the conv codes of the training digits, decoded; scored with
   the generative yardstick next to the reconstructions, the real-data floor and the noise
   baseline. Optionally the conv model again on Fashion-MNIST.
The conv model is saved as the "autoencoder" artifact (latent-diffusion reuses it) and its
Gaussian sampler as the "generator" artifact.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
from torch import nn

from airoad.generative import autoencoder as ref
from airoad.generative.metrics import Yardstick
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import param, render_notes, thread_limit
from airoad.labs.runners import autoencoder_parts as parts

MODELS = {
    "dense-2": "dense_epochs",
    "dense": "dense_epochs",
    "conv": "conv_epochs",
    "denoise": "denoise_epochs",
}


@dataclass(frozen=True)
class Config:
    n_train: int = param(60_000, ge=256, le=60_000)  # a seeded subset of the training digits
    n_test: int = param(10_000, ge=100, le=10_000)
    dense_epochs: int = param(6, ge=1, le=100)
    conv_epochs: int = param(2, ge=1, le=100)
    denoise_epochs: int = param(1, ge=1, le=100)
    fashion_epochs: int = param(1, ge=0, le=100)  # 0: skip the Fashion-MNIST conv model
    batch_size: int = param(128, ge=8, le=4096)
    lr: float = param(2e-3, gt=0.0, le=1.0)
    hidden: int = param(256, ge=8, le=4096)
    dense_latent: int = param(32, ge=2, le=784)  # code size of the wider dense model
    latent_channels: int = param(4, ge=1, le=32)  # conv code: latent_channels x 7 x 7
    channels: tuple[int, ...] = param((16, 32), ge=1, le=256, min_len=2)
    upsample: str = param(
        "ours", choices=("ours", "torch")
    )  # transposed conv the model trains with
    loss: str = param("bce", choices=ref.LOSSES)
    corruption: str = param("gaussian", choices=ref.CORRUPTIONS)
    noise_level: float = param(0.5, gt=0.0, le=1.0)  # gaussian std, or the mask's drop rate
    n_score: int = param(1000, ge=100, le=5000)  # images per yardstick score
    steps: int = param(10, ge=2, le=30)  # interpolation steps
    pair: tuple[int, ...] = param((4, 7), ge=0, le=9, min_len=2)  # classes interpolated between
    threads: int = param(2, ge=1, le=64)
    seed: int = param(0, ge=0)


QUICK = {
    "n_train": 1024,
    "n_test": 300,
    "batch_size": 64,
    "dense_epochs": 2,
    "conv_epochs": 1,
    "fashion_epochs": 0,
    "n_score": 200,
    "threads": 1,
}

NOTES = (
    "Test reconstruction MSE per pixel on MNIST: dense 2-d code {dense_2_test_mse:.4f}, dense "
    "{dense_latent}-d {dense_test_mse:.4f}, conv {latent_channels}x7x7 {conv_test_mse:.4f} "
    "(the mean training image scores {mean_image_mse:.4f}). "
    "Our BCE {conv_test_bce:.3f} vs torch's {conv_test_bce_torch:.3f} nats per image.",
    "Our transposed convolution vs nn.ConvTranspose2d with the trained weights: outputs differ by "
    "{upsample_max_abs_diff:.1e}; one training step takes {upsample_time_ratio:.1f}x torch's time.",
    "Denoising ({corruption} noise, level {noise_level}): MSE to the clean digits {noisy_mse:.4f} "
    "for the noisy input, {plain_denoise_mse:.4f} for the plain conv model, "
    "{denoise_mse:.4f} for the denoising one.",
    "Yardstick on {n_score} images (our CNN's features, not FID): reconstructions "
    "{recon_score:.1f}, Gaussian-latent samples {sample_score:.1f} (diagonal covariance "
    "{diag_sample_score:.1f}), real floor {floor:.1f}, noise baseline {baseline:.1f}; samples at "
    "{sample_over_floor:.0f}x the floor and {sample_over_baseline:.3f} of the baseline.",
    "{fashion_note}",
)


def run(config: Config, ctx: RunContext) -> LabResult:
    data = parts.images("mnist", config.n_train, config.n_test, config.seed)
    fashion = _fashion_data(config)  # loaded now: a missing dataset stops the run before training
    with thread_limit(config.threads):
        models, runs = _train_all(config, ctx, data)
        metrics = _test_losses(models, data) | _layer_check(config, models["conv"], data)
        metrics |= _denoising(config, ctx, models, data)
        sampler, diag, codes = _samplers(models["conv"], data)
        ys = Yardstick("mnist", note=lambda _: None)
        metrics |= _scores(config, ctx, ys, models["conv"], sampler, diag)
        metrics |= _fashion(config, ctx, fashion)
    _figures(config, ctx, models, runs, data)
    metrics |= _training_facts(runs)
    _save_models(ctx, models["conv"], sampler, codes, metrics)
    return LabResult(
        metrics=metrics,
        key_metric="conv_test_bce",
        library_metric="conv_test_bce_torch",
        tables={"models": _model_rows(metrics, runs)},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )


def _fashion_data(config: Config) -> dict | None:
    """Fashion-MNIST's images when the config trains on them, else None."""
    if not config.fashion_epochs:
        return None
    return parts.images("fashion-mnist", config.n_train, config.n_test, config.seed)


def _save_models(ctx: RunContext, conv, sampler, codes, metrics: dict) -> None:
    """The conv autoencoder (for latent-diffusion) and the Gaussian-latent image generator."""
    spec = {"dataset": "mnist", "test_mse": metrics["conv_test_mse"]}
    ctx.save_artifact("autoencoder", parts.autoencoder_writer(conv, codes, spec))
    score = {"score": metrics["sample_score"], "floor": metrics["floor"]}
    ctx.save_artifact("generator", parts.generator_writer(sampler, spec | score))


def _train_all(config: Config, ctx: RunContext, data: dict) -> tuple[dict, dict]:
    """The four MNIST models, each with its own seed; the denoiser sees corrupted inputs."""
    models, runs = {}, {}
    for k, (name, epochs_key) in enumerate(MODELS.items()):
        models[name] = parts.new_model(
            "conv" if name == "denoise" else name, config, config.seed + k
        )
        corruption = config.corruption if name == "denoise" else None
        epochs = getattr(config, epochs_key)
        runs[name] = parts.fit(models[name], data["x_train"], epochs, config, ctx, name, corruption)
    return models, runs


def _test_losses(models: dict, data: dict) -> dict:
    """Clean test digits through each model: MSE per pixel and BCE per image (ours and torch's)."""
    mean_image = data["x_train"].mean(0)  # the trivial reconstruction: every digit is the mean
    out = {"mean_image_mse": float((data["x_test"] - mean_image).pow(2).mean())}
    for name, model in models.items():
        key = name.replace("-", "_")
        for metric, value in parts.loss_scores(model, data["x_test"], data["x_test"]).items():
            out[f"{key}_test_{metric}"] = value
    return out


def _layer_check(config: Config, conv, data: dict) -> dict:
    """The trained conv weights in a twin built with the other transposed conv: outputs and speed."""
    other = nn.ConvTranspose2d if config.upsample == "ours" else ref.ConvTranspose2d
    twin = ref.ConvAutoencoder(config.latent_channels, tuple(config.channels), other)
    twin.load_state_dict(conv.state_dict())
    x = data["x_test"][:256]
    diff = (parts.batched(conv, x) - parts.batched(twin.eval(), x)).abs().max()
    ours, lib = (conv, twin) if config.upsample == "ours" else (twin, conv)
    return {
        "upsample_max_abs_diff": float(diff),
        "upsample_time_ratio": _step_time(ours, x[:128]) / _step_time(lib, x[:128]),
    }


def _step_time(model, x: torch.Tensor, repeats: int = 3) -> float:
    """Median CPU seconds of one forward+backward of the BCE loss (a throwaway copy's grads)."""
    times = []
    for _ in range(repeats + 1):
        start = time.process_time()
        ref.bce_with_logits(model(x), x).backward()
        times.append(time.process_time() - start)
    model.zero_grad(set_to_none=True)
    return sorted(times[1:])[repeats // 2]


def _denoising(config: Config, ctx: RunContext, models: dict, data: dict) -> dict:
    """Noisy test digits (a fixed seed) cleaned by the plain and the denoising conv model."""
    clean = data["x_test"]
    gen = torch.Generator().manual_seed(config.seed + 100)
    noisy = ref.corrupt(clean, config.corruption, config.noise_level, gen)
    plain, denoised = (parts.reconstruct(models[m], noisy) for m in ("conv", "denoise"))
    parts.strips_figure(
        ctx,
        "denoising",
        {
            "clean test digits": clean[:12],
            "noisy input": noisy[:12],
            "plain conv autoencoder": plain[:12],
            "denoising autoencoder": denoised[:12],
        },
        f"{config.corruption} noise, level {config.noise_level}",
    )
    mse = lambda a: float((a - clean).pow(2).mean())  # noqa: E731
    return {"noisy_mse": mse(noisy), "plain_denoise_mse": mse(plain), "denoise_mse": mse(denoised)}


def _samplers(conv, data: dict) -> tuple:
    """Gaussians (full and diagonal covariance) fitted to the training codes, with a decoder."""
    codes = parts.batched(conv.encode, data["x_train"])
    mean, tril = ref.fit_gaussian(codes.flatten(1).double())
    diag = torch.diag(tril.pow(2).sum(1).sqrt())  # the same per-code variances, no correlations
    make = lambda t: ref.LatentSampler(conv.decoder, mean.float(), t.float(), conv.latent_shape)  # noqa: E731
    return make(tril).eval(), make(diag).eval(), codes


def _scores(config: Config, ctx: RunContext, ys: Yardstick, conv, sampler, diag) -> dict:
    """Yardstick scores: reconstructions of the floor's own held-out digits, and samples."""
    real = ys._real(config.n_score, 0, 1)  # the floor's images: reconstructing them compares 1:1
    eps = torch.randn(
        config.n_score, sampler.mean.shape[0], generator=torch.Generator().manual_seed(config.seed)
    )
    samples, diag_samples = parts.batched(sampler, eps), parts.batched(diag, eps)
    recon = parts.reconstruct(conv, real)
    parts.samples_figure(
        ctx,
        "samples",
        {
            "held-out digits": real,
            "conv reconstructions": recon,
            "decoded Gaussian draws": samples,
            "diagonal Gaussian": diag_samples,
        },
    )
    out = {
        "recon_score": ys.score(recon, n=config.n_score),
        "sample_score": ys.score(samples, n=config.n_score),
        "diag_sample_score": ys.score(diag_samples, n=config.n_score),
        "floor": ys.floor(config.n_score),
        "baseline": ys.baseline(config.n_score),
    }
    out |= {
        "sample_over_floor": out["sample_score"] / out["floor"],
        "sample_over_baseline": out["sample_score"] / out["baseline"],
    }
    return out


def _fashion(config: Config, ctx: RunContext, data: dict | None) -> dict:
    """The conv model again on Fashion-MNIST: test MSE, yardstick scores, a samples figure."""
    if data is None:
        return {"fashion_note": "Fashion-MNIST skipped (fashion_epochs = 0)."}
    conv = parts.new_model("conv", config, config.seed + 10)
    run = parts.fit(conv, data["x_train"], config.fashion_epochs, config, ctx, "fashion conv")
    sampler, _, _ = _samplers(conv, data)
    ys = Yardstick("fashion-mnist", note=lambda _: None)
    real = ys._real(config.n_score, 0, 1)
    eps = torch.randn(
        config.n_score, sampler.mean.shape[0], generator=torch.Generator().manual_seed(config.seed)
    )
    recon, samples = parts.reconstruct(conv, real), parts.batched(sampler, eps)
    parts.samples_figure(
        ctx,
        "fashion_samples",
        {"held-out images": real, "conv reconstructions": recon, "decoded Gaussian draws": samples},
    )
    out = {
        "fashion_test_mse": parts.loss_scores(conv, data["x_test"], data["x_test"])["mse"],
        "fashion_recon_score": ys.score(recon, n=config.n_score),
        "fashion_sample_score": ys.score(samples, n=config.n_score),
        "fashion_floor": ys.floor(config.n_score),
        "fashion_baseline": ys.baseline(config.n_score),
        "fashion_cpu_seconds": run["cpu_seconds"],
    }
    out["fashion_note"] = (
        "Fashion-MNIST conv model ({e} epoch(s)): test MSE {fashion_test_mse:.4f}; yardstick "
        "reconstructions {fashion_recon_score:.1f}, samples {fashion_sample_score:.1f}, floor "
        "{fashion_floor:.1f}, baseline {fashion_baseline:.1f}."
    ).format(e=config.fashion_epochs, **out)
    return out


def _figures(config: Config, ctx: RunContext, models: dict, runs: dict, data: dict) -> None:
    """Reconstructions, the 2-d latent map, interpolations and training curves."""
    x = data["x_test"][:12]
    strips = {"test digits": x} | {
        f"{name} reconstruction": parts.reconstruct(models[name], x)
        for name in ("dense-2", "dense", "conv")
    }
    parts.strips_figure(
        ctx, "reconstructions", strips, "MNIST test digits and their reconstructions"
    )
    parts.latent_map_figure(ctx, models["dense-2"], data["x_test"], data["y_test"], grid=15)
    a, b = (data["x_test"][data["y_test"] == c][0] for c in config.pair[:2])
    paths = {"pixel blend": ref.interpolate(a, b, config.steps)} | {
        f"{name} code, decoded": _latent_path(models[name], a, b, config.steps)
        for name in ("dense-2", "dense", "conv")
    }
    title = f"from a {config.pair[0]} to a {config.pair[1]} in {config.steps} steps"
    parts.strips_figure(ctx, "interpolation", paths, title)
    parts.curves_figure(ctx, runs, window=50)


def _latent_path(model, a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """Encode two images, interpolate their codes, decode every point."""
    za, zb = parts.batched(model.encode, torch.stack([a, b]))
    return parts.reconstruct_codes(model, ref.interpolate(za, zb, steps))


def _training_facts(runs: dict) -> dict:
    """First and last training losses (means of 10 batches) and CPU seconds of every model."""
    out = {}
    for name, run in runs.items():
        key, loss = name.replace("-", "_"), run["losses"]
        k = max(1, min(10, len(loss) // 4))
        out[f"{key}_first_loss"] = sum(loss[:k]) / k
        out[f"{key}_last_loss"] = sum(loss[-k:]) / k
        out[f"{key}_cpu_seconds"] = run["cpu_seconds"]
    return out


def _model_rows(metrics: dict, runs: dict) -> list[dict]:
    return [
        {
            "model": name,
            "test_mse": metrics[f"{k}_test_mse"],
            "test_bce": metrics[f"{k}_test_bce"],
            "last_train_loss": metrics[f"{k}_last_loss"],
            "cpu_seconds": metrics[f"{k}_cpu_seconds"],
            "batches": len(runs[name]["losses"]),
        }
        for name in runs
        for k in [name.replace("-", "_")]
    ]

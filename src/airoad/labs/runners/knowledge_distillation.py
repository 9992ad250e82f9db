"""Runner for knowledge-distillation: bert-sentiment's fine-tuned MiniLM teaches lstm-sentiment's
LSTM on Amazon fine-food reviews, beside the same LSTM (same seed, same steps) trained on the
labels alone.

The teacher's logits on the training and held-out reviews are computed once and kept in the
artifact cache; every student (the two compared ones and the temperature sweep) reuses them.
Accuracy is on the held-out reviews; size and latency (batch 1 and 32, one thread, raw text
in, logits out) for teacher and students go in one table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import param, render_notes, thread_limit, timed
from airoad.labs.runners import bert_sentiment_parts as bert_parts
from airoad.labs.runners import knowledge_distillation_parts as parts
from airoad.llm.bert_sentiment import mcnemar
from airoad.production import knowledge_distillation as ref


@dataclass(frozen=True)
class Config:
    teacher: str = param("full", choices=("full", "quick"))  # bert-sentiment's full/quick model
    n_train: int = param(0, ge=50, le=4000, also=(0,))  # 0 = all 4000 training reviews
    n_test: int = param(0, ge=32, le=1000, also=(0,))  # 0 = all 1000 held-out reviews
    max_len: int = param(128, ge=1, le=5000)  # student words kept per review (mean ~64)
    min_count: int = param(2, ge=1, le=1000)
    embed_dim: int = param(64, ge=1, le=1024)
    hidden_size: int = param(64, ge=1, le=1024)
    dropout: float = param(0.3, ge=0.0, lt=1.0)
    epochs: int = param(6, ge=1, le=200)
    batch_size: int = param(64, ge=1, le=4096)
    lr: float = param(3e-3, gt=0.0, le=1.0)
    temperature: float = param(4.0, gt=0.0, le=100.0)
    alpha: float = param(0.9, ge=0.0, le=1.0)  # weight of the soft (teacher) term
    sweep_temperatures: tuple[float, ...] = param((1.0, 2.0, 4.0, 8.0), gt=0.0, le=100.0)
    eval_batch_size: int = param(64, ge=1, le=4096)  # teacher inference
    latency_repeats: int = param(20, ge=1, le=1000)
    threads: int = param(0, ge=1, le=256, also=(0,))  # 0 = torch's default (what `airoad run` sets)
    seed: int = param(0, ge=0)


TEACHER = "teacher (MiniLM)"
NAMES = {"distilled": "distilled student", "label": "label-only student"}

QUICK = {  # the quick teacher, 300 + 100 reviews, small student, 2 epochs, a 2-point sweep
    "teacher": "quick",
    "n_train": 300,
    "n_test": 100,
    "max_len": 60,
    "embed_dim": 16,
    "hidden_size": 16,
    "epochs": 2,
    "sweep_temperatures": (1.0, 4.0),
    "latency_repeats": 3,
}

NOTES = (
    "Held-out accuracy on {n_test} reviews: distilled LSTM {distilled_accuracy:.3f} (T = "
    "{temperature:g}, alpha = {alpha:g}) vs the same LSTM on labels alone {label_accuracy:.3f} "
    "({gain_points:+.1f} points, McNemar p = {mcnemar_p:.2g}: {mcnemar_verdict}); teacher "
    "{teacher_accuracy:.3f}.",
    "The student has {student_params:,} parameters ({param_ratio:.0f}x fewer than the "
    "teacher's {teacher_params:,}), {size_ratio:.0f}x less on disk, and answers {speedup_b1:.0f}x "
    "faster at batch 1 and {speedup_b32:.0f}x at batch 32 (one thread).",
    "It agrees with the teacher on {distilled_agreement:.1%} of held-out reviews (label-only "
    "student: {label_agreement:.1%}). Temperature sweep: best T = {best_temperature:g} "
    "({best_sweep_accuracy:.3f}).",
    "Teacher logits computed once ({teacher_seconds:.1f} s; 0 when read from the cache) for "
    "{n_students} students. Our KL on the held-out logits {ours_kl:.6f}, torch's F.kl_div "
    "{torch_kl:.6f}.",
)


def _data(encode, vocab, train_df, test_df) -> dict:
    """The students' inputs: padded word ids and lengths, and the 0/1 labels ('great' = 1)."""
    return {
        "vocab": vocab,
        "train": encode(train_df["review"]),
        "test": encode(test_df["review"]),
        "y_train": torch.as_tensor(bert_parts.labels(train_df)),
        "y_test": torch.as_tensor(bert_parts.labels(test_df)),
    }


def _sweep(data, soft, main, config: Config, ctx: RunContext) -> list[dict]:
    """A distilled student per temperature (the main run's T reuses the main student)."""
    rows = []
    for t in config.sweep_temperatures:
        if t == config.temperature:
            model = main
        else:
            model = parts.train_student(data, soft["train"], t, config, ctx, f"T={t:g}")[0]
        logits = ref.predict_logits(model, data["test"])
        acc = parts.accuracy(logits, data["y_test"])
        agree = ref.agreement(logits, soft["test"])
        rows.append({"temperature": t, "accuracy": acc, "agreement": agree})
    return rows


def _compare(data, soft, logits: dict, rows: list[dict], config: Config) -> dict:
    """Headline metrics: accuracies, McNemar's test between the two students, fidelity to the
    teacher, size and speed ratios, and our KL beside torch's on real held-out logits."""
    by = {r["model"]: r for r in rows}
    teacher, dist, lab = by[TEACHER], by[NAMES["distilled"]], by[NAMES["label"]]
    y, dist_logits = data["y_test"].numpy(), logits[NAMES["distilled"]]
    pred = {k: logits[NAMES[k]].argmax(-1).numpy() for k in NAMES}
    _, p = mcnemar(y, pred["distilled"], pred["label"])
    t = config.temperature
    log_ps = F.log_softmax(dist_logits.double() / t, -1)
    log_pt = F.log_softmax(soft["test"].double() / t, -1)
    torch_kl = t**2 * F.kl_div(log_ps, log_pt, reduction="batchmean", log_target=True)
    return {
        "teacher_accuracy": teacher["accuracy"],
        "distilled_accuracy": dist["accuracy"],
        "label_accuracy": lab["accuracy"],
        "gain_points": 100 * (dist["accuracy"] - lab["accuracy"]),
        "mcnemar_p": p,
        "mcnemar_verdict": "significant at 5%" if p < 0.05 else "not significant at 5%",
        "distilled_agreement": ref.agreement(dist_logits, soft["test"]),
        "label_agreement": ref.agreement(logits[NAMES["label"]], soft["test"]),
        "teacher_params": teacher["parameters"],
        "student_params": dist["parameters"],
        "param_ratio": teacher["parameters"] / dist["parameters"],
        "size_ratio": teacher["size_mb"] / dist["size_mb"],
        "speedup_b1": teacher["latency_ms_b1"] / dist["latency_ms_b1"],
        "speedup_b32": teacher["latency_ms_b32"] / dist["latency_ms_b32"],
        "ours_kl": float(ref.distillation_kl(dist_logits.double(), soft["test"].double(), t)),
        "torch_kl": float(torch_kl),
    }


def _profiles(teacher, students: dict, logits: dict, encode, test_df, y, config) -> list[dict]:
    """Accuracy, parameters, size and one-thread latency of the teacher and both students."""
    texts = list(test_df["review"])
    max_length = parts.teacher_spec(teacher[2])["max_length"]
    entries = [(TEACHER, teacher[0], parts.teacher_predict(*teacher[:2], max_length))]
    entries += [(NAMES[k], m, parts.student_predict(m, encode)) for k, m in students.items()]
    return [
        parts.profile_row(name, model, fn, texts, parts.accuracy(logits[name], y), config)
        for name, model, fn in entries
    ]


def _run_facts(train_df, test_df, vocab, teacher_s: float, sweep: list[dict], config) -> dict:
    """Sizes, the teacher's time and the sweep's best temperature, for the metrics."""
    best = max(sweep, key=lambda r: r["accuracy"])
    return {
        "n_train": len(train_df),
        "n_test": len(test_df),
        "vocab_size": len(vocab),
        "teacher_seconds": teacher_s,
        "n_students": 2 + sum(t != config.temperature for t in config.sweep_temperatures),
        "best_temperature": best["temperature"],
        "best_sweep_accuracy": best["accuracy"],
    }


def run(config: Config, ctx: RunContext) -> LabResult:
    with thread_limit(config.threads or torch.get_num_threads()):
        train_df, test_df = bert_parts.reviews(config.n_train, config.n_test, config.seed)
        teacher = parts.load_teacher(config.teacher)
        frames = {"train": train_df, "test": test_df}
        soft, teacher_s = timed(parts.teacher_logits, teacher, frames, config, ctx)
        vocab, encode = parts.student_encoder(train_df["review"], config)
        data = _data(encode, vocab, train_df, test_df)
        label, label_hist, _ = parts.train_student(data, None, 1.0, config, ctx, "labels only")
        dist, dist_hist, _ = parts.train_student(
            data, soft["train"], config.temperature, config, ctx, "distilled"
        )
        students = {"distilled": dist, "label": label}
        logits = {TEACHER: soft["test"]}
        logits |= {NAMES[k]: ref.predict_logits(m, data["test"]) for k, m in students.items()}
        sweep = _sweep(data, soft, dist, config, ctx)
        rows = _profiles(teacher, students, logits, encode, test_df, data["y_test"], config)
        metrics = _compare(data, soft, logits, rows, config)

    parts.curves_figure([label_hist, dist_hist], metrics["teacher_accuracy"], ctx)
    parts.sweep_figure(sweep, metrics["label_accuracy"], metrics["teacher_accuracy"], ctx)
    metrics |= _run_facts(train_df, test_df, vocab, teacher_s, sweep, config)
    return LabResult(
        metrics=metrics,
        key_metric="distilled_accuracy",
        library_metric="label_accuracy",
        tables={"models": rows, "temperature_sweep": sweep, "history": label_hist + dist_hist},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )

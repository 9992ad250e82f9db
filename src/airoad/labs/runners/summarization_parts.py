"""The summarization runner's helpers: scoring with ours and rouge-score, bootstrap tables, the
PageRank check against networkx, the example table and the two figures."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from airoad.labs.contract import RunContext
from airoad.labs.kit import figure
from airoad.llm import summarization as ref

KINDS = ("rouge1", "rouge2", "rougeL")
FIELDS = ("precision", "recall", "fmeasure")
COLOURS = {"lead": "tab:gray", "textrank": "tab:blue", "smollm2": "tab:orange"}


def score_all(
    references: Sequence[str], summaries: Sequence[str], use_stemmer: bool
) -> tuple[dict[str, np.ndarray], float]:
    """Our F1 per document for each ROUGE kind, and the largest |ours - rouge-score| over every
    precision, recall and F1 of every pair."""
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(list(KINDS), use_stemmer=use_stemmer)
    f1 = {k: np.zeros(len(summaries)) for k in KINDS}
    worst = 0.0
    for i, (target, summary) in enumerate(zip(references, summaries, strict=True)):
        ours, theirs = ref.rouge_scores(target, summary, use_stemmer), scorer.score(target, summary)
        for k in KINDS:
            f1[k][i] = ours[k].fmeasure
            diff = np.abs(np.subtract(tuple(ours[k]), tuple(theirs[k]))).max()
            worst = max(worst, float(diff))
    return f1, worst


def library_mean(references, summaries, kind: str, use_stemmer: bool) -> float:
    """Mean F1 of one ROUGE kind from rouge-score alone (the run's library number)."""
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer([kind], use_stemmer=use_stemmer)
    pairs = zip(references, summaries, strict=True)
    return float(np.mean([scorer.score(t, s)[kind].fmeasure for t, s in pairs]))


def rouge_rows(
    scores: dict[str, dict[str, np.ndarray]], subset: str, n_boot: int, level: float, seed: int
) -> list[dict]:
    """One row per method: mean F1 of each ROUGE kind with its bootstrap interval."""
    rows = []
    for method, f1 in scores.items():
        row: dict = {"method": method, "documents": subset, "n": len(f1["rouge1"])}
        for k in KINDS:
            low, high = ref.bootstrap_ci(f1[k], n_boot, level, seed)
            row |= {k: float(f1[k].mean()), f"{k}_low": low, f"{k}_high": high}
        rows.append(row)
    return rows


def paired_difference(a: np.ndarray, b: np.ndarray, n_boot: int, level: float, seed: int) -> dict:
    """Mean of a - b over the same documents, its bootstrap interval and the verdict."""
    low, high = ref.bootstrap_ci(a - b, n_boot, level, seed)
    verdict = "higher" if low > 0 else "lower" if high < 0 else "no clear difference"
    return {"diff": float((a - b).mean()), "low": low, "high": high, "verdict": verdict}


def pagerank_check(documents: Sequence[str], damping: float) -> tuple[float, float]:
    """Largest |our PageRank - networkx.pagerank| over every sentence of every document, and
    the share of documents whose top TextRank sentence is the first one."""
    import networkx as nx

    worst, firsts = 0.0, []
    for doc in documents:
        sentences = ref.split_sentences(doc)
        weights = ref.similarity_matrix([ref.rouge_tokenize(s) for s in sentences])
        ours = ref.pagerank(weights, damping)
        theirs = nx.pagerank(nx.from_numpy_array(weights), alpha=damping, tol=1e-12, max_iter=1000)
        worst = max(
            worst, float(np.abs(ours - np.array([theirs[i] for i in range(len(ours))])).max())
        )
        firsts.append(int(np.argmax(ours)) == 0)
    return worst, float(np.mean(firsts))


def example_rows(frame, summaries: dict[str, list[str]], f1: dict, n: int) -> list[dict]:
    """The first n documents of the abstractive subset: reference and each method's summary,
    with its ROUGE-L F1."""
    rows = []
    for i in range(min(n, len(frame))):
        row = {"name": f"{frame.module.iloc[i]}.{frame.qualname.iloc[i]}"}
        row["reference"] = frame.summary.iloc[i]
        for method, texts in summaries.items():
            row[method] = texts[i]
            row[f"{method}_rougeL"] = round(float(f1[method]["rougeL"][i]), 3)
        rows.append(row)
    return rows


def rouge_figure(rows: list[dict], level: float, ctx: RunContext) -> None:
    """Grouped bars: mean F1 of each ROUGE kind per method on the shared subset, with the
    bootstrap interval as error bars."""
    width = 0.8 / len(rows)
    with figure(ctx, "rouge_by_method", figsize=(7, 4)) as (_, ax):
        for j, row in enumerate(rows):
            x = np.arange(len(KINDS)) + (j - (len(rows) - 1) / 2) * width
            means = np.array([row[k] for k in KINDS])
            err = np.array([[row[k] - row[f"{k}_low"], row[f"{k}_high"] - row[k]] for k in KINDS])
            ax.bar(x, means, width, yerr=err.T, capsize=3, label=row["method"],
                   color=COLOURS.get(row["method"]))  # fmt: skip
        ax.set_xticks(np.arange(len(KINDS)), ["ROUGE-1", "ROUGE-2", "ROUGE-L"])
        ax.set(
            ylabel="mean F1", title=f"{rows[0]['n']} docstrings, {level:.0%} bootstrap intervals"
        )
        ax.legend()


def length_figure(references: Sequence[str], summaries: dict[str, list[str]], ctx) -> None:
    """Summary length against reference length (ROUGE tokens), one panel per method."""
    ref_len = np.array([len(ref.rouge_tokenize(t)) for t in references])
    top = max(ref_len.max(), *(len(ref.rouge_tokenize(s)) for v in summaries.values() for s in v))
    with figure(ctx, "summary_lengths", 1, len(summaries), figsize=(4 * len(summaries), 3.8),
                sharey=True) as (_, axes):  # fmt: skip
        for ax, (method, texts) in zip(np.atleast_1d(axes), summaries.items()):
            got = np.array([len(ref.rouge_tokenize(s)) for s in texts])
            ax.scatter(ref_len, got, s=14, alpha=0.6, color=COLOURS.get(method))
            ax.plot([0, top], [0, top], ls=":", color="black", lw=1)
            ax.set(title=f"{method}: median {np.median(got):.0f} vs {np.median(ref_len):.0f}",
                   xlabel="reference summary (tokens)")  # fmt: skip
        np.atleast_1d(axes)[0].set_ylabel("generated / extracted summary (tokens)")

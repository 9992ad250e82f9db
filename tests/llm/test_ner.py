"""Grader for ner: spaCy entities to BIO against spaCy's own BILUO -> IOB conversion, word-piece /
label alignment against a word-by-word re-tokenisation, padding against
DataCollatorForTokenClassification, entity spans and scores against seqeval (ill-formed tag
sequences included), decoding back to words, and the training loop against torch's AdamW with
transformers' schedule. Every model is a tiny random BertForTokenClassification."""

from __future__ import annotations

import math

import pytest
import torch
from bert_testing import SPECIALS, bert_fast_tokenizer
from hypothesis import given, settings
from hypothesis import strategies as st

REFERENCE = "airoad.llm.ner"

FAST = settings(max_examples=25, deadline=None)
PAD, UNK, CLS, SEP = 0, 1, 2, 3
PIECES = ["a", "b", "c", "d", "ab", "cd", "abc", "##a", "##b", "##c", "##d", "##ab", "##cd", "."]
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
SPACY_LABELS = ["PERSON", "GPE", "LOC", "FAC", "ORG", "NORP", "DATE"]
MAP = {"PERSON": "PER", "GPE": "LOC", "LOC": "LOC", "FAC": "LOC", "ORG": "ORG"}


@pytest.fixture(scope="module")
def tokenizer():
    """An uncased word-piece fast tokenizer over a, b, c, d and a few merges, BERT-style."""
    from tokenizers import models, normalizers, pre_tokenizers

    vocab = {t: i for i, t in enumerate([*SPECIALS, *PIECES])}
    return bert_fast_tokenizer(
        models.WordPiece(vocab, unk_token="[UNK]"),
        pre_tokenizers.BertPreTokenizer(),
        normalizers.BertNormalizer(lowercase=True),
    )


@pytest.fixture(scope="module")
def blank_nlp():
    """spaCy's blank English pipeline (a tokenizer and a vocabulary, no model)."""
    import spacy

    return spacy.blank("en")


def _tiny_tagger(seed: int = 0):
    """A seeded 2-layer, 16-wide random BertForTokenClassification with 7 labels, no dropout."""
    from transformers import BertConfig, BertForTokenClassification

    config = BertConfig(
        vocab_size=len(PIECES) + 4,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=len(TAGS),
    )
    torch.manual_seed(seed)
    return BertForTokenClassification(config)


WORD = st.text(alphabet="abcdABCD.x", min_size=1, max_size=7)
SENTENCE = st.lists(st.tuples(WORD, st.sampled_from(TAGS)), min_size=1, max_size=9)
BIO = st.lists(st.lists(st.sampled_from(TAGS), min_size=1, max_size=12), min_size=1, max_size=8)


def _sentences(n: int, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    """Random sentences of 1-8 words over the vocabulary; a word's tag is a function of the word
    (so a tagger can learn it): words starting with 'ab' are B-PER, with 'c' B-LOC, else O."""
    g = torch.Generator().manual_seed(seed)
    stock = ["ab", "abc", "abd", "c", "cd", "cab", "d", "da", "b", "bd"]
    words, tags = [], []
    for _ in range(n):
        k = int(torch.randint(1, 9, (1,), generator=g))
        ws = [stock[int(i)] for i in torch.randint(0, len(stock), (k,), generator=g)]
        words.append(ws)
        tags.append(
            ["B-PER" if w.startswith("ab") else "B-LOC" if w[0] == "c" else "O" for w in ws]
        )
    return words, tags


@FAST
@given(SENTENCE, st.sampled_from([6, 12, 64]))
def test_first_piece_of_each_word_carries_its_label(impl, tokenizer, sentence, max_length):
    """encode_words: ids of each word in turn, the word's label on its first piece, -100 elsewhere."""
    words, tags = [w for w, _ in sentence], [t for _, t in sentence]
    ids, labels = [CLS], [-100]
    for w, t in zip(words, tags):  # brute force: each word on its own
        pieces = tokenizer([w], is_split_into_words=True, add_special_tokens=False)["input_ids"]
        ids += pieces
        labels += [TAGS.index(t)] + [-100] * (len(pieces) - 1)
    ids, labels = ids[: max_length - 1] + [SEP], labels[: max_length - 1] + [-100]
    (item,) = impl.encode_words(tokenizer, [words], [tags], max_length)
    assert item["input_ids"] == ids, "input_ids differ from the word-by-word tokenisation"
    assert item["labels"] == labels, "labels: first piece of a word labelled, the rest -100"
    assert item["word_ids"][0] is None and item["word_ids"][-1] is None
    assert impl.align_labels(item["word_ids"], [TAGS.index(t) for t in tags]) == labels


def test_collate_tagged_matches_data_collator_for_token_classification(impl, tokenizer):
    """collate_tagged pads ids with [PAD] and labels with -100, like DataCollatorForTokenClassification."""
    from transformers import DataCollatorForTokenClassification

    words, tags = _sentences(7, seed=3)
    items = impl.encode_words(tokenizer, words, tags, 64)
    ours = impl.collate_tagged(items, PAD)
    theirs = DataCollatorForTokenClassification(tokenizer)(
        [{"input_ids": it["input_ids"], "labels": it["labels"]} for it in items]
    )
    assert set(ours) == {"input_ids", "attention_mask", "labels"}
    for key in ours:
        assert ours[key].dtype == torch.long, f"{key} should be a LongTensor"
        assert torch.equal(ours[key], theirs[key]), f"{key} differs from the HF collator's"
    assert "labels" not in impl.collate_tagged(impl.encode_words(tokenizer, words, None), PAD)


@FAST
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(1, 3), st.sampled_from(SPACY_LABELS)), max_size=4
    ),
    st.integers(0, 3),
)
def test_spacy_bio_matches_spacys_biluo_to_iob(impl, blank_nlp, layout, tail):
    """spacy_bio equals spaCy's offsets_to_biluo_tags + biluo_to_iob, with the labels mapped to PER/LOC/ORG."""
    from spacy.tokens import Doc, Span
    from spacy.training import biluo_to_iob, offsets_to_biluo_tags

    spans, pos = [], 0
    for gap, length, label in layout:
        spans.append((pos + gap, pos + gap + length, label))
        pos += gap + length
    doc = Doc(blank_nlp.vocab, words=[f"w{i}" for i in range(pos + tail)])
    doc.ents = [Span(doc, s, e, label=lab) for s, e, lab in spans]
    offsets = [(e.start_char, e.end_char, e.label_) for e in doc.ents]
    want = []
    for tag in biluo_to_iob(offsets_to_biluo_tags(doc, offsets)):
        kind = MAP.get(tag[2:]) if tag != "O" else None
        want.append(f"{tag[0]}-{kind}" if kind else "O")
    assert impl.spacy_bio(doc) == want


@FAST
@given(BIO)
def test_entities_match_seqeval_get_entities(impl, y):
    """entities follows conlleval chunking exactly as seqeval's get_entities (an I- after O starts one)."""
    from seqeval.metrics.sequence_labeling import get_entities

    for tags in y:
        assert impl.entities(tags) == get_entities(list(tags)), tags


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # seqeval averages over empty types
@FAST
@given(BIO, st.integers(0, 10_000))
def test_entity_scores_match_seqeval(impl, y_true, seed):
    """entity_scores equals seqeval's precision, recall, F1 and per-type classification_report."""
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

    g = torch.Generator().manual_seed(seed)  # a prediction: the truth with some tags replaced
    y_pred = [
        [
            TAGS[int(torch.randint(0, 7, (1,), generator=g))]
            if torch.rand(1, generator=g) < 0.3
            else t
            for t in s
        ]
        for s in y_true
    ]
    ours = impl.entity_scores(y_true, y_pred)
    for key, fn in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
        want = fn(y_true, y_pred, zero_division=0)
        assert math.isclose(ours[key], want, abs_tol=1e-12), f"{key}: {ours[key]} vs seqeval {want}"
    report = classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    kinds = {k for k in report if not k.endswith("avg")}
    assert set(ours["per_type"]) == kinds, "one per-type entry for every type in y_true or y_pred"
    for kind in kinds:
        got, want = ours["per_type"][kind], report[kind]
        assert got["support"] == want["support"], kind
        for key, theirs in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert math.isclose(got[key], want[theirs], abs_tol=1e-12), f"{kind} {key}"


def test_word_tags_take_the_first_piece_and_o_when_truncated(impl):
    """word_tags: a word gets its first piece's label; later pieces are ignored; words cut off are O."""
    word_ids = [None, 0, 0, 1, 2, 2, 2, None]
    pred = [5, 1, 2, 0, 3, 1, 1, 6]
    assert impl.word_tags(pred, word_ids, 4) == ["B-PER", "O", "B-LOC", "O"]
    assert impl.word_tags([0, 4, 0], [None, 0, None], 1) == ["I-LOC"]


def test_predict_tags_equals_each_sentence_alone(impl, tokenizer):
    """predict_tags gives every sentence the first-piece argmax of its own logits, whatever the batch."""
    words, tags = _sentences(9, seed=5)
    items = impl.encode_words(tokenizer, words, tags, 64)
    model = _tiny_tagger(seed=2).double()
    ours = impl.predict_tags(model, items, [len(w) for w in words], PAD, batch_size=4)
    assert not model.training, "predict_tags should leave the model in eval mode"
    for item, ws, got in zip(items, words, ours):
        pred = model(input_ids=torch.tensor([item["input_ids"]])).logits[0].argmax(-1)
        first = [
            i
            for i, w in enumerate(item["word_ids"])
            if w is not None and w != item["word_ids"][i - 1]
        ]
        assert got == [TAGS[int(pred[i])] for i in first] and len(got) == len(ws)


def test_train_tagger_follows_adamw_with_linear_warmup_and_learns(impl, tokenizer):
    """train_tagger's losses equal torch AdamW + get_linear_schedule_with_warmup on the same batches, and fall."""
    from transformers import DataCollatorForTokenClassification, get_linear_schedule_with_warmup

    words, tags = _sentences(24, seed=1)
    items = impl.encode_words(tokenizer, words, tags, 64)
    steps, size, lr, warmup = 24, 6, 1e-2, 4
    ours = impl.train_tagger(_tiny_tagger(), items, PAD, size, steps, lr, warmup, seed=7)

    model = _tiny_tagger()  # the same loop written with the libraries
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = get_linear_schedule_with_warmup(opt, warmup, steps)
    collator = DataCollatorForTokenClassification(tokenizer)
    g, order = torch.Generator().manual_seed(7), []
    while len(order) < steps:
        order += list(torch.randperm(len(items), generator=g).split(size))
    theirs = []
    for idx in order[:steps]:
        batch = collator(
            [{"input_ids": items[i]["input_ids"], "labels": items[i]["labels"]} for i in idx]
        )
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        theirs.append(float(loss.detach()))
    assert len(ours) == steps
    torch.testing.assert_close(torch.tensor(ours), torch.tensor(theirs), atol=1e-5, rtol=0)
    assert sum(ours[-4:]) / 4 < 0.6 * sum(ours[:4]) / 4, "the loss should fall on a learnable task"

"""Grader for bert-sentiment: tokenising and dynamic padding against DataCollatorWithPadding, the
training loop against transformers.Trainer (20 steps, same batches, losses and weights), the
learning-rate schedule and the weight-decay groups against Trainer's, padding-invariant logits,
mean pooling against sentence-transformers, McNemar's test against scipy, and the last layer's
attention against the softmax of its own queries and keys. Every model is a tiny random BERT."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from bert_testing import SPECIALS, bert_fast_tokenizer
from hypothesis import given, settings
from hypothesis import strategies as st

REFERENCE = "airoad.llm.bert_sentiment"

FAST = settings(max_examples=15, deadline=None)
WORDS = [f"w{i}" for i in range(40)]
PAD, CLS, SEP = 0, 2, 3
N, BATCH, STEPS, WARMUP, LR, DECAY = 40, 4, 20, 5, 1e-2, 0.1


@pytest.fixture(scope="module")
def tokenizer():
    """A word-level fast tokenizer: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, then w0..w39."""
    from tokenizers import models, pre_tokenizers

    vocab = {t: i for i, t in enumerate([*SPECIALS, *WORDS])}
    return bert_fast_tokenizer(
        models.WordLevel(vocab, unk_token="[UNK]"), pre_tokenizers.WhitespaceSplit()
    )


def _tiny_bert(seed: int = 0, dropout: float = 0.0, layers: int = 2):
    """A seeded 2-layer (or `layers`), 16-wide random BertForSequenceClassification (2 labels)."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=len(WORDS) + 4,
        hidden_size=16,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        num_labels=2,
    )
    torch.manual_seed(seed)
    return BertForSequenceClassification(config)


def _reviews(n: int = N, seed: int = 1) -> tuple[list[str], list[int]]:
    """Random word sequences of 1 to 11 words; the label says whether w7 occurs (learnable)."""
    g = torch.Generator().manual_seed(seed)
    texts = []
    for _ in range(n):
        k = int(torch.randint(1, 12, (1,), generator=g))
        texts.append(" ".join(WORDS[i] for i in torch.randint(0, 12, (k,), generator=g)))
    return texts, [int("w7" in t.split()) for t in texts]


@pytest.fixture(scope="module")
def trainer_run(tokenizer):
    """transformers.Trainer for 20 steps over the reviews in order (SequentialSampler), batches of
    4 padded by DataCollatorWithPadding; every step's loss recorded, the final model kept."""
    import tempfile

    from torch.utils.data import SequentialSampler
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    class Recording(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            return SequentialSampler(train_dataset or self.train_dataset)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            losses.append(float(loss.detach()))
            return loss

    texts, labels = _reviews()
    ids = tokenizer(texts)["input_ids"]
    data = [{"input_ids": s, "labels": y} for s, y in zip(ids, labels)]
    losses: list[float] = []
    model = _tiny_bert()
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=BATCH,
            max_steps=STEPS,
            learning_rate=LR,
            weight_decay=DECAY,
            warmup_steps=WARMUP,
            report_to=[],
            use_cpu=True,
            save_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
        )
        trainer = Recording(
            model=model,
            args=args,
            train_dataset=data,
            data_collator=DataCollatorWithPadding(tokenizer),
        )
        trainer.train()
    return {
        "losses": losses,
        "model": model,
        "decay_names": set(trainer.get_decay_parameter_names(model)),
    }


def test_encode_texts_matches_the_tokenizer(impl, tokenizer):
    """encode_texts returns the tokenizer's ids with [CLS]/[SEP], truncated to max_length."""
    texts, _ = _reviews(12)
    for max_length in (4, 8, 64):
        want = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
        assert impl.encode_texts(tokenizer, texts, max_length) == want


def test_collate_matches_data_collator_with_padding(impl, tokenizer):
    """collate pads to the longest sequence of the batch, like transformers.DataCollatorWithPadding."""
    from transformers import DataCollatorWithPadding

    texts, labels = _reviews(9, seed=3)
    ids = tokenizer(texts)["input_ids"]
    ours = impl.collate(ids, PAD, labels)
    theirs = DataCollatorWithPadding(tokenizer)(
        [{"input_ids": s, "labels": y} for s, y in zip(ids, labels)]
    )
    assert set(ours) == {"input_ids", "attention_mask", "labels"}
    for key in ours:
        assert ours[key].dtype == torch.long, f"{key} should be a LongTensor"
        assert torch.equal(ours[key], theirs[key]), f"{key} differs from DataCollatorWithPadding's"
    assert "labels" not in impl.collate(ids, PAD)


def test_linear_schedule_matches_transformers(impl):
    """linear_schedule equals get_linear_schedule_with_warmup step by step (warm-up, then decay to 0)."""
    from transformers import get_linear_schedule_with_warmup

    for warmup, total in ((5, 20), (0, 7), (3, 3)):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = get_linear_schedule_with_warmup(opt, warmup, total)
        for step in range(total + 2):
            want = opt.param_groups[0]["lr"]
            assert math.isclose(impl.linear_schedule(step, warmup, total), want, abs_tol=1e-12), (
                f"step {step} (warmup {warmup}, total {total})"
            )
            opt.step()
            sched.step()


def test_weight_decay_groups_match_trainer(impl, trainer_run):
    """make_optimizer decays exactly the parameters Trainer decays (not biases, not LayerNorm)."""
    model = _tiny_bert()
    opt = impl.make_optimizer(model, LR, DECAY)
    assert isinstance(opt, torch.optim.AdamW)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == trainer_run["decay_names"]
    assert sum(len(g["params"]) for g in opt.param_groups) == len(names), "every parameter once"
    assert all(g["weight_decay"] in (0.0, DECAY) for g in opt.param_groups)


def test_training_loop_equals_trainer_over_20_steps(impl, trainer_run, tokenizer):
    """20 train_steps on the same batches give Trainer's losses and weights (atol 1e-5)."""
    texts, labels = _reviews()
    ids = impl.encode_texts(tokenizer, texts, 64)
    order = impl.batch_order([len(s) for s in ids], BATCH)  # no generator: 0, 1, 2, ...
    batches = [impl.collate([ids[i] for i in b], PAD, [labels[i] for i in b]) for b in order]
    model = _tiny_bert()
    opt = impl.make_optimizer(model, LR, DECAY)
    sched = impl.make_scheduler(opt, WARMUP, STEPS)
    ours = [
        impl.train_step(model, batches[k % len(batches)], opt, sched, 1.0) for k in range(STEPS)
    ]
    theirs = trainer_run["losses"]
    assert len(theirs) == STEPS
    assert max(theirs) - min(theirs) > 0.05, "the recorded losses should move, or they test nothing"
    torch.testing.assert_close(torch.tensor(ours), torch.tensor(theirs), atol=1e-5, rtol=0)
    for (name, p), q in zip(model.named_parameters(), trainer_run["model"].parameters()):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=0, msg=f"{name} differs after 20 steps")


def test_batch_order_shuffles_and_groups_by_length(impl):
    """batch_order: in order without a generator, torch.randperm's order with one, grouped batches sorted."""
    lengths = torch.randint(3, 60, (37,), generator=torch.Generator().manual_seed(5)).tolist()
    plain = impl.batch_order(lengths, 8)
    assert [b.tolist() for b in plain] == [b.tolist() for b in torch.arange(37).split(8)]
    shuffled = impl.batch_order(lengths, 8, torch.Generator().manual_seed(2))
    want = torch.randperm(37, generator=torch.Generator().manual_seed(2)).split(8)
    assert [b.tolist() for b in shuffled] == [b.tolist() for b in want]
    grouped = impl.batch_order(lengths, 8, torch.Generator().manual_seed(2), group_size=2)
    assert sorted(torch.cat(grouped).tolist()) == list(range(37)), "each item exactly once"
    assert max(len(b) for b in grouped) == 8
    for b in grouped:
        lens = torch.tensor(lengths)[b]
        assert torch.equal(lens, lens.sort(descending=True).values), "a batch is sorted by length"
    for b in impl.batch_order(lengths, 8, torch.Generator().manual_seed(2), group_size=1):
        lens = torch.tensor(lengths)[b]
        assert torch.equal(lens, lens.sort(descending=True).values), "group_size=1 sorts each batch"
    other = impl.batch_order(lengths, 8, torch.Generator().manual_seed(3), group_size=2)
    assert [b.tolist() for b in grouped] != [b.tolist() for b in other], "the seed matters"


def test_padding_does_not_change_logits(impl, tokenizer):
    """A review's logits are the same alone and padded inside a batch (the attention mask works)."""
    texts, _ = _reviews(6, seed=4)
    ids = tokenizer(texts)["input_ids"]
    model = _tiny_bert(seed=2).double()
    batched = impl.predict_logits(model, [impl.collate(ids, PAD)])
    alone = impl.predict_logits(model, [impl.collate([s], PAD) for s in ids])
    assert batched.shape == (6, 2)
    torch.testing.assert_close(batched, alone, atol=1e-10, rtol=0)
    assert not model.training, "predict_logits should leave the model in eval mode"


@FAST
@given(st.lists(st.integers(1, 7), min_size=1, max_size=5), st.integers(0, 1000))
def test_mean_pool_matches_sentence_transformers(impl, lengths, seed):
    """mean_pool equals sentence-transformers' mean Pooling and ignores whatever the padding holds."""
    from sentence_transformers.models import Pooling

    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    hidden = torch.randn(len(lengths), width, 6, generator=g, dtype=torch.float64)
    mask = (torch.arange(width)[None] < torch.tensor(lengths)[:, None]).long()
    want = Pooling(6, pooling_mode="mean")({"token_embeddings": hidden, "attention_mask": mask})
    ours = impl.mean_pool(hidden, mask)
    torch.testing.assert_close(ours, want["sentence_embedding"], atol=1e-12, rtol=0)
    noisy = hidden + 1e3 * (1 - mask)[..., None]  # junk on the padded positions only
    torch.testing.assert_close(impl.mean_pool(noisy, mask), ours, atol=1e-9, rtol=0)


def test_embed_is_normalised_mean_of_each_review_alone(impl, tokenizer):
    """embed gives each review's unit-length mean token state, whatever it is batched with."""
    texts, _ = _reviews(5, seed=6)
    ids = tokenizer(texts)["input_ids"]
    encoder = _tiny_bert(seed=3).double().bert
    ours = impl.embed(encoder, [impl.collate(ids[:3], PAD), impl.collate(ids[3:], PAD)])
    for i, s in enumerate(ids):
        h = encoder(input_ids=torch.tensor([s])).last_hidden_state[0].mean(0)
        torch.testing.assert_close(ours[i], h / h.norm(), atol=1e-10, rtol=0)
    raw = impl.embed(encoder, [impl.collate(ids, PAD)], normalize=False)
    torch.testing.assert_close(raw / raw.norm(dim=1, keepdim=True), ours, atol=1e-10, rtol=0)


@FAST
@given(st.integers(0, 10_000), st.integers(0, 400))
def test_mcnemar_matches_scipy(impl, seed, n):
    """McNemar's exact p is scipy's two-sided binomtest on the discordant pairs; chi-square its closed form."""
    from scipy.stats import binomtest, chi2

    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    a = torch.where(torch.rand(n, generator=g) < 0.8, y, 1 - y)
    b = torch.where(torch.rand(n, generator=g) < 0.7, y, 1 - y)
    nb = int(((a == y) & (b != y)).sum())
    nc = int(((a != y) & (b == y)).sum())
    stat, p = impl.mcnemar(y, a, b, exact=True)
    assert stat == min(nb, nc)
    want = binomtest(min(nb, nc), nb + nc, 0.5).pvalue if nb + nc else 1.0
    assert math.isclose(p, want, rel_tol=1e-9, abs_tol=1e-300)
    stat, p = impl.mcnemar(y, a, b, exact=False)
    want_stat = (abs(nb - nc) - 1) ** 2 / (nb + nc) if nb + nc else 0.0
    assert math.isclose(stat, want_stat, rel_tol=1e-12, abs_tol=1e-12)
    assert math.isclose(
        p, float(chi2.sf(want_stat, 1)) if nb + nc else 1.0, rel_tol=1e-9, abs_tol=1e-300
    )


def test_last_layer_attention_is_softmax_of_its_queries_and_keys(impl, tokenizer):
    """last_layer_attention equals softmax(q k^T / sqrt(d) + mask) of the last layer's own weights."""
    texts, _ = _reviews(4, seed=7)
    batch = impl.collate(tokenizer(texts)["input_ids"], PAD)
    model = _tiny_bert(seed=4, layers=3).double()  # default (sdpa) attention; 3 layers: last != [1]
    att = impl.last_layer_attention(copy.deepcopy(model), batch)
    hidden = model.bert(**batch, output_hidden_states=True).hidden_states[-2].detach()
    layer = model.bert.encoder.layer[-1].attention.self
    heads, width = model.config.num_attention_heads, batch["input_ids"].shape[1]

    def split(x):
        return x.view(len(texts), width, heads, -1).transpose(1, 2)

    q, k = split(layer.query(hidden)), split(layer.key(hidden))
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(batch["attention_mask"][:, None, None, :] == 0, float("-inf"))
    assert att.shape == (len(texts), heads, width, width)
    torch.testing.assert_close(att, scores.softmax(-1).detach(), atol=1e-10, rtol=0)

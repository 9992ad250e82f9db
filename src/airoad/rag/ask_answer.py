"""The generating half of `airoad ask`: SmolLM2 answers from numbered lesson passages.

A 135M-parameter model paraphrases well and reasons poorly, so the prompt keeps its job small:
answer only from the passages given, cite them by number, and say so when they do not hold the
answer. The citations a learner can trust are the retrieved sections, printed beside the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from airoad.rag.ask import Hit, section_label

SYSTEM = (
    "You answer questions about machine learning lessons. Use only the numbered passages. "
    "Cite the passages you used like [1]. If the passages do not answer the question, say "
    "that the lessons do not cover it."
)
MAX_PASSAGE_CHARS = 700  # the prompt stays short: a 135M model loses the thread in long ones
PASSAGES = 3  # the generator reads the top 3 sections; all k are listed as sources
# Greedy decoding from a model this small loops on one sentence; banning repeated 4-grams stops
# that. A repetition penalty (tried 1.1-1.3) made it drift away from the passages instead.
NO_REPEAT_NGRAM = 4


def prompt_messages(question: str, hits: Sequence[Hit]) -> list[dict]:
    """The chat messages: the rules, then the numbered passages and the question."""
    passages = "\n\n".join(
        f"[{i}] {section_label(h.section)}\n{h.text[:MAX_PASSAGE_CHARS]}"
        for i, h in enumerate(hits[:PASSAGES], start=1)
    )
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Passages:\n\n{passages}\n\nQuestion: {question}"},
    ]


def generate_answer(
    question: str,
    hits: Sequence[Hit],
    on_text: Callable[[str], None] | None = None,
    max_new_tokens: int = 100,
) -> str:
    """SmolLM2's greedy answer; `on_text` receives the text as it is generated (streaming)."""
    import torch

    from airoad.data.models import load_smollm2

    model, tokenizer = load_smollm2()
    ids = tokenizer.apply_chat_template(
        prompt_messages(question, hits), add_generation_prompt=True, return_tensors="pt",
        return_dict=True,
    )  # fmt: skip
    streamer = _streamer(tokenizer, on_text) if on_text else None
    with torch.inference_mode():
        out = model.generate(
            **ids, max_new_tokens=max_new_tokens, do_sample=False, streamer=streamer,
            pad_token_id=tokenizer.eos_token_id, no_repeat_ngram_size=NO_REPEAT_NGRAM,
        )  # fmt: skip
    return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def _streamer(tokenizer: Any, on_text: Callable[[str], None]) -> Any:
    """A transformers streamer that hands each decoded piece of text to `on_text`."""
    from transformers import TextStreamer

    class Forward(TextStreamer):
        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            on_text(text)

    return Forward(tokenizer, skip_prompt=True, skip_special_tokens=True)

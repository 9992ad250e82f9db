"""A retrieval-augmented chatbot: conversation memory, follow-up rewriting and streamed answers.

- Memory: the last ``max_turns`` (user, assistant) turns. A small model reads a short prompt
  best, so the oldest turn is dropped when a new one would overflow the window.
- A follow-up such as "Can it change?" cannot be retrieved on its own: "it" names nothing a
  retriever can match. Before retrieval the question is rewritten into a stand-alone query,
  either by a rule (glue the previous question in front when the follow-up uses a referring
  word) or by the chat model itself, asked in a short prompt to replace the references.
- Answers reuse ``rag_qa``'s numbered-passage prompt with the remembered turns before the
  question, and are streamed: a greedy decoding loop over the KV cache yields each token as
  soon as it is chosen, so the first words reach the reader long before the last is computed.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from airoad.rag.rag_qa import prompt_messages

# Words that point back into the conversation instead of naming a topic.
REFERRING = frozenset(
    "it its it's they them their theirs those these that this there such one ones former "
    "latter he she his her".split()
)
REWRITE_SYSTEM = (
    "Rewrite the follow-up question so it can be understood without the conversation: replace "
    "words like it, its, that or there with what they refer to. Reply with the question only."
)
# Worked examples (follow-up with its conversation, stand-alone rewrite): a small model copies
# a format it has seen far better than one it is only told about.
REWRITE_EXAMPLES = (
    (("What does the zip function return?", "An iterator of tuples."),
     "Does it stop at the shortest input?", "Does the zip function stop at the shortest input?"),
    (("How are dropout masks drawn in the regularization lab?", "From a Bernoulli distribution."),
     "What rate does that lab use by default?",
     "What dropout rate does the regularization lab use by default?"),
    (("What is a generator expression?", "A lazy comprehension in parentheses."),
     "Can you iterate over one twice?", "Can you iterate over a generator expression twice?"),
)  # fmt: skip
_WORD = re.compile(r"[a-z']+")
_LABEL = re.compile(r"^\s*(?:stand-?alone question|rewritten question|question)\s*:\s*", re.I)


@dataclass(frozen=True)
class Turn:
    """One exchange: what the user asked and what the assistant replied."""

    user: str
    assistant: str


class ConversationMemory:
    """The last ``max_turns`` turns of a conversation, oldest first."""

    def __init__(self, max_turns: int = 3) -> None:
        if max_turns < 1:
            raise ValueError(f"max_turns must be at least 1, got {max_turns}")
        self.max_turns = max_turns
        self._turns: deque[Turn] = deque()

    def add(self, user: str, assistant: str) -> Turn | None:
        """Remember a turn; returns the oldest turn if the window overflowed (it is forgotten),
        else None."""
        self._turns.append(Turn(user, assistant))
        return self._turns.popleft() if len(self._turns) > self.max_turns else None

    @property
    def turns(self) -> list[Turn]:
        """The remembered turns, oldest first."""
        return list(self._turns)

    def transcript(self) -> str:
        """The turns as ``User: ...`` / ``Assistant: ...`` lines, oldest first."""
        return "\n".join(f"User: {t.user}\nAssistant: {t.assistant}" for t in self._turns)


# ---------------------------------------------------------------- rewriting follow-ups


def needs_history(question: str) -> bool:
    """True when the question holds a referring word (``REFERRING``, case-insensitive)."""
    return any(w in REFERRING for w in _WORD.findall(question.lower()))


def rule_rewrite(question: str, memory: ConversationMemory) -> str:
    """The rule-based fallback: ``"<last user question> <question>"`` when the question needs
    history and there is a remembered turn, else the question unchanged."""
    turns = memory.turns
    if not turns or not needs_history(question):
        return question
    return f"{turns[-1].user} {question}"


def rewrite_request(question: str, transcript: str) -> str:
    """The user turn asking for a rewrite: ``"Conversation:\n<transcript>\n\nFollow-up:
    <question>"``."""
    return f"Conversation:\n{transcript}\n\nFollow-up: {question}"


def rewrite_messages(question: str, memory: ConversationMemory) -> list[dict]:
    """Chat messages asking the model for a stand-alone question: ``REWRITE_SYSTEM``, then each
    of ``REWRITE_EXAMPLES`` as a user turn (``rewrite_request`` of its one-turn conversation)
    and the assistant's rewrite, then ``rewrite_request(question, memory.transcript())``."""
    out = [{"role": "system", "content": REWRITE_SYSTEM}]
    for (user, reply), follow_up, rewrite in REWRITE_EXAMPLES:
        transcript = f"User: {user}\nAssistant: {reply}"
        out += [{"role": "user", "content": rewrite_request(follow_up, transcript)},
                {"role": "assistant", "content": rewrite}]  # fmt: skip
    return out + [{"role": "user", "content": rewrite_request(question, memory.transcript())}]


def clean_rewrite(reply: str, question: str) -> str:
    """The model's rewrite as a query: its first non-empty line, a leading label such as
    ``Question:`` and surrounding quotes removed; the original ``question`` if nothing is left."""
    line = next((s.strip() for s in reply.splitlines() if s.strip()), "")
    line = _LABEL.sub("", line).strip().strip("\"'").strip()
    return line or question


def chat_messages(
    question: str, passages: Sequence[str], titles: Sequence[str], memory: ConversationMemory
) -> list[dict]:
    """``rag_qa.prompt_messages`` (rules, worked example, numbered passages and the question)
    with the remembered turns inserted as plain user / assistant messages just before the last
    user turn."""
    base = prompt_messages(question, passages, titles)
    history = [
        m
        for t in memory.turns
        for m in (
            {"role": "user", "content": t.user},
            {"role": "assistant", "content": t.assistant},
        )
    ]
    return base[:-1] + history + base[-1:]


# ---------------------------------------------------------------- streaming


def stream_greedy(
    model: Any, prompt_ids: Sequence[int], max_new_tokens: int, stop_ids: Iterable[int] = ()
) -> Iterator[int]:
    """Yield greedy tokens one at a time: one forward pass over the prompt, then one pass per
    new token that feeds only that token and the KV cache (``past_key_values``). A token in
    ``stop_ids`` ends the stream and is not yielded; at most ``max_new_tokens`` are yielded.
    Equals ``model.generate(do_sample=False)`` token for token."""
    import torch

    stops = set(stop_ids)
    ids, past = torch.tensor([list(prompt_ids)]), None
    with torch.inference_mode():
        for _ in range(max_new_tokens):
            out = model(input_ids=ids, past_key_values=past, use_cache=True, logits_to_keep=1)
            token = int(out.logits[0, -1].argmax())
            if token in stops:
                return
            yield token
            ids, past = torch.tensor([[token]]), out.past_key_values


def stream_text(tokenizer: Any, tokens: Iterable[int]) -> Iterator[str]:
    """Yield the text each new token adds: decode all tokens so far and yield what follows the
    text already shown. A decoding that ends in U+FFFD (a character whose bytes are split over
    tokens) is held back until the next token completes it, so the pieces joined equal
    ``tokenizer.decode(all tokens, skip_special_tokens=True)``."""
    seen: list[int] = []
    shown = ""
    for token in tokens:
        seen.append(token)
        text = tokenizer.decode(seen, skip_special_tokens=True)
        if text.endswith("\ufffd") or not text.startswith(shown):
            continue
        if len(text) > len(shown):
            yield text[len(shown) :]
            shown = text
    rest = tokenizer.decode(seen, skip_special_tokens=True)
    if rest.startswith(shown) and len(rest) > len(shown):
        yield rest[len(shown) :]

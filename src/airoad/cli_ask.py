"""The body of `airoad ask`: retrieve lesson sections, then (unless told not to) answer."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from airoad.errors import AiroadError


def load_index(console: Console):
    """The lesson index for the built labs, built (with a status line) when the lessons changed."""
    from airoad.rag.ask import cached_index
    from airoad.rag.corpus import built_lessons

    lessons = built_lessons()
    if not lessons:
        raise AiroadError("no lab is built yet, so there is no lesson to search")
    with console.status("indexing the lessons (once per change of a lesson)...") as status:

        def progress(done: int, total: int) -> None:
            status.update(f"indexing the lessons: {done}/{total} passages embedded")

        index, built = cached_index(lessons, progress)
    return index, built


def sources_table(hits) -> Table:
    from airoad.rag.ask import section_label

    table = Table(title="Lesson sections", show_lines=False)
    for name in ("#", "section", "similarity", "passage"):
        table.add_column(name, overflow="fold")
    for i, h in enumerate(hits, start=1):
        snippet = " ".join(h.text.split())
        snippet = snippet[:160] + ("..." if len(snippet) > 160 else "")
        # Text, not markup: lessons hold brackets ([1], [batch, d]) rich would try to parse.
        table.add_row(str(i), Text(section_label(h.section)), f"{h.cosine:.2f}", Text(snippet))
    return table


def ask(console: Console, question: str, k: int, generate: bool, as_json: bool) -> None:
    from airoad.rag.ask import MIN_COSINE, is_answerable, search, to_json, validate_question

    question = validate_question(question)
    if not 1 <= k <= 20:
        raise AiroadError(f"--top must be between 1 and 20, got {k}")
    index, _ = load_index(console)
    hits = search(index, question, k)
    answerable = is_answerable(hits)
    answer = None
    if answerable and generate and not as_json:
        from airoad.rag.ask_answer import generate_answer

        with console.status("loading SmolLM2..."):
            from airoad.data.models import load_smollm2

            load_smollm2()  # a missing model fails here with its fetch command, before output
        console.print(Text(question + "\n", style="bold"))
        answer = generate_answer(question, hits, on_text=lambda t: console.out(t, end=""))
        console.print(
            "\n[dim](SmolLM2-135M, a small model: it can be wrong. The sections below are what "
            "it read; they are the part to trust.)[/dim]"
        )
    elif answerable and generate:
        from airoad.rag.ask_answer import generate_answer

        answer = generate_answer(question, hits)
    if as_json:
        print(to_json(question, hits, answer))
        return
    if not answerable:
        best = max((h.cosine for h in hits), default=0.0)
        console.print(
            f"No lesson section is close to this question (best similarity {best:.2f}, "
            f"needs {MIN_COSINE:.2f}): try other words, or `airoad labs` to see what is built."
        )
        return
    console.print(sources_table(hits))

"""Print a `CheckReport`. Every piece of text the learner controls (test ids such as
`test_x[uniform]`, exception messages, file names) is escaped, so rich never reads it as markup,
and control characters are shown as escapes so they cannot move the cursor or recolour."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape


def _safe(text: str) -> str:
    shown = "".join(c if c.isprintable() or c == "\t" else repr(c)[1:-1] for c in str(text))
    return escape(shown)


def print_check(console: Console, report) -> None:
    for o in report.outcomes:
        if o.passed:
            console.print(f"[green]✓[/green] {_safe(o.name)}", highlight=False)
            continue
        first, *more = o.reason.splitlines() or [""]
        console.print(f"[red]✗[/red] {_safe(o.name)}: {_safe(first)}", highlight=False)
        for line in more:
            console.print(f"    {_safe(line)}", highlight=False)
        if o.hint:
            console.print(f"    [dim]checks: {_safe(o.hint)}[/dim]", highlight=False)
    if report.outcomes:
        n_pass = sum(o.passed for o in report.outcomes)
        console.print(f"{n_pass} passed, {len(report.outcomes) - n_pass} failed", highlight=False)
    if report.problem:
        console.print(f"[red]✗[/red] {_safe(report.problem)}", highlight=False)
        console.print(
            f"Fix that first, then run `airoad check {_safe(report.lab_id)}` again.",
            highlight=False,
        )
    elif report.passed:
        from airoad.catalog.progress import has_unsaved

        where = (
            "could not be recorded (see below)" if has_unsaved() else "recorded in your progress"
        )
        console.print(f"[green]{_safe(report.lab_id)}: passed[/green] — {where}.", highlight=False)

"""How the CLI shows things: rich tables, trees and progress bars. No lab logic lives here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markdown import Markdown
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from airoad.catalog import load_catalog
from airoad.catalog.progress import LEARNING, PASSED, SKIPPED, load_progress, state_of

STATE_STYLE = {PASSED: "green", LEARNING: "yellow", SKIPPED: "dim", "not started": ""}


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def lab_rows() -> list[dict]:
    progress = load_progress()
    return [
        {
            "id": e.id,
            "title": e.title,
            "phase": e.phase,
            "layer": e.layer,
            "status": e.status,
            "progress": state_of(e.id, progress),
            "datasets": list(e.datasets),
            "roadmaps": list(e.roadmaps),
        }
        for e in load_catalog().labs
    ]


def _id_column(table: Table, header: str, ids: list[str]) -> None:
    """A column of lab ids printed whole on any width, so an id can be copied from it."""
    table.add_column(header, no_wrap=True, min_width=max(map(len, ids), default=0))


def labs_table(rows: list[dict]) -> Table:
    table = Table(
        title=f"airoad labs ({sum(r['status'] == 'built' for r in rows)} built of {len(rows)})"
    )
    _id_column(table, "id", [r["id"] for r in rows])
    for col in ("title", "phase", "layer", "status", "progress"):
        table.add_column(col, overflow="fold")
    for r in rows:
        style = STATE_STYLE.get(r["progress"], "")
        status = "[bold]built[/bold]" if r["status"] == "built" else "[dim]planned[/dim]"
        table.add_row(
            r["id"],
            r["title"],
            r["phase"],
            r["layer"],
            status,
            f"[{style}]{r['progress']}[/{style}]" if style else r["progress"],
        )
    return table


def show_lab(console: Console, lab_id: str) -> None:
    from airoad.home import repo_root
    from airoad.labs.exercise import reference_source

    entry = load_catalog().get(lab_id)
    console.print(
        f"[bold]{entry.title}[/bold]  ({entry.id}; {entry.phase}, {entry.layer}, {entry.status})"
    )
    if entry.lesson_path.exists():
        console.print(Markdown(entry.lesson_path.read_text(encoding="utf-8")))
    else:
        console.print(entry.summary)
    if entry.built:
        for module in entry.reference:
            console.print(f"reference: {reference_source(module)[0]}")
        for test in entry.tests:
            console.print(f"tests:     {repo_root() / test}")
        console.print(f"lesson:    {entry.lesson_path}")
    else:
        console.print("This lab is planned: its reference and tests are not written yet.")


@contextmanager
def progress_bars(console: Console) -> Iterator[Progress]:
    bars = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    with bars:
        yield bars


def print_run(console: Console, rec) -> None:
    res = rec.result
    metrics = Table(title=f"{rec.lab_id}: metrics")
    metrics.add_column("metric")
    metrics.add_column("value", justify="right")
    for name, value in res.metrics.items():
        mark = (
            " (key)"
            if name == res.key_metric
            else " (library)"
            if name == res.library_metric
            else ""
        )
        metrics.add_row(name + mark, _fmt(value))
    console.print(metrics)
    for name, rows in res.tables.items():
        console.print(rows_table(name, rows))
    for note in res.notes:
        console.print(f"- {note}")
    for fig in res.figures:
        console.print(f"figure: {fig}")
    console.print(
        f"run folder: {rec.out_dir}  ({rec.seconds:.1f} s)"
        + (f"; MLflow run {rec.mlflow_run_id}" if rec.mlflow_run_id else "")
    )


def rows_table(title: str, rows: list[dict]) -> Table:
    table = Table(title=title)
    cols = list(rows[0]) if rows else []
    for col in cols:
        table.add_column(str(col))
    for row in rows:
        table.add_row(*(_fmt(row.get(c, "")) for c in cols))
    return table


def runs_table(rows: list[dict]) -> Table:
    table = Table(title="past runs (newest first)")
    _id_column(table, "lab", [r["lab"] for r in rows])
    for col in ("when", "config", "key metric", "seconds", "folder"):
        table.add_column(col, overflow="fold")  # a folded path can still be copied whole
    for r in rows:
        table.add_row(
            r["lab"],
            r["at"],
            "quick" if r["quick"] else "full",
            f"{r['key_metric']} = {_fmt(r['key_value'])}",
            f"{r['seconds']:.1f}",
            r["dir"],
        )
    return table


def roadmap_data() -> dict:
    progress = load_progress()
    return {
        "phases": [
            {
                "id": p.id,
                "title": p.title,
                "labs": [
                    {
                        "id": e.id,
                        "title": e.title,
                        "layer": e.layer,
                        "status": e.status,
                        "progress": state_of(e.id, progress),
                    }
                    for e in entries
                ],
            }
            for p, entries in load_catalog().by_phase()
        ]
    }


def roadmap_tree() -> Tree:
    tree = Tree("[bold]airoad roadmap[/bold]")
    for phase in roadmap_data()["phases"]:
        branch = tree.add(f"[bold]{phase['title']}[/bold]")
        for lab in phase["labs"]:
            style = STATE_STYLE.get(lab["progress"], "")
            state = f"[{style}]{lab['progress']}[/{style}]" if style else lab["progress"]
            built = "built" if lab["status"] == "built" else "[dim]planned[/dim]"
            branch.add(f"{lab['id']}  [dim]{lab['layer']}[/dim]  {built}  {state}")
    return tree


def tour_table(rows: list[dict]) -> Table:
    table = Table(title="airoad tour: ours vs the trusted library, same data")
    _id_column(table, "lab", [r["lab"] for r in rows])
    for col in ("key metric (ours)", "trusted library", "seconds", "status"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            r["lab"],
            r["ours"],
            r["library"],
            f"{r['seconds']:.1f}",
            Text("ok", "green") if r["status"] == "ok" else Text(r["status"], "red"),
        )
    return table

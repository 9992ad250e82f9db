"""The `airoad` command. Thin: parse arguments, call one function, print the result with rich.

Heavy libraries (numpy, torch, mlflow, sklearn) are imported inside the commands so that
`airoad --help` answers at once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console

# Idle OpenMP threads otherwise spin at 100% between torch ops: on a 2-core laptop that
# doubles the CPU a training run burns. Must be set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from airoad.cli_common import err, friendly  # noqa: E402, F401  (err: for the commands)
from airoad.cli_data import data_app  # noqa: E402
from airoad.errors import AiroadError  # noqa: E402

app = typer.Typer(
    help="airoad: the AI-engineer roadmap as runnable, tested labs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
progress_app = typer.Typer(help="Change a lab's progress state by hand.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(progress_app, name="progress")
console = Console()


@app.command()
@friendly
def labs(as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")):
    """Every lab in the catalog: id, title, phase, layer, built/planned, your progress."""
    from airoad import cli_views as views

    rows = views.lab_rows()
    if as_json:
        print(json.dumps({"labs": rows}, indent=2))
    else:
        console.print(views.labs_table(rows))


@app.command()
@friendly
def show(lab_id: str = typer.Argument(..., metavar="ID")):
    """The lab's lesson, plus where its reference code and tests live."""
    from airoad import cli_views as views

    views.show_lab(console, lab_id)


@app.command()
@friendly
def run(
    lab_id: str = typer.Argument(..., metavar="ID"),
    quick: bool = typer.Option(False, "--quick", help="The seconds-long config."),
    set_: list[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="Override one config value (repeatable)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Run folder (default under $AIROAD_HOME/runs)."
    ),
    track: bool = typer.Option(True, "--track/--no-track", help="Log the run to MLflow."),
    force: bool = typer.Option(False, "--force", help="Write into an --out that holds files."),
):
    """Run a lab: metrics.json, config.json and PNG figures in the run folder, logged to MLflow."""
    from airoad import cli_views as views
    from airoad.labs.runner import built_entry, check_datasets, resolve_config, run_lab

    entry = built_entry(lab_id)  # bad id, config or missing data: one line, before any display
    resolve_config(entry, quick, set_)
    check_datasets(entry)
    with views.progress_bars(console) as bars:
        rec = run_lab(
            lab_id, quick=quick, pairs=set_, out=out, track=track, progress=bars, force=force
        )
    views.print_run(console, rec)
    if rec.problem:
        raise AiroadError(rec.problem)


@app.command()
@friendly
def runs(limit: int = typer.Option(20, help="How many recent runs to list.")):
    """Past runs, newest first, with their key metrics."""
    from airoad import cli_views as views
    from airoad.labs.runner import past_runs

    if limit < 0:
        raise AiroadError(f"--limit counts runs to list: give 0 or more, not {limit}")
    console.print(views.runs_table(past_runs()[:limit]))


@app.command()
@friendly
def exercise(
    lab_id: str = typer.Argument(..., metavar="ID"),
    directory: Path = typer.Option(Path("workspace"), "--dir", help="Your workspace."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing files."),
):
    """Write the stub(s) of the lab's reference module(s) into your workspace."""
    from airoad.labs.exercise import write_exercise

    for path in write_exercise(lab_id, directory, force=force):
        console.print(f"wrote {path}")
    extra = "" if directory == Path("workspace") else f" --dir {directory}"
    console.print(f"Fill in every NotImplementedError, then run: airoad check {lab_id}{extra}")


@app.command()
@friendly
def check(
    lab_id: str = typer.Argument(..., metavar="ID"),
    directory: Path | None = typer.Option(
        None, "--dir", help="Your workspace (default ./workspace)."
    ),
    file: Path | None = typer.Option(None, "--file", help="One file, for single-module labs."),
    timeout: float | None = typer.Option(
        None, "--timeout", help="Seconds allowed per test (default 60, or the lab's own)."
    ),
    memory_mb: float | None = typer.Option(
        None,
        "--memory-mb",
        help="Resident memory for all test processes together (default 2048, or the lab's own).",
    ),
    cpu_seconds: float | None = typer.Option(
        None,
        "--cpu-seconds",
        help="CPU time for the whole grading (default: start-up + per-test limit x tests).",
    ),
    output_mb: float | None = typer.Option(
        None, "--output-mb", help="Megabytes your code may print (default 10)."
    ),
):
    """Grade your code with the lab's own tests; records `passed` when all pass."""
    from rich.markup import escape

    from airoad.labs.check import run_check
    from airoad.labs.check_view import print_check

    if directory is not None and file is not None:
        raise typer.BadParameter("give --dir or --file, not both")
    with console.status(f"grading {escape(lab_id)} ..."):
        report = run_check(
            lab_id,
            directory,
            file,
            timeout=timeout,
            memory_mb=memory_mb,
            cpu_seconds=cpu_seconds,
            output_mb=output_mb,
        )
    print_check(console, report)
    raise typer.Exit(0 if report.passed else 1)


@app.command()
@friendly
def roadmap(as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")):
    """The whole roadmap: phase > labs, with layer, built/planned and your progress."""
    from airoad import cli_views as views

    if as_json:
        print(json.dumps(views.roadmap_data(), indent=2))
    else:
        console.print(views.roadmap_tree())


@progress_app.command("skip")
@friendly
def progress_skip(lab_id: str = typer.Argument(..., metavar="ID")):
    """Mark a lab skipped: later labs use its reference implementation."""
    from airoad.catalog import load_catalog
    from airoad.catalog.progress import SKIPPED, save_state

    load_catalog().get(lab_id)
    save_state(lab_id, SKIPPED)
    console.print(f"{lab_id}: skipped")


@progress_app.command("reset")
@friendly
def progress_reset(lab_id: str = typer.Argument(..., metavar="ID")):
    """Forget a lab's progress (back to `not started`)."""
    from airoad.catalog import load_catalog
    from airoad.catalog.progress import NOT_STARTED, save_state

    load_catalog().get(lab_id)
    save_state(lab_id, NOT_STARTED)
    console.print(f"{lab_id}: not started")


@app.command()
@friendly
def tour(
    quick: bool = typer.Option(False, "--quick", help="Each lab's quick config."),
    track: bool = typer.Option(True, "--track/--no-track", help="Log runs to MLflow."),
):
    """Run every built lab and finish with one table: ours vs the trusted library."""
    from airoad import cli_views as views
    from airoad.labs.tour import run_tour

    rows = run_tour(console, quick=quick, track=track)
    console.print(views.tour_table(rows))
    if any(r["status"] != "ok" for r in rows):
        raise typer.Exit(1)


@app.command()
@friendly
def ask(
    question: str = typer.Argument("", help="Your question, in quotes."),
    top: int = typer.Option(5, "--top", "-k", help="How many lesson sections to retrieve."),
    generate: bool = typer.Option(
        True, "--generate/--no-generate", help="Answer with SmolLM2, or just list the sections."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    build_index: bool = typer.Option(
        False, "--build-index", help="Build the lesson index now (make run does) and exit."
    ),
):
    """Answer a question from the lessons of the built labs, citing the sections it used."""
    from airoad import cli_ask

    if build_index:
        from airoad.rag.ask import hand_recall

        index, built = cli_ask.load_index(console)
        recall, n = hand_recall(index)
        state = "built" if built else "up to date"
        console.print(
            f"lesson index {state}: {len(index.chunks)} passages; recall@5 of the gold section "
            f"on {n} hand-written questions: {recall:.2f}"
        )
        return
    cli_ask.ask(console, question, top, generate, as_json)


@app.command()
@friendly
def serve(
    lab_id: str = typer.Argument(..., metavar="MODEL", help="A lab that saves a model."),
    alias: str = typer.Option("champion", "--alias", help="The registry alias to serve."),
    quick: bool = typer.Option(False, "--quick", help="Register the quick config's model."),
    backend: str = typer.Option("torch", "--backend", help="torch (fp32) or onnx-int8."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port (0: any free one)."),
    api_key: list[str] = typer.Option(
        [], "--api-key", help="A key clients send as X-API-Key (repeatable; default: a new one)."
    ),
    rate: float = typer.Option(20.0, "--rate", help="Requests per second allowed per key."),
    ui: bool = typer.Option(
        False, "--ui", help="A Gradio demo page at /ui (needs the ui extra: gradio)."
    ),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn's log level."),
):
    """Serve a lab's model over HTTP: the registry alias's version, with a key, at /docs."""
    from airoad import cli_serve

    cli_serve.serve(
        console, lab_id, alias, quick, backend, host, port, api_key, rate, ui, log_level
    )


@app.command()
@friendly
def doctor():
    """Check Python, torch (CPU build), threads, datasets and disk; each with the fix."""
    from airoad.labs.doctor import run_doctor

    ok = run_doctor(console)
    raise typer.Exit(0 if ok else 1)


if __name__ == "__main__":  # pragma: no cover
    app()

"""`make mutate`: how many wrong programs each lab's graders reject.

For each built lab, a fixed sample of single-point mutants of its reference modules (the
operators are in tools/mutation_ops.py; the sample is seeded by the lab id, so the same mutants
come back after the graders change) is graded by the lab's own grader tests, exactly as
`airoad check` would load a learner's files: AIROAD_LEARNER_FILES maps every reference module of
the lab to a file (the mutant for one, unmutated copies for the others) and the import guard
serves sibling modules from those files. A warm parent imports the heavy libraries once
(tools/mutation_warm.py), then forks one child per mutant that runs `pytest -x` on the tests
that can see it (coverage-based selection, tools/mutation_coverage.py: the tests that executed
the mutated line in a traced unmutated run, fastest first); the parent kills a child that
outlives 5x what those tests took unmutated + start-up + 10 s (a timeout, counted as killed).

A mutant is killed (a grader test failed), killed at import (it does not load), a timeout, or a
survivor. The unmutated reference must pass first, else the lab is reported as broken.
Results: benchmarks/results/graders.json (per mutant; --results elsewhere) and graders.md
beside it (rendered from the JSON and the equivalence judgments in
tools/mutation_equivalents.toml).

Examples:
  python tools/mutate.py                          every built lab (make mutate)
  python tools/mutate.py --phase foundations      one phase; only its rows are replaced
  python tools/mutate.py --lab pca knn            these labs; only their rows are replaced
  python tools/mutate.py --lab pca --list         the sampled mutants, numbered; runs nothing
  python tools/mutate.py --lab pca --show 7       the diff of mutant 7 of pca's sample
  python tools/mutate.py --render                 rewrite graders.md from graders.json
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import mutation_coverage as cov  # noqa: E402
import mutation_ops as ops  # noqa: E402
import mutation_report as report  # noqa: E402
from mutation_warm import warm_lab, warm_up  # noqa: E402

IMPORT_FAILED = 87  # exit code of a child whose mutant did not load


@dataclass
class Job:
    """One grading: files for AIROAD_LEARNER_FILES, the module mutated (None: baseline), the
    test node ids to run (None: all), where a baseline records its items (times, traced lines)."""

    name: str
    files: dict[str, str]
    mutated: str | None
    timeout: float
    log: Path
    info: dict = field(default_factory=dict)
    select: list[str] | None = None
    collect: list[str] | None = None  # the grader files of `select` (None: the lab's)
    record: Path | None = None
    trace: bool = False


# ------------------------------------------------------------------ the child


def _child(job: Job, tests: list[str], policy: dict, cwd: Path) -> None:
    """Runs in the forked child: load the mutant, then pytest -x; never returns."""
    code = 3
    try:
        os.setpgid(0, 0)
        os.chdir(cwd)
        fd = os.open(job.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__  # not a capture (forked in pytest)
        from airoad.labs.learner import ENV_VAR, ImportGuard, load_file_as_module, module_name

        os.environ[ENV_VAR] = json.dumps(job.files)
        ImportGuard.from_config(policy).install()
        if job.mutated is not None:
            try:
                load_file_as_module(Path(job.files[job.mutated]), module_name(job.mutated))
            except BaseException:
                traceback.print_exc()
                code = IMPORT_FAILED
                return
        import pytest

        plugins: list = []
        if job.select is not None:
            plugins.append(cov.Select(job.select))
            tests = job.collect or tests
        if job.record is not None:
            plugins.append(recorder := cov.Recorder(job.files.values()))
            if job.trace:
                recorder.start()
        basetemp = job.log.with_suffix(".tmp")
        args = [*tests, *([] if job.trace else ["-x"]), "-q", "--tb=line", "-p", "no:cacheprovider"]
        code = int(pytest.main([*args, f"--basetemp={basetemp}"], plugins=plugins))
        if job.record is not None:
            recorder.stop()
            recorder.save(job.record)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _outcome(job: Job, status: int | None, seconds: float) -> dict:
    """What happened to one job: killed, import, timeout, survived, crash or error."""
    text = job.log.read_text(errors="replace") if job.log.exists() else ""
    failed = [
        ln.split(" ", 1)[1].split(" - ")[0]
        for ln in text.splitlines()
        if ln.startswith(("FAILED ", "ERROR "))
    ]
    tail = " | ".join([ln for ln in text.splitlines() if ln.strip()][-4:])[-600:]
    got = {"seconds": round(seconds, 2)}
    if status is None:
        return got | {"status": "timeout"}
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return got | {"status": "survived"}
    if code == 1:
        return got | {"status": "killed", "killed_by": failed[0] if failed else ""}
    if code == IMPORT_FAILED:
        return got | {"status": "import", "tail": tail}
    return got | {"status": "crash" if code < 0 else "error", "code": code, "tail": tail}


def run_jobs(jobs: list[Job], tests: list[str], policy: dict, cwd: Path, parallel: int = 1):
    """Fork a child per job (at most `parallel` at once) and yield (job, outcome) as each ends."""
    pending, running = list(jobs), {}
    while pending or running:
        while pending and len(running) < parallel:
            job = pending.pop(0)
            pid = os.fork()
            if pid == 0:
                _child(job, tests, policy, cwd)
            try:
                os.setpgid(pid, pid)
            except OSError:
                pass  # the child got there first
            running[pid] = (job, time.monotonic())
        time.sleep(0.02)
        for pid, (job, start) in list(running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            elapsed = time.monotonic() - start
            if not done and elapsed < job.timeout:
                continue
            try:
                os.killpg(pid, signal.SIGKILL)  # a timed-out child, or what a test left behind
            except (ProcessLookupError, PermissionError):
                pass
            if not done:
                os.waitpid(pid, 0)
                status = None
            del running[pid]
            yield job, _outcome(job, status, elapsed)


# ------------------------------------------------------------------ a lab


def lab_sample(entry, size: int) -> tuple[dict[str, str], list[tuple[str, ops.Point]], int]:
    """(reference sources, the sampled points, how many points the lab has)."""
    from airoad.labs.exercise import reference_source

    sources = {m: reference_source(m)[1] for m in entry.reference}
    points = {m: ops.find_points(s) for m, s in sources.items()}
    return sources, ops.draw_sample(entry.id, points, size), sum(map(len, points.values()))


def mutant_record(number: int, module: str, point: ops.Point, source: str) -> dict:
    line = source.splitlines()[point.line - 1].strip()
    return {
        "n": number,
        "id": f"{module}:{point.key}",
        "module": module,
        "line": point.line,
        "change": point.change,
        "code": line[:120],
    }


NOT_EXECUTED = "not executed by any test"


def _baselines(copies, folder, tests, policy, say):
    """The unmutated run (its outcome, per-item times) then a traced run for the coverage;
    (outcome, Selection or None when the traced run did not pass)."""
    timing, traced = folder / "timing.json", folder / "coverage.json"
    base = Job("baseline", copies, None, 1800.0, folder / "baseline.log", record=timing)
    [(_, got)] = list(run_jobs([base], tests, policy, REPO))
    if got["status"] != "survived":
        return got, None
    trace = Job(
        "coverage", copies, None, 3600.0, folder / "coverage.log", record=traced, trace=True
    )
    [(_, cover)] = list(run_jobs([trace], tests, policy, REPO))
    if cover["status"] not in ("survived", "killed"):  # killed: a timing test failed when traced
        say(f"  traced baseline {cover['status']}: every mutant runs every test")
        return got, None
    say(f"  baseline {got['seconds']:.1f}s, traced baseline {cover['seconds']:.1f}s")
    return got, cov.Selection(timing, traced, list(copies.values()))


def grade_lab(entry, size: int, parallel: int, say) -> dict:
    """Baseline, then every sampled mutant of one lab (only the tests that executed the mutated
    line, fastest first); the lab's result record."""
    from airoad.labs.learner import guard_policy

    started, digest = time.monotonic(), _digest(entry.tests)
    sources, sample, n_points = lab_sample(entry, size)
    warm_lab(entry)
    tests = [str(REPO / t) for t in entry.tests]
    result = {"phase": entry.phase, "points": n_points, "sample": len(sample), "mutants": []}
    with tempfile.TemporaryDirectory(prefix=f"mutate-{entry.id}-") as tmp:
        folder = Path(tmp)
        copies = {}
        for module, source in sources.items():
            copies[module] = str(folder / f"{module.rsplit('.', 1)[-1]}.py")
            Path(copies[module]).write_text(ops.normalised(source), encoding="utf-8")
        policy = guard_policy(list(entry.reference), copies)
        got, selection = _baselines(copies, folder, tests, policy, say)
        result["baseline_seconds"] = got["seconds"]
        if got["status"] != "survived":
            result["problem"] = f"the unmutated reference fails its graders: {got.get('tail', '')}"
            say(f"{entry.id}: BROKEN ({got['status']}) {got.get('tail', '')[-300:]}")
            return result | {"seconds": round(time.monotonic() - started, 1)}
        jobs = []
        for number, (module, point) in enumerate(sample, 1):
            job, text = _mutant_job(number, module, point, sources, copies, folder, got["seconds"])
            if selection is not None:
                line = cov.changed_line(Path(copies[module]).read_text(), text)
                _select(job, selection, selection.tests_for(copies[module], line), got["seconds"])
                if not job.select:
                    result["mutants"].append(
                        job.info | {"seconds": 0.0, "status": "survived", "note": NOT_EXECUTED}
                    )
                    say(f"  {entry.id} {job.name} survived   {NOT_EXECUTED} {job.info['id']}")
                    continue
            jobs.append(job)
        for job, got in run_jobs(jobs, tests, policy, REPO, parallel):
            result["mutants"].append(job.info | got)
            say(
                f"  {entry.id} {job.name} {got['status']:8s} {got['seconds']:6.1f}s "
                f"{job.info.get('tests', '')} tests {job.info['id']}"
            )
    result["mutants"].sort(key=lambda m: m["n"])
    if _digest(entry.tests) != digest:  # the graders were edited while their mutants ran
        result["problem"] = "the grader files changed during the run: run this lab again"
        say(f"{entry.id}: {result['problem']}")
    return result | {"seconds": round(time.monotonic() - started, 1)}


def _mutant_job(number, module, point, sources, copies, folder, baseline_seconds):
    """(the job, the mutant's source): mutant `number` in its own folder, beside unmutated
    copies of the siblings."""
    mutant_dir = folder / f"m{number}"
    mutant_dir.mkdir()
    path = mutant_dir / Path(copies[module]).name
    path.write_text(text := ops.apply(sources[module], point), encoding="utf-8")
    files = dict(copies) | {module: str(path)}
    info = mutant_record(number, module, point, sources[module])
    timeout = 5 * baseline_seconds + 10
    return Job(f"#{number}", files, module, timeout, folder / f"m{number}.log", info), text


def _select(job: Job, selection, nodeids: list[str], baseline_seconds: float) -> None:
    """Run only `nodeids`, within 5x what they took unmutated plus the start-up, + 10 s."""
    job.select, job.collect = nodeids, selection.files(nodeids)
    job.info["tests"] = len(nodeids)
    job.timeout = 5 * (selection.overhead(baseline_seconds) + selection.seconds(nodeids)) + 10


def _digest(tests) -> str:
    return hashlib.sha256(b"".join((REPO / t).read_bytes() for t in tests)).hexdigest()


# ------------------------------------------------------------------ command line


def _selected(args, catalog) -> list:
    built = catalog.built()
    if args.lab:
        return [catalog.get(lab_id) for lab_id in args.lab]
    if args.phase:
        return [e for e in built if e.phase in args.phase]
    return built


def _list_or_show(entries, args) -> None:
    for entry in entries:
        sources, sample, n_points = lab_sample(entry, args.sample)
        print(f"{entry.id}: {len(sample)} mutants of {n_points} points")
        for number, (module, point) in enumerate(sample, 1):
            if args.show is None:
                rec = mutant_record(number, module, point, sources[module])
                print(f"  #{number:<3d} {rec['id']:60s} {rec['code']}")
            elif number == args.show:
                old = ops.normalised(sources[module]).splitlines()
                new = ops.apply(sources[module], point).splitlines()
                print(
                    "\n".join(
                        difflib.unified_diff(old, new, module, f"mutant #{number}", lineterm="")
                    )
                )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("Examples:\n")[0],
        epilog="examples:\n" + __doc__.split("Examples:\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--lab", nargs="+", metavar="ID", help="only these labs")
    parser.add_argument(
        "--phase", nargs="+", metavar="ID", help="only the built labs of these phases"
    )
    parser.add_argument("--sample", type=int, default=30, help="mutants per lab (default 30)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants graded at once (default 1)")
    parser.add_argument("--list", action="store_true", help="print the sample; run nothing")
    parser.add_argument("--show", type=int, metavar="N", help="print the diff of mutant N")
    parser.add_argument("--render", action="store_true", help="only rewrite graders.md")
    parser.add_argument("--no-write", action="store_true", help="do not touch the results files")
    parser.add_argument(
        "--results",
        type=Path,
        default=report.RESULTS,
        metavar="PATH",
        help="the results JSON; the .md is written beside it (default benchmarks/results/graders.json)",
    )
    args = parser.parse_args(argv)
    args.results = args.results.resolve()  # before the chdir to the repository
    from airoad.catalog import load_catalog

    entries = _selected(args, load_catalog())
    if args.list or args.show is not None:
        return _list_or_show(entries, args)
    done: dict[str, dict] = {}
    if not args.render:
        os.chdir(REPO)
        warm_up()
        for entry in entries:
            print(f"{entry.id}: grading {args.sample} mutants", flush=True)
            done[entry.id] = grade_lab(
                entry, args.sample, args.jobs, lambda s: print(s, flush=True)
            )
            print(report.summary_line(entry.id, done[entry.id]), flush=True)
            if not args.no_write:
                report.save({entry.id: done[entry.id]}, args.results)  # others may run too
    if not args.no_write:
        report.save({}, args.results)  # re-render graders.md (new equivalence judgments show up)


if __name__ == "__main__":
    main()

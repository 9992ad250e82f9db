"""Runner for containerize-ci: render the model service's Dockerfile, ignore file and GitHub
Actions workflow, lint them with hadolint and the bundled workflow JSON schema beside our own
review rules, break them on purpose to see who notices, and check everything short of building
the image: the copied paths, the pins, the uvicorn factory, the health route, and the image's
venv (its size estimated from the wheels installed here, and the service imported with only
those packages visible). No container engine runs on these machines."""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass

import numpy as np

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import changed_from_full, config_check, figure, param, render_notes
from airoad.labs.runners import containerize_ci_parts as parts
from airoad.production import containerize_ci as ref
from airoad.production import containerize_ci_checks as checks

MODELS = ("tiny", "bert-sentiment")  # a random tiny classifier; the fine-tuned MiniLM
FILES = ("Dockerfile", "Dockerfile.dockerignore", "service.yml")


@dataclass(frozen=True)
class Config:
    python_version: str = param("3.11.14")  # exact 3.11.N: pyproject requires Python 3.11
    uid: int = param(10001, ge=1, le=2**31 - 2)  # numeric non-root user of the final stage
    port: int = param(8000, ge=1024, le=65535)  # a non-root user cannot bind below 1024
    health_path: str = param("/health")  # must be a GET route of the app
    models: tuple[str, ...] = param(MODELS, choices=MODELS)  # served by the CMD probe
    start_timeout: float = param(180.0, gt=0.0, le=900.0)  # seconds to wait for /ready
    n_specs: int = param(24, ge=0, le=500)  # random specs rendered and linted
    top_k: int = param(12, ge=3, le=60)  # distributions drawn in the size figure
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        version_ok = re.fullmatch(r"3\.11\.\d{1,2}", self.python_version) is not None
        config_check(version_ok, "python_version", "must be an exact 3.11.N release")
        config_check(self.health_path.startswith("/"), "health_path", "must start with /")


QUICK = {"n_specs": 3, "models": ("tiny",)}

NOTES = (
    "Rendered files: hadolint codes {render_hadolint_codes}, workflow schema errors "
    "{render_schema_errors}, our findings {render_our_findings}; identical to the committed "
    "assets: {assets_match_render}.",
    "{n_variants} broken variants: our rules flag {ours_caught}, hadolint or the schema flag "
    "{library_caught}; {only_ours} are visible only to our rules ({only_ours_ids}).",
    "Repository checks: {repo_checks_passed} of {repo_checks} pass ({repo_failures}).",
    "The image's venv: {image_dists} distributions, about {venv_mb:.0f} MB unpacked on this "
    "machine (torch {torch_share:.0%}).",
    "The final CMD run outside a container with only those packages: {serve_summary}.",
    "{specs_clean} of {n_specs} random specs render files that pass all three linters.",
)


def run(config: Config, ctx: RunContext) -> LabResult:
    spec = ref.ServiceSpec(
        config.python_version, uid=config.uid, port=config.port, health_path=config.health_path
    )
    texts = _render(spec, ctx)
    metrics = _lint_render(texts)
    metrics["assets_match_render"] = str(_assets_match(texts))
    variants, m = _variants()
    metrics |= m
    repo, m = _repo_checks(spec, texts)
    metrics |= m
    sizes, dists, m = _image_estimate()
    metrics |= m
    served, m = _serve(config, texts["Dockerfile"], dists, ctx)
    metrics |= m
    metrics |= _random_specs(config)
    _findings_figure(variants, ctx)
    _size_figure(sizes, config.top_k, ctx)
    changed = changed_from_full(config)
    metrics["changed_from_full"] = ", ".join(changed) or "none"
    return LabResult(
        metrics=metrics,
        key_metric="ours_caught_fraction",
        library_metric="library_caught_fraction",
        tables={"variants": variants, "repo_checks": repo, "image_sizes": sizes, "serve": served},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )


def _render(spec: ref.ServiceSpec, ctx: RunContext) -> dict[str, str]:
    """The three files, written into the run folder."""
    texts = dict(
        zip(
            FILES,
            (ref.render_dockerfile(spec), ref.render_dockerignore(spec), ref.render_workflow(spec)),
        )
    )
    for name, text in texts.items():
        (ctx.out_dir / name).write_text(text, encoding="utf-8")
    return texts


def _assets_match(texts: dict[str, str]) -> bool:
    return all((parts.ASSETS / n).read_text(encoding="utf-8") == t for n, t in texts.items())


def _lint_render(texts: dict[str, str]) -> dict:
    codes = parts.hadolint_codes({"render": texts["Dockerfile"]})["render"]
    errors = parts.schema_errors({"render": texts["service.yml"]})["render"]
    ours = checks.check_dockerfile(texts["Dockerfile"]) + checks.check_workflow(
        texts["service.yml"]
    )
    return {
        "render_hadolint_codes": ",".join(sorted(codes)) or "none",
        "render_schema_errors": len(errors),
        "render_our_findings": len(ours),
    }


def _variants() -> tuple[list[dict], dict]:
    """Each broken variant of the committed assets, judged by our rules and by the library."""
    variants = parts.load_variants()
    base = {
        n: (parts.ASSETS / n).read_text(encoding="utf-8") for n in ("Dockerfile", "service.yml")
    }
    texts = {v["id"]: parts.apply_edits(base[v["file"]], v["edits"]) for v in variants}
    docker = [v["id"] for v in variants if v["file"] == "Dockerfile"]
    codes = parts.hadolint_codes({"base": base["Dockerfile"]} | {i: texts[i] for i in docker})
    schema = parts.schema_errors(
        {v["id"]: texts[v["id"]] for v in variants if v["id"] not in docker}
    )
    rows = []
    for v in variants:
        review = checks.check_dockerfile if v["id"] in docker else checks.check_workflow
        ours = sorted({f.rule for f in review(texts[v["id"]])})
        if v["id"] in docker:
            library = sorted(codes[v["id"]] - codes["base"])
            hit = v["library"] in library
        else:
            library = schema[v["id"]][:1]
            hit = bool(library)
        rows.append(
            {"variant": v["id"], "file": v["file"], "ours_expected": v["ours"],
             "ours_flagged": v["ours"] in ours, "ours_rules": ",".join(ours),
             "library_expected": v["library"] or "-", "library_flagged": hit,
             "library_says": "; ".join(library)[:160], "why": v["why"]}
        )  # fmt: skip
    n = len(rows)
    only = [r["variant"] for r in rows if r["ours_flagged"] and not r["library_flagged"]]
    metrics = {
        "n_variants": n,
        "ours_caught": sum(r["ours_flagged"] for r in rows),
        "library_caught": sum(r["library_flagged"] for r in rows),
        "library_as_expected": sum(
            r["library_flagged"] == bool(v["library"]) for r, v in zip(rows, variants)
        ),
        "only_ours": len(only),
        "only_ours_ids": ", ".join(only) or "none",
    }
    metrics["ours_caught_fraction"] = metrics["ours_caught"] / n
    metrics["library_caught_fraction"] = metrics["library_caught"] / n
    return rows, metrics


def _repo_checks(spec: ref.ServiceSpec, texts: dict[str, str]) -> tuple[list[dict], dict]:
    """Everything the image needs from the repository, checked without building it."""
    docker, root = texts["Dockerfile"], parts.REPO
    pins = (root / spec.requirements).read_text(encoding="utf-8")
    repo_pins = (root / "requirements.txt").read_text(encoding="utf-8")
    requires = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    rows = [
        _row("copied paths exist, not ignored", checks.check_build_context(docker, texts["Dockerfile.dockerignore"], root)),
        _row("image pins == requirements.txt", checks.check_pins(pins, repo_pins)),
    ]  # fmt: skip
    try:
        target = checks.app_target(docker)
        checks.resolve_target(target)
        rows.append({"check": "CMD factory imports", "ok": True, "detail": target})
    except (ValueError, ImportError) as exc:
        rows.append({"check": "CMD factory imports", "ok": False, "detail": str(exc)[:160]})
    routes = parts.get_routes()
    ok = spec.health_path in routes
    rows.append({"check": "HEALTHCHECK path is a GET route", "ok": ok, "detail": spec.health_path})
    minor = ".".join(spec.python_version.split(".")[:2])
    ok = minor in requires.get("requires-python", "")
    rows.append({"check": "base Python fits requires-python", "ok": ok, "detail": minor})
    failed = [r["check"] for r in rows if not r["ok"]]
    metrics = {"repo_checks": len(rows), "repo_checks_passed": len(rows) - len(failed)}
    metrics["repo_failures"] = "; ".join(failed) or "none failed"
    return rows, metrics


def _row(name: str, findings: list) -> dict:
    detail = "; ".join(f.message for f in findings)[:160] or "ok"
    return {"check": name, "ok": not findings, "detail": detail}


def _image_estimate() -> tuple[list[dict], list[str], dict]:
    """The venv the builder stage would fill: the closure of the image's requirements, sized
    from this machine's installed wheels."""
    names = list(checks.parse_pins((parts.ASSETS / "requirements-serve.txt").read_text()))
    dists = parts.closure(names)
    sizes = parts.dist_megabytes(dists)
    known = {d: mb for d, mb in sizes.items() if np.isfinite(mb)}  # not installed here: unknown
    rows = [{"distribution": d, "megabytes": round(mb, 2)} for d, mb in known.items()]
    rows.sort(key=lambda r: -r["megabytes"])
    total = float(sum(known.values()))
    metrics = {
        "image_dists": len(dists),
        "venv_mb": total,
        "sizes_unknown": len(dists) - len(known),
    }
    metrics["torch_share"] = sizes.get("torch", 0.0) / total if total else 0.0
    return rows, dists, metrics


def _serve(config: Config, dockerfile: str, dists: list[str], ctx: RunContext):
    """The final stage's CMD and HEALTHCHECK, run on loopback with only the image's packages,
    for each model: the container's start-up, short of building it."""
    from airoad.labs.artifacts import require

    rows, said = [], []
    for name in ctx.track(config.models, "serving the CMD"):
        if name == "tiny":
            folder = parts.tiny_model(ctx.out_dir / "tiny_model")
        else:
            folder = require("bert-sentiment", "classifier", quick=False, train_if_missing=False)
        out = parts.serve_probe(dists, dockerfile, folder, config.start_timeout)
        out["ready"] = not out["error"] and bool(np.isfinite(out["ready_s"]))
        rows.append({"model": name} | {k: _json_number(v) for k, v in out.items()})
        if not out["ready"]:
            said.append(f"{name} never became ready ({out['error'] or 'timeout'})")
        else:
            said.append(
                f"{name}: /health after {out['health_s']:.1f} s, /ready after {out['ready_s']:.1f} s, "
                f"HEALTHCHECK exit {out['healthcheck_exit']}, SIGTERM -> "
                f"{'clean' if out['graceful'] else 'unclean'} stop in {out['shutdown_s']:.2f} s"
            )
    served = sum(r["ready"] for r in rows)
    return rows, {"models_served": served, "serve_summary": "; ".join(said)}


def _json_number(value):
    if isinstance(value, float):
        return round(value, 2) if np.isfinite(value) else None
    return value


def _random_specs(config: Config) -> dict:
    """Seeded random specs: every rendering should pass hadolint, the schema and our rules."""
    rng = np.random.default_rng(config.seed)
    specs = [
        ref.ServiceSpec(
            f"3.11.{rng.integers(0, 15)}",
            uid=int(rng.integers(1000, 60_000)),
            port=int(rng.integers(1024, 65_536)),
            health_path=str(rng.choice(["/health", "/ready", "/metrics"])),
        )
        for _ in range(config.n_specs)
    ]
    dockers = {f"s{k}": ref.render_dockerfile(s) for k, s in enumerate(specs)}
    flows = {f"s{k}": ref.render_workflow(s) for k, s in enumerate(specs)}
    codes = parts.hadolint_codes(dockers) if specs else {}
    schema = parts.schema_errors(flows) if specs else {}
    clean = [
        not codes[k] and not schema[k] and not checks.check_dockerfile(dockers[k])
        and not checks.check_workflow(flows[k])
        for k in dockers
    ]  # fmt: skip
    return {"specs_clean": int(sum(clean))}


def _findings_figure(rows: list[dict], ctx: RunContext) -> None:
    """Who flags which broken variant: our rules vs hadolint / the workflow schema."""
    grid = np.array([[r["ours_flagged"], r["library_flagged"]] for r in rows], dtype=float)
    with figure(ctx, "findings", figsize=(8.5, 0.36 * len(rows) + 1.6)) as (fig, ax):
        ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
        for i, r in enumerate(rows):
            ax.text(0, i, r["ours_expected"], ha="center", va="center", fontsize=7)
            label = r["library_expected"] if r["library_flagged"] else "not flagged"
            ax.text(1, i, label, ha="center", va="center", fontsize=7)
        ax.set_xticks([0, 1], ["our rule", "hadolint / schema"])
        ax.set_yticks(range(len(rows)), [f"{r['variant']} ({r['file']})" for r in rows], fontsize=7)
        ax.set_title("Broken variants: green = flagged, red = missed")


def _size_figure(rows: list[dict], top_k: int, ctx: RunContext) -> None:
    """The venv layer by distribution (unpacked MB of the wheels installed on this machine)."""
    top, rest = rows[:top_k], sum(r["megabytes"] for r in rows[top_k:])
    names = [r["distribution"] for r in top] + [f"{len(rows) - len(top)} others"]
    sizes = [r["megabytes"] for r in top] + [rest]
    with figure(ctx, "image_size", figsize=(7, 0.3 * len(names) + 1.5)) as (fig, ax):
        ax.barh(range(len(names))[::-1], sizes, color="tab:blue")
        ax.set_yticks(range(len(names))[::-1], names, fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("MB unpacked (log scale)")
        ax.set_title(f"The image's venv: about {sum(sizes):.0f} MB before the base image")

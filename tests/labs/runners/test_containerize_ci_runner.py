"""The containerize-ci runner (quick config): renders, lints, breaks and checks the service's
container and CI files; no container engine is needed."""

from __future__ import annotations

import pytest

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext, make_config
from airoad.labs.runners import containerize_ci as runner
from airoad.labs.runners import containerize_ci_parts as parts
from airoad.production import containerize_ci as ref


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> tuple[LabResult, RunContext]:
    ctx = RunContext(tmp_path_factory.mktemp("containerize_ci"))
    return runner.run(runner.Config(**runner.QUICK), ctx), ctx


def test_rendered_files_are_clean_and_equal_the_assets(result):
    res, ctx = result
    m = res.metrics
    assert m["render_hadolint_codes"] == "none" and m["render_schema_errors"] == 0
    assert m["render_our_findings"] == 0 and m["assets_match_render"] == "True"
    for name in runner.FILES:  # the run folder holds what was linted, equal to the lab assets
        assert (ctx.out_dir / name).read_text() == (parts.ASSETS / name).read_text()


def test_every_variant_is_flagged_and_the_library_as_documented(result):
    res, _ = result
    m, rows = res.metrics, res.tables["variants"]
    assert m["n_variants"] == len(rows) == len(parts.load_variants()) >= 15
    assert m["ours_caught"] == m["n_variants"] and m["ours_caught_fraction"] == 1.0
    assert m["library_as_expected"] == m["n_variants"]
    only = [v["id"] for v in parts.load_variants() if not v["library"]]
    assert m["only_ours"] == len(only) and m["only_ours_ids"] == ", ".join(only)
    assert 0 < m["library_caught_fraction"] < 1
    assert res.key_metric == "ours_caught_fraction"
    assert res.library_metric == "library_caught_fraction"


def test_repo_checks_image_estimate_and_specs(result):
    res, _ = result
    m = res.metrics
    assert m["repo_checks_passed"] == m["repo_checks"] == 5, res.tables["repo_checks"]
    assert m["models_served"] == 1 and m["serve_summary"].startswith("tiny: /health after")
    (row,) = res.tables["serve"]
    assert row["ready"] and row["healthcheck_exit"] == 0 and row["graceful"], row
    assert 0 < row["health_s"] <= row["ready_s"] < runner.Config().start_timeout
    sizes = res.tables["image_sizes"]
    assert sizes[0]["distribution"] == "torch" and 0.3 < m["torch_share"] < 1
    assert 100 < m["venv_mb"] < 5_000 and m["image_dists"] == len(sizes) + m["sizes_unknown"]
    assert m["specs_clean"] == runner.QUICK["n_specs"]
    assert m["changed_from_full"] == "models, n_specs"


def test_figures_and_notes(result):
    res, _ = result
    assert {p.name for p in res.figures} == {"findings.png", "image_size.png"}
    for path in res.figures:
        assert path.stat().st_size > 10_000, f"{path.name} looks empty"
    assert len(res.notes) == len(runner.NOTES) and "0 of" not in res.notes[-1]


def test_a_missing_route_and_a_missing_package_are_caught(result):
    _, ctx = result
    spec = ref.ServiceSpec(health_path="/healthz")
    texts = dict(
        zip(runner.FILES, (ref.render_dockerfile(spec), ref.render_dockerignore(spec), ""))
    )
    rows, m = runner._repo_checks(spec, texts)
    assert m["repo_failures"] == "HEALTHCHECK path is a GET route", rows
    dists = parts.closure(["fastapi", "uvicorn", "numpy"])  # no prometheus-client
    out = parts.serve_probe(dists, texts["Dockerfile"], ctx.out_dir / "tiny_model", 60.0)
    assert "prometheus_client" in out["error"] and out["healthcheck_exit"] != 0, out


@pytest.mark.parametrize(
    "pairs",
    [
        ["python_version=latest"],
        ["health_path=health"],
        ["port=80"],
        ["uid=0"],
        ["n_specs=-1"],
        ["models=tiny,gpt"],
        ["start_timeout=nan"],
    ],
)
def test_bad_settings_stop_before_any_work(pairs):
    from airoad.labs.contract import parse_overrides

    with pytest.raises(ConfigError):
        make_config(runner.Config, runner.QUICK, True, parse_overrides(runner.Config, pairs))

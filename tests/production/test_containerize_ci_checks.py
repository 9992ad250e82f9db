"""Graders for the review rules of containerize-ci: on the committed (good) assets and on each
deliberately broken variant, the learner's verdict is compared with hadolint's and with the
bundled GitHub workflow schema's; rules only ours has must still flag their variant."""

from __future__ import annotations

import collections
import json

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from airoad.labs.runners import containerize_ci_parts as lib
from airoad.production import serving

REFERENCE = "airoad.production.containerize_ci_checks"

VARIANTS = lib.load_variants()
DOCKER = [v for v in VARIANTS if v["file"] == "Dockerfile"]
FLOWS = [v for v in VARIANTS if v["file"] != "Dockerfile"]
BASE = {n: (lib.ASSETS / n).read_text(encoding="utf-8") for n in ("Dockerfile", "service.yml")}
TEXTS = {v["id"]: lib.apply_edits(BASE[v["file"]], v["edits"]) for v in VARIANTS}


@pytest.fixture(scope="module")
def library():
    """Library verdicts for every variant (and the good files), in one call per tool."""
    codes = lib.hadolint_codes(
        {"base": BASE["Dockerfile"]} | {v["id"]: TEXTS[v["id"]] for v in DOCKER}
    )
    schema = lib.schema_errors(
        {"base": BASE["service.yml"]} | {v["id"]: TEXTS[v["id"]] for v in FLOWS}
    )
    return (
        {k: sorted(c - codes["base"]) for k, c in codes.items()}
        | {k: e for k, e in schema.items() if k != "base"}
        | {"docker_base": sorted(codes["base"]), "schema_base": schema["base"]}
    )


def test_parse_joins_continuations_and_numbers_stages(impl):
    """parse_dockerfile joins `\\` lines, skips comments, keeps flags and counts stages from 0."""
    text = (
        "ARG V=1\n# c\nFROM a:1 AS b\nRUN x \\\n  # inside\n  && y\nFROM c:2\nCOPY --from=b /o /o\n"
    )
    got = [(i.line, i.stage, i.keyword, i.flags, i.args) for i in impl.parse_dockerfile(text)]
    assert got == [
        (1, -1, "ARG", {}, "V=1"),
        (3, 0, "FROM", {}, "a:1 AS b"),
        (4, 0, "RUN", {}, "x && y"),
        (7, 1, "FROM", {}, "c:2"),
        (8, 1, "COPY", {"from": "b"}, "/o /o"),
    ], f"parsed {got}"


def test_good_assets_pass_ours_and_the_libraries(impl, library):
    """The committed Dockerfile and workflow pass our rules, hadolint and the schema."""
    assert library["docker_base"] == [] and library["schema_base"] == []
    assert impl.check_dockerfile(BASE["Dockerfile"]) == []
    assert impl.check_workflow(BASE["service.yml"]) == []


@pytest.mark.parametrize("variant", DOCKER, ids=[v["id"] for v in DOCKER])
def test_broken_dockerfiles_flagged_like_hadolint(impl, library, variant):
    """Each broken Dockerfile is flagged by its rule; hadolint agrees unless only ours has it."""
    rules = {f.rule for f in impl.check_dockerfile(TEXTS[variant["id"]])}
    assert variant["ours"] in rules, f"{variant['id']}: expected {variant['ours']}, got {rules}"
    hadolint = library[variant["id"]]
    if variant["library"]:
        assert variant["library"] in hadolint, f"hadolint said {hadolint}"
    else:
        assert hadolint == [], f"{variant['id']} is meant to be ours only; hadolint: {hadolint}"


@pytest.mark.parametrize("variant", FLOWS, ids=[v["id"] for v in FLOWS])
def test_broken_workflows_flagged_like_the_schema(impl, library, variant):
    """Each broken workflow is flagged by its rule; the schema agrees unless only ours has it."""
    rules = {f.rule for f in impl.check_workflow(TEXTS[variant["id"]])}
    assert variant["ours"] in rules, f"{variant['id']}: expected {variant['ours']}, got {rules}"
    assert bool(library[variant["id"]]) == (variant["library"] == "schema"), library[variant["id"]]


@pytest.mark.parametrize(
    "image",
    ["python", "python:latest", "python:3.11", "ubuntu:latest", "scratch", "ghcr.io/o/img",
     "ghcr.io/o/img:1.2", "python@sha256:" + "b" * 64, "python:3.11@sha256:" + "a" * 64],
)  # fmt: skip
def test_pinned_base_agrees_with_hadolint(impl, image):
    """Our pinned-base verdict on a FROM image equals hadolint's DL3006/DL3007 verdict."""
    text = f"FROM {image}\n"
    ours = any(f.rule == "pinned-base" for f in impl.check_dockerfile(text))
    theirs = bool(lib.hadolint_codes({"x": text})["x"] & {"DL3006", "DL3007"})
    assert ours == theirs, f"{image}: ours flags={ours}, hadolint flags={theirs}"


@pytest.mark.parametrize(
    "users", [["root", "10001"], ["10001", "root"], ["0"], ["app", "root:root"], ["10001:10001"]]
)
def test_last_user_rule_agrees_with_hadolint_dl3002(impl, users):
    """non-root-user judges the LAST USER of the final stage, as hadolint's DL3002 does."""
    text = "FROM python:3.11\n" + "".join(f"USER {u}\n" for u in users)
    ours = any(f.rule == "non-root-user" for f in impl.check_dockerfile(text))
    theirs = "DL3002" in lib.hadolint_codes({"x": text})["x"]
    assert ours == theirs, f"USER {users}: ours flags={ours}, hadolint flags={theirs}"


@pytest.mark.parametrize(
    "line",
    ["ENV API_TOKEN=x", "ENV DB_PASSWORD=x", "ARG AWS_SECRET_ACCESS_KEY", "ENV HOME=/h",
     "ENV PORT=8000", "ARG MY_API_KEY=x", "ENV LOG_LEVEL=info", "ENV A=1 GITHUB_TOKEN=t",
     "ENV API_TOKEN a=b", "ENV PORT a=API_TOKEN"],
)  # fmt: skip
def test_secret_rule_agrees_with_hadolint_dl3064(impl, line):
    """no-secrets flags the same ENV/ARG lines as hadolint's DL3064 (sensitive data)."""
    text = f"FROM python:3.11\n{line}\n"
    ours = any(f.rule == "no-secrets" for f in impl.check_dockerfile(text))
    theirs = "DL3064" in lib.hadolint_codes({"x": text})["x"]
    assert ours == theirs, f"{line}: ours flags={ours}, hadolint flags={theirs}"


def test_on_key_and_list_triggers(impl):
    """`on:` parsed as YAML's True is still found; `on: [push, pull_request]` lacks v* tags."""
    flow = BASE["service.yml"].replace("'on':", "on:")
    assert impl.check_workflow(flow) == []
    short = "on: [push, pull_request]\npermissions: {contents: read}\njobs: {}\n"
    assert [f.rule for f in impl.check_workflow(short)] == ["triggers"]


def test_empty_and_odd_files_give_findings_not_crashes(impl):
    """Empty or malformed files come back as findings, never as an exception."""
    assert {f.rule for f in impl.check_dockerfile("")} == {
        "multi-stage",
        "non-root-user",
        "healthcheck",
    }
    assert "pinned-base" in {f.rule for f in impl.check_dockerfile("FROM\nFROM\n")}
    assert [f.rule for f in impl.check_workflow("- a list\n")] == ["job-structure"]
    assert {f.rule for f in impl.check_workflow("")} == {"triggers", "least-privilege"}
    odd = "on: {push: {tags: [v*]}, pull_request: {}}\npermissions: {}\njobs: {a: 1}\n"
    assert [f.rule for f in impl.check_workflow(odd)] == ["job-structure"]


def test_only_the_last_healthcheck_counts(impl):
    """Docker keeps only the final stage's LAST HEALTHCHECK; `HEALTHCHECK NONE` switches it off."""
    probe = 'HEALTHCHECK CMD ["python", "-c", "print(1)"]\n'
    for body, flagged in (
        (probe + "HEALTHCHECK NONE\n", True),
        ("HEALTHCHECK NONE\n" + probe, False),
    ):
        text = f"FROM a:1 AS b\nFROM a:1\nUSER 1000\n{body}"
        rules = {f.rule for f in impl.check_dockerfile(text)}
        assert ("healthcheck" in rules) == flagged, f"{body!r}: got {rules}"


def test_dockerignore_follows_docker_semantics(impl):
    """Last matching pattern wins, parents count, `*` stops at `/`, `**` crosses, `!` re-includes."""
    ignore = "*\n!src/\n**/__pycache__\n!pyproject.toml\ndocs/*.md\n"
    cases = {
        "src": False, "src/airoad/x.py": False, "src/a/__pycache__/m.pyc": True, "tests/t.py": True,
        "pyproject.toml": False, ".git/HEAD": True, "docs/a.md": True,
    }  # fmt: skip
    got = {p: impl.dockerignore_excludes(ignore, p) for p in cases}
    assert got == cases, f"excluded: {got}"
    assert impl.dockerignore_excludes("docs/*.md\n", "docs/a.md") is True
    assert impl.dockerignore_excludes("docs/*.md\n", "docs/sub/a.md") is False


def test_build_context_paths_exist_and_are_not_ignored(impl, tmp_path):
    """check_build_context: the real repo passes; a missing and an ignored path are flagged."""
    ignore = (lib.ASSETS / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    assert impl.check_build_context(BASE["Dockerfile"], ignore, lib.REPO) == []
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.txt").write_text("b")
    text = "FROM x:1\nCOPY a.txt b.txt missing.txt /app/\nCOPY --from=y /nowhere /n\n"
    found = {(f.rule, f.where) for f in impl.check_build_context(text, "b.txt\n", tmp_path)}
    assert found == {("copy-exists", "missing.txt"), ("copy-not-ignored", "b.txt")}, found


def test_pins_parse_like_packaging_and_match_the_repo(impl):
    """parse_pins names/versions equal packaging's; the image's pins equal requirements.txt's."""
    text = "Torch==2.13.0\nprometheus_client==0.26.0  # x\nzope.interface==7.1 ; python_version>'3'\nnumpy>=2\n-c other.txt\n"
    expected = {}
    for line in text.splitlines()[:4]:
        req = Requirement(line.split("#")[0])
        spec = str(req.specifier)
        expected[canonicalize_name(req.name)] = spec[2:] if spec.startswith("==") else ""
    assert impl.parse_pins(text) == expected
    repo = (lib.REPO / "requirements.txt").read_text(encoding="utf-8")
    image = (lib.ASSETS / "requirements-serve.txt").read_text(encoding="utf-8")
    assert impl.check_pins(image, repo) == []
    bad = {f.where for f in impl.check_pins("torch==2.12.0\nnumpy\nfastapi==0.165.0\n", repo)}
    assert bad == {"torch", "numpy"}, bad


def test_cmd_factory_resolves_to_the_serving_helper(impl):
    """app_target reads `--factory module:attr` from the CMD; resolve_target imports module:attr."""
    assert impl.app_target(BASE["Dockerfile"]) == "airoad.production.serving:create_app_from_env"
    assert callable(serving.create_app_from_env)  # the runner resolves this one (airoad check
    # does not let a learner's file import airoad's topic packages), so a library target here:
    assert impl.resolve_target("json:loads") is json.loads
    assert impl.resolve_target("collections:OrderedDict") is collections.OrderedDict
    for bad in ("json:no_such_name", "os:sep", "json"):
        with pytest.raises(ValueError):
            impl.resolve_target(bad)
    with pytest.raises(ValueError):
        impl.app_target('FROM x:1\nCMD ["python", "app.py"]\n')

"""Containers and CI for the model service: render a multi-stage Dockerfile, its ignore file
and a GitHub Actions workflow from a small spec, the lab assets kept in ``container_assets/``.

- A multi-stage build installs the pinned wheels into a venv in a ``builder`` stage and copies
  only that venv (the package is installed into it) into a clean final stage: compilers, pip
  caches and the source tree never reach the image that runs.
- The final stage runs as a numeric non-root user, declares a ``HEALTHCHECK`` on the service's
  health route and starts uvicorn in exec (JSON) form, so ``docker stop``'s SIGTERM reaches the
  server and it can shut down gracefully.
- The base image is pinned to an exact tag (a ``@sha256:`` digest is stronger still: a tag can
  be re-pushed, a digest cannot); ``latest`` or no tag is a finding.
- The workflow tests on every push and pull request, builds the image on push and pushes it only
  on a ``v*`` tag, with actions pinned to exact versions and a read-only token except in the
  one job that publishes.
- The ignore file is an allow-list (ignore ``*``, then ``!`` the few paths the build copies), so
  a new folder in the repo never leaks into the build context by default.
- ``airoad.production.containerize_ci_checks`` reviews what these functions render.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ASSETS = "src/airoad/production/container_assets"  # where the rendered files live in the repo
TAG_ONLY = "startsWith(github.ref, 'refs/tags/v')"  # the condition of the publishing job
ACTIONS = {  # exact release tags; a 40-hex commit SHA would be stronger (see the lesson)
    "checkout": "actions/checkout@v4.2.2",
    "python": "actions/setup-python@v5.3.0",
    "buildx": "docker/setup-buildx-action@v3.7.1",
    "login": "docker/login-action@v3.3.0",
    "meta": "docker/metadata-action@v5.5.1",
    "build": "docker/build-push-action@v6.9.0",
}


@dataclass(frozen=True)
class ServiceSpec:
    """What the renderers need to know about the service and its image."""

    python_version: str = "3.11.14"  # exact patch release; the minor must match pyproject
    distro: str = "slim-bookworm"
    digest: str = ""  # optional "sha256:<64 hex>" pinned after the tag
    uid: int = 10001  # numeric, so Kubernetes' runAsNonRoot can verify it
    port: int = 8000
    health_path: str = "/health"
    app: str = "airoad.production.serving:create_app_from_env"  # uvicorn --factory target
    requirements: str = f"{ASSETS}/requirements-serve.txt"
    torch_index: str = "https://download.pytorch.org/whl/cpu"  # CPU wheels: no CUDA libraries
    runner: str = "ubuntu-24.04"


# ---------------------------------------------------------------- rendering


def base_image(spec: ServiceSpec) -> str:
    """``python:<version>-<distro>``, plus ``@<digest>`` when the spec pins one."""
    image = f"python:{spec.python_version}-{spec.distro}"
    return f"{image}@{spec.digest}" if spec.digest else image


def render_dockerfile(spec: ServiceSpec) -> str:
    """The multi-stage Dockerfile (build context: the repository root)."""
    base, venv = base_image(spec), "/opt/venv"
    probe = (
        "import urllib.request; "
        f"urllib.request.urlopen('http://127.0.0.1:{spec.port}{spec.health_path}', timeout=2)"
    )
    module_attr = spec.app
    cmd = ["uvicorn", "--factory", module_attr, "--host", "0.0.0.0", "--port", str(spec.port)]
    return f"""# syntax=docker/dockerfile:1
# Rendered by airoad.production.containerize_ci. Build from the repository root:
#   docker build -f {ASSETS}/Dockerfile -t airoad-serve .
FROM {base} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv {venv}
ENV PATH={venv}/bin:$PATH
WORKDIR /build
# The service's subset of the repo's pins, constrained by the full pin list.
COPY requirements.txt {spec.requirements} ./
RUN pip install --no-cache-dir --extra-index-url {spec.torch_index} \\
        -r {Path(spec.requirements).name} -c requirements.txt
COPY pyproject.toml ./
COPY src/ src/
RUN pip install --no-cache-dir --no-deps .

FROM {base}
ENV PATH={venv}/bin:$PATH PYTHONUNBUFFERED=1 HOME=/home/app
RUN useradd --create-home --no-log-init --uid {spec.uid} --shell /usr/sbin/nologin app
COPY --from=builder {venv} {venv}
USER {spec.uid}:{spec.uid}
WORKDIR /home/app
EXPOSE {spec.port}
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s --retries=3 \\
    CMD {json.dumps(["python", "-c", probe])}
CMD {json.dumps(cmd)}
"""


def render_dockerignore(spec: ServiceSpec) -> str:
    """An allow-list: ignore everything, then let in only what the Dockerfile copies."""
    keep = "\n".join(f"!{p}" for p in ("pyproject.toml", "requirements.txt", "src/"))
    return (
        f"# Rendered by airoad.production.containerize_ci.\n*\n{keep}\n**/__pycache__\n**/*.pyc\n"
    )


def render_workflow(spec: ServiceSpec) -> str:
    """GitHub Actions: test on push and PR, build on push, push the image on a ``v*`` tag."""
    dockerfile = f"{ASSETS}/Dockerfile"
    checkout = {"uses": ACTIONS["checkout"], "with": {"persist-credentials": False}}
    setup = {"uses": ACTIONS["python"], "with": {"python-version": spec.python_version}}
    install = f"pip install -r requirements.txt --extra-index-url {spec.torch_index}"
    test = [checkout, setup, {"name": "Install the pinned dependencies", "run": install}]
    test += [
        {"name": "Install airoad", "run": "pip install --no-deps -e ."},
        {"name": "Lint the Dockerfile", "run": f"hadolint {dockerfile}"},
        {"name": "Run the tests", "run": "python -m pytest -q -n 2"},
    ]
    meta = {"id": "meta", "uses": ACTIONS["meta"]}
    meta["with"] = {
        "images": "ghcr.io/${{ github.repository }}",
        "tags": "type=semver,pattern={{version}}\ntype=sha\n",
    }

    def image_steps(push: bool) -> list[dict[str, Any]]:
        build = {"context": ".", "file": dockerfile, "push": push}
        build |= {"tags": "${{ steps.meta.outputs.tags }}", "cache-from": "type=gha"}
        build["cache-to"] = "type=gha,mode=max"
        login = {"uses": ACTIONS["login"], "with": {"registry": "ghcr.io"}}
        login["with"] |= {
            "username": "${{ github.actor }}",
            "password": "${{ secrets.GITHUB_TOKEN }}",
        }
        steps = [checkout, {"uses": ACTIONS["buildx"]}] + ([login] if push else [])
        return steps + [meta, {"uses": ACTIONS["build"], "with": build}]

    jobs = {
        "test": {"runs-on": spec.runner, "timeout-minutes": 30, "steps": test},
        "build": {"needs": "test", "if": "github.event_name == 'push'", "runs-on": spec.runner},
        "publish": {"needs": "build", "if": TAG_ONLY, "runs-on": spec.runner},
    }
    jobs["build"]["steps"] = image_steps(False)
    jobs["publish"]["permissions"] = {"contents": "read", "packages": "write"}
    jobs["publish"]["steps"] = image_steps(True)
    doc = {"name": "service", "on": {"push": {"branches": ["main"], "tags": ["v*"]}}}
    doc["on"]["pull_request"] = {"branches": ["main"]}
    doc |= {"permissions": {"contents": "read"}, "jobs": jobs}
    header = "# Rendered by airoad.production.containerize_ci (a lab asset, not this repo's CI).\n"
    return header + _yaml(doc)


def _yaml(doc: dict[str, Any]) -> str:
    """YAML for people: no ``&id001`` anchors for repeated steps, multi-line strings as ``|``."""
    dumper = type("Dumper", (yaml.SafeDumper,), {"ignore_aliases": lambda self, data: True})
    dumper.add_representer(
        str,
        lambda d, v: d.represent_scalar(
            "tag:yaml.org,2002:str", v, style="|" if "\n" in v else None
        ),
    )
    return yaml.dump(doc, Dumper=dumper, sort_keys=False, width=100)

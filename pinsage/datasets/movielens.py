"""Readers for the MovieLens files (GroupLens): ML-100K (``u.data``, ``u.item``) and ml-latest
(``ratings.csv``, ``movies.csv``).

Every reader returns a tidy DataFrame and raises :class:`pinsage._io.InputError` naming the file,
the 1-based line and what was expected when the input is malformed. Parsing goes through pandas'
C parser; only when that fails is the file re-read line by line to locate the first bad line.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from pinsage._io import InputError

__all__ = ["read_ml100k", "read_ml100k_items", "read_movielens_ratings", "read_movielens_movies"]

#: The 19 ML-100K genres in ``u.genre`` order; used when ``u.genre`` is absent.
ML100K_GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)

_RATING_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
_RATING_KINDS = {"user_id": int, "item_id": int, "rating": float, "timestamp": int}


def _resolve(path: str | os.PathLike, filename: str) -> Path:
    """``path`` itself if it is a file, ``path / filename`` if it is a directory; must exist."""
    path = Path(path)
    target = path / filename if path.is_dir() else path
    if not target.is_file():
        where = f"directory {path} has no {filename}" if path.is_dir() else f"{path}: file not found"
        raise InputError(f"{where} (expected the MovieLens file {filename})")
    return target


def _locate_error(
    path: Path,
    sep: str,
    names: Sequence[str],
    kinds: dict[str, type],
    encoding: str,
    header: bool,
    quoted: bool,
) -> None:
    """Scan ``path`` line by line; raise :class:`InputError` at the first malformed line.

    A line is malformed when it has a field count other than ``len(names)`` or a field of
    ``kinds`` (column name -> ``int`` or ``float``) that does not parse. Blank lines are skipped.
    """
    with open(path, newline="", encoding=encoding) as f:
        reader = csv.reader(f, delimiter=sep, quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE)
        if header:
            next(reader, None)
        for row in reader:
            line = reader.line_num
            if not row or row == [""]:
                continue
            if len(row) != len(names):
                raise InputError(
                    f"{path}, line {line}: expected {len(names)} {_sep_name(sep)}-separated fields "
                    f"({', '.join(names)}), got {len(row)}"
                )
            for name, kind in kinds.items():
                value = row[names.index(name)]
                try:
                    kind(value)
                except ValueError:
                    what = "an integer" if kind is int else "a number"
                    raise InputError(
                        f"{path}, line {line}: column {name!r} must be {what}, got {value!r}"
                    ) from None


def _sep_name(sep: str) -> str:
    return {"\t": "tab", ",": "comma", "|": "pipe"}.get(sep, repr(sep))


def _read(
    path: Path,
    sep: str,
    names: Sequence[str],
    kinds: dict[str, type],
    *,
    encoding: str = "utf-8",
    header: Sequence[str] | None = None,
    quoted: bool = False,
) -> pd.DataFrame:
    """Read a delimited file with exactly the columns ``names`` (renamed from ``header`` if given).

    Columns in ``kinds`` are parsed as int64 (``int``) or float64 (``float``); the others stay
    strings with empty fields as ``""``. ``header``: the expected first line, checked; ``None``
    when the file has none.
    """
    if header is not None:
        with open(path, encoding=encoding, newline="") as f:
            first = next(csv.reader(f, delimiter=sep), [])
        if [c.strip().lstrip("\ufeff") for c in first] != list(header):
            raise InputError(f"{path}, line 1: expected the header {sep.join(header)!r}, got {sep.join(first)!r}")
    dtype = {i: ("int64" if kinds.get(n) is int else "float64" if n in kinds else str) for i, n in enumerate(names)}
    try:
        # No names: a line with more fields than the first raises, one with fewer gets NaN.
        df = pd.read_csv(
            path,
            sep=sep,
            header=None,
            skiprows=1 if header is not None else 0,
            dtype=dtype,
            encoding=encoding,
            keep_default_na=False,
            quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE,
            engine="c",
        )
    except pd.errors.EmptyDataError:  # no data lines: an empty table with the right dtypes
        return pd.DataFrame({n: pd.Series(dtype=dtype[i]) for i, n in enumerate(names)})
    except (ValueError, pd.errors.ParserError) as exc:
        _locate_error(path, sep, names, kinds, encoding, header is not None, quoted)
        raise InputError(f"{path}: could not be parsed ({exc})") from exc
    if df.shape[1] != len(names) or df.isna().to_numpy().any():
        _locate_error(path, sep, names, kinds, encoding, header is not None, quoted)
        raise InputError(f"{path}: expected {len(names)} fields per line ({', '.join(names)})")
    df.columns = list(names)
    return df


def read_ml100k(path: str | os.PathLike) -> pd.DataFrame:
    """ML-100K ratings from ``u.data`` (``path``: the file or the ``ml-100k`` directory).

    ``u.data`` is tab separated without header: ``user_id item_id rating timestamp``. Returns
    columns ``user_id`` (int64), ``item_id`` (int64), ``rating`` (float64, 1..5), ``timestamp``
    (int64, Unix seconds); shape ``(100000, 4)`` for the full data set.
    """
    target = _resolve(path, "u.data")
    return _read(target, "\t", _RATING_COLUMNS, _RATING_KINDS)


def _ml100k_genres(directory: Path) -> list[str]:
    """Genre names from ``u.genre`` (``name|index`` lines) in index order, else :data:`ML100K_GENRES`."""
    genre_file = directory / "u.genre"
    if not genre_file.is_file():
        return list(ML100K_GENRES)
    df = _read(genre_file, "|", ["genre", "index"], {"index": int}, encoding="latin-1")
    return df.sort_values("index")["genre"].tolist()


def _multi_hot(flags: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Rows of a 0/1 matrix ``(n, g)`` to "|"-joined names of the set columns, object ``(n,)``."""
    out = np.full(len(flags), "", dtype=object)
    for j, name in enumerate(names):  # one vectorised pass per genre
        on = flags[:, j].astype(bool)
        out[on] = np.where(out[on] == "", name, out[on] + "|" + name)
    return out


def _year_from_title(titles: pd.Series) -> pd.Series:
    """The year in a trailing "(1995)" (or "(2006-2007)") of each title, nullable Int64."""
    year = titles.str.extract(r"\((\d{4})(?:\s*[-\u2013]\s*\d{0,4})?\)\s*$", expand=False)
    return pd.to_numeric(year, errors="coerce").astype("Int64")


def read_ml100k_items(path: str | os.PathLike) -> pd.DataFrame:
    """ML-100K movies from ``u.item`` (``path``: the file or the ``ml-100k`` directory).

    ``u.item`` is pipe separated, latin-1, no header: ``item_id | title | release_date |
    video_release_date | imdb_url`` then 19 0/1 genre flags named by ``u.genre`` (beside ``u.item``).
    Returns columns ``item_id`` (int64), ``title`` (str), ``year`` (nullable Int64: release date's
    year, else the title's "(1995)", else missing) and ``genres`` ("Action|Comedy"; genre order of
    ``u.genre``); shape ``(1682, 4)`` for the full data set.
    """
    target = _resolve(path, "u.item")
    genres = _ml100k_genres(target.parent)
    flag_cols = [f"g{j}" for j in range(len(genres))]
    names = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *flag_cols]
    kinds: dict[str, type] = {"item_id": int, **{c: int for c in flag_cols}}
    df = _read(target, "|", names, kinds, encoding="latin-1")
    release_year = pd.to_numeric(df["release_date"].str[-4:], errors="coerce").astype("Int64")
    year = release_year.fillna(_year_from_title(df["title"]))
    return pd.DataFrame(
        {
            "item_id": df["item_id"].to_numpy(np.int64),
            "title": df["title"],
            "year": year,
            "genres": _multi_hot(df[flag_cols].to_numpy(), genres),
        }
    )


def read_movielens_ratings(path: str | os.PathLike) -> pd.DataFrame:
    """ml-latest(-small) / ML-20M/25M/32M ratings from ``ratings.csv`` (the file or its directory).

    Header ``userId,movieId,rating,timestamp``. Returns columns ``user_id`` (int64), ``item_id``
    (int64), ``rating`` (float64, 0.5..5 in half steps), ``timestamp`` (int64, Unix seconds).
    """
    target = _resolve(path, "ratings.csv")
    return _read(
        target, ",", _RATING_COLUMNS, _RATING_KINDS,
        header=["userId", "movieId", "rating", "timestamp"],
    )


def read_movielens_movies(path: str | os.PathLike) -> pd.DataFrame:
    """ml-latest movies from ``movies.csv`` (the file or its directory).

    Header ``movieId,title,genres``; titles containing commas are double-quoted. Returns columns
    ``item_id`` (int64), ``title`` (str, as in the file), ``year`` (nullable Int64 parsed from a
    trailing "(1995)" in the title) and ``genres`` ("Adventure|Comedy"; "" for "(no genres listed)").
    """
    target = _resolve(path, "movies.csv")
    df = _read(
        target, ",", ["item_id", "title", "genres"], {"item_id": int},
        header=["movieId", "title", "genres"], quoted=True,
    )
    genres = df["genres"].where(df["genres"] != "(no genres listed)", "")
    return pd.DataFrame(
        {
            "item_id": df["item_id"].to_numpy(np.int64),
            "title": df["title"],
            "year": _year_from_title(df["title"]),
            "genres": genres,
        }
    )

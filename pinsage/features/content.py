"""Item content features from a table keyed by item id, and the log-degree feature.

:class:`ItemFeatureEncoder` turns a DataFrame with one row per item (an item-features CSV or Parquet
file) into a dense ``float32`` matrix whose rows follow a given array of item ids (the graph's dense
item order). It has a scikit-learn-like ``fit`` / ``transform`` API, and a JSON-able
:meth:`~ItemFeatureEncoder.to_dict` / :meth:`~ItemFeatureEncoder.from_dict` so that the fitted
encoder can be saved with a trained model and reapplied to new items.

Column kinds and their encoding:

* **numeric** -- standardised with the mean and standard deviation seen in ``fit`` (a constant
  column has its std taken as 1); a missing value (NaN or empty) becomes 0 after standardising,
  i.e. the fitted mean. Booleans count as 0/1, datetimes as seconds since the epoch.
* **multi_hot** -- a ``sep``-separated list of tokens ("Animation|Children's|Comedy"); the
  ``max_categories`` most frequent tokens in ``fit`` (ties broken by token) get one 0/1 column
  each; tokens not in that vocabulary are ignored. Tokens are stripped of surrounding spaces.
* **categorical** -- one-hot over the ``max_categories`` most frequent values in ``fit`` (ties
  broken by value), plus a final ``<other>`` column for any other value, including values first
  seen at transform time. A missing value gives all zeros. Values are compared as strings.
* **text** -- lower-cased word n-grams (``ngram_range``, default unigrams and bigrams; words are
  ``\\w+`` runs) hashed with CRC-32 (:func:`zlib.crc32`, seeded with ``seed``; stable across
  processes and machines, unlike Python's salted ``hash``) into ``text_dim`` buckets. Bit 31 of
  the hash gives the sign of the count (signed hashing, so collisions cancel on average), and each
  row is L2-normalised. Missing or empty text gives a zero row.

The matrix returned by :meth:`ItemFeatureEncoder.transform` ends with one more column,
``"missing"``: 1.0 for items that have no row in the table (their other features are all zero),
0.0 otherwise. ``feature_names_`` names every column, ``dim`` is their count.

Type inference (when ``numeric``, ``multi_hot``, ``categorical`` and ``text`` are all None): the
key column, any column whose name equals the key ignoring case, ``exclude`` columns and all-empty
columns are skipped; a column named ``title`` (any case) is text; a numeric, boolean or datetime
dtype, or strings that all parse as numbers, is numeric; strings that contain ``sep`` in at least
10% of the rows, and whose tokens repeat (at most ``max_categories`` distinct tokens or fewer
distinct tokens than half the token count), are multi-hot; strings with at most
``max_categories`` distinct values, or fewer distinct values than half the non-empty rows, are
categorical; other strings are text. When any of the lists is given, only the listed columns are
used, and each must exist.

Errors about the input raise :class:`pinsage._io.InputError`. Row numbers in messages count the
table's data rows from 1 (in a CSV file with a header, row ``r`` is on line ``r + 1``). Messages start
with ``item features`` and the file (``df.attrs["source"]``, set by :func:`pinsage._io.read_table`).
The table is checked for: no rows; a key that is empty or repeated (naming the id and its rows); a
numeric column holding text or an infinite value (NaN or empty is a missing value, see above).
"""
from __future__ import annotations

import re
import zlib
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from pinsage._io import InputError
from pinsage.ids import comparable as _as_comparable
from pinsage.ids import py_scalar as _py
from pinsage.ids import whole_floats_as_int as _normalise_ids

__all__ = ["ItemFeatureEncoder", "check_unknown", "hash_token"]

_KINDS = ("numeric", "multi_hot", "categorical", "text")
_FORMAT = "pinsage.ItemFeatureEncoder"
_VERSION = 1
_WORD_RE = re.compile(r"\w+")
_MULTI_HOT_MIN_SHARE = 0.1


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def hash_token(token: str, seed: int = 0) -> int:
    """The unsigned 32-bit CRC-32 of ``token`` (UTF-8) started from ``seed``; stable everywhere."""
    return zlib.crc32(token.encode("utf-8"), seed & 0xFFFFFFFF) & 0xFFFFFFFF


def _where(df: Any) -> str:
    """How messages name a features table: ``item features PATH`` when it was read from a file."""
    src = df.attrs.get("source") if isinstance(df, pd.DataFrame) else None
    return f"item features {src}" if src else "item features"


def _row(pos: int) -> int:
    """Position in the DataFrame -> the 1-based data-row number used in messages."""
    return int(pos) + 1


def _is_stringish(s: pd.Series) -> bool:
    return not (
        pd.api.types.is_numeric_dtype(s.dtype)
        or pd.api.types.is_bool_dtype(s.dtype)
        or pd.api.types.is_datetime64_any_dtype(s.dtype)
    )


def _clean_strings(s: pd.Series) -> pd.Series:
    """Non-missing values as stripped strings, empty strings dropped; the index is kept."""
    s = s[s.notna()]
    s = s.astype(str).str.strip()
    return s[s != ""]


def _split_tokens(s: pd.Series, sep: str) -> pd.Series:
    """Explode ``sep``-separated values into one stripped, non-empty token per entry.

    The result's index is the position (0..n-1) of the row the token came from.
    """
    s = pd.Series(s.to_numpy(), index=np.arange(len(s)))
    s = s[s.notna()].astype(str)
    if s.empty:
        return pd.Series([], dtype=object, index=pd.Index([], dtype=np.int64))
    tok = s.str.split(sep, regex=False).explode().str.strip()
    tok = tok[tok.notna() & (tok != "")]
    return tok


def _top_values(values: pd.Series, k: int) -> list[str]:
    """The ``k`` most frequent values, ties broken by value (deterministic)."""
    if values.empty:
        return []
    counts = values.value_counts()
    order = sorted(zip(counts.index.tolist(), counts.to_numpy().tolist()), key=lambda t: (-t[1], t[0]))
    return [str(v) for v, _ in order[:k]]


def _to_numeric(s: pd.Series, column: Any, where: str = "item features") -> np.ndarray:
    """A column as float64 (NaN for missing); InputError starting with ``where`` and naming the column,
    row and value for text that is not a number, and for an infinite value."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        ts = pd.to_datetime(s)
        if getattr(ts.dt, "tz", None) is not None:
            ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
        out = (ts - pd.Timestamp("1970-01-01")).dt.total_seconds().to_numpy(dtype=np.float64, na_value=np.nan)
        return out
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        out = s.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        raw = pd.Series(s.to_numpy(), index=np.arange(len(s)))
        present = raw.notna()
        text = raw.where(~present, raw.astype(str).str.strip())
        empty = present & (text == "")
        text = text.where(~empty, None)
        num = pd.to_numeric(text, errors="coerce")
        bad = np.flatnonzero((text.notna() & num.isna()).to_numpy())
        if len(bad):
            p = int(bad[0])
            raise InputError(
                f"{where}: column {column!r} is numeric but row {_row(p)} holds {_py(raw.iloc[p])!r}, "
                f"which is not a number ({len(bad)} such row(s))"
            )
        out = num.to_numpy(dtype=np.float64, na_value=np.nan)
    inf = np.flatnonzero(np.isinf(out))
    if len(inf):
        p = int(inf[0])
        raise InputError(
            f"{where}: column {column!r} is numeric but row {_row(p)} holds {_py(s.iloc[p])!r}, "
            f"which is not a finite number ({len(inf)} such row(s))"
        )
    return out


# --------------------------------------------------------------------------------------------
# the encoder
# --------------------------------------------------------------------------------------------

class ItemFeatureEncoder:
    """Encode an item-features table into a dense ``float32`` matrix aligned to the graph's items.

    Args:
        key: the column holding the item id.
        numeric: numeric columns. When ``numeric``, ``multi_hot``, ``categorical`` and ``text`` are all
            None the kinds are inferred (see the module docstring); otherwise only the listed columns are used.
        multi_hot: multi-hot columns.
        categorical: categorical columns.
        text: text columns.
        exclude: columns never used.
        sep: the separator of multi-hot values ("Animation|Comedy").
        max_categories: the vocabulary size of each multi-hot and categorical column (categorical
            columns add one ``<other>`` column); also an inference threshold.
        text_dim: hash buckets per text column.
        ngram_range: ``(min_n, max_n)`` word n-grams hashed from text.
        seed: the CRC-32 start value of text hashing.

    Attributes:
        columns_: list of ``(name, kind)``, set by :meth:`fit`; also ``feature_names_`` and ``dim``.
    """

    def __init__(
        self,
        key: str,
        numeric: Sequence[str] | None = None,
        multi_hot: Sequence[str] | None = None,
        categorical: Sequence[str] | None = None,
        text: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        sep: str = "|",
        max_categories: int = 64,
        text_dim: int = 64,
        ngram_range: tuple[int, int] = (1, 2),
        seed: int = 0,
    ) -> None:
        if not sep:
            raise ValueError("sep must be a non-empty string")
        if int(max_categories) < 1:
            raise ValueError(f"max_categories must be >= 1, got {max_categories}")
        if int(text_dim) < 1:
            raise ValueError(f"text_dim must be >= 1, got {text_dim}")
        lo, hi = (int(v) for v in ngram_range)
        if lo < 1 or hi < lo:
            raise ValueError(f"ngram_range must be (min_n, max_n) with 1 <= min_n <= max_n, got {ngram_range}")
        self.key = key
        self.numeric = None if numeric is None else list(numeric)
        self.multi_hot = None if multi_hot is None else list(multi_hot)
        self.categorical = None if categorical is None else list(categorical)
        self.text = None if text is None else list(text)
        self.exclude = [] if exclude is None else list(exclude)
        self.sep = sep
        self.max_categories = int(max_categories)
        self.text_dim = int(text_dim)
        self.ngram_range = (lo, hi)
        self.seed = int(seed)
        self._specs: list[dict[str, Any]] | None = None

    # ---------------------------------------------------------------- properties
    @property
    def fitted(self) -> bool:
        return self._specs is not None

    def _check_fitted(self) -> list[dict[str, Any]]:
        if self._specs is None:
            raise RuntimeError("ItemFeatureEncoder is not fitted: call fit(df) first")
        return self._specs

    @property
    def columns_(self) -> list[tuple[Any, str]]:
        return [(s["name"], s["kind"]) for s in self._check_fitted()]

    @property
    def feature_names_(self) -> list[str]:
        names: list[str] = []
        for s in self._check_fitted():
            names.extend(self._spec_names(s))
        names.append("missing")
        return names

    @property
    def dim(self) -> int:
        return sum(self._spec_dim(s) for s in self._check_fitted()) + 1

    def _spec_dim(self, s: dict[str, Any]) -> int:
        kind = s["kind"]
        if kind == "numeric":
            return 1
        if kind == "multi_hot":
            return len(s["vocab"])
        if kind == "categorical":
            return len(s["vocab"]) + 1
        return self.text_dim

    def _spec_names(self, s: dict[str, Any]) -> list[str]:
        name, kind = s["name"], s["kind"]
        if kind == "numeric":
            return [str(name)]
        if kind == "multi_hot":
            return [f"{name}={t}" for t in s["vocab"]]
        if kind == "categorical":
            return [f"{name}={t}" for t in s["vocab"]] + [f"{name}=<other>"]
        return [f"{name}#{i}" for i in range(self.text_dim)]

    # ---------------------------------------------------------------- validation
    def _check_key(self, df: pd.DataFrame) -> np.ndarray:
        if not isinstance(df, pd.DataFrame):
            raise InputError(f"item features must be a pandas DataFrame, got {type(df).__name__}")
        if self.key not in df.columns:
            raise InputError(
                f"{_where(df)}: key column {self.key!r} not found; the table has columns {list(df.columns)}"
            )
        if len(df) == 0:
            raise InputError(f"{_where(df)}: no rows; expected one row per item")
        keys = df[self.key]
        na = np.flatnonzero(keys.isna().to_numpy())
        if len(na):
            raise InputError(
                f"{_where(df)}: key column {self.key!r} is empty at row(s) "
                f"{[_row(p) for p in na[:5]]}{' ...' if len(na) > 5 else ''} ({len(na)} row(s))"
            )
        dup = keys.duplicated(keep=False).to_numpy()
        if dup.any():
            first = int(np.flatnonzero(dup)[0])
            example = _py(keys.iloc[first])
            rows = np.flatnonzero((keys == example).to_numpy())
            n_ids = int(keys[dup].nunique())
            raise InputError(
                f"{_where(df)}: key column {self.key!r} has duplicate ids ({n_ids} id(s) repeated); "
                f"e.g. {example!r} at rows {[_row(p) for p in rows[:5]]}{' ...' if len(rows) > 5 else ''}"
            )
        return _normalise_ids(keys.to_numpy())

    def _check_columns(self, df: pd.DataFrame, names: Iterable[Any]) -> None:
        missing = [c for c in names if c not in df.columns]
        if missing:
            raise InputError(
                f"{_where(df)}: column(s) {missing} not found; the table has columns {list(df.columns)}"
            )

    # ---------------------------------------------------------------- inference
    def _infer_kind(self, s: pd.Series, name: Any) -> str | None:
        if str(name).lower() == "title":
            return "text" if _is_stringish(s) else "numeric"
        if not _is_stringish(s):
            return "numeric"
        vals = _clean_strings(s)
        if vals.empty:
            return None
        if pd.to_numeric(vals, errors="coerce").notna().all():
            return "numeric"
        share = float(vals.str.contains(self.sep, regex=False).mean())
        if share >= _MULTI_HOT_MIN_SHARE:
            tok = _split_tokens(vals, self.sep)
            n_tok = tok.nunique()
            if n_tok <= self.max_categories or n_tok < 0.5 * len(tok):
                return "multi_hot"
        n_unique = vals.nunique()
        if n_unique <= self.max_categories or n_unique < 0.5 * len(vals):
            return "categorical"
        return "text"

    def _plan(self, df: pd.DataFrame) -> list[tuple[Any, str]]:
        lists = {"numeric": self.numeric, "multi_hot": self.multi_hot,
                 "categorical": self.categorical, "text": self.text}
        if all(v is None for v in lists.values()):
            skip = set(self.exclude) | {self.key}
            key_l = str(self.key).lower()
            plan = []
            for name in df.columns:
                if name in skip or str(name).lower() == key_l:
                    continue
                s = df[name]
                if s.isna().all():
                    continue
                kind = self._infer_kind(s, name)
                if kind is not None:
                    plan.append((name, kind))
            return plan
        kind_of: dict[Any, str] = {}
        for kind, cols in lists.items():
            for c in cols or []:
                if c in kind_of and kind_of[c] != kind:
                    raise InputError(f"{_where(df)}: column {c!r} is listed as both {kind_of[c]} and {kind}")
                kind_of[c] = kind
        if self.key in kind_of:
            raise InputError(f"{_where(df)}: the key column {self.key!r} cannot also be a feature column")
        self._check_columns(df, list(kind_of))
        excl = set(self.exclude)
        # keep the table's column order
        return [(c, kind_of[c]) for c in df.columns if c in kind_of and c not in excl]

    # ---------------------------------------------------------------- fit / transform
    def fit(self, df: pd.DataFrame) -> "ItemFeatureEncoder":
        """Learn the columns' kinds, numeric mean/std and categorical / multi-hot vocabularies."""
        self._check_key(df)
        specs: list[dict[str, Any]] = []
        for name, kind in self._plan(df):
            s = df[name]
            spec: dict[str, Any] = {"name": name, "kind": kind}
            if kind == "numeric":
                x = _to_numeric(s, name, _where(df))
                ok = x[~np.isnan(x)]
                mean = float(ok.mean()) if len(ok) else 0.0
                std = float(ok.std()) if len(ok) else 1.0
                if not np.isfinite(std) or std <= 1e-12 * max(1.0, abs(mean)):
                    std = 1.0
                spec.update(mean=mean, std=std)
            elif kind == "multi_hot":
                spec["vocab"] = _top_values(_split_tokens(s, self.sep), self.max_categories)
            elif kind == "categorical":
                spec["vocab"] = _top_values(_clean_strings(s), self.max_categories)
            specs.append(spec)
        self._specs = specs
        return self

    def _encode_rows(self, df: pd.DataFrame) -> np.ndarray:
        """Encode every row of ``df`` (without the missing column)."""
        specs = self._check_fitted()
        self._check_columns(df, [s["name"] for s in specs])
        n = len(df)
        out = np.zeros((n, self.dim - 1), dtype=np.float32)
        col = 0
        for s in specs:
            d = self._spec_dim(s)
            block = out[:, col:col + d]
            series = df[s["name"]]
            kind = s["kind"]
            if kind == "numeric":
                x = (_to_numeric(series, s["name"], _where(df)) - s["mean"]) / s["std"]
                block[:, 0] = np.nan_to_num(x, nan=0.0)
            elif kind == "multi_hot":
                tok = _split_tokens(series, self.sep)
                j = pd.Index(s["vocab"], dtype=object).get_indexer(tok.to_numpy(dtype=object))
                keep = j >= 0
                block[tok.index.to_numpy()[keep], j[keep]] = 1.0
            elif kind == "categorical":
                vals = _clean_strings(pd.Series(series.to_numpy(), index=np.arange(n)))
                j = pd.Index(s["vocab"], dtype=object).get_indexer(vals.to_numpy(dtype=object))
                j[j < 0] = len(s["vocab"])  # <other>
                block[vals.index.to_numpy(), j] = 1.0
            else:
                block[:] = self._hash_text(series)
            col += d
        return out

    def _hash_text(self, series: pd.Series) -> np.ndarray:
        """Signed hashed word n-gram counts, L2-normalised per row.

        Vectorised: each distinct text is tokenised once (pandas ``str.findall``), n-grams are built
        by joining neighbouring words of the same text, each distinct n-gram is hashed once, and the
        signed counts are scattered with ``np.bincount``.
        """
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        n_u = len(uniques)
        lo, hi = self.ngram_range
        dim, seed = self.text_dim, self.seed
        mat = np.zeros((n_u + 1) * dim, dtype=np.float64)  # last row: missing text
        if n_u:
            u = pd.Series(np.asarray(uniques, dtype=object), dtype=object).astype(str).str.lower()
            words = u.str.findall(_WORD_RE.pattern).explode().dropna()
            w = words.to_numpy(dtype=object)
            owner = words.index.to_numpy(dtype=np.int64)
            gram_parts: list[np.ndarray] = []
            owner_parts: list[np.ndarray] = []
            cur = w
            for n in range(1, hi + 1):
                if n > 1:
                    # the n-gram starting at word i: (n-1)-gram at i + word i+n-1, same text only
                    cur = cur[:-1] + " " + w[n - 1:] if len(cur) > 1 else cur[:0]
                valid = owner[: len(cur)] == owner[n - 1: n - 1 + len(cur)]
                if n >= lo:
                    gram_parts.append(cur[valid])
                    owner_parts.append(owner[: len(cur)][valid])
                if not len(cur):
                    break
            grams = np.concatenate(gram_parts) if gram_parts else np.empty(0, dtype=object)
            if len(grams):
                g_owner = np.concatenate(owner_parts)
                gcodes, gvals = pd.factorize(grams)
                s0 = seed & 0xFFFFFFFF
                crc = zlib.crc32
                hashes = np.array([crc(g.encode("utf-8"), s0) for g in gvals.tolist()], dtype=np.int64)
                bucket = hashes % dim
                sign = np.where(hashes >> 31, -1.0, 1.0)
                mat += np.bincount(g_owner * dim + bucket[gcodes], weights=sign[gcodes], minlength=mat.size)
        mat = mat.reshape(-1, dim)
        norms = np.linalg.norm(mat, axis=1, keepdims=True)
        np.divide(mat, norms, out=mat, where=norms > 0)
        codes = np.where(codes < 0, n_u, codes)
        return mat[codes].astype(np.float32)

    def transform(self, df: pd.DataFrame, item_ids: Any) -> tuple[np.ndarray, np.ndarray]:
        """Features for ``item_ids`` (the graph's dense item order).

        Returns ``(features, missing)``: ``features`` is float32 of shape ``(len(item_ids), dim)``
        whose last column is the missing flag; ``missing`` is bool of shape ``(len(item_ids),)``,
        True for items with no row in ``df`` (their features are zero but for the flag). Rows of
        ``df`` for items not in ``item_ids`` are ignored (see :meth:`check_unknown`).
        """
        self._check_fitted()
        keys = self._check_key(df)
        ids = _normalise_ids(item_ids)
        k, i = _as_comparable(keys, ids)
        pos = pd.Index(k).get_indexer(i)
        missing = pos < 0
        rows = self._encode_rows(df)
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        out[~missing, :-1] = rows[pos[~missing]]
        out[:, -1] = missing
        return out, missing

    def fit_transform(self, df: pd.DataFrame, item_ids: Any) -> tuple[np.ndarray, np.ndarray]:
        """``fit(df)`` then ``transform(df, item_ids)``."""
        return self.fit(df).transform(df, item_ids)

    def check_unknown(self, df: pd.DataFrame, item_ids: Any) -> None:
        """Raise InputError if ``df`` has ids that are not among ``item_ids`` (see :func:`check_unknown`)."""
        check_unknown(df, item_ids, self.key)

    # ---------------------------------------------------------------- persistence
    def get_params(self) -> dict[str, Any]:
        return {
            "key": self.key, "numeric": self.numeric, "multi_hot": self.multi_hot,
            "categorical": self.categorical, "text": self.text, "exclude": self.exclude,
            "sep": self.sep, "max_categories": self.max_categories, "text_dim": self.text_dim,
            "ngram_range": list(self.ngram_range), "seed": self.seed,
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description of the fitted encoder (parameters and learned state)."""
        specs = self._check_fitted()
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "params": self.get_params(),
            "columns": [dict(s) for s in specs],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ItemFeatureEncoder":
        """Rebuild a fitted encoder from :meth:`to_dict` output."""
        if data.get("format") != _FORMAT:
            raise ValueError(f"not an ItemFeatureEncoder description (format={data.get('format')!r})")
        if int(data.get("version", 0)) > _VERSION:
            raise ValueError(f"ItemFeatureEncoder description version {data['version']} is newer than {_VERSION}")
        params = dict(data["params"])
        params["ngram_range"] = tuple(params["ngram_range"])
        enc = cls(**params)
        specs = []
        for s in data["columns"]:
            if s["kind"] not in _KINDS:
                raise ValueError(f"unknown column kind {s['kind']!r}")
            s = dict(s)
            if "vocab" in s:
                s["vocab"] = [str(v) for v in s["vocab"]]
            specs.append(s)
        enc._specs = specs
        return enc

    def __repr__(self) -> str:
        state = f"dim={self.dim}" if self.fitted else "unfitted"
        return f"ItemFeatureEncoder(key={self.key!r}, {state})"


# --------------------------------------------------------------------------------------------
# module functions
# --------------------------------------------------------------------------------------------

def check_unknown(df: pd.DataFrame, item_ids: Any, key: str) -> None:
    """Raise :class:`InputError` if the features table has ids that are not among the graph's items.

    The message gives the count and up to 5 example ids. Returns None when every id is known.
    """
    if key not in df.columns:
        raise InputError(f"{_where(df)}: key column {key!r} not found; the table has columns {list(df.columns)}")
    keys = _normalise_ids(df[key].dropna().to_numpy())
    ids = _normalise_ids(item_ids)
    k, i = _as_comparable(keys, ids)
    unknown = ~pd.Index(k).isin(i)
    if unknown.any():
        bad = pd.unique(df[key].dropna().to_numpy()[unknown])
        examples = [_py(v) for v in bad[:5]]
        raise InputError(
            f"{_where(df)}: {len(bad)} id(s) in column {key!r} are not items of the interaction graph, "
            f"e.g. {examples}"
        )

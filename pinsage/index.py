"""Nearest-neighbour index over item embeddings, for related-item lookups (faiss-cpu).

:class:`ItemIndex` wraps a faiss index together with the items' original ids, so callers ask for
related items by id and get ids back::

    index = ItemIndex.build(embeddings, ids)            # embeddings: (n, d) float, ids: (n,)
    ids_out, scores = index.related(["pin-1", "pin-7"], k=10)   # (2, 10) ids, (2, 10) float32
    index.save("out/index");  index = ItemIndex.load("out/index")

Kinds
-----
``"exact"``
    ``IndexFlatIP``: brute force, exact. Memory ``4 * d`` bytes per item.
``"hnsw"``
    ``IndexHNSWFlat`` with the inner-product metric. Parameters ``M`` (graph degree, default 32),
    ``ef_construction`` (default 64) and ``ef_search`` (default 128). Memory about
    ``4 * d + 8 * M`` bytes per item. Fast queries; the default for large catalogues.
``"ivfpq"``
    ``IndexIVFPQ`` (inverted lists of product-quantised codes) for catalogues that do not fit in RAM
    as float32. Parameters ``nlist`` (default ``2 * sqrt(n)``, clipped), ``m`` (sub-quantisers,
    must divide ``d``; default the largest divisor of ``d`` that is ``<= d / 4``), ``nbits``
    (bits per sub-quantiser code, default 8), ``nprobe`` (lists visited per query, default
    ``min(nlist, max(32, nlist / 16))``), ``train_size`` (k-means sample, default ``max(40 * nlist, 16384)``)
    and a re-ranking step ``refine``:

    * ``"fp16"`` (default): the ``k * k_factor`` PQ candidates are re-scored against float16 copies
      of the vectors (``faiss.IndexRefine`` over an fp16 ``IndexScalarQuantizer``). Memory about
      ``m + 2 * d`` bytes per item (half of float32); recall as good as the exact re-rank.
    * ``"sq8"``: re-scored against 8-bit scalar-quantised vectors: ``m + d`` bytes per item (4x
      smaller than float32), but on tight clusters 8 bits per dimension cannot order close
      neighbours and recall@10 can drop to ~0.92.
    * ``"flat"``: re-scored against the float32 vectors (``faiss.IndexRefineFlat``): exact scores
      for the candidates, but it stores the full vectors again.
    * ``"none"``: raw PQ scores; smallest (``m`` bytes per item) but recall@10 usually < 0.95.

    ``k_factor`` (default 16) sets how many candidates are re-ranked (``k * k_factor``).
``"auto"``
    ``"exact"`` when ``n < 50_000`` (brute force is then fast, a few ms per query batch, and needs
    no tuning), ``"hnsw"`` otherwise.

The defaults reach recall@10 >= 0.95 against exact search on clustered embeddings (see
``tests/test_index.py`` and ``docs/benchmarks/index.md``); ``set_search_params`` trades recall for
speed after building. On unstructured data (i.i.d. gaussian vectors) no approximate index reaches
that recall cheaply: use ``"exact"`` there, or raise ``ef_search`` / ``nprobe`` / ``k_factor``.

Metrics
-------
``"ip"`` (default) uses the raw inner product: PinSage's own score (the loss scores pairs by dot
products, and an embedding's learned length carries how readily its item is engaged with, see
:class:`~pinsage.nn.PinSage`). ``"cosine"`` L2-normalises the stored vectors and the queries, then
uses inner product: direction only.

Threads
-------
faiss uses OpenMP; by default it may start one thread per *host* CPU even inside a container limited
to fewer, which oversubscribes the cores. On first use this module sets faiss to the number of CPUs
this process may run on (``os.sched_getaffinity``) unless ``OMP_NUM_THREADS`` is set;
:func:`set_num_threads` overrides it.
"""
from __future__ import annotations

import json
import os
from numbers import Integral
from pathlib import Path
from typing import Any, Sequence

import faiss
import numpy as np
import pandas as pd

from pinsage._io import InputError, atomic_dir

__all__ = ["ItemIndex", "set_num_threads", "FORMAT_VERSION", "AUTO_EXACT_MAX"]

FORMAT_VERSION = 1
#: ``kind="auto"`` builds an exact index below this many items, HNSW at or above.
AUTO_EXACT_MAX = 50_000

INDEX_FILE = "index.faiss"
IDS_FILE = "ids.npy"
META_FILE = "meta.json"

KINDS = ("exact", "hnsw", "ivfpq")
METRICS = ("cosine", "ip")
_REFINES = ("fp16", "sq8", "flat", "none")

_HNSW_DEFAULTS = {"M": 32, "ef_construction": 64, "ef_search": 128}
_IVFPQ_SEARCH_DEFAULTS = {"nprobe": 32, "k_factor": 16}
_SEARCH_PARAMS = {"exact": (), "hnsw": ("ef_search",), "ivfpq": ("nprobe", "k_factor")}

_threads_configured = False


def set_num_threads(n: int | None = None) -> int:
    """Set faiss's OpenMP thread count; ``None`` means the CPUs this process may use. Returns it."""
    global _threads_configured
    if n is None:
        try:
            n = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            n = os.cpu_count() or 1
    n = max(1, int(n))
    faiss.omp_set_num_threads(n)
    _threads_configured = True
    return n


def _ensure_threads() -> None:
    """Configure faiss's thread count once, unless the user set OMP_NUM_THREADS."""
    global _threads_configured
    if not _threads_configured:
        if os.environ.get("OMP_NUM_THREADS"):
            _threads_configured = True
        else:
            set_num_threads(None)


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _as_vectors(x: Any, name: str, dim: int | None = None) -> np.ndarray:
    """(n, d) C-contiguous float32, finite; raises InputError otherwise."""
    try:
        arr = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: expected a numeric (n, d) array: {exc}") from exc
    if arr.ndim == 1 and dim is not None and arr.shape[0] == dim:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InputError(f"{name}: expected a 2-d (n, d) array, got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise InputError(f"{name}: expected vectors of dimension {dim}, got {arr.shape[1]}")
    if arr.shape[1] == 0:
        raise InputError(f"{name}: vectors have dimension 0")
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        raise InputError(f"{name}: non-finite values (NaN or inf) in row(s) {bad[:5].tolist()}")
    return np.ascontiguousarray(arr)


def _normalise(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    faiss.normalize_L2(x)  # zero rows stay zero
    return x


def _canonical_ids(ids: Any, n: int) -> np.ndarray:
    """Ids as a 1-d array: signed integers stay integer (int64 for unsigned that fit), floats stay
    float, strings and everything else become an object array of Python objects."""
    arr = np.asarray(ids)
    if arr.dtype == object:
        vals = arr.ravel().tolist()
        if vals and all(isinstance(v, Integral) and not isinstance(v, bool) for v in vals):
            arr = np.asarray(vals, dtype=np.int64)
        elif vals and all(isinstance(v, str) for v in vals):
            arr = np.asarray(vals, dtype=object)
    if arr.ndim != 1:
        raise InputError(f"ids: expected a 1-d array of {n} ids, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise InputError(f"ids: {arr.shape[0]} ids for {n} embedding rows; they must match one to one")
    kind = arr.dtype.kind
    if kind == "u":
        if arr.size and arr.max() > np.iinfo(np.int64).max:
            raise InputError("ids: unsigned ids above 2**63-1 are not supported")
        arr = arr.astype(np.int64)
    elif kind in ("U", "S"):
        arr = arr.astype(str).astype(object)
    elif kind not in ("i", "f", "O"):
        arr = arr.astype(object)
    return arr


def _fill_value(ids: np.ndarray):
    k = ids.dtype.kind
    if k == "i":
        return -1
    if k == "f":
        return np.nan
    return None


def _head(values: Sequence, limit: int = 5) -> str:
    vals = list(values)
    s = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in vals[:limit])
    more = f" and {len(vals) - limit} more" if len(vals) > limit else ""
    return f"[{s}]{more}"


def _largest_divisor_at_most(d: int, cap: int) -> int:
    for m in range(max(1, cap), 0, -1):
        if d % m == 0:
            return m
    return 1


def _is_id_list(x: Any) -> bool:
    return isinstance(x, (list, tuple, set, frozenset, np.ndarray, pd.Index, pd.Series))


# ----------------------------------------------------------------------------------------------
class ItemIndex:
    """A faiss index over item embeddings plus the items' original ids.

    Build with :meth:`build`, query with :meth:`related` (by item id) or :meth:`search` (by vector),
    persist with :meth:`save` / :meth:`load`.

    Attributes
    ----------
    kind : str       ``"exact"``, ``"hnsw"`` or ``"ivfpq"`` (never ``"auto"``).
    metric : str     ``"cosine"`` or ``"ip"``.
    dim : int        embedding dimension ``d``.
    ids : ndarray    (n,) original ids, row order of the index.
    params : dict    build and search parameters (JSON-serialisable).

    Examples
    --------
    >>> emb = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], dtype=np.float32)
    >>> index = ItemIndex.build(emb, ids=["a", "b", "c", "d"], kind="exact")
    >>> ids, scores = index.related("a", k=2)       # the query itself is left out
    >>> ids.tolist(), [round(float(s), 2) for s in scores]
    (['b', 'd'], [0.9, 0.1])
    >>> index.related(["a", "c"], k=1)[0].tolist()
    [['b'], ['d']]
    """

    def __init__(self, index: faiss.Index, ids: np.ndarray, kind: str, metric: str, params: dict):
        self._index = index
        self._ids = ids
        self.kind = kind
        self.metric = metric
        self.params = dict(params)
        self._lookup: pd.Index | None = None
        self._fill = _fill_value(ids)
        self._apply_search_params()

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        embeddings: Any,
        ids: Any = None,
        kind: str = "auto",
        metric: str = "ip",
        **params: Any,
    ) -> "ItemIndex":
        """Build an index.

        Parameters
        ----------
        embeddings : (n, d) float array (cast to float32).
        ids : (n,) original item ids (ints, strings, ...), unique; default ``arange(n)``.
        kind : ``"auto"`` (exact below :data:`AUTO_EXACT_MAX` items, else HNSW), ``"exact"``,
            ``"hnsw"`` or ``"ivfpq"``.
        metric : ``"ip"`` (raw inner product, PinSage's score; default) or ``"cosine"`` (normalise,
            then inner product).
        **params : per kind. hnsw: ``M``, ``ef_construction``, ``ef_search``. ivfpq: ``nlist``,
            ``m``, ``nbits``, ``nprobe``, ``refine`` (``"fp16"``/``"sq8"``/``"flat"``/``"none"``),
            ``k_factor``, ``train_size``,
            ``seed``.
        """
        _ensure_threads()
        x = _as_vectors(embeddings, "embeddings")
        n, d = x.shape
        if n == 0:
            raise InputError("embeddings: no rows to index")
        ids_arr = _canonical_ids(np.arange(n) if ids is None else ids, n)
        lookup = pd.Index(ids_arr)
        if not lookup.is_unique:
            dup = lookup[lookup.duplicated()].unique()
            raise InputError(f"ids: duplicate item id(s) {_head(dup)}; every row needs its own id")
        if metric not in METRICS:
            raise InputError(f"metric: expected one of {METRICS}, got {metric!r}")
        if kind == "auto":
            kind = "exact" if n < AUTO_EXACT_MAX else "hnsw"
        if kind not in KINDS:
            raise InputError(f"kind: expected 'auto' or one of {KINDS}, got {kind!r}")
        if metric == "cosine":
            x = _normalise(x)

        if kind == "exact":
            if params:
                raise InputError(f"kind='exact' takes no parameters, got {sorted(params)}")
            index = faiss.IndexFlatIP(d)
            index.add(x)
            p: dict = {}
        elif kind == "hnsw":
            p = cls._check_params(params, _HNSW_DEFAULTS, kind)
            index = faiss.IndexHNSWFlat(d, int(p["M"]), faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = int(p["ef_construction"])
            index.add(x)
        else:
            index, p = cls._build_ivfpq(x, params)
        out = cls(index, ids_arr, kind, metric, p)
        out._lookup = lookup
        return out

    @staticmethod
    def _check_params(params: dict, defaults: dict, kind: str) -> dict:
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise InputError(f"kind={kind!r}: unknown parameter(s) {unknown}; known: {sorted(defaults)}")
        p = {**defaults, **params}
        for key, val in p.items():
            if isinstance(defaults[key], int) and (not isinstance(val, Integral) or val < 1):
                raise InputError(f"kind={kind!r}: {key} must be a positive integer, got {val!r}")
        return {k: (int(v) if isinstance(v, Integral) else v) for k, v in p.items()}

    @classmethod
    def _build_ivfpq(cls, x: np.ndarray, params: dict) -> tuple[faiss.Index, dict]:
        n, d = x.shape
        nlist_default = int(np.clip(round(2 * np.sqrt(n)), 1, max(1, n // 39)))
        defaults = {
            "nlist": nlist_default,
            "m": _largest_divisor_at_most(d, d // 4),
            "nbits": 8 if n >= 256 * 39 else max(1, min(8, int(np.log2(max(2, n // 39))))),
            "nprobe": max(_IVFPQ_SEARCH_DEFAULTS["nprobe"], -(-nlist_default // 16)),
            "k_factor": _IVFPQ_SEARCH_DEFAULTS["k_factor"],
            "refine": "fp16",
            "train_size": max(40 * nlist_default, 64 * 256),
            "seed": 1234,
        }
        refine = params.get("refine", "fp16")
        if refine not in _REFINES:
            raise InputError(f"kind='ivfpq': refine must be one of {_REFINES}, got {refine!r}")
        p = cls._check_params({k: v for k, v in params.items() if k != "refine"},
                              {k: v for k, v in defaults.items() if k != "refine"}, "ivfpq")
        p["refine"] = refine
        nlist, m, nbits = p["nlist"], p["m"], p["nbits"]
        if "nprobe" not in params:
            p["nprobe"] = min(nlist, max(_IVFPQ_SEARCH_DEFAULTS["nprobe"], -(-nlist // 16)))
        if d % m:
            raise InputError(f"kind='ivfpq': m={m} must divide the dimension d={d}")
        if nbits > 16:
            raise InputError(f"kind='ivfpq': nbits={nbits} must be <= 16")
        if nlist > n or 2**nbits > n:
            raise InputError(
                f"kind='ivfpq': {n} items are too few for nlist={nlist} lists and 2**nbits={2**nbits} "
                "codes per sub-quantiser; use fewer, or kind='exact'"
            )
        train_n = min(n, p["train_size"])
        rng = np.random.default_rng(p["seed"])
        train = x if train_n >= n else x[np.sort(rng.choice(n, train_n, replace=False))]

        quantizer = faiss.IndexFlatIP(d)
        ivf = faiss.IndexIVFPQ(quantizer, d, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.seed = int(p["seed"])
        ivf.pq.cp.seed = int(p["seed"])
        # faiss's k-means is slow in the few dimensions of a PQ slice; 32 points per centroid and
        # 15 iterations give codebooks as good for re-ranked search in a fraction of the time
        ivf.pq.cp.max_points_per_centroid = 32
        ivf.pq.cp.niter = 15
        if refine == "none":
            index: faiss.Index = ivf
        elif refine == "flat":
            index = faiss.IndexRefineFlat(ivf)
        else:
            qtype = faiss.ScalarQuantizer.QT_fp16 if refine == "fp16" else faiss.ScalarQuantizer.QT_8bit
            sq = faiss.IndexScalarQuantizer(d, qtype, faiss.METRIC_INNER_PRODUCT)
            index = faiss.IndexRefine(ivf, sq)
        index.train(train)
        index.add(x)
        if refine == "none":
            ivf.make_direct_map()  # needed to reconstruct query vectors for related()
        return index, p

    # -- search parameters ------------------------------------------------------------------
    def _ivf(self) -> faiss.IndexIVF:
        return faiss.extract_index_ivf(self._index)

    def _apply_search_params(self) -> None:
        if self.kind == "hnsw":
            faiss.downcast_index(self._index).hnsw.efSearch = int(self.params["ef_search"])
        elif self.kind == "ivfpq":
            self._ivf().nprobe = int(self.params["nprobe"])
            if self.params.get("refine", "none") != "none":
                faiss.downcast_index(self._index).k_factor = float(self.params["k_factor"])

    def set_search_params(self, **params: Any) -> "ItemIndex":
        """Change query-time parameters in place: hnsw ``ef_search``; ivfpq ``nprobe``, ``k_factor``.

        Larger values: higher recall, slower queries. Saved with the index. Returns ``self``.
        """
        allowed = _SEARCH_PARAMS[self.kind]
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise InputError(f"kind={self.kind!r}: unknown search parameter(s) {unknown}; known: {list(allowed)}")
        for key, val in params.items():
            if not isinstance(val, Integral) or val < 1:
                raise InputError(f"{key} must be a positive integer, got {val!r}")
            self.params[key] = int(val)
        self._apply_search_params()
        return self

    # -- basic properties -------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    @property
    def ids(self) -> np.ndarray:
        return self._ids

    @property
    def faiss_index(self) -> faiss.Index:
        """The underlying faiss index (vectors normalised when ``metric == "cosine"``)."""
        return self._index

    def __repr__(self) -> str:
        return f"ItemIndex(kind={self.kind!r}, metric={self.metric!r}, n={len(self)}, dim={self.dim}, params={self.params})"

    def _get_lookup(self) -> pd.Index:
        if self._lookup is None:
            self._lookup = pd.Index(self._ids)
        return self._lookup

    def rows_of(self, ids: Any) -> np.ndarray:
        """(q,) int64 row positions of ``ids``; raises InputError naming unknown ids."""
        q = np.asarray(ids)
        if q.ndim == 0:
            q = q[None]
        if q.ndim != 1:
            raise InputError(f"ids: expected a 1-d list of item ids, got shape {q.shape}")
        if q.dtype.kind in ("U", "S"):
            q = q.astype(str).astype(object)
        rows = np.asarray(self._get_lookup().get_indexer(q), dtype=np.int64)
        missing = rows < 0
        if missing.any():
            bad = pd.unique(q[missing])
            raise InputError(
                f"unknown item id(s) {_head(bad)}: not among the {len(self)} items in the index"
            )
        return rows

    def _rows_to_ids(self, rows: np.ndarray) -> np.ndarray:
        """Map faiss labels (-1 = none) to original ids, padding with the sentinel."""
        valid = rows >= 0
        if self._ids.dtype == object:
            out = np.full(rows.shape, None, dtype=object)
        else:
            out = np.full(rows.shape, self._fill, dtype=self._ids.dtype)
        out[valid] = self._ids[rows[valid]]
        return out

    # -- queries ----------------------------------------------------------------------------
    def _raw_search(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        _ensure_threads()
        k_eff = max(1, min(int(k), len(self)))
        scores, rows = self._index.search(x, k_eff)
        if k_eff < k:
            pad = k - k_eff
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=np.nan)
            rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=-1)
        return scores, rows

    def search(self, vectors: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Nearest items to arbitrary query vectors.

        Parameters
        ----------
        vectors : (q, d) float array (a single (d,) vector is accepted as q = 1).
        k : neighbours per query.

        Returns
        -------
        ids : (q, k) original ids, best first. Where fewer than ``k`` results exist the row is padded
            with ``-1`` (integer ids), ``NaN`` (float ids) or ``None`` (object/string ids).
        scores : (q, k) float32 cosine similarity / inner product; ``NaN`` for padding.
        """
        if not isinstance(k, Integral) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}")
        x = _as_vectors(vectors, "vectors", self.dim)
        if self.metric == "cosine":
            x = _normalise(x)
        scores, rows = self._raw_search(x, int(k))
        scores = scores.astype(np.float32, copy=False)
        scores[rows < 0] = np.nan
        return self._rows_to_ids(rows), scores

    def vectors_of(self, ids: Any) -> np.ndarray:
        """(q, d) float32 stored vectors of ``ids`` (normalised for cosine; approximate for ivfpq
        with ``refine="fp16"``/``"sq8"``/``"none"``)."""
        rows = self.rows_of(ids)
        return self._reconstruct(rows)

    def _reconstruct(self, rows: np.ndarray) -> np.ndarray:
        if rows.size == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.ascontiguousarray(self._index.reconstruct_batch(rows.astype(np.int64)), dtype=np.float32)

    def related(
        self, ids: Any, k: int = 10, exclude: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Items most similar to each of ``ids`` (batched), the query item itself left out.

        Parameters
        ----------
        ids : (q,) item ids (or one scalar id: then the results are 1-d, shape (k,)).
        k : results per query.
        exclude : ids never to return. Either one flat list of ids applied to every query
            (global), or a list of ``q`` lists (per query; ``None`` entries allowed). Ids in
            ``exclude`` that are not in the index are ignored.

        Returns
        -------
        ids_out : (q, k) original ids, best first.
        scores : (q, k) float32 similarity (cosine, or inner product for ``metric="ip"``).

        The index is searched for ``k + 1 + len(largest exclusion)`` neighbours and the query item
        and excluded items are dropped. Rows are padded with a sentinel -- ``-1`` for integer ids,
        ``NaN`` for float ids, ``None`` for string/object ids -- and ``NaN`` scores only when fewer
        than ``k`` results remain (a catalogue smaller than ``k + 1`` items, or exclusions that use
        up the catalogue).

        Raises
        ------
        InputError : an id in ``ids`` is not in the index (the message names the first few).
        """
        if not isinstance(k, Integral) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}")
        k = int(k)
        scalar = np.ndim(ids) == 0 and not _is_id_list(ids)
        rows = self.rows_of(ids)
        q = rows.shape[0]
        n = len(self)

        # exclusion keys: query_position * n + row  (per query) or row (global)
        glob = np.zeros(0, dtype=np.int64)
        pairs = np.zeros(0, dtype=np.int64)
        n_extra = 0
        if exclude is not None:
            per_query = (
                _is_id_list(exclude)
                and len(exclude) == q
                and len(exclude) > 0
                and not isinstance(exclude, (set, frozenset))
                and all(e is None or _is_id_list(e) for e in exclude)
            )
            lookup = self._get_lookup()
            if per_query:
                chunks, counts = [], []
                for e in exclude:
                    r = np.zeros(0, dtype=np.int64)
                    if e is not None and len(e):
                        arr = np.asarray(list(e) if isinstance(e, (set, frozenset)) else e)
                        if arr.dtype.kind in ("U", "S"):
                            arr = arr.astype(str).astype(object)
                        r = np.asarray(lookup.get_indexer(arr.ravel()), dtype=np.int64)
                        r = np.unique(r[r >= 0])
                    chunks.append(r)
                    counts.append(r.size)
                if chunks:
                    counts_arr = np.asarray(counts, dtype=np.int64)
                    owner = np.repeat(np.arange(q, dtype=np.int64), counts_arr)
                    pairs = np.sort(owner * n + np.concatenate(chunks))
                    n_extra = int(counts_arr.max()) if q else 0
            else:
                e = exclude
                if isinstance(e, (set, frozenset)):
                    e = list(e)
                arr = np.asarray(e)
                if arr.ndim == 0:
                    arr = arr[None]
                if arr.dtype.kind in ("U", "S"):
                    arr = arr.astype(str).astype(object)
                r = np.asarray(lookup.get_indexer(arr.ravel()), dtype=np.int64)
                glob = np.unique(r[r >= 0])
                n_extra = glob.size

        if q == 0:
            out_ids = self._rows_to_ids(np.zeros((0, k), dtype=np.int64))
            return out_ids, np.zeros((0, k), dtype=np.float32)

        kk = min(k + 1 + n_extra, n)
        x = self._reconstruct(rows)
        scores, found = self._raw_search(x, kk)
        drop = (found < 0) | (found == rows[:, None])
        if glob.size:
            drop |= np.isin(found, glob)
        if pairs.size:
            keys = np.arange(q, dtype=np.int64)[:, None] * n + found
            pos = np.searchsorted(pairs, keys)
            pos[pos >= pairs.size] = 0
            drop |= pairs[pos] == keys
        # keep the first k survivors of each row, order preserved
        order = np.argsort(drop, axis=1, kind="stable")[:, :k]
        kept_rows = np.take_along_axis(found, order, axis=1)
        kept_scores = np.take_along_axis(scores, order, axis=1).astype(np.float32, copy=False)
        kept_drop = np.take_along_axis(drop, order, axis=1)
        if kept_rows.shape[1] < k:  # catalogue smaller than k
            pad = k - kept_rows.shape[1]
            kept_rows = np.pad(kept_rows, ((0, 0), (0, pad)), constant_values=-1)
            kept_scores = np.pad(kept_scores, ((0, 0), (0, pad)), constant_values=np.nan)
            kept_drop = np.pad(kept_drop, ((0, 0), (0, pad)), constant_values=True)
        kept_rows = np.where(kept_drop, -1, kept_rows)
        kept_scores = np.where(kept_drop, np.float32(np.nan), kept_scores).astype(np.float32)
        out_ids = self._rows_to_ids(kept_rows)
        if scalar:
            return out_ids[0], kept_scores[0]
        return out_ids, kept_scores

    def similar_items(self, itemid: Any, N: int = 10, exclude: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Alias of :meth:`related` with the argument names of ``implicit``'s ``similar_items``
        (``N`` results per item; a scalar id gives 1-d results, a list gives (q, N))."""
        return self.related(itemid, k=N, exclude=exclude)

    # -- persistence ------------------------------------------------------------------------
    def nbytes(self) -> int:
        """Size of the serialised faiss index in bytes (a close proxy for its memory)."""
        return int(faiss.serialize_index(self._index).nbytes)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the index to directory ``path`` atomically (replacing an existing one).

        Files: ``index.faiss`` (``faiss.write_index``), ``ids.npy`` (integers/floats as is,
        strings as a numpy unicode array; no pickle) and ``meta.json`` (format version, kind,
        metric, dim, n, params, id dtype). Object ids other than all-strings cannot be saved.
        """
        ids = self._ids
        if ids.dtype == object:
            if not all(isinstance(v, str) for v in ids.tolist()):
                raise InputError(
                    "save: ids must be all integers, all floats or all strings to be saved "
                    "(mixed or other object ids are not supported)"
                )
            ids_to_save = ids.astype(str) if ids.size else np.zeros(0, dtype="<U1")
            id_type = "str"
        else:
            ids_to_save = ids
            id_type = str(ids.dtype)
        meta = {
            "format": "pinsage.ItemIndex",
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "metric": self.metric,
            "dim": self.dim,
            "n": len(self),
            "params": self.params,
            "id_type": id_type,
            "faiss_version": getattr(faiss, "__version__", "unknown"),
        }
        path = Path(path)
        with atomic_dir(path) as tmp:
            faiss.write_index(self._index, str(tmp / INDEX_FILE))
            with open(tmp / IDS_FILE, "wb") as f:
                np.save(f, ids_to_save, allow_pickle=False)
            with open(tmp / META_FILE, "w", encoding="utf-8") as f:
                json.dump(meta, f, indent=2)
                f.write("\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ItemIndex":
        """Read an index written by :meth:`save`; raises InputError naming the bad file."""
        _ensure_threads()
        path = Path(path)
        if not path.is_dir():
            raise InputError(f"{path}: not an index directory (expected {INDEX_FILE}, {IDS_FILE}, {META_FILE})")
        missing = [f for f in (META_FILE, INDEX_FILE, IDS_FILE) if not (path / f).is_file()]
        if missing:
            raise InputError(f"{path}: missing file(s) {missing}; not a complete saved ItemIndex")
        meta_path = path / META_FILE
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{meta_path}: unreadable metadata: {exc}") from exc
        if not isinstance(meta, dict):
            raise InputError(f"{meta_path}: expected a JSON object")
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            raise InputError(
                f"{meta_path}: format version {version!r}, this pinsage reads version {FORMAT_VERSION}; "
                "rebuild the index"
            )
        for key in ("kind", "metric", "dim", "n", "params", "id_type"):
            if key not in meta:
                raise InputError(f"{meta_path}: missing field {key!r}")
        if meta["kind"] not in KINDS or meta["metric"] not in METRICS:
            raise InputError(f"{meta_path}: unknown kind {meta['kind']!r} or metric {meta['metric']!r}")

        index_path = path / INDEX_FILE
        try:
            index = faiss.read_index(str(index_path))
        except Exception as exc:  # faiss raises RuntimeError on truncated/corrupt files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"{index_path}: could not read the faiss index (truncated or corrupt?): {first}") from exc
        ids_path = path / IDS_FILE
        try:
            ids = np.load(ids_path, allow_pickle=False)
        except Exception as exc:
            raise InputError(f"{ids_path}: could not read the ids: {exc}") from exc
        if ids.ndim != 1:
            raise InputError(f"{ids_path}: expected a 1-d array of ids, got shape {ids.shape}")
        if ids.shape[0] != index.ntotal:
            raise InputError(
                f"{ids_path}: {ids.shape[0]} ids but {index_path} holds {index.ntotal} vectors; "
                "the files do not belong together"
            )
        if index.ntotal != meta["n"] or index.d != meta["dim"]:
            raise InputError(
                f"{meta_path}: says n={meta['n']}, dim={meta['dim']} but {index_path} has "
                f"n={index.ntotal}, dim={index.d}"
            )
        if meta["id_type"] == "str":
            ids = ids.astype(object) if ids.dtype.kind == "U" else ids.astype(str).astype(object)
        return cls(index, _canonical_ids(ids, ids.shape[0]), meta["kind"], meta["metric"], meta["params"])

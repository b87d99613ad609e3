"""Index kinds: what each one is, its parameters and their defaults, and building its faiss index.

Named kinds
-----------
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
``tests/test_index.py`` and ``docs/benchmarks/index.md``). On unstructured data (i.i.d. gaussian
vectors) no approximate index reaches that recall cheaply: use ``"exact"`` there, or raise
``ef_search`` / ``nprobe`` / ``k_factor``.

Factory strings
---------------
Any other ``kind`` is handed to ``faiss.index_factory(d, kind, faiss.METRIC_INNER_PRODUCT)``, e.g.
``"Flat"``, ``"HNSW32,Flat"``, ``"IVF1024,PQ16"`` or ``"OPQ16,IVF1024,PQ16,RFlat"`` (see the faiss wiki's
"The index factory"). An index that needs training is trained on the vectors: all of them, or a sample
of ``train_size`` rows drawn with ``seed`` (default 1234, also faiss's k-means seed). Besides those two,
the parameters a factory index takes depend on what it is made of: ``nprobe`` when it has inverted
lists, ``ef_search`` and ``ef_construction`` when it is an HNSW graph, ``k_factor`` when it re-ranks
(``RFlat``, ``Refine(...)``). Parameters not given keep faiss's own defaults (``nprobe=1``,
``efSearch=16``, ``k_factor=1``), not the named kinds' tuned ones.

Threads
-------
faiss uses OpenMP; by default it may start one thread per *host* CPU even inside a container limited
to fewer, which oversubscribes the cores. On first use this package sets faiss to the number of CPUs
this process may run on (``os.sched_getaffinity``) unless ``OMP_NUM_THREADS`` is set;
:func:`set_num_threads` overrides it.
"""
from __future__ import annotations

import os
import re
from numbers import Integral
from typing import Any, Iterator

import faiss
import numpy as np

from pinsage._io import InputError

__all__ = ["AUTO_EXACT_MAX", "KINDS", "METRICS", "NAMED_KINDS", "set_num_threads", "ensure_threads",
           "resolve_kind", "is_saved_kind", "build_faiss_index", "search_param_names",
           "apply_search_params"]

#: ``kind="auto"`` builds an exact index below this many items, HNSW at or above.
AUTO_EXACT_MAX = 50_000
#: the kinds :class:`~pinsage.index.ItemIndex` builds itself (``"auto"`` resolves to one of them).
KINDS = ("exact", "hnsw", "ivfpq")
#: every kind with a name; any other string is read as a faiss factory string.
NAMED_KINDS = ("auto",) + KINDS
METRICS = ("cosine", "ip")
#: factory strings quoted in error messages as examples.
FACTORY_EXAMPLES = ("HNSW32,Flat", "IVF1024,PQ16")

_REFINES = ("fp16", "sq8", "flat", "none")
_HNSW_DEFAULTS = {"M": 32, "ef_construction": 64, "ef_search": 128}
_IVFPQ_SEARCH_DEFAULTS = {"nprobe": 32, "k_factor": 16}
_SEARCH_PARAMS = {"exact": (), "hnsw": ("ef_search",), "ivfpq": ("nprobe", "k_factor")}
#: the search parameters a factory index may take, in the order they are reported
_FACTORY_SEARCH_PARAMS = ("nprobe", "ef_search", "k_factor")
_FACTORY_SEED = 1234

_threads_configured = False


# ----------------------------------------------------------------------------------------------
# threads
# ----------------------------------------------------------------------------------------------
def set_num_threads(n: int | None = None) -> int:
    """Set faiss's OpenMP thread count.

    Args:
        n: threads to use; ``None`` means the CPUs this process may run on (``os.sched_getaffinity``).

    Returns:
        The thread count set (at least 1).
    """
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


def ensure_threads() -> None:
    """Configure faiss's thread count once, unless the user set ``OMP_NUM_THREADS``."""
    global _threads_configured
    if not _threads_configured:
        if os.environ.get("OMP_NUM_THREADS"):
            _threads_configured = True
        else:
            set_num_threads(None)


# ----------------------------------------------------------------------------------------------
# kinds
# ----------------------------------------------------------------------------------------------
def _faiss_reason(exc: BaseException) -> str:
    """The useful part of a faiss error: its first line without the C++ function and source location."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return re.sub(r"^Error in .* at \S+:\d+: ", "", first)


def _unknown_kind(kind: Any, reason: str | None = None) -> InputError:
    named = ", ".join(repr(k) for k in NAMED_KINDS)
    examples = " or ".join(repr(s) for s in FACTORY_EXAMPLES)
    why = f" (faiss: {reason})" if reason else ""
    return InputError(f"kind: unknown index kind {kind!r}{why}; expected one of {named} "
                      f"or a faiss index factory string such as {examples}")


def _from_factory(kind: str, d: int) -> faiss.Index:
    """``faiss.index_factory(d, kind)`` with the inner-product metric; InputError when faiss rejects it."""
    try:
        return faiss.index_factory(int(d), kind, faiss.METRIC_INNER_PRODUCT)
    except Exception as exc:  # faiss raises RuntimeError for strings it cannot parse or build
        raise _unknown_kind(kind, _faiss_reason(exc)) from exc


def resolve_kind(kind: Any, n: int) -> str:
    """The kind to build for ``n`` items: ``"auto"`` becomes ``"exact"`` or ``"hnsw"``.

    Args:
        kind: a named kind or a faiss factory string (checked when the index is built).
        n: number of items.

    Returns:
        ``"exact"``, ``"hnsw"``, ``"ivfpq"`` or the factory string unchanged.

    Raises:
        InputError: ``kind`` is not a non-empty string.
    """
    if not isinstance(kind, str) or not kind.strip():
        raise _unknown_kind(kind)
    if kind == "auto":
        return "exact" if n < AUTO_EXACT_MAX else "hnsw"
    return kind


def is_saved_kind(kind: Any, dim: int) -> bool:
    """Whether ``kind``, read from a saved index's metadata, is one :func:`build_faiss_index` builds:
    a named kind other than ``"auto"``, or a factory string this faiss accepts for dimension ``dim``."""
    if not isinstance(kind, str) or kind == "auto" or not kind.strip():
        return False
    if kind in KINDS:
        return True
    try:
        _from_factory(kind, dim)
    except InputError:
        return False
    return True


# ----------------------------------------------------------------------------------------------
# parameters
# ----------------------------------------------------------------------------------------------
def _check_params(params: dict, defaults: dict, kind: str) -> dict:
    """``params`` over ``defaults``; every integer default must get a positive integer.

    Raises:
        InputError: a parameter not in ``defaults``, or a non-positive / non-integer value.
    """
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise InputError(f"kind={kind!r}: unknown parameter(s) {unknown}; known: {sorted(defaults)}")
    p = {**defaults, **params}
    for key, val in p.items():
        if isinstance(defaults[key], int) and (not isinstance(val, Integral) or val < 1):
            raise InputError(f"kind={kind!r}: {key} must be a positive integer, got {val!r}")
    return {k: (int(v) if isinstance(v, Integral) else v) for k, v in p.items()}


def _largest_divisor_at_most(d: int, cap: int) -> int:
    """The largest ``m <= cap`` that divides ``d`` (at least 1)."""
    for m in range(max(1, cap), 0, -1):
        if d % m == 0:
            return m
    return 1


def _components(index: faiss.Index) -> Iterator[faiss.Index]:
    """The faiss indexes ``index`` is made of, outermost first: through pre-transforms, re-rankers and
    id maps down to the index they wrap (an IVF's coarse quantizer is not entered)."""
    node = faiss.downcast_index(index)
    while node is not None:
        yield node
        if isinstance(node, faiss.IndexPreTransform):
            node = faiss.downcast_index(node.index)
        elif isinstance(node, faiss.IndexRefine):
            node = faiss.downcast_index(node.base_index)
        elif isinstance(node, faiss.IndexIDMap):
            node = faiss.downcast_index(node.index)
        else:
            node = None


def _search_targets(index: faiss.Index) -> dict[str, tuple[Any, str]]:
    """``{search parameter: (faiss object, attribute)}`` for the parts of ``index`` that take one:
    ``nprobe`` (the first IVF), ``ef_search`` (the first HNSW graph), ``k_factor`` (the first re-ranker)."""
    out: dict[str, tuple[Any, str]] = {}
    for part in _components(index):
        if isinstance(part, faiss.IndexRefine):
            out.setdefault("k_factor", (part, "k_factor"))
        elif isinstance(part, faiss.IndexHNSW):
            out.setdefault("ef_search", (part.hnsw, "efSearch"))
        elif isinstance(part, faiss.IndexIVF):
            out.setdefault("nprobe", (part, "nprobe"))
    return out


def search_param_names(kind: str, index: faiss.Index) -> tuple[str, ...]:
    """The query-time parameters of an index: fixed per named kind, by structure for a factory string."""
    if kind in _SEARCH_PARAMS:
        return _SEARCH_PARAMS[kind]
    targets = _search_targets(index)
    return tuple(p for p in _FACTORY_SEARCH_PARAMS if p in targets)


def apply_search_params(index: faiss.Index, kind: str, params: dict) -> None:
    """Set the query-time parameters found in ``params`` on ``index`` (in place).

    The named kinds and factory strings share this path: ``ef_search`` goes to the HNSW graph,
    ``nprobe`` to the inverted lists, ``k_factor`` to the re-ranker. A named kind's parameter with no
    target (``k_factor`` of ``ivfpq`` with ``refine="none"``) is kept but has no effect.

    Raises:
        InputError: a factory index was given a search parameter none of its parts takes.
    """
    targets = _search_targets(index)
    named = kind in _SEARCH_PARAMS
    for key in _SEARCH_PARAMS[kind] if named else _FACTORY_SEARCH_PARAMS:
        if key not in params:
            continue
        if key not in targets:
            if named:
                continue
            raise InputError(f"kind={kind!r}: search parameter {key!r} does not apply to this index")
        obj, attr = targets[key]
        setattr(obj, attr, float(params[key]) if key == "k_factor" else int(params[key]))


# ----------------------------------------------------------------------------------------------
# building
# ----------------------------------------------------------------------------------------------
def build_faiss_index(x: np.ndarray, kind: str, params: dict) -> tuple[faiss.Index, dict]:
    """Build and fill the faiss index of one kind.

    Args:
        x: the vectors to index, already L2-normalised for ``metric="cosine"``.
        kind: ``"exact"``, ``"hnsw"``, ``"ivfpq"`` or a faiss factory string (not ``"auto"``: see
            :func:`resolve_kind`).
        params: the kind's parameters, as given by the caller.

    Returns:
        index: the filled faiss index (inner-product metric).
        params: the parameters used, defaults filled in (JSON-serialisable; saved with the index).

    Shapes:
        - **x:** :math:`(n, d)` float32, C-contiguous.

    Raises:
        InputError: unknown kind or parameter, bad parameter value, too few vectors to train on.
    """
    n, d = x.shape
    if kind == "exact":
        if params:
            raise InputError(f"kind='exact' takes no parameters, got {sorted(params)}")
        index = faiss.IndexFlatIP(d)
        index.add(x)
        return index, {}
    if kind == "hnsw":
        p = _check_params(params, _HNSW_DEFAULTS, kind)
        index = faiss.IndexHNSWFlat(d, int(p["M"]), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(p["ef_construction"])
        index.add(x)
        return index, p
    if kind == "ivfpq":
        return _build_ivfpq(x, params)
    return _build_factory(x, kind, params)


def _training_sample(x: np.ndarray, train_size: int, seed: int) -> np.ndarray:
    """All of ``x`` when ``train_size >= n``, else ``train_size`` rows drawn with ``seed`` (in row order)."""
    n = x.shape[0]
    train_n = min(n, train_size)
    if train_n >= n:
        return x
    rng = np.random.default_rng(seed)
    return x[np.sort(rng.choice(n, train_n, replace=False))]


def _build_ivfpq(x: np.ndarray, params: dict) -> tuple[faiss.Index, dict]:
    """The ``"ivfpq"`` kind: ``IndexIVFPQ``, optionally behind a re-ranker (``refine``).

    Args:
        x: vectors to index.
        params: ``nlist``, ``m``, ``nbits``, ``nprobe``, ``k_factor``, ``refine``, ``train_size``,
            ``seed``; defaults depend on ``n`` and ``d`` (see the module docstring).

    Returns:
        index: the filled faiss index.
        params: the parameters used, every default filled in.

    Shapes:
        - **x:** :math:`(n, d)` float32.
    """
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
    p = _check_params({k: v for k, v in params.items() if k != "refine"},
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
    train = _training_sample(x, p["train_size"], p["seed"])

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


def _build_factory(x: np.ndarray, kind: str, params: dict) -> tuple[faiss.Index, dict]:
    """A faiss factory string: ``faiss.index_factory``, trained on (a sample of) ``x`` when it needs it.

    Args:
        x: vectors to index.
        kind: the factory string, e.g. ``"HNSW32,Flat"`` or ``"IVF256,PQ16"``.
        params: ``train_size`` and ``seed`` (indexes that need training), ``ef_construction``
            (HNSW graphs) and the search parameters of the index's parts (``nprobe``, ``ef_search``,
            ``k_factor``).

    Returns:
        index: the filled faiss index.
        params: the parameters given, plus ``train_size`` / ``seed`` used for training and the search
            parameters with the values in effect (faiss's defaults where not given).

    Shapes:
        - **x:** :math:`(n, d)` float32.

    Raises:
        InputError: faiss rejects ``kind``, a parameter does not apply to this index or is not a
            positive integer, training fails (too few vectors), or the index cannot return stored
            vectors (which :meth:`~pinsage.index.ItemIndex.related` needs).
    """
    n, d = x.shape
    index = _from_factory(kind, d)
    parts = list(_components(index))
    targets = _search_targets(index)
    known: dict[str, Any] = {key: 1 for key in _FACTORY_SEARCH_PARAMS if key in targets}
    hnsw = next((p for p in parts if isinstance(p, faiss.IndexHNSW)), None)
    if hnsw is not None:
        known["ef_construction"] = int(hnsw.hnsw.efConstruction)
    needs_training = not index.is_trained
    if needs_training:
        known.update(train_size=n, seed=_FACTORY_SEED)
    p = _check_params(params, known, kind)
    p = {key: p[key] for key in params}  # only what was given; the rest is read back below

    if hnsw is not None and "ef_construction" in p:
        hnsw.hnsw.efConstruction = p["ef_construction"]
    if needs_training:
        seed = int(p.get("seed", _FACTORY_SEED))
        for part in parts:
            if isinstance(part, faiss.IndexIVF):
                part.cp.seed = seed
            pq = getattr(part, "pq", None)
            if isinstance(pq, faiss.ProductQuantizer):
                pq.cp.seed = seed
        train = _training_sample(x, int(p.get("train_size", n)), seed)
        try:
            index.train(train)
        except Exception as exc:
            raise InputError(f"kind={kind!r}: faiss could not train the index on {len(train)} vectors: "
                             f"{_faiss_reason(exc)}") from exc
        p.setdefault("train_size", n)
        p.setdefault("seed", seed)
    try:
        index.add(x)
    except Exception as exc:
        raise InputError(f"kind={kind!r}: faiss could not add the vectors: {_faiss_reason(exc)}") from exc
    _enable_reconstruct(index, kind)
    if hnsw is not None:
        p["ef_construction"] = int(hnsw.hnsw.efConstruction)
    apply_search_params(index, kind, p)
    for key, (obj, attr) in targets.items():
        value = getattr(obj, attr)
        p[key] = int(value) if float(value).is_integer() else float(value)
    return index, p


def _enable_reconstruct(index: faiss.Index, kind: str) -> None:
    """Let ``index.reconstruct`` return stored vectors: an IVF that is not behind a re-ranker needs
    its direct map. Raises InputError when the index still cannot."""
    for part in _components(index):
        if isinstance(part, faiss.IndexRefine):
            break  # the re-ranker's own vectors are reconstructed
        if isinstance(part, faiss.IndexIVF):
            part.make_direct_map()
            break
    try:
        index.reconstruct_batch(np.zeros(1, dtype=np.int64))
    except Exception as exc:
        raise InputError(f"kind={kind!r}: this faiss index cannot return its stored vectors, which "
                         f"related() needs ({_faiss_reason(exc)}); choose another factory string") from exc

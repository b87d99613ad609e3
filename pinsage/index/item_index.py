""":class:`ItemIndex`: a faiss index over item embeddings that speaks the items' original ids.

It composes the parts of this package: :mod:`~pinsage.index.factory` builds the faiss index of a
kind, :mod:`~pinsage.index.idmap` maps ids to rows and back, :mod:`~pinsage.index.exclusions` leaves
the query item and the ``exclude`` ids out of :meth:`ItemIndex.related`. Saved indexes are a directory
of three files: ``index.faiss`` (``faiss.write_index``), ``ids.npy`` (no pickle) and ``meta.json``.
"""
from __future__ import annotations

import json
import os
from numbers import Integral
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from pinsage._io import InputError, atomic_dir, sha256_file
from pinsage.index.exclusions import Exclusions, is_id_list, related_rows
from pinsage.index.factory import (
    METRICS,
    apply_search_params,
    build_faiss_index,
    ensure_threads,
    is_saved_kind,
    resolve_kind,
    search_param_names,
)
from pinsage.index.idmap import IdMap

__all__ = ["ItemIndex", "FORMAT_VERSION", "INDEX_FILE", "IDS_FILE", "META_FILE"]

FORMAT_VERSION = 1
INDEX_FILE = "index.faiss"
IDS_FILE = "ids.npy"
META_FILE = "meta.json"


def _as_vectors(x: Any, name: str, dim: int | None = None) -> np.ndarray:
    """``x`` as C-contiguous, finite float32 vectors.

    Args:
        x: the vectors (a single vector is accepted when ``dim`` is given).
        name: what to call them in error messages.
        dim: the dimension they must have, if any.

    Returns:
        The vectors.

    Shapes:
        - **x:** :math:`(n, d)`, or :math:`(d,)` when ``dim == d``.
        - **output:** :math:`(n, d)` float32.

    Raises:
        InputError: not numeric, not 2-d, wrong or zero dimension, NaN or inf values.
    """
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
    """An L2-normalised copy of ``x`` (zero rows stay zero)."""
    x = x.copy()
    faiss.normalize_L2(x)
    return x


class ItemIndex:
    """A faiss index over item embeddings plus the items' original ids.

    Build with :meth:`build`, query with :meth:`related` (by item id), :meth:`recommend` (by a history
    of item ids) or :meth:`search` (by vector), persist with :meth:`save` / :meth:`load`. The kinds (``"exact"``, ``"hnsw"``, ``"ivfpq"``, ``"auto"``
    or a faiss factory string such as ``"HNSW32,Flat"``) and their parameters are described in
    :mod:`pinsage.index.factory` and the user guide (``docs/guide.md``); ``docs/benchmarks/index.md``
    compares them at recall@10 >= 0.95.

    Metrics: ``"ip"`` (default) uses the raw inner product, PinSage's own score (the loss scores pairs by
    dot products, and an embedding's learned length carries how readily its item is engaged with, see
    :class:`~pinsage.nn.PinSage`). ``"cosine"`` L2-normalises the stored vectors and the queries, then
    uses inner product: direction only.

    Args:
        index: a filled faiss index with the inner-product metric.
        ids: canonical ids in row order (see :meth:`~pinsage.index.idmap.IdMap.from_ids`).
        kind: the kind it was built as.
        metric: ``"cosine"`` or ``"ip"``.
        params: build and search parameters (JSON-serialisable).

    Attributes:
        kind (str): ``"exact"``, ``"hnsw"``, ``"ivfpq"`` or a faiss factory string (never ``"auto"``).
        metric (str): ``"cosine"`` or ``"ip"``.
        dim (int): embedding dimension ``d``.
        ids (ndarray): ``(n,)`` original ids, row order of the index.
        params (dict): build and search parameters (JSON-serialisable).

    Examples:
        >>> emb = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], dtype=np.float32)
        >>> index = ItemIndex.build(emb, ids=["a", "b", "c", "d"], kind="exact")
        >>> ids, scores = index.related("a", k=2)       # the query itself is left out
        >>> ids.tolist(), [round(float(s), 2) for s in scores]
        (['b', 'd'], [0.9, 0.1])
        >>> index.related(["a", "c"], k=1)[0].tolist()
        [['b'], ['d']]
        >>> ItemIndex.build(emb, ids=["a", "b", "c", "d"], kind="HNSW8,Flat").related("c", k=1)[0].tolist()
        ['d']
    """

    def __init__(self, index: faiss.Index, ids: np.ndarray | IdMap, kind: str, metric: str, params: dict):
        self._index = index
        self._idmap = ids if isinstance(ids, IdMap) else IdMap(ids)
        self.kind = kind
        self.metric = metric
        self.params = dict(params)
        apply_search_params(self._index, self.kind, self.params)

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

        Args:
            embeddings: the item vectors (cast to float32).
            ids: original item ids (ints, strings, ...), unique; default ``arange(n)``.
            kind: ``"auto"`` (exact below :data:`~pinsage.index.factory.AUTO_EXACT_MAX` items, else
                HNSW), ``"exact"``, ``"hnsw"``, ``"ivfpq"``, or a faiss factory string such as
                ``"HNSW32,Flat"``, ``"IVF256,PQ16"`` or ``"Flat"`` (built by ``faiss.index_factory``
                with the inner-product metric, trained on the vectors when it needs training).
            metric: ``"ip"`` (raw inner product, PinSage's score; default) or ``"cosine"`` (normalise,
                then inner product).
            **params: per kind. hnsw: ``M``, ``ef_construction``, ``ef_search``. ivfpq: ``nlist``,
                ``m``, ``nbits``, ``nprobe``, ``refine`` (``"fp16"``/``"sq8"``/``"flat"``/``"none"``),
                ``k_factor``, ``train_size``, ``seed``. A factory string: ``train_size`` and ``seed``
                when it needs training, ``ef_construction`` / ``ef_search`` for HNSW, ``nprobe`` for
                inverted lists, ``k_factor`` for a re-ranker.

        Returns:
            The filled index.

        Shapes:
            - **embeddings:** :math:`(n, d)`.
            - **ids:** :math:`(n,)`.

        Raises:
            InputError: bad vectors or ids (duplicates, wrong count), an unknown metric, an unknown kind
                or a factory string faiss rejects, unknown or bad parameters.
        """
        ensure_threads()
        x = _as_vectors(embeddings, "embeddings")
        n = x.shape[0]
        if n == 0:
            raise InputError("embeddings: no rows to index")
        idmap = IdMap.from_ids(ids, n)
        if metric not in METRICS:
            raise InputError(f"metric: expected one of {METRICS}, got {metric!r}")
        kind = resolve_kind(kind, n)
        if metric == "cosine":
            x = _normalise(x)
        index, p = build_faiss_index(x, kind, params)
        return cls(index, idmap, kind, metric, p)

    # -- search parameters ------------------------------------------------------------------
    def set_search_params(self, **params: Any) -> "ItemIndex":
        """Change query-time parameters in place.

        Larger values: higher recall, slower queries. Saved with the index.

        Args:
            **params: hnsw ``ef_search``; ivfpq ``nprobe``, ``k_factor``; a factory index those of
                ``nprobe`` / ``ef_search`` / ``k_factor`` that its parts take.

        Returns:
            ``self``.

        Raises:
            InputError: a parameter this kind does not take, or not a positive integer.
        """
        allowed = search_param_names(self.kind, self._index)
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise InputError(f"kind={self.kind!r}: unknown search parameter(s) {unknown}; known: {list(allowed)}")
        for key, val in params.items():
            if not isinstance(val, Integral) or val < 1:
                raise InputError(f"{key} must be a positive integer, got {val!r}")
            self.params[key] = int(val)
        apply_search_params(self._index, self.kind, self.params)
        return self

    # -- basic properties -------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        """Embedding dimension ``d``."""
        return int(self._index.d)

    @property
    def ids(self) -> np.ndarray:
        """``(n,)`` original ids, row order of the index."""
        return self._idmap.ids

    @property
    def faiss_index(self) -> faiss.Index:
        """The underlying faiss index (vectors normalised when ``metric == "cosine"``)."""
        return self._index

    def __repr__(self) -> str:
        return f"ItemIndex(kind={self.kind!r}, metric={self.metric!r}, n={len(self)}, dim={self.dim}, params={self.params})"

    def rows_of(self, ids: Any) -> np.ndarray:
        """Row positions of ``ids`` in the index.

        Args:
            ids: one id or a 1-d list of ids.

        Returns:
            int64 rows.

        Shapes:
            - **ids:** :math:`(q,)` (a scalar counts as :math:`q = 1`).
            - **output:** :math:`(q,)`.

        Raises:
            InputError: ids not in the index (the message names the first few).
        """
        return self._idmap.rows_of(ids)

    # -- queries ----------------------------------------------------------------------------
    def _raw_search(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """faiss search for ``k`` neighbours, padded (``NaN`` scores, ``-1`` rows) beyond the catalogue."""
        ensure_threads()
        k_eff = max(1, min(int(k), len(self)))
        scores, rows = self._index.search(x, k_eff)
        if k_eff < k:
            pad = k - k_eff
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=np.nan)
            rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=-1)
        return scores, rows

    def search(self, vectors: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Nearest items to arbitrary query vectors.

        Args:
            vectors: query vectors (a single vector is accepted as :math:`q = 1`).
            k: neighbours per query.

        Returns:
            ids: original ids, best first. Where fewer than ``k`` results exist a row is padded with
                ``-1`` (integer ids), ``NaN`` (float ids) or ``None`` (object/string ids).
            scores: float32 cosine similarity / inner product; ``NaN`` for padding.

        Shapes:
            - **vectors:** :math:`(q, d)` or :math:`(d,)`.
            - **ids, scores:** :math:`(q, k)` each.

        Raises:
            InputError: ``k`` not a positive integer, or vectors of the wrong dimension.
        """
        if not isinstance(k, Integral) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}")
        x = _as_vectors(vectors, "vectors", self.dim)
        if self.metric == "cosine":
            x = _normalise(x)
        scores, rows = self._raw_search(x, int(k))
        scores = scores.astype(np.float32, copy=False)
        scores[rows < 0] = np.nan
        return self._idmap.rows_to_ids(rows), scores

    def vectors_of(self, ids: Any) -> np.ndarray:
        """Stored vectors of ``ids``.

        Args:
            ids: item ids.

        Returns:
            The vectors as the index holds them: normalised for cosine; approximate for ivfpq with
                ``refine="fp16"``/``"sq8"``/``"none"`` and for compressed factory indexes.

        Shapes:
            - **ids:** :math:`(q,)`.
            - **output:** :math:`(q, d)` float32.
        """
        return self._reconstruct(self.rows_of(ids))

    def _reconstruct(self, rows: np.ndarray) -> np.ndarray:
        if rows.size == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.ascontiguousarray(self._index.reconstruct_batch(rows.astype(np.int64)), dtype=np.float32)

    def related(self, ids: Any, k: int = 10, exclude: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Items most similar to each of ``ids`` (batched), the query item itself left out.

        The index is searched for ``k + 1 + len(largest exclusion)`` neighbours and the query item
        and excluded items are dropped (see :mod:`pinsage.index.exclusions`).

        Args:
            ids: item ids, or one scalar id (then the results are 1-d, shape :math:`(k,)`).
            k: results per query.
            exclude: ids never to return. Either one flat list of ids applied to every query
                (global), or a list of :math:`q` lists (per query; ``None`` entries allowed). Ids in
                ``exclude`` that are not in the index are ignored.

        Returns:
            ids_out: original ids, best first. Rows are padded with a sentinel -- ``-1`` for integer
                ids, ``NaN`` for float ids, ``None`` for string/object ids -- only when fewer than
                ``k`` results remain (a catalogue smaller than ``k + 1`` items, or exclusions that use
                up the catalogue).
            scores: float32 similarity (cosine, or inner product for ``metric="ip"``); ``NaN`` for
                padding.

        Shapes:
            - **ids:** :math:`(q,)` or a scalar.
            - **ids_out, scores:** :math:`(q, k)` each (:math:`(k,)` for a scalar ``ids``).

        Raises:
            InputError: ``k`` not a positive integer, or an id in ``ids`` that is not in the index
                (the message names the first few).
        """
        if not isinstance(k, Integral) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}")
        k = int(k)
        scalar = np.ndim(ids) == 0 and not is_id_list(ids)
        rows = self.rows_of(ids)
        q = rows.shape[0]
        exclusions = Exclusions.parse(exclude, q, len(self), self._idmap.known_rows)
        if q == 0:
            return self._idmap.rows_to_ids(np.zeros((0, k), dtype=np.int64)), np.zeros((0, k), dtype=np.float32)
        kept_rows, kept_scores = related_rows(self._raw_search, self._reconstruct(rows), rows, k, exclusions)
        out_ids = self._idmap.rows_to_ids(kept_rows)
        if scalar:
            return out_ids[0], kept_scores[0]
        return out_ids, kept_scores

    def similar_items(self, itemid: Any, N: int = 10, exclude: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Alias of :meth:`related` with the argument names of ``implicit``'s ``similar_items``
        (``N`` results per item; a scalar id gives 1-d results, a list gives :math:`(q, N)`)."""
        return self.related(itemid, k=N, exclude=exclude)

    def recommend(self, history_ids: Any, N: int = 10, filter_already_liked_items: bool = True,
                  filter_items: Any = None, *, method: str = "recency", half_life: float | None = 10.0,
                  clusters: int = 3, max_history: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Items for a history (batched), shaped like ``implicit``'s ``recommend``.

        Scores (:mod:`pinsage.index.recommend`): ``method="recency"`` queries the recency-weighted mean
        :math:`q = \\sum_j w_j e_j / \\sum_j w_j` of the history's embeddings, :math:`w_j = 2^{-(L-1-j)/h}`
        for the item :math:`L - 1 - j` steps before the most recent one (:math:`h` = ``half_life``);
        ``method="interests"`` clusters the history PinnerSage-style into up to ``clusters`` interests,
        queries each cluster's medoid and merges the results by score with per-cluster quotas.

        Args:
            history_ids: one history (a flat list of item ids, oldest first: the last is the most recent)
                or a list of histories (a batch); a :class:`~pinsage.index.histories.Histories` of rows
                is taken as a batch.
            N: results per history.
            filter_already_liked_items: leave the history's own items out of its results.
            filter_items: ids never to return (ids not in the index are ignored).
            method: ``"recency"`` (default) or ``"interests"``.
            half_life: recency half-life in items; ``None`` weighs every item alike.
            clusters: the most interests per history (``"interests"``; a history of ``L`` items gets
                ``min(clusters, L)``).
            max_history: use only the ``max_history`` most recent items of each history (all when None).

        Returns:
            ids: original ids, best first, padded (``-1`` / ``NaN`` / ``None`` as in :meth:`related`) where
                fewer than ``N`` remain.
            scores: float32 (the index's similarity to the query); ``NaN`` for padding.

        Shapes:
            - **history_ids:** :math:`(L,)`, or :math:`q` lists.
            - **ids, scores:** :math:`(N,)` for one history, :math:`(q, N)` for a batch.

        Raises:
            InputError: unknown ids in a history, an empty history, or a bad ``N``, ``method``,
                ``half_life`` or ``clusters``.

        Example:
            >>> emb = np.array([[1, 0], [.9, .1], [0, 1], [.2, .8], [.7, .7]], dtype=np.float32)
            >>> index = ItemIndex.build(emb, ids=["a", "b", "c", "d", "e"], kind="exact")
            >>> index.recommend(["c", "a"], N=2)[0].tolist()        # "a" is the most recent
            ['e', 'b']
            >>> index.recommend(["a", "c"], N=2, method="interests", clusters=2)[0].tolist()
            ['b', 'd']
        """
        from pinsage.index.histories import Histories
        from pinsage.index.recommend import recommend_rows

        histories, one = Histories.from_ids(history_ids, self.rows_of)
        histories = histories.last(max_history)
        filter_rows = None if filter_items is None else self._idmap.known_rows(
            list(filter_items) if isinstance(filter_items, (set, frozenset)) else filter_items)

        def search(x: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
            return self._raw_search(_normalise(x) if self.metric == "cosine" else x, kk)

        rows, scores = recommend_rows(search, self._reconstruct, len(self), histories, N, method=method,
                                      half_life=half_life, clusters=clusters,
                                      filter_already_liked_items=filter_already_liked_items, filter_rows=filter_rows)
        ids = self._idmap.rows_to_ids(rows)
        return (ids[0], scores[0]) if one else (ids, scores)

    # -- persistence ------------------------------------------------------------------------
    def nbytes(self) -> int:
        """Size of the serialised faiss index in bytes (a close proxy for its memory)."""
        return int(faiss.serialize_index(self._index).nbytes)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the index to directory ``path`` atomically (replacing an existing one).

        Files: ``index.faiss`` (``faiss.write_index``), ``ids.npy`` (integers/floats as is,
        strings as a numpy unicode array; no pickle) and ``meta.json`` (format version, kind -- a
        factory string as given --, metric, dim, n, params, id dtype, and the SHA-256 of the other
        two files, checked by :meth:`load` before faiss reads them).

        Args:
            path: the directory to write.

        Returns:
            ``path`` as a :class:`~pathlib.Path`.

        Raises:
            InputError: object ids other than all-strings, which cannot be saved.
        """
        ids_to_save, id_type = self._idmap.to_saved()
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
            meta["checksums"] = {name: sha256_file(tmp / name) for name in (INDEX_FILE, IDS_FILE)}
            with open(tmp / META_FILE, "w", encoding="utf-8") as f:
                json.dump(meta, f, indent=2)
                f.write("\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ItemIndex":
        """Read an index written by :meth:`save` (no pickle: ids with ``allow_pickle=False``, metadata
        as JSON).

        Args:
            path: the directory :meth:`save` wrote.

        Returns:
            The index, with the search parameters it was saved with.

        Raises:
            InputError: a missing, truncated or inconsistent file (the message names it), or another
                format version.
        """
        ensure_threads()
        path = Path(path)
        if not path.is_dir():
            raise InputError(f"{path}: not an index directory (expected {INDEX_FILE}, {IDS_FILE}, {META_FILE})")
        missing = [f for f in (META_FILE, INDEX_FILE, IDS_FILE) if not (path / f).is_file()]
        if missing:
            raise InputError(f"{path}: missing file(s) {missing}; not a complete saved ItemIndex")
        meta_path = path / META_FILE
        meta = _read_meta(meta_path)
        for name, expected in meta.get("checksums", {}).items():  # before faiss parses anything
            if name in (INDEX_FILE, IDS_FILE) and sha256_file(path / name) != expected:
                raise InputError(f"{path / name}: damaged (its SHA-256 differs from the one {META_FILE} "
                                 "recorded); rebuild the index")

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
        try:
            return cls(index, IdMap.from_saved(ids, meta["id_type"]), meta["kind"], meta["metric"], meta["params"])
        except InputError as exc:
            raise InputError(f"{meta_path}: {exc}") from exc


def _read_meta(meta_path: Path) -> dict:
    """``meta.json`` of a saved index, checked: format version, required fields, kind and metric."""
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
    if meta["metric"] not in METRICS or not (isinstance(meta["dim"], int) and is_saved_kind(meta["kind"], meta["dim"])):
        raise InputError(f"{meta_path}: unknown kind {meta['kind']!r} or metric {meta['metric']!r}")
    if not isinstance(meta["params"], dict):
        raise InputError(f"{meta_path}: params must be a JSON object")
    return meta

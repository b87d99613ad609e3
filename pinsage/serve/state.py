"""What the server answers from: one loaded run (:class:`ServedRun`) behind one reference (:class:`RunHolder`).

A :class:`ServedRun` is built completely (embeddings, ids, index, titles, graph, metadata) before it is
served and never changes afterwards. :meth:`RunHolder.reload` builds a new one from the run directory
(a run that ``pinsage train`` renamed onto it, an index ``pinsage index`` rewrote, or a symbolic link
pointed at another run) and then replaces the holder's single reference to it: one assignment, atomic
under the GIL. Every request reads :attr:`RunHolder.current` once and answers from that object alone,
so requests in flight during a reload finish on the run they started with, and the old run is freed
when the last of them is done. A reload that fails leaves the current run in place.

Nothing here imports fastapi: :mod:`pinsage.serve.app` is the HTTP layer.
"""
from __future__ import annotations

import io
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pinsage._io import InputError, sha256_file
from pinsage.graph import InteractionGraph
from pinsage.graph.histories import group_histories, group_rows, has_order, items_aligned
from pinsage.ids import coerce_ids, head, lookup_keys, py_scalar
from pinsage.index import ItemIndex
from pinsage.index.histories import Histories
from pinsage.run import RunDir

__all__ = ["NotFound", "TooLarge", "ServedRun", "RunHolder"]


class NotFound(InputError):
    """Ids that are not in the served run (HTTP 404)."""


class TooLarge(InputError):
    """A request over one of the server's limits (HTTP 413)."""


def _unknown(values: np.ndarray, what: str, n: int, where: str) -> NotFound:
    unknown = list(pd.unique(np.asarray([str(py_scalar(v)) for v in values], dtype=object)))
    shown = repr(unknown[0]) if len(unknown) == 1 else head(unknown)
    plural = "" if len(unknown) == 1 else "(s)"
    return NotFound(f"unknown {what} id{plural} {shown}: not among the run's {n} {where}")


@dataclass(frozen=True)
class ServedRun:
    """One loaded run, immutable once built.

    Attributes:
        path: the run directory.
        index: the run's saved index, or an exact one (:meth:`pinsage.run.RunDir.index`).
        ids: the items' ids in the index's row order.
        lookup: :class:`pandas.Index` over ``ids`` (built once: a request never rebuilds it).
        titles: the items' titles in row order (None where unknown), or None when the run has none.
        graph: the training graph when the run has one whose items are the first rows of ``ids``.
        generation: 0 for the first load, one more for every reload.
        meta: what ``GET /meta`` shows.
    """

    path: Path
    index: ItemIndex
    ids: np.ndarray
    lookup: pd.Index
    titles: np.ndarray | None
    graph: InteractionGraph | None
    generation: int
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike, generation: int = 0) -> "ServedRun":
        """Read everything a request may need from the run at ``path``.

        Raises:
            InputError: not a run, or a damaged file (the message names it).
        """
        t0 = time.perf_counter()
        run = RunDir.open(path)
        emb, ids = run.embeddings_and_ids()
        run_meta = run.meta()
        note = io.StringIO()
        index = run.index(emb, ids, warn_to=note)
        del emb  # the index holds its own copy of the vectors
        titles = run.titles(ids, run_meta)
        graph, graph_note = None, None
        if run.has("graph"):
            graph = run.graph()
            if not items_aligned(graph, ids):
                graph, graph_note = None, "the graph's items are not the first rows of item_ids.npy"
        config = run.file("config")
        meta = {
            "run": str(Path(path)),
            "items": int(len(ids)),
            "dim": int(index.dim),
            "index": {"kind": index.kind, "metric": index.metric, "params": index.params,
                      "saved": run.has("index") and not note.getvalue(), "note": note.getvalue().strip() or None},
            "config_sha256": sha256_file(config) if config.is_file() else None,
            "titles": titles is not None,
            "users": None if graph is None else int(graph.num_groups),
            "ordered_by_time": None if graph is None else has_order(graph),
            "graph_note": graph_note,
            "generation": int(generation),
            "loaded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "load_s": round(time.perf_counter() - t0, 3),
        }
        lookup = pd.Index(lookup_keys(ids))
        lookup.get_indexer(lookup[:1])  # build the hash tables now, not in the first requests' threads
        index.related(ids[:1], k=1)
        if graph is not None:
            graph.group_index(graph.group_ids[:1])
        return cls(Path(path), index, ids, lookup, titles, graph, int(generation), meta)

    # ------------------------------------------------------------------------------- lookups
    def _lookup_rows(self, values: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(ids as given, their rows; -1 where not an item)``.

        Integer runs first try numpy's own parsing (ids given as JSON numbers or plain decimal text,
        the common case: a few microseconds); anything else goes through
        :func:`pinsage.ids.coerce_ids` (``"42.0"``, text that is no number), which costs about a
        millisecond of pandas work per request.
        """
        vals = np.asarray(values, dtype=object).reshape(-1)
        if self.ids.dtype.kind in "iu" and vals.size:
            try:
                conv = vals.astype(str).astype(np.int64) if any(isinstance(v, str) for v in vals.tolist()) \
                    else vals.astype(np.int64)
                return vals, np.asarray(self.lookup.get_indexer(conv), dtype=np.int64)
            except (ValueError, OverflowError, TypeError):
                pass
        conv, bad = coerce_ids(vals, self.ids)
        rows = np.asarray(self.lookup.get_indexer(lookup_keys(conv)), dtype=np.int64)
        rows[bad] = -1
        return vals, rows

    def rows_of(self, values: Any) -> np.ndarray:
        """Rows of item ids as given in a request (``"42"`` finds the integer id 42).

        Raises:
            NotFound: ids that are not items of the run (the message names the first few).
        """
        vals, rows = self._lookup_rows(values)
        if (rows < 0).any():
            raise _unknown(vals[rows < 0], "item", len(self.ids), "items")
        return rows

    def known(self, values: Any) -> np.ndarray:
        """Ids of the run among ``values`` (converted to the run's id type; the others dropped)."""
        _, rows = self._lookup_rows(values)
        return self.ids[rows[rows >= 0]]

    def user_histories(self, users: Any, max_len: int) -> Histories:
        """The users' items from the run's graph (time order when it has times), as index rows.

        Raises:
            InputError: the run has no usable graph.
            NotFound: users not in the graph.
        """
        if self.graph is None:
            why = self.meta.get("graph_note") or "the run has no graph"
            raise InputError(f"users cannot be looked up ({why}); give a history of items instead")
        try:
            groups = group_rows(self.graph, users, where="user")
        except InputError as exc:
            raise NotFound(str(exc)) from exc
        indptr, items = group_histories(self.graph, groups, max_len)
        return Histories(indptr, items)  # graph item j is row j of ids, and so of the index

    def titles_of(self, ids: np.ndarray) -> np.ndarray | None:
        """Titles of result ids (any shape; padding gets None), or None when the run has none."""
        if self.titles is None:
            return None
        flat = np.asarray(ids, dtype=object).reshape(-1)
        rows = np.asarray(self.lookup.get_indexer(lookup_keys(flat)), dtype=np.int64)
        out = np.full(flat.shape, None, dtype=object)
        out[rows >= 0] = self.titles[rows[rows >= 0]]
        return out.reshape(np.shape(ids))


class RunHolder:
    """The run being served, behind one reference that :meth:`reload` replaces.

    Args:
        path: the run directory (read again by every reload).

    Raises:
        InputError: the first load failed.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()  # one reload at a time; readers never take it
        self._current = ServedRun.load(self.path, generation=0)

    @property
    def current(self) -> ServedRun:
        """The run to answer a request from (read once per request)."""
        return self._current

    def reload(self) -> ServedRun:
        """Build the run anew from :attr:`path`, then swap it in; the current one stays on failure.

        Raises:
            InputError: the run directory cannot be loaded now (nothing was replaced).
        """
        with self._lock:
            new = ServedRun.load(self.path, generation=self._current.generation + 1)
            self._current = new  # one reference assignment: requests see the old run or the new one
        return new

    def reload_logged(self) -> None:
        """:meth:`reload`, reporting the outcome on stderr (for SIGHUP, which has no one to answer)."""
        try:
            new = self.reload()
        except Exception as exc:  # a signal handler's thread has no one to raise to: report and keep serving
            why = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
            print(f"pinsage serve: reload failed, still serving generation {self._current.generation}: {why}",
                  file=sys.stderr, flush=True)
            return
        print(f"pinsage serve: reloaded {self.path}: generation {new.generation}, {new.meta['items']} items, "
              f"{new.index.kind} index", file=sys.stderr, flush=True)

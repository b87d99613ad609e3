"""What the server answers from: one loaded run (:class:`ServedRun`) behind one reference (:class:`RunHolder`).

A :class:`ServedRun` is built completely (embeddings, ids, index, titles, graph, metadata) before it is
served and never changes afterwards. :meth:`RunHolder.reload` builds a new one from the run directory
(a run that ``pinsage train`` renamed onto it, an index ``pinsage index`` rewrote, or a symbolic link
pointed at another run) and then replaces the holder's single reference to it: one assignment, atomic
under the GIL. Every request reads :attr:`RunHolder.current` once and answers from that object alone,
so requests in flight during a reload finish on the run they started with, and the old run is freed
when the last of them is done. A reload that fails leaves the current run in place.

In a server of several worker processes (``pinsage serve --workers N``) each worker has its own
:class:`RunHolder` over the counters of :mod:`pinsage.serve.reloads`: a reload one worker makes is
published there once its load succeeded, and :meth:`RunHolder.sync` (a thread, :func:`watch`) makes
every other worker follow it, and takes up the reloads the supervisor was asked for by SIGHUP.

Nothing here imports fastapi: :mod:`pinsage.serve.app` is the HTTP layer.
"""
from __future__ import annotations

import io
import logging
import os
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
from pinsage.index.exclusions import Exclusions, related_rows
from pinsage.index.histories import Histories
from pinsage.run import RunDir
from pinsage.serve.reloads import POLL_S, SharedReloads

__all__ = ["NotFound", "TooLarge", "ServedRun", "RunHolder", "watch"]

log = logging.getLogger(__name__)


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
    def _fast_rows(self, vals: list) -> list[int] | None:
        """Rows of a few ids by one hash lookup each (a few microseconds), or None to take the general path.

        Takes ids that need no conversion beyond ``int("42")`` on an integer run (JSON numbers, plain
        decimal text) and strings on a run of string ids; anything else (``"42.0"``, ``"-7"``, floats,
        a string run asked for a number) is left to :func:`pinsage.ids.coerce_ids`, so both paths find
        the same rows.
        """
        kind = self.ids.dtype.kind
        get_loc = self.lookup.get_loc
        out = []
        for v in vals:
            if kind in "iu":
                if type(v) is int:
                    key: Any = v
                elif type(v) is str and v.isascii() and v.isdigit():
                    key = int(v)
                else:
                    return None
            elif kind in "OU" and type(v) is str:
                key = v
            else:
                return None
            try:
                row = get_loc(key)
            except KeyError:
                row = -1
            except TypeError:
                return None
            if not isinstance(row, (int, np.integer)):  # not one position: leave it to the general path
                return None
            out.append(int(row))
        return out

    def _lookup_rows(self, values: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(ids as given, their rows; -1 where not an item)``.

        Up to 16 ids go through :meth:`_fast_rows` (one hash lookup each in the run's
        :attr:`lookup`, built once at load). More, or ids that need converting, go through numpy's
        parsing on integer runs (ids given as JSON numbers or plain decimal text) and else through
        :func:`pinsage.ids.coerce_ids` (``"42.0"``, text that is no number), which costs about a
        millisecond of pandas work per request.
        """
        if isinstance(values, list) and len(values) <= 16:
            fast = self._fast_rows(values)
            if fast is not None:
                return np.asarray(values, dtype=object).reshape(-1), np.asarray(fast, dtype=np.int64)
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

    def known_rows(self, values: Any) -> np.ndarray:
        """Distinct sorted rows of the run's items among ``values`` (the others dropped)."""
        _, rows = self._lookup_rows(list(values) if not isinstance(values, list) else values)
        return np.unique(rows[rows >= 0])

    def related(self, rows: np.ndarray, k: int, exclusions: Exclusions) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best rows for each query row, the query item and ``exclusions`` left out.

        What :meth:`pinsage.index.ItemIndex.related` computes (the same faiss index searched for the
        same number of neighbours, the same :func:`pinsage.index.exclusions.related_rows`), from rows
        the server has already looked up, without mapping ids to rows a second time.

        Shapes:
            - **rows:** :math:`(q,)` int64.
            - **output:** rows and float32 scores, :math:`(q, k)` each; row ``-1`` and score ``NaN``
              where fewer than ``k`` results remain.
        """
        index = self.index.faiss_index

        def search(x: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
            return index.search(x, kk)  # kk is at most the number of items (Exclusions.fetch_size)

        vectors = np.ascontiguousarray(index.reconstruct_batch(rows), dtype=np.float32)
        return related_rows(search, vectors, rows, k, exclusions)

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

    def titles_of_rows(self, rows: np.ndarray) -> np.ndarray | None:
        """Titles of rows (any shape; ``-1`` gets None), or None when the run has none."""
        if self.titles is None:
            return None
        out = np.full(np.shape(rows), None, dtype=object)
        valid = rows >= 0
        out[valid] = self.titles[rows[valid]]
        return out

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
        shared: the counters of a multi-worker server (:class:`~pinsage.serve.reloads.SharedReloads`):
            this holder is one worker's, a reload is published to the others, and :meth:`sync`
            follows theirs. None for a server of one process.

    Raises:
        InputError: the first load failed.
    """

    def __init__(self, path: str | os.PathLike, shared: SharedReloads | None = None) -> None:
        self.path = Path(path)
        self.shared = shared
        self._lock = threading.Lock()  # one reload at a time in this process; readers never take it
        self._failed: tuple[int, float] | None = None  # (generation, when) of the last failed follow
        self._current = ServedRun.load(self.path, generation=shared.generation() if shared else 0)

    @property
    def current(self) -> ServedRun:
        """The run to answer a request from (read once per request)."""
        return self._current

    def _swap_in_new(self) -> ServedRun:
        """Load the next generation and swap it in (holding ``_lock``, and the shared lock if any)."""
        base = self._current.generation
        if self.shared is not None:
            base = max(base, self.shared.generation())
        new = ServedRun.load(self.path, generation=base + 1)
        if self.shared is not None:
            self.shared.publish(new.generation)  # only now: a failed load moves no worker
        self._current = new  # one reference assignment: requests see the old run or the new one
        return new

    def reload(self) -> ServedRun:
        """Build the run anew from :attr:`path`, then swap it in; the current one stays on failure.

        In a multi-worker server the new generation is then published, and every other worker loads
        the run too (:meth:`sync`).

        Raises:
            InputError: the run directory cannot be loaded now (nothing was replaced, nothing published).
        """
        with self._lock:
            if self.shared is None:
                return self._swap_in_new()
            with self.shared.locked():
                return self._swap_in_new()

    def sync(self, retry_s: float = 5.0) -> None:
        """One check of a worker's watch (a no-op without :attr:`shared`).

        Follows a generation another worker published (loading the run itself; a failure is reported
        and retried after ``retry_s`` seconds), then takes up a reload the supervisor was asked for by
        SIGHUP if no other worker is already at it.
        """
        shared = self.shared
        if shared is None:
            return
        target = shared.generation()
        if target > self._current.generation and not (
                self._failed and self._failed[0] == target and time.monotonic() - self._failed[1] < retry_s):
            with self._lock:
                if target > self._current.generation:
                    try:
                        new = ServedRun.load(self.path, generation=target)
                    except Exception as exc:
                        self._failed = (target, time.monotonic())
                        log.warning("worker %d could not follow the reload to generation %d, still serving "
                                    "generation %d (trying again in %gs): %s", os.getpid(), target,
                                    self._current.generation, retry_s, _why(exc))
                    else:
                        self._current, self._failed = new, None
                        log.info("worker %d followed the reload: %s", os.getpid(), _loaded(new))
        if shared.requested() > shared.handled():
            with self._lock, shared.locked(wait=False) as mine:
                requested = shared.requested()
                if mine and requested > shared.handled():
                    try:
                        new = self._swap_in_new()
                    except Exception as exc:
                        log.warning("reload (SIGHUP) failed in worker %d, every worker still serves generation "
                                    "%d: %s", os.getpid(), self._current.generation, _why(exc))
                    else:
                        log.info("worker %d reloaded (SIGHUP): %s", os.getpid(), _loaded(new))
                    finally:
                        shared.mark_handled(requested)

    def reload_logged(self) -> None:
        """:meth:`reload`, reporting the outcome on stderr (for SIGHUP, which has no one to answer)."""
        try:
            new = self.reload()
        except Exception as exc:  # a signal handler's thread has no one to raise to: report and keep serving
            log.warning("reload failed, still serving generation %d: %s", self._current.generation, _why(exc))
            return
        log.info("reloaded %s", _loaded(new))


def _why(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"


def _loaded(run: ServedRun) -> str:
    return f"{run.path}: generation {run.generation}, {run.meta['items']} items, {run.index.kind} index"


def watch(holder: RunHolder, stop: threading.Event, every: float = POLL_S) -> threading.Thread:
    """Start a daemon thread calling ``holder.sync()`` every ``every`` seconds until ``stop`` is set."""
    def loop() -> None:
        while not stop.wait(every):
            try:
                holder.sync()
            except Exception as exc:  # keep watching: the next check may do better
                log.warning("worker %d: reload watch: %s", os.getpid(), _why(exc))

    thread = threading.Thread(target=loop, name="pinsage-reload-watch", daemon=True)
    thread.start()
    return thread

"""The HTTP API of ``pinsage serve``: a FastAPI application over one :class:`~pinsage.serve.state.RunHolder`.

Endpoints (JSON in and out; ``docs/serve.md`` has examples):

===========================  ==================================================================
``GET /health``              ``{"status": "ok", "generation", "items"}``
``GET /meta``                the run: items, dim, index kind / metric / params, config hash, limits
``GET /related``             ``?item=ID`` (repeatable) ``&k=10&exclude=ID...&titles=true``
``POST /related``            ``{"items": [...], "k": 10, "exclude": [...] or [[...], ...], "titles": true}``
``GET /recommend``           ``?user=ID`` or ``?item=ID&item=ID...`` (a history, oldest first) ``&n=10...``
``POST /recommend``          ``{"user" | "users" | "history" | "histories": ..., "n": 10, "method", ...}``
``POST /reload``             read the run directory again and swap it in (also on SIGHUP)
===========================  ==================================================================

A small ``/related`` request (at most ``Limits.inline_results`` results: one item at the default
``k=10``) is answered on the event loop's thread, with no hand-off to a worker thread: the hand-off
and the GIL passed back and forth cost more CPU than the search itself (a 1M-item HNSW search takes
about 0.2 ms). Larger ``/related`` batches and every ``/recommend`` run in the worker thread pool
(``Limits.threads`` threads, each searching with one faiss thread; faiss releases the GIL while it
searches), so a big batch does not hold up the small requests behind it. More cores are used by more
processes (``pinsage serve --workers N``). Each request takes the current run once, so a reload never
changes the run under a request in flight. Errors are JSON ``{"detail": "..."}`` naming the problem:
404 for unknown item or user ids, 413 for a request over a limit (body size, ids, history length),
422 for a bad parameter, 409 when a reload fails; never a traceback.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
from contextlib import asynccontextmanager
from typing import Any, Literal, Optional, Union

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.responses import Response

try:  # optional (in the serve extra): renders a response in a few microseconds instead of tens
    import orjson
except ImportError:  # pragma: no cover - the json module does the same job, slower
    orjson = None

from pinsage._io import InputError
from pinsage.ids import py_scalar
from pinsage.index import set_num_threads
from pinsage.index.exclusions import Exclusions
from pinsage.index.histories import Histories
from pinsage.serve.limits import BodyLimit, Limits
from pinsage.serve.state import NotFound, RunHolder, ServedRun, TooLarge, watch

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pinsage")
    except PackageNotFoundError:  # a source tree that was not installed
        return "unknown"

Id = Union[int, str]


class JSON(Response):
    """A JSON response rendered straight away (no per-field encoder walk): by ``orjson`` when it is
    installed, else (or for what orjson refuses, such as integers beyond 64 bits) by :func:`json.dumps`;
    both write the same compact UTF-8 JSON."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if orjson is not None:
            try:
                return orjson.dumps(content)
            except TypeError:  # orjson.JSONEncodeError: let json say what it makes of it
                pass
        return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


class RelatedRequest(BaseModel):
    """``POST /related``: related items of many items."""

    model_config = ConfigDict(extra="forbid")
    items: list[Id]
    k: int = 10
    exclude: Optional[Union[list[Id], list[Optional[list[Id]]]]] = None
    titles: bool = True


class RecommendRequest(BaseModel):
    """``POST /recommend``: items for users of the run's graph or for histories (exactly one of the four)."""

    model_config = ConfigDict(extra="forbid")
    user: Optional[Id] = None
    users: Optional[list[Id]] = None
    history: Optional[list[Id]] = None
    histories: Optional[list[list[Id]]] = None
    n: int = 10
    method: Literal["recency", "interests"] = "recency"
    half_life: Optional[float] = 10.0
    clusters: int = 3
    filter_already_liked_items: bool = True
    exclude: Optional[list[Id]] = None
    titles: bool = True


# -------------------------------------------------------------------------------------------- helpers
_local = threading.local()


def _one_faiss_thread() -> None:
    """Search with one OpenMP thread in this worker thread (set once per thread: OpenMP's thread count
    is per calling thread); the server's concurrency comes from its worker threads."""
    if not getattr(_local, "faiss_threads_set", False):
        set_num_threads(int(os.environ.get("PINSAGE_SERVE_FAISS_THREADS", "1")))
        _local.faiss_threads_set = True


def _check_count(what: str, count: int, limit: int) -> None:
    if count > limit:
        raise TooLarge(f"{what}: {count} given, the limit is {limit}")


def _check_k(name: str, k: int, limits: Limits) -> None:
    if k < 1 or k > limits.max_k:
        raise InputError(f"{name} must be between 1 and {limits.max_k}, got {k}")


def _entries(state: ServedRun, ids: np.ndarray, scores: np.ndarray, titles: bool, *,
             rows: np.ndarray | None = None) -> list[list[dict]]:
    """Per query, ``[{"item", "score"(, "title")}, ...]`` best first, padding left out.

    Args:
        ids: result ids, or None when ``rows`` are given (row ``-1``: padding).
        rows: result rows of the run instead of ids.

    Shapes:
        - **ids or rows, scores:** :math:`(q, k)`.
    """
    valid = np.isfinite(scores)
    if rows is not None:
        valid &= rows >= 0
        names = state.titles_of_rows(rows) if titles else None
        ids = state.ids[np.where(valid, rows, 0)]
    else:
        names = state.titles_of(ids) if titles else None
    rounded = np.round(scores.astype(np.float64), 6)
    out = []
    for i in range(ids.shape[0]):  # one step per query; the items of a row go through tolist()
        keep = valid[i]
        items, vals = ids[i][keep].tolist(), rounded[i][keep].tolist()
        if names is None:
            out.append([{"item": a, "score": s} for a, s in zip(items, vals)])
        else:
            out.append([{"item": a, "score": s, "title": t} for a, s, t in zip(items, vals, names[i][keep].tolist())])
    return out


def _exclusions(state: ServedRun, exclude: Any, n_queries: int, limits: Limits) -> Exclusions:
    """Request exclusions as rows of the run: one flat list for every query, or one list (or None) per
    query; ids that are not items of the run are ignored."""
    n = len(state.ids)
    if not exclude:
        return Exclusions.none(n)
    per_query = all(e is None or isinstance(e, list) for e in exclude)
    if not per_query:
        _check_count("exclude", len(exclude), limits.max_exclude)
        return Exclusions.parse(list(exclude), n_queries, n, state.known_rows)
    if len(exclude) != n_queries:
        raise InputError(f"exclude: {len(exclude)} lists for {n_queries} queries; give one list per query "
                         "or one flat list for all")
    lists = [e or [] for e in exclude]
    _check_count("exclude", sum(len(e) for e in lists), limits.max_exclude)
    return Exclusions.parse(lists, n_queries, n, state.known_rows)


def _cost(items: list, k: Any, exclude: Any) -> int:
    """Results a ``/related`` request asks the index for, about: queries x (k + excluded ids)."""
    excluded = sum(len(e) if isinstance(e, list) else 1 for e in exclude or () if e is not None)
    return len(items) * ((k if isinstance(k, int) else 10) + excluded)


def _related(state: ServedRun, items: list, k: int, exclude: Any, titles: bool, limits: Limits) -> dict:
    _check_count("items", len(items), limits.max_batch)
    if not items:
        raise InputError("items: give at least one item id")
    _check_k("k", k, limits)
    rows = state.rows_of(items)
    found, scores = state.related(rows, k, _exclusions(state, exclude, len(rows), limits))
    entries = _entries(state, None, scores, titles, rows=found)
    queries = state.ids[rows]
    qtitles = state.titles_of_rows(rows) if titles else None
    results = []
    for i, q in enumerate(queries.tolist()):
        r: dict[str, Any] = {"item": q}
        if qtitles is not None:
            r["title"] = qtitles[i]
        r["related"] = entries[i]
        results.append(r)
    return {"k": k, "generation": state.generation, "results": results}


def _recommend(state: ServedRun, req: RecommendRequest, limits: Limits) -> dict:
    given = [name for name in ("user", "users", "history", "histories") if getattr(req, name) is not None]
    if len(given) != 1:
        raise InputError("give exactly one of user, users, history, histories"
                         + (f" (got {', '.join(given)})" if given else ""))
    _check_k("n", req.n, limits)
    if req.clusters < 1 or req.clusters > 64:
        raise InputError(f"clusters must be between 1 and 64, got {req.clusters}")
    labels: list[dict]
    half_life = req.half_life
    if req.user is not None or req.users is not None:
        users = [req.user] if req.user is not None else req.users
        _check_count("users", len(users), limits.max_batch)
        if not users:
            raise InputError("users: give at least one user id")
        histories = state.user_histories(users, limits.max_history)
        if not state.meta.get("ordered_by_time"):
            half_life = None  # the graph keeps no order of a user's items: all weigh alike
        labels = [{"user": py_scalar(u)} for u in users]
    else:
        hists = [req.history] if req.history is not None else req.histories
        _check_count("histories", len(hists), limits.max_batch)
        if not hists:
            raise InputError("histories: give at least one history")
        for i, h in enumerate(hists):
            _check_count(f"history {i}", len(h), limits.max_history)
        histories, _ = Histories.from_ids([h for h in hists], state.rows_of)
        labels = [{"history_length": len(h)} for h in hists]
    _check_count("exclude", len(req.exclude or ()), limits.max_exclude)
    filter_items = state.known(req.exclude) if req.exclude else None
    ids, scores = state.index.recommend(histories, N=req.n, filter_already_liked_items=req.filter_already_liked_items,
                                        filter_items=filter_items, method=req.method, half_life=half_life,
                                        clusters=req.clusters)
    entries = _entries(state, ids, scores, req.titles)
    results = [{**label, "items": e} for label, e in zip(labels, entries)]
    return {"n": req.n, "method": req.method, "generation": state.generation, "results": results}


_INTEGER = re.compile(r"[+-]?[0-9]+")
_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})


def _int_param(params: QueryParams, name: str, default: int) -> int:
    value = params.get(name)
    if value is None:
        return default
    text = value.strip()
    if not _INTEGER.fullmatch(text):
        raise InputError(f"{name}: Input should be a valid integer, unable to parse string as an integer")
    return int(text)


def _bool_param(params: QueryParams, name: str, default: bool) -> bool:
    value = params.get(name)
    if value is None:
        return default
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InputError(f"{name}: Input should be a valid boolean, unable to interpret input")


def _related_query(params: QueryParams) -> tuple[list[str], int, list[str], bool]:
    """``GET /related``'s parameters (``item`` repeatable, ``k``, ``exclude`` repeatable, ``titles``),
    read straight from the query string: the same values and messages as FastAPI's parameter models,
    without their cost on the busiest endpoint."""
    items = params.getlist("item")
    if not items:
        raise InputError("item: Field required")
    return items, _int_param(params, "k", 10), params.getlist("exclude"), _bool_param(params, "titles", True)


def _query_parameter(name: str, schema: dict, description: str, required: bool = False) -> dict:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


_RELATED_GET_PARAMETERS = [
    _query_parameter("item", {"type": "array", "items": {"type": "string"}}, "item id, repeatable", required=True),
    _query_parameter("k", {"type": "integer", "default": 10}, "results per item"),
    _query_parameter("exclude", {"type": "array", "items": {"type": "string"}},
                     "item id never to return, repeatable"),
    _query_parameter("titles", {"type": "boolean", "default": True}, "add the items' titles"),
]


def _validation_message(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        why = (first.get("ctx") or {}).get("error", "")
        return f"request body is not valid JSON{': ' + why if why else ''} (at character {first['loc'][-1]})"
    loc = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{loc or 'request'}: {first.get('msg', 'invalid')}{more}"


# -------------------------------------------------------------------------------------------- the app
def _detail_response(status: int):
    """An exception handler answering ``{"detail": message}`` with ``status``."""
    async def handler(request: Request, exc: Exception) -> Response:
        return JSON({"detail": str(exc)}, status_code=status)
    return handler


def create_app(run_dir: str | os.PathLike | None = None, limits: Limits | None = None, *,
               holder: RunHolder | None = None) -> FastAPI:
    """The FastAPI application serving one run.

    Args:
        run_dir: the run directory (loaded now; ignored when ``holder`` is given).
        limits: the bounds on requests and worker threads (:class:`~pinsage.serve.limits.Limits`).
        holder: an already loaded run (``pinsage serve`` passes its own, to reload it on SIGHUP).

    Returns:
        The application; ``app.state.holder`` is its :class:`~pinsage.serve.state.RunHolder`.

    Raises:
        InputError: the run cannot be loaded.
    """
    limits = limits or Limits()
    if holder is None:
        if run_dir is None:
            raise InputError("create_app: give run_dir or holder")
        holder = RunHolder(run_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = limits.threads
        _one_faiss_thread()  # the event loop's thread answers the small requests itself
        stop = threading.Event()
        watcher = watch(holder, stop) if holder.shared is not None else None  # a worker of several
        try:
            yield
        finally:
            stop.set()
            if watcher is not None:
                watcher.join(timeout=1)

    app = FastAPI(title="pinsage", version=_version(), lifespan=lifespan,
                  description="Related items and recommendations from a pinsage run.")
    app.state.holder = holder
    app.state.limits = limits
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)

    for error, status in ((NotFound, 404), (TooLarge, 413), (InputError, 422)):
        app.add_exception_handler(error, _detail_response(status))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return JSON({"detail": _validation_message(exc)}, status_code=422)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:  # never a traceback to the client
        return JSON({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)

    @app.get("/health")
    async def health() -> Response:
        state = holder.current
        return JSON({"status": "ok", "generation": state.generation, "items": len(state.ids), "pid": os.getpid()})

    @app.get("/meta")
    async def meta() -> Response:
        return JSON({**holder.current.meta, "limits": limits.as_dict(), "version": app.version})

    def related_in_thread(state: ServedRun, items: list, k: int, exclude: Any, titles: bool) -> dict:
        _one_faiss_thread()
        return _related(state, items, k, exclude, titles, limits)

    async def related(items: list, k: int, exclude: Any, titles: bool) -> Response:
        state = holder.current  # once: a reload in the meantime does not change this request's run
        if _cost(items, k, exclude) <= limits.inline_results:
            return JSON(_related(state, items, k, exclude, titles, limits))
        return JSON(await run_in_threadpool(related_in_thread, state, items, k, exclude, titles))

    @app.get("/related", openapi_extra={"parameters": _RELATED_GET_PARAMETERS})
    async def related_get(request: Request) -> Response:
        return await related(*_related_query(request.query_params))

    @app.post("/related")
    async def related_post(req: RelatedRequest) -> Response:
        return await related(req.items, req.k, req.exclude, req.titles)

    @app.get("/recommend")
    def recommend_get(user: Optional[str] = None,
                      item: list[str] = Query([], description="a history's item ids, oldest first"),
                      n: int = 10, method: Literal["recency", "interests"] = "recency",
                      half_life: Optional[float] = 10.0, clusters: int = 3,
                      filter_already_liked_items: bool = True, titles: bool = True) -> Response:
        _one_faiss_thread()
        req = RecommendRequest(user=user, history=item or None, n=n, method=method, half_life=half_life,
                               clusters=clusters, filter_already_liked_items=filter_already_liked_items,
                               titles=titles)
        return JSON(_recommend(holder.current, req, limits))

    @app.post("/recommend")
    def recommend_post(req: RecommendRequest) -> Response:
        _one_faiss_thread()
        return JSON(_recommend(holder.current, req, limits))

    @app.post("/reload")
    def reload() -> Response:
        before = holder.current.generation
        try:
            new = holder.reload()
        except InputError as exc:
            log.warning("reload (POST /reload) failed, still serving generation %d: %s", before, exc)
            return JSON({"detail": f"reload failed, still serving generation {before}: {exc}"}, status_code=409)
        log.info("reloaded (POST /reload, pid %d): %s: generation %d, %d items, %s index", os.getpid(),
                 new.path, new.generation, new.meta["items"], new.index.kind)
        return JSON({"reloaded": True, "generation": new.generation, "pid": os.getpid(), "meta": new.meta})

    return app

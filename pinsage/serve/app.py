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

The search endpoints are plain functions, so they run in the worker thread pool (``Limits.threads``
threads, each searching with one faiss thread): faiss releases the GIL while it searches, so
concurrent requests use the cores. Each request takes the current run once, so a reload never
changes the run under a request in flight. Errors are JSON ``{"detail": "..."}`` naming the problem:
404 for unknown item or user ids, 413 for a request over a limit (body size, ids, history length),
422 for a bad parameter, 409 when a reload fails; never a traceback.
"""
from __future__ import annotations

import json
import os
import threading
from contextlib import asynccontextmanager
from typing import Any, Literal, Optional, Union

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from pinsage._io import InputError
from pinsage.ids import py_scalar
from pinsage.index import set_num_threads
from pinsage.index.histories import Histories
from pinsage.serve.limits import BodyLimit, Limits
from pinsage.serve.state import NotFound, RunHolder, ServedRun, TooLarge

__all__ = ["create_app"]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pinsage")
    except PackageNotFoundError:  # a source tree that was not installed
        return "unknown"

Id = Union[int, str]


class JSON(Response):
    """A JSON response rendered by :func:`json.dumps` straight away (no per-field encoder walk)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
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


def _entries(state: ServedRun, ids: np.ndarray, scores: np.ndarray, titles: bool) -> list[list[dict]]:
    """Per query, ``[{"item", "score"(, "title")}, ...]`` best first, padding left out.

    Shapes:
        - **ids, scores:** :math:`(q, k)`.
    """
    valid = np.isfinite(scores)
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


def _exclusions(state: ServedRun, exclude: Any, n_queries: int, limits: Limits) -> Any:
    """Request exclusions in the run's id type: one flat list, or one list (or None) per query."""
    if not exclude:
        return None
    per_query = all(e is None or isinstance(e, list) for e in exclude)
    if not per_query:
        _check_count("exclude", len(exclude), limits.max_exclude)
        return state.known(exclude)
    if len(exclude) != n_queries:
        raise InputError(f"exclude: {len(exclude)} lists for {n_queries} queries; give one list per query "
                         "or one flat list for all")
    lists = [e or [] for e in exclude]
    _check_count("exclude", sum(len(e) for e in lists), limits.max_exclude)
    return [state.known(e) for e in lists]


def _related(state: ServedRun, items: list, k: int, exclude: Any, titles: bool, limits: Limits) -> dict:
    _check_count("items", len(items), limits.max_batch)
    if not items:
        raise InputError("items: give at least one item id")
    _check_k("k", k, limits)
    rows = state.rows_of(items)
    queries = state.ids[rows]
    ids, scores = state.index.related(queries, k=k, exclude=_exclusions(state, exclude, len(rows), limits))
    entries = _entries(state, ids, scores, titles)
    qtitles = state.titles_of(queries) if titles else None
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
        yield

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
        return JSON({"status": "ok", "generation": state.generation, "items": len(state.ids)})

    @app.get("/meta")
    async def meta() -> Response:
        return JSON({**holder.current.meta, "limits": limits.as_dict(), "version": app.version})

    @app.get("/related")
    def related_get(item: list[str] = Query(..., description="item id, repeatable"), k: int = 10,
                    exclude: list[str] = Query([], description="item id never to return, repeatable"),
                    titles: bool = True) -> Response:
        _one_faiss_thread()
        return JSON(_related(holder.current, item, k, exclude, titles, limits))

    @app.post("/related")
    def related_post(req: RelatedRequest) -> Response:
        _one_faiss_thread()
        return JSON(_related(holder.current, req.items, req.k, req.exclude, req.titles, limits))

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
            return JSON({"detail": f"reload failed, still serving generation {before}: {exc}"}, status_code=409)
        return JSON({"reloaded": True, "generation": new.generation, "meta": new.meta})

    return app

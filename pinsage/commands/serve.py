"""``pinsage serve``: answer related items and recommendations over HTTP (FastAPI on uvicorn).

Loads the run once (its saved ``DIR/index/`` when present and current, else an exact index), then
serves the JSON endpoints of ``docs/serve.md``: ``GET/POST /related``, ``GET/POST /recommend``,
``GET /health``, ``GET /meta`` and ``POST /reload``. It binds to the loopback address 127.0.0.1
unless ``--host`` says otherwise (there is no authentication: put a proxy in front before exposing
it). ``POST /reload`` or ``kill -HUP PID`` reads DIR again (a new run renamed onto it by
``pinsage train``, a new index from ``pinsage index``, or a symbolic link pointed elsewhere) and swaps
it in once it is fully loaded; requests in flight finish on the run they started with, and a reload
that fails keeps the current run. ``--port 0`` takes a free port (printed on stderr, unless ``-q``).

``--workers N`` runs N server processes on the one port (uvicorn's supervisor), each loading its own
copy of the run, to use N cores; a reload by ``POST /reload`` (answered by any one of them) or by
SIGHUP to the supervisor's PID (printed) reaches every worker (see ``docs/serve.md``).

Needs the ``serve`` extra: ``pip install "pinsage[serve]"``.

Examples::

    pinsage serve --run runs/pins
    pinsage serve --run runs/pins --port 8080 --threads 16 --max-k 200
    pinsage serve --run runs/pins --workers 2
    curl 'http://127.0.0.1:8000/related?item=pin_00042&k=5'
"""
from __future__ import annotations

import argparse
import contextlib
import inspect
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import threading

from pinsage._io import InputError
from pinsage.serve.limits import Limits

log = logging.getLogger(__name__)

_LIMIT_FLAGS = {
    "max_k": "results per query (k of /related, n of /recommend)",
    "max_batch": "ids per request (items, users or histories)",
    "max_history": "items per history (a user's history is cut to the most recent ones)",
    "max_exclude": "ids in a request's exclusions",
    "max_body_bytes": "request body size in bytes (413 beyond)",
    "threads": "worker threads answering the larger requests (per process)",
    "max_connections": "concurrent connections (503 beyond; per process)",
    "inline_results": "a /related request of at most N results (queries x k) is answered on the event loop, "
                      "without a thread hand-off; 0: every search in the worker threads",
}
#: the limits that may be 0
_MAY_BE_ZERO = {"inline_results"}
#: the environment variable that hands a worker process its settings (``--workers`` above 1)
WORKER_ENV = "PINSAGE_SERVE_WORKER"
#: uvicorn's exit status for "failed to start": its supervisor then stops instead of starting another
_STARTUP_FAILURE = 3


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve related items and recommendations over HTTP (needs pinsage[serve])",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, metavar="DIR", help="run directory written by `pinsage train`")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    defaults = Limits()
    for name, text in _LIMIT_FLAGS.items():
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name), metavar="N",
                       help=f"{text} (default {getattr(defaults, name)})")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="server processes on the one port, each loading the run (default 1; about one per core)")
    p.add_argument("--http", default="auto", choices=["auto", "h11", "httptools"],
                   help="uvicorn's HTTP parser (default auto: httptools when installed, else h11)")
    p.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"],
                   help="uvicorn's event loop (default auto: uvloop when installed, else asyncio)")
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn's log level (default warning)")
    p.set_defaults(func=run)


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; InputError naming the address when it cannot be had."""
    if not 0 <= port <= 65535:
        raise InputError(f"--port {port}: expected 0-65535")
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        family = socket.AF_INET  # a host name
    # proto=IPPROTO_TCP: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets that say they
    # are TCP; with it on, a response's headers and body wait ~40 ms for the client's delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise InputError(f"--host {host} --port {port}: cannot listen there: {exc.strerror or exc}") from exc
    return sock


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _limits(args: argparse.Namespace) -> Limits:
    limits = Limits(**{name: getattr(args, name) for name in _LIMIT_FLAGS})
    for name in _LIMIT_FLAGS:
        low = 0 if name in _MAY_BE_ZERO else 1
        if getattr(limits, name) < low:
            raise InputError(f"--{name.replace('_', '-')} must be a {'non-negative' if low == 0 else 'positive'} "
                             f"integer, got {getattr(limits, name)}")
    if args.workers < 1:
        raise InputError(f"--workers must be a positive integer, got {args.workers}")
    return limits


def _shown(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _config(uvicorn, app, args: argparse.Namespace, limits: Limits, **more):
    """uvicorn's settings: no access log (a line per request costs more than the search), at most
    ``--max-connections`` connections, ten seconds for requests in flight to finish at shutdown."""
    return uvicorn.Config(app, http=args.http, loop=args.loop, log_level=args.log_level, access_log=False,
                          limit_concurrency=limits.max_connections, timeout_graceful_shutdown=10, **more)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from pinsage.serve.app import create_app
    except ImportError as exc:
        raise InputError(f"pinsage serve needs the serve extra ({exc.name} is missing): "
                         "pip install \"pinsage[serve]\"") from exc
    from pinsage.serve.state import RunHolder

    limits = _limits(args)
    if not _is_loopback(args.host):
        log.warning("listening on %s, reachable from other machines; the API has no authentication", args.host)
    if args.workers > 1:
        return _run_workers(args, limits, uvicorn)
    holder = RunHolder(args.run)
    app = create_app(limits=limits, holder=holder)
    sock = _bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    if hasattr(signal, "SIGHUP"):  # reload in a thread: the handler runs on the event loop's thread
        signal.signal(signal.SIGHUP, lambda signum, frame: threading.Thread(
            target=holder.reload_logged, name="pinsage-reload", daemon=True).start())
    state = holder.current
    log.info("%d items, %s index, from %s; listening on %s (POST /reload or SIGHUP reloads)",
             state.meta["items"], state.index.kind, args.run, _shown(host, port))
    uvicorn.Server(_config(uvicorn, app, args, limits)).run(sockets=[sock])
    return 0


# ------------------------------------------------------------------------------------- --workers N
def _run_workers(args: argparse.Namespace, limits: Limits, uvicorn) -> int:
    """uvicorn's supervisor over ``--workers`` processes sharing one listening socket.

    Each worker is a fresh process that builds its application with :func:`worker_app` (an import
    string, as uvicorn's multi-process mode needs) from the settings in :data:`WORKER_ENV`, and loads
    the run itself. Reloads go through the counters of :mod:`pinsage.serve.reloads` in a private
    temporary directory: ``POST /reload`` answered by any worker is published there, and SIGHUP to
    this process asks there for one (replacing uvicorn's own SIGHUP handling, which would restart the
    workers and reload nothing in place).
    """
    from uvicorn.supervisors import Multiprocess

    from pinsage.run import RunDir
    from pinsage.serve.reloads import SharedReloads

    RunDir.open(args.run)  # a plain mistake (no such run) is reported before any worker starts
    sock = _bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    try:
        with tempfile.TemporaryDirectory(prefix="pinsage-serve-") as tmp:  # removed when the server stops
            shared = SharedReloads.create(tmp)
            level = logging.getLogger("pinsage").getEffectiveLevel()
            os.environ[WORKER_ENV] = json.dumps({"run": str(args.run), "limits": limits.as_dict(), "shared": tmp,
                                                 "log_level": level})  # the spawned workers inherit it
            # timeout_worker_healthcheck: the supervisor pings each worker every half second and kills
            # one that has not answered in this long. A new worker answers only once it has imported
            # pinsage (torch included: over 10 s on a busy 2-core machine); uvicorn's default 5 s
            # would kill workers while they start
            config = _config(uvicorn, "pinsage.commands.serve:worker_app", args, limits, factory=True,
                             workers=args.workers, timeout_worker_healthcheck=60)
            if "target" in inspect.signature(Multiprocess).parameters:  # older uvicorn releases take the target
                supervisor = Multiprocess(config, target=uvicorn.Server(config).run, sockets=[sock])
            else:
                supervisor = Multiprocess(config, sockets=[sock])
            if hasattr(signal, "SIGHUP"):
                signal.signal(signal.SIGHUP, lambda signum, frame: shared.request())
            log.info("%d workers loading %s; listening on %s (POST /reload, or SIGHUP to the supervisor, PID %d, "
                     "reloads every worker)", args.workers, args.run, _shown(host, port), os.getpid())
            supervisor.run()
            failure = shared.startup_error()
    finally:
        os.environ.pop(WORKER_ENV, None)
        sock.close()
    if failure:
        raise InputError(failure)
    return 0


_worker_logging = contextlib.ExitStack()  # a worker's logging, for the life of its process


def worker_app():
    """The application of one worker process (uvicorn's factory for ``--workers`` above 1).

    Reads :data:`WORKER_ENV`, loads the run and returns :func:`pinsage.serve.app.create_app`'s
    application. A run that cannot be loaded ends the worker with uvicorn's "failed to start" status,
    the reason left for the supervisor to report, so that it stops rather than starting workers that
    fail the same way.
    """
    from pinsage.cli import cli_logging
    from pinsage.serve.app import create_app
    from pinsage.serve.reloads import SharedReloads
    from pinsage.serve.state import RunHolder

    spec = json.loads(os.environ[WORKER_ENV])
    _worker_logging.enter_context(cli_logging(int(spec.get("log_level", logging.INFO)), "serve"))
    if hasattr(signal, "SIGHUP"):  # reloads are asked of the supervisor; a worker must not die of SIGHUP
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    shared = SharedReloads(spec["shared"])
    try:
        holder = RunHolder(spec["run"], shared=shared)
    except InputError as exc:
        shared.record_startup_error(str(exc))
        log.error("worker %d could not load the run: %s", os.getpid(), exc)
        sys.stderr.flush()
        os._exit(_STARTUP_FAILURE)  # at once: a worker still exiting would leave the supervisor's ping unanswered
    state = holder.current
    log.info("worker %d ready: %d items, %s index, generation %d", os.getpid(), state.meta["items"],
             state.index.kind, state.generation)
    return create_app(limits=Limits(**spec["limits"]), holder=holder)

"""``pinsage serve``: answer related items and recommendations over HTTP (FastAPI on uvicorn).

Loads the run once (its saved ``DIR/index/`` when present and current, else an exact index), then
serves the JSON endpoints of ``docs/serve.md``: ``GET/POST /related``, ``GET/POST /recommend``,
``GET /health``, ``GET /meta`` and ``POST /reload``. It binds to the loopback address 127.0.0.1
unless ``--host`` says otherwise (there is no authentication: put a proxy in front before exposing
it). ``POST /reload`` or ``kill -HUP PID`` reads DIR again (a new run renamed onto it by
``pinsage train``, a new index from ``pinsage index``, or a symbolic link pointed elsewhere) and swaps
it in once it is fully loaded; requests in flight finish on the run they started with, and a reload
that fails keeps the current run. ``--port 0`` takes a free port (printed on stderr).

Needs the ``serve`` extra: ``pip install "pinsage[serve]"``.

Examples::

    pinsage serve --run runs/pins
    pinsage serve --run runs/pins --port 8080 --threads 16 --max-k 200
    curl 'http://127.0.0.1:8000/related?item=pin_00042&k=5'
"""
from __future__ import annotations

import argparse
import ipaddress
import signal
import socket
import sys
import threading

from pinsage._io import InputError
from pinsage.serve.limits import Limits

_LIMIT_FLAGS = {
    "max_k": "results per query (k of /related, n of /recommend)",
    "max_batch": "ids per request (items, users or histories)",
    "max_history": "items per history (a user's history is cut to the most recent ones)",
    "max_exclude": "ids in a request's exclusions",
    "max_body_bytes": "request body size in bytes (413 beyond)",
    "threads": "worker threads answering requests",
    "max_connections": "concurrent connections (503 beyond)",
}


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


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from pinsage.serve.app import create_app
    except ImportError as exc:
        raise InputError(f"pinsage serve needs the serve extra ({exc.name} is missing): "
                         "pip install \"pinsage[serve]\"") from exc
    from pinsage.serve.state import RunHolder

    limits = Limits(**{name: getattr(args, name) for name in _LIMIT_FLAGS})
    for name in _LIMIT_FLAGS:
        if getattr(limits, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(limits, name)}")
    holder = RunHolder(args.run)
    app = create_app(limits=limits, holder=holder)
    sock = _bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    if hasattr(signal, "SIGHUP"):  # reload in a thread: the handler runs on the event loop's thread
        signal.signal(signal.SIGHUP, lambda signum, frame: threading.Thread(
            target=holder.reload_logged, name="pinsage-reload", daemon=True).start())
    state = holder.current
    if not _is_loopback(args.host):
        print(f"pinsage serve: warning: listening on {args.host}, reachable from other machines; the API has "
              "no authentication", file=sys.stderr)
    shown = f"[{host}]" if ":" in host else host
    print(f"pinsage serve: {state.meta['items']} items, {state.index.kind} index, from {args.run}; "
          f"listening on http://{shown}:{port} (POST /reload or SIGHUP reloads)", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, log_level=args.log_level, access_log=False, limit_concurrency=limits.max_connections,
                            timeout_graceful_shutdown=10)
    uvicorn.Server(config).run(sockets=[sock])
    return 0

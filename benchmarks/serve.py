"""Serving benchmark: requests/s and p50 / p99 latency of ``pinsage serve`` against the same queries
answered in-process, at several concurrencies and numbers of worker processes; and a soak run with
reloads.

The server is a real ``pinsage serve`` process on a free loopback port (or ``--url``, which must be a
loopback address); the load generator is an asyncio loop (uvloop's when installed) of
``--concurrency`` clients, each on its own keep-alive connection sending ``GET /related?item=ID&k=K``
one after another (a closed loop), with a minimal HTTP/1.1 client (``--client raw``, the default:
well under a tenth of a millisecond of CPU per request) or ``httpx.AsyncClient`` (``--client httpx``).
Query ids are drawn uniformly from the run's items, so the server's answers are not cache hits (it has
no response cache). In-process, the same ids go through ``ItemIndex.related(id, k)`` from as many
threads, each searching with one faiss thread like the server's workers. The ratios (server /
in-process requests per second, and server / in-process p50 and p99 latency) are what HTTP, JSON and
the process boundary cost. Each (mode, concurrency) runs for ``--warmup`` seconds unmeasured, then
until ``--seconds`` pass or ``--requests`` are answered, whichever comes first: the load is bounded in
count and time and goes only to 127.0.0.1.

``--workers 1,2`` starts one server per value (all kept up, so the rows of one concurrency are measured
one after another, side by side) and measures each. ``--server-args`` passes more flags to ``pinsage
serve`` (``"--http h11 --loop asyncio"``, uvicorn's pure-Python fallbacks, for a comparison).

**Soak** (``--reload-every S``): one load of ``--seconds`` at the first ``--concurrency`` against each
``--workers`` value, with a reload every ``S`` seconds that alternates the served directory (a
symbolic link) between two runs of the same size (``--items``: the run of ``--seed`` and one of
``--seed + 1``; ``--run`` with ``--run-b``), so that every swap is real: other embeddings, another
index. Reloads alternate between ``POST /reload`` and SIGHUP to the server's (supervisor's) PID. Every
request counts: a status other than 200, a connection error or no answer within
``--request-timeout`` is a failure (``retried`` counts requests whose first attempt met a closed
connection and that succeeded on a new one). Reported over the whole run, outside the reloads, and in
the ``--reload-window`` seconds after each reload; per reload, when the first response of the new
generation and the last response of an older one arrived. A client connection that is refused, reset
or cut short by the server is never hidden.

The client, the server and the in-process threads share this machine's cores: on a small machine the
load generator's own CPU time is part of what is measured (``client_cpu_ms_per_request``); the
server's is the CPU of its whole process tree (supervisor and workers). ``load_avg`` before and after
each row is the 1-minute load average (the machine may be shared).

    python benchmarks/serve.py --items 100000 --seconds 10                      # a quick check
    python benchmarks/serve.py --items 1000000 --seconds 20 --workers 1,2       # the issue's 1M-item run
    python benchmarks/serve.py --items 1000000 --seconds 300 --reload-every 30 --concurrency 8 --workers 1,2
    python benchmarks/serve.py --run runs/ml --seconds 10 --concurrency 1,8

``--items N`` writes (once, then reuses) a synthetic run under ``--workdir``: N clustered embeddings
(``--dim``, 1,000 gaussian clusters, lengths in (0, 2) like PinSage's), integer ids, and an HNSW index
saved into its ``index/``. Prints a table; writes JSON to ``--json`` (default ``bench_out/serve.json``).
"""
from __future__ import annotations

import argparse
import array
import asyncio
import ipaddress
import json
import os
import platform
import resource
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pinsage.index import ItemIndex, set_num_threads  # noqa: E402
from pinsage.run import RunDir  # noqa: E402


# ---------------------------------------------------------------------------------------- the run
def make_embeddings(n: int, d: int, seed: int, clusters: int = 1000) -> np.ndarray:
    """``(n, d)`` float32: a mixture of ``clusters`` gaussians, rows given lengths ``2 sigmoid(z)``."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d), dtype=np.float32)
    x = centres[rng.integers(0, clusters, n)]
    x += 0.5 * rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x *= (2.0 / (1.0 + np.exp(-rng.standard_normal(n, dtype=np.float32))))[:, None]
    return x


def synthetic_run(workdir: Path, n: int, d: int, kind: str, seed: int) -> Path:
    """A run directory of ``n`` synthetic items with a saved ``kind`` index (reused when it exists)."""
    path = workdir / f"serve_{n}x{d}_{kind.replace(',', '_')}_s{seed}"
    spec = {"items": n, "dim": d, "kind": kind, "seed": seed}
    run = RunDir(path)
    if path.is_dir() and run.meta().get("synthetic") == spec and run.has("index"):
        print(f"reusing {path}", file=sys.stderr)
        return path
    path.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    emb = make_embeddings(n, d, seed)
    ids = np.arange(n, dtype=np.int64)
    run.write_embeddings(emb, ids)
    run.write_meta({"num_items": n, "synthetic": spec})
    run.record_checksums()
    print(f"wrote {n} x {d} embeddings in {time.perf_counter() - t:.1f}s; building the {kind} index ...",
          file=sys.stderr, flush=True)
    t = time.perf_counter()
    run.write_index(ItemIndex.build(emb, ids, kind=kind))
    print(f"built and saved the index in {time.perf_counter() - t:.1f}s", file=sys.stderr, flush=True)
    return path


def point_link(link: Path, target: Path) -> None:
    """Point the symbolic link ``link`` at ``target`` in one step (a new link renamed over the old)."""
    tmp = link.with_name(f".{link.name}.tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target.resolve(), tmp)
    os.replace(tmp, link)


# ---------------------------------------------------------------------------------------- the server
def _loopback_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = host == "localhost"
    if parts.scheme != "http" or not ok:
        raise SystemExit(f"--url {url}: the load generator only sends to a loopback http:// address")
    return url.rstrip("/")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _health(url: str, timeout: float = 2.0) -> dict | None:
    """``GET /health`` on a new connection (so that any worker may answer), or None."""
    import httpx

    try:
        r = httpx.get(url + "/health", timeout=timeout, headers={"connection": "close"})
        return r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def start_server(run: Path, threads: int | None, log: Path, timeout: float, workers: int = 1,
                 extra: list[str] | None = None, tree: Path = ROOT) -> tuple[subprocess.Popen, str]:
    """A ``pinsage serve`` process (of the source tree ``tree``) on a free loopback port, once ``workers``
    distinct processes answered."""
    port = _free_port()
    cmd = [sys.executable, "-m", "pinsage.cli", "serve", "--run", str(Path(run).absolute()), "--host", "127.0.0.1",
           "--port", str(port)] + (["--workers", str(workers)] if workers > 1 else []) \
        + (["--threads", str(threads)] if threads else []) + list(extra or [])
    env = {**os.environ, "PYTHONPATH": str(tree) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tree)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    seen: set[int] = set()
    while len(seen) < workers:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with status {proc.returncode}; see {log}")
        h = _health(url, timeout=1)
        if h is not None:
            seen.add(int(h.get("pid", 0)))
        if time.monotonic() > deadline:
            stop_server(proc)
            raise SystemExit(f"{len(seen)} of {workers} server processes answered /health within "
                             f"{timeout:.0f}s; see {log}")
        time.sleep(0.05 if h is not None else 0.2)
    return proc, url


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux ``/proc``)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def _process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``), None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def _load_avg() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


class Meter:
    """CPU seconds of this process (the load generator) and of the server's process tree over the
    measured part only."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.client_s = self.server_s = None

    @staticmethod
    def _own() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def _server(self) -> dict[int, float]:
        if self.pid is None or not Path("/proc").is_dir():
            return {}
        return {p: c for p in _tree(self.pid) if (c := _process_cpu_s(p)) is not None}

    def start(self) -> None:
        self._c0, self._s0 = self._own(), self._server()

    def stop(self) -> None:
        self.client_s = self._own() - self._c0
        s1 = self._server()
        self.server_s = sum(c - self._s0.get(p, 0.0) for p, c in s1.items()) if s1 else None

    def per_request(self, n: int) -> dict:
        out = {"client_cpu_ms_per_request": round(1e3 * self.client_s / max(1, n), 3)}
        if self.server_s is not None:
            out["server_cpu_ms_per_request"] = round(1e3 * self.server_s / max(1, n), 3)
        return out


# ---------------------------------------------------------------------------------------- load
def _summary(lat: Any, wall: float, errors: int) -> dict:
    arr = np.asarray(lat, dtype=np.float64) * 1e3
    return {"requests": int(arr.size), "errors": int(errors), "seconds": round(wall, 3),
            "rps": arr.size / wall if wall > 0 else 0.0,
            "p50_ms": float(np.percentile(arr, 50)) if arr.size else float("nan"),
            "p99_ms": float(np.percentile(arr, 99)) if arr.size else float("nan"),
            "max_ms": float(arr.max()) if arr.size else float("nan")}


class RawClient:
    """A minimal HTTP/1.1 keep-alive client on one asyncio connection: pre-formatted requests,
    responses read by their ``Content-Length``. Far cheaper per request than a general client, so that on
    a small machine the measurement is of the server rather than of the load generator.

    ``retried`` counts requests whose first attempt met a connection the server had closed (or that
    failed) and that were sent again on a new connection.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.retried = 0

    async def request(self, target: str, method: str = "GET") -> tuple[int, bytes]:
        """Send ``method target``; returns ``(status, body)`` (status 0 when the connection failed twice)."""
        head_line = f"{method} {target} HTTP/1.1\r\nHost: {self.host}\r\n"
        if method != "GET":
            head_line += "Content-Length: 0\r\n"
        data = (head_line + "\r\n").encode()
        for attempt in range(2):
            try:
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                self.writer.write(data)
                head = await self.reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                lower = head.lower()
                at = lower.find(b"content-length:")
                length = int(lower[at + 15:lower.find(b"\r\n", at)]) if at >= 0 else 0
                body = await self.reader.readexactly(length)
                if b"connection: close" in lower:
                    await self.close()
                if attempt:
                    self.retried += 1
                return status, body
            except (OSError, asyncio.IncompleteReadError, ValueError):
                await self.close()
        return 0, b""

    async def get(self, target: str) -> int:
        return (await self.request(target))[0]

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


def _target(q, k: int) -> str:
    text = str(q)
    return f"/related?item={text if text.isdigit() else quote(text)}&k={k}&titles=false"


def _generation(body: bytes) -> int:
    """The ``generation`` of a ``/related`` answer (-1 when it has none)."""
    at = body.find(b'"generation":')
    if at < 0:
        return -1
    end = body.find(b",", at)
    try:
        return int(body[at + 13:end])
    except ValueError:
        return -1


if hasattr(asyncio, "timeout"):
    _timeout = asyncio.timeout
else:  # Python 3.10
    _timeout = None


async def _bounded(coro, seconds: float):
    if _timeout is not None:
        async with _timeout(seconds):
            return await coro
    return await asyncio.wait_for(coro, seconds)


async def _raw_level(url: str, queries: np.ndarray, k: int, concurrency: int, seconds: float, meter: Meter,
                     max_requests: int, warmup: float) -> dict:
    parts = urlsplit(url)
    clients = [RawClient(parts.hostname, parts.port or 80) for _ in range(concurrency)]
    lat: list[float] = []
    errors = 0
    kinds: dict[str, int] = {}
    nxt = 0
    phase = {"measure": False, "deadline": time.perf_counter() + warmup}

    async def worker(client: RawClient) -> None:
        nonlocal nxt, errors
        while time.perf_counter() < phase["deadline"] and (not phase["measure"] or len(lat) < max_requests):
            q = queries[nxt % len(queries)]
            nxt += 1
            t = time.perf_counter()
            status = await client.get(_target(q, k))
            if phase["measure"]:
                if status == 200:
                    lat.append(time.perf_counter() - t)
                else:
                    errors += 1
                    kind = "connection" if status == 0 else f"status {status}"
                    kinds[kind] = kinds.get(kind, 0) + 1

    try:
        await asyncio.gather(*(worker(c) for c in clients))  # warm-up
        phase.update(measure=True, deadline=time.perf_counter() + seconds)
        retried0 = sum(c.retried for c in clients)
        meter.start()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in clients))
        wall = time.perf_counter() - t0
        meter.stop()
    finally:
        for c in clients:
            await c.close()
    return {**_summary(lat, wall, errors), "error_kinds": kinds, "retried": sum(c.retried for c in clients) - retried0}


async def _http_level(url: str, queries: np.ndarray, k: int, concurrency: int, seconds: float, meter: Meter,
                      max_requests: int, warmup: float) -> dict:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    lat: list[float] = []
    errors = 0
    nxt = 0
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        phase = {"measure": False, "deadline": time.perf_counter() + warmup}

        async def worker() -> None:
            nonlocal nxt, errors
            while time.perf_counter() < phase["deadline"] and (not phase["measure"] or len(lat) < max_requests):
                q = queries[nxt % len(queries)]
                nxt += 1
                t = time.perf_counter()
                try:
                    r = await client.get("/related", params={"item": str(q), "k": k, "titles": "false"})
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if phase["measure"]:
                    if ok:
                        lat.append(time.perf_counter() - t)
                    else:
                        errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))  # warm-up
        phase.update(measure=True, deadline=time.perf_counter() + seconds)
        meter.start()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
        meter.stop()
    return _summary(lat, wall, errors)


def _inprocess_level(index: ItemIndex, queries: np.ndarray, k: int, concurrency: int, seconds: float,
                     max_requests: int, warmup: float) -> dict:
    lock = threading.Lock()
    state = {"next": 0, "measure": False, "deadline": time.perf_counter() + warmup}
    lat: list[float] = []

    def worker() -> None:
        set_num_threads(1)  # per thread, as the server's workers do
        while True:
            with lock:
                if time.perf_counter() >= state["deadline"] or (state["measure"] and len(lat) >= max_requests):
                    return
                q = queries[state["next"] % len(queries)]
                state["next"] += 1
            t = time.perf_counter()
            index.related(q, k=k)
            dt = time.perf_counter() - t
            if state["measure"]:
                with lock:
                    lat.append(dt)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda _: worker(), range(concurrency)))  # warm-up
        state.update(measure=True, deadline=time.perf_counter() + seconds)
        t0 = time.perf_counter()
        list(pool.map(lambda _: worker(), range(concurrency)))
        wall = time.perf_counter() - t0
    return _summary(lat[:max_requests], wall, 0)


# ---------------------------------------------------------------------------------------- soak
async def _soak(url: str, pid: int | None, queries: np.ndarray, k: int, concurrency: int, seconds: float,
                max_requests: int, warmup: float, reload_every: float, window: float, request_timeout: float,
                flip, meter: Meter) -> dict:
    """``seconds`` of closed-loop load with a reload every ``reload_every`` seconds (``flip(i)`` points the
    served directory at the other run first); every request's start, latency and generation are kept."""
    parts = urlsplit(url)
    clients = [RawClient(parts.hostname, parts.port or 80) for _ in range(concurrency)]
    starts, lats, gens = array.array("d"), array.array("d"), array.array("q")
    failures: list[tuple[float, str]] = []
    nxt = 0
    phase = {"measure": False, "deadline": time.perf_counter() + warmup}
    t0 = 0.0

    async def worker(client: RawClient) -> None:
        nonlocal nxt
        while time.perf_counter() < phase["deadline"] and (not phase["measure"] or len(lats) < max_requests):
            q = queries[nxt % len(queries)]
            nxt += 1
            t = time.perf_counter()
            try:
                status, body = await _bounded(client.request(_target(q, k)), request_timeout)
            except (TimeoutError, asyncio.TimeoutError):
                status, body = -1, b""
                await client.close()
            if not phase["measure"]:
                continue
            if status == 200:
                starts.append(t - t0)
                lats.append(time.perf_counter() - t)
                gens.append(_generation(body))
            else:
                failures.append((t - t0, "timeout" if status == -1 else "connection" if status == 0 else
                                 f"status {status}"))

    reloads: list[dict] = []

    async def reloader() -> None:
        control = RawClient(parts.hostname, parts.port or 80)
        i = 0
        try:
            while True:
                at = (i + 1) * reload_every
                wait = t0 + at - time.perf_counter()
                if at >= seconds or wait < 0:
                    return
                await asyncio.sleep(wait)
                target = flip(i)
                how = "SIGHUP" if (i % 2 == 1 and pid is not None) else "POST /reload"
                t = time.perf_counter()
                rec = {"at_s": round(t - t0, 3), "how": how, "to": str(target)}
                if how == "SIGHUP":
                    os.kill(pid, signal.SIGHUP)
                else:
                    status, body = await _bounded(control.request("/reload", "POST"), 600)
                    rec.update(status=status, seconds=round(time.perf_counter() - t, 3))
                    if status == 200:
                        rec["generation"] = json.loads(body).get("generation")
                reloads.append(rec)
                i += 1
        finally:
            await control.close()

    try:
        await asyncio.gather(*(worker(c) for c in clients))  # warm-up
        phase.update(measure=True, deadline=time.perf_counter() + seconds)
        retried0 = sum(c.retried for c in clients)
        meter.start()
        t0 = time.perf_counter()
        await asyncio.gather(reloader(), *(worker(c) for c in clients))
        wall = time.perf_counter() - t0
        meter.stop()
    finally:
        for c in clients:
            await c.close()
    st, lt, gn = (np.frombuffer(a, dtype=np.float64 if a.typecode == "d" else np.int64) for a in (starts, lats, gens))
    near = np.zeros(st.shape, dtype=bool)
    for r in reloads:
        near |= (st >= r["at_s"]) & (st < r["at_s"] + window)
    fail_t = np.asarray([f[0] for f in failures], dtype=np.float64)
    n_near_fail = int(sum(((fail_t >= r["at_s"]) & (fail_t < r["at_s"] + window)).sum() for r in reloads)) \
        if failures else 0
    spans = [(r["at_s"], r["at_s"] + window) for r in reloads]
    near_s = sum(min(b, wall) - a for a, b in spans)  # windows do not overlap when window <= reload_every
    start_gen = int(gn[0]) if gn.size else -1
    for j, r in enumerate(reloads):  # when the new generation showed up, and when the old one stopped
        after = st >= r["at_s"]
        old = after & (gn < start_gen + j + 1)
        new = after & (gn >= start_gen + j + 1)
        done = st + lt
        r["first_new_s"] = round(float(done[new].min() - r["at_s"]), 3) if new.any() else None
        r["last_old_s"] = round(float(done[old].max() - r["at_s"]), 3) if old.any() else None
    whole = _summary(lt, wall, len(failures))
    out = {
        "whole": whole,
        "steady": _summary(lt[~near], wall - near_s, len(failures) - n_near_fail),
        "around_reloads": _summary(lt[near], near_s, n_near_fail),
        "reload_window_s": window,
        "reloads": reloads,
        "failures": len(failures),
        "failure_kinds": {kind: sum(1 for f in failures if f[1] == kind) for kind in {f[1] for f in failures}},
        "first_failures": failures[:10],
        "retried": sum(c.retried for c in clients) - retried0,
        "generations_seen": sorted(set(np.unique(gn).tolist())),
    }
    return out


# ---------------------------------------------------------------------------------------- report
def table(rows: list[dict]) -> str:
    lines = ["| mode | workers | concurrency | requests | req/s | p50 ms | p99 ms | errors | server CPU ms/req | "
             "load avg before / after |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        cpu = r.get("server_cpu_ms_per_request")
        lines.append(f"| {r['mode']} | {r.get('workers') or ''} | {r['concurrency']} | {r['requests']} | {r['rps']:.0f} | "
                     f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} | {'' if cpu is None else f'{cpu:.3f}'} | "
                     f"{r.get('load_avg_before')} / {r.get('load_avg_after')} |")
    return "\n".join(lines)


def ratio_table(ratios: list[dict]) -> str:
    lines = ["| mode | workers | concurrency | server / in-process req/s | server / in-process p50 | "
             "server / in-process p99 |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in ratios:
        lines.append(f"| {r['mode']} | {r['workers']} | {r['concurrency']} | {r['rps_ratio']:.3f} | {r['p50_ratio']:.1f}x | "
                     f"{r['p99_ratio']:.1f}x |")
    return "\n".join(lines)


def soak_table(soaks: list[dict]) -> str:
    lines = ["| workers | part | requests | req/s | p50 ms | p99 ms | max ms | failures |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for s in soaks:
        for part in ("whole", "steady", "around_reloads"):
            r = s[part]
            lines.append(f"| {s['workers']} | {part.replace('_', ' ')} | {r['requests']} | {r['rps']:.0f} | "
                         f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.1f} | {r['errors']} |")
    return "\n".join(lines)


def _levels(text: str, name: str) -> list[int]:
    try:
        out = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise SystemExit(f"{name} {text!r}: expected a comma list of positive integers") from None
    if not out or min(out) < 1:
        raise SystemExit(f"{name} {text!r}: expected a comma list of positive integers")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="an existing run directory to serve")
    src.add_argument("--items", type=int, help="build (once) a synthetic run of this many items")
    ap.add_argument("--run-b", help="soak with --run: the other run the served directory alternates with")
    ap.add_argument("--dim", type=int, default=64, help="synthetic embedding dimension (default 64)")
    ap.add_argument("--kind", default="hnsw", help="synthetic run's index kind (default hnsw)")
    ap.add_argument("--workdir", default="bench_out/serve_runs", help="where synthetic runs are kept")
    ap.add_argument("--url", help="benchmark an already running server at this loopback URL instead of starting one")
    ap.add_argument("--concurrency", default="1,8,64", help="comma list (default 1,8,64; a soak uses the first)")
    ap.add_argument("--workers", default="1", help="comma list of pinsage serve --workers values (default 1)")
    ap.add_argument("--server-args", default="", help="more flags for pinsage serve, one shell-quoted string")
    ap.add_argument("--compare-args", action="append", default=[], metavar="ARGS",
                    help="also measure a one-process server of this tree started with these flags, side by side "
                         "(repeatable; e.g. \"--http h11 --loop asyncio\" or \"--inline-results 0\")")
    ap.add_argument("--baseline-tree", metavar="DIR",
                    help="also measure a one-process server run from another source tree (such as an earlier "
                         "commit: git archive COMMIT | tar -x -C DIR), labelled 'baseline', side by side")
    ap.add_argument("--client", default="raw", choices=["raw", "httpx"],
                    help="load generator: raw (minimal keep-alive HTTP/1.1 on asyncio streams; default) or "
                         "httpx (httpx.AsyncClient: a general client, itself a few ms of CPU per request)")
    ap.add_argument("--client-loop", default="auto", choices=["auto", "asyncio", "uvloop"],
                    help="the load generator's event loop (default auto: uvloop when installed)")
    ap.add_argument("--seconds", type=float, default=10.0, help="measured seconds per mode and concurrency, "
                                                               "or of the whole soak")
    ap.add_argument("--requests", type=int, default=None,
                    help="at most this many requests per mode and concurrency (default 200,000) or in the "
                         "soak (default 5,000,000)")
    ap.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each measurement")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--server-threads", type=int, default=None, help="pinsage serve --threads (default its own)")
    ap.add_argument("--startup-timeout", type=float, default=600.0, help="seconds to wait for the server's /health")
    ap.add_argument("--reload-every", type=float, default=None, metavar="S",
                    help="soak: reload every S seconds, alternating the served run (needs --items, or --run-b)")
    ap.add_argument("--reload-window", type=float, default=10.0, metavar="S",
                    help="soak: the seconds after each reload reported as 'around reloads' (default 10)")
    ap.add_argument("--request-timeout", type=float, default=10.0, help="soak: a request unanswered this long fails")
    ap.add_argument("--no-inprocess", action="store_true", help="skip the in-process rows")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="bench_out/serve.json", help="where to write the results")
    args = ap.parse_args(argv)
    levels = _levels(args.concurrency, "--concurrency")
    worker_counts = _levels(args.workers, "--workers")
    soak = args.reload_every is not None
    max_requests = args.requests if args.requests is not None else (5_000_000 if soak else 200_000)
    if args.seconds <= 0 or max_requests < 1 or (soak and args.reload_every <= 0):
        raise SystemExit("--seconds, --requests and --reload-every must be positive")
    if soak and args.reload_window > args.reload_every:
        raise SystemExit("--reload-window must not exceed --reload-every")
    if soak and args.url:
        raise SystemExit("a soak starts its own server (it points the served directory at the other run)")
    if soak and args.run and not args.run_b:
        raise SystemExit("a soak with --run needs --run-b, the run to alternate with")
    given_url = _loopback_url(args.url) if args.url else None  # refused before anything is built or sent
    extra = shlex.split(args.server_args)
    use_uvloop = args.client_loop == "uvloop"
    if args.client_loop == "auto":
        try:
            import uvloop  # noqa: F401

            use_uvloop = True
        except ImportError:
            pass
    if use_uvloop:
        import uvloop

        def arun(coro):
            return uvloop.run(coro)
    else:
        arun = asyncio.run
    t_start = time.perf_counter()

    def make_run(seed: int) -> Path:
        return Path(args.run) if args.run else synthetic_run(Path(args.workdir), args.items, args.dim, args.kind, seed)

    run = make_run(args.seed)
    index = RunDir.open(run).index()
    n_queries = min(max_requests, 1_000_000) if soak else max(max_requests, 10_000)
    queries = np.random.default_rng(args.seed + 1).choice(np.asarray(index.ids), size=max(n_queries, 10_000))
    out = Path(args.json)
    servers: dict[str, tuple[int | None, subprocess.Popen | None, str]] = {}  # label: (workers, process, url)
    served = run
    result: dict = {}
    try:
        if soak:
            run_b = Path(args.run_b) if args.run_b else make_run(args.seed + 1)
            runs = [run, run_b]
            served = Path(args.workdir if args.items else out.parent) / "soak_served"
            served.parent.mkdir(parents=True, exist_ok=True)
        if given_url:
            servers["url"] = (None, None, given_url)
        rows, soaks = [], []
        for w in worker_counts if not given_url else []:
            if soak:
                point_link(served, runs[0])
                proc, url = start_server(served, args.server_threads, out.with_suffix(f".server-w{w}.log"),
                                         args.startup_timeout, workers=w, extra=extra)
                servers[f"w{w}"] = (w, proc, url)
                rss = {p: _rss_mb(p) for p in _tree(proc.pid)}
                meter = Meter(proc.pid)
                flips = []

                def flip(i: int) -> Path:
                    target = runs[(i + 1) % 2]
                    point_link(served, target)
                    flips.append(str(target))
                    return target

                before = _load_avg()
                print(f"  soak workers={w}: {args.seconds:.0f}s at concurrency {levels[0]}, a reload every "
                      f"{args.reload_every:g}s ...", file=sys.stderr, flush=True)
                res = arun(_soak(url, proc.pid, queries, args.k, levels[0], args.seconds, max_requests,
                                 args.warmup, args.reload_every, args.reload_window, args.request_timeout, flip,
                                 meter))
                res.update(workers=w, concurrency=levels[0], load_avg_before=before, load_avg_after=_load_avg(),
                           rss_mb_at_start=rss, **meter.per_request(res["whole"]["requests"]))
                soaks.append(res)
                print(f"  soak workers={w}: {res['whole']['rps']:.0f} req/s, p99 {res['whole']['p99_ms']:.1f} ms, "
                      f"{res['failures']} failures, {len(res['reloads'])} reloads", file=sys.stderr, flush=True)
                stop_server(proc)
                del servers[f"w{w}"]
            else:
                servers[f"w{w}"] = (w, *start_server(run, args.server_threads, out.with_suffix(f".server-w{w}.log"),
                                                     args.startup_timeout, workers=w, extra=extra))
        for i, more in enumerate(args.compare_args if not soak else []):
            servers[f"args {more}"] = (1, *start_server(run, args.server_threads, out.with_suffix(f".server-c{i}.log"),
                                                        args.startup_timeout, extra=extra + shlex.split(more)))
        if args.baseline_tree and not soak:
            servers["baseline"] = (1, *start_server(run, args.server_threads, out.with_suffix(".server-baseline.log"),
                                                    args.startup_timeout, tree=Path(args.baseline_tree).resolve()))
        if not soak:
            for c in levels:
                for label, (w, proc, url) in servers.items():
                    meter = Meter(proc.pid if proc is not None else None)
                    level = _raw_level if args.client == "raw" else _http_level
                    before = _load_avg()
                    res = arun(level(url, queries, args.k, c, args.seconds, meter, max_requests, args.warmup))
                    res.update(meter.per_request(res["requests"]), load_avg_before=before, load_avg_after=_load_avg())
                    if proc is not None:
                        res["server_rss_mb"] = {str(p): _rss_mb(p) for p in _tree(proc.pid)}
                    mode = "baseline server" if label == "baseline" else \
                        f"server {label[5:]}" if label.startswith("args ") else "server"
                    rows.append({"mode": mode, "workers": w, "concurrency": c, **res})
                    print(f"  {label} c={c}: {res['rps']:.0f} req/s, p50 {res['p50_ms']:.2f} ms, "
                          f"p99 {res['p99_ms']:.2f} ms, CPU ms per request: server "
                          f"{res.get('server_cpu_ms_per_request')}, client {res['client_cpu_ms_per_request']}",
                          file=sys.stderr, flush=True)
                if not args.no_inprocess:
                    before = _load_avg()
                    res = _inprocess_level(index, queries, args.k, c, args.seconds, max_requests, args.warmup)
                    rows.append({"mode": "in-process", "workers": None, "concurrency": c, **res,
                                 "load_avg_before": before, "load_avg_after": _load_avg()})
                    print(f"  in-process c={c}: {res['rps']:.0f} req/s, p50 {res['p50_ms']:.3f} ms", file=sys.stderr,
                          flush=True)
    finally:
        for _, proc, _ in servers.values():
            if proc is not None:
                stop_server(proc)
    result = {
        "benchmark": "serve", "argv": sys.argv[1:] if argv is None else list(argv),
        "run": str(run), "items": len(index), "dim": index.dim, "index": {"kind": index.kind, "params": index.params},
        "k": args.k, "client": args.client, "client_loop": "uvloop" if use_uvloop else "asyncio",
        "server_args": extra, "compare_args": args.compare_args, "baseline_tree": args.baseline_tree, "seconds": args.seconds, "requests_cap": max_requests, "warmup_s": args.warmup,
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                    "load_avg_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if soak:
        result.update(mode="soak", reload_every_s=args.reload_every, served=str(served),
                      runs=[str(r) for r in runs], soaks=soaks)
    else:
        ratios = []
        for c in levels:
            p = next((r for r in rows if r["mode"] == "in-process" and r["concurrency"] == c), None)
            for s in (r for r in rows if r["mode"] != "in-process" and r["concurrency"] == c):
                if p is None:
                    continue
                ratios.append({"mode": s["mode"], "workers": s["workers"], "concurrency": c,
                               "rps_ratio": s["rps"] / p["rps"] if p["rps"] else float("nan"),
                               "p50_ratio": s["p50_ms"] / p["p50_ms"] if p["p50_ms"] else float("nan"),
                               "p99_ratio": s["p99_ms"] / p["p99_ms"] if p["p99_ms"] else float("nan")})
        result.update(rows=rows, ratios=ratios)
    result["total_s"] = round(time.perf_counter() - t_start, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if soak:
        print(soak_table(soaks))
        for s in soaks:
            print(f"\nworkers={s['workers']}: {s['failures']} failures {s['failure_kinds']}, {s['retried']} retried; "
                  f"reloads (at s, how, new generation first / old generation last seen, s after):")
            for r in s["reloads"]:
                print(f"  {r['at_s']:.0f} {r['how']} -> {Path(r['to']).name}: {r.get('status', '')} "
                      f"{r['first_new_s']} / {r['last_old_s']}")
    else:
        print(table(rows))
        if result["ratios"]:
            print()
            print(ratio_table(result["ratios"]))
    print(f"\nwrote {out} ({result['total_s']:.0f}s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Serving benchmark: requests/s and p50 / p99 latency of ``pinsage serve`` against the same queries
answered in-process, at several concurrencies.

The server is a real ``pinsage serve`` process on a free loopback port (or ``--url``, which must be a
loopback address); the load generator is an asyncio loop of ``--concurrency`` workers, each on its own
keep-alive connection sending ``GET /related?item=ID&k=K`` one after another (a closed loop), with a
minimal HTTP/1.1 client (``--client raw``, the default: about a tenth of a millisecond of CPU per
request) or ``httpx.AsyncClient`` (``--client httpx``). Query ids are drawn uniformly from the run's items, so the
server's answers are not cache hits (it has no response cache). In-process, the same ids go through
``ItemIndex.related(id, k)`` from as many threads, each searching with one faiss thread like the
server's workers. The ratios (server / in-process requests per second, and server / in-process p50 and
p99 latency) are what HTTP, JSON and the thread hand-offs cost. Each (mode, concurrency) runs for
``--warmup`` seconds unmeasured, then until ``--seconds`` pass or ``--requests`` are answered, whichever
comes first: the load is bounded in count and time and goes only to 127.0.0.1.

The client, the server and the in-process threads share this machine's cores: on a small machine the
load generator's own CPU time is part of what is measured (``client_cpu_s`` in the JSON).

    python benchmarks/serve.py --items 100000 --seconds 10            # a synthetic HNSW run, a quick check
    python benchmarks/serve.py --items 1000000 --seconds 300          # the issue's 1M-item run (minutes)
    python benchmarks/serve.py --run runs/ml --seconds 10 --concurrency 1,8

``--items N`` writes (once, then reuses) a synthetic run under ``--workdir``: N clustered embeddings
(``--dim``, 1,000 gaussian clusters, lengths in (0, 2) like PinSage's), integer ids, and an HNSW index
saved into its ``index/``. Prints a table; writes JSON to ``--json`` (default ``bench_out/serve.json``).
"""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

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


def start_server(run: Path, threads: int | None, log: Path, timeout: float) -> tuple[subprocess.Popen, str]:
    import httpx

    port = _free_port()
    cmd = [sys.executable, "-m", "pinsage.cli", "serve", "--run", str(run), "--host", "127.0.0.1",
           "--port", str(port)] + (["--threads", str(threads)] if threads else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with status {proc.returncode}; see {log}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.terminate()
            raise SystemExit(f"the server did not answer /health within {timeout:.0f}s; see {log}")
        time.sleep(0.2)


def _process_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``), None where unknown."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class Meter:
    """CPU seconds of this process (the load generator) and of the server over the measured part only."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.client_s = self.server_s = None

    @staticmethod
    def _own() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def start(self) -> None:
        self._c0, self._s0 = self._own(), _process_cpu_s(self.pid)

    def stop(self) -> None:
        self.client_s = self._own() - self._c0
        s1 = _process_cpu_s(self.pid)
        self.server_s = None if s1 is None or self._s0 is None else s1 - self._s0

    def per_request(self, n: int) -> dict:
        out = {"client_cpu_ms_per_request": round(1e3 * self.client_s / max(1, n), 3)}
        if self.server_s is not None:
            out["server_cpu_ms_per_request"] = round(1e3 * self.server_s / max(1, n), 3)
        return out


# ---------------------------------------------------------------------------------------- load
def _summary(lat: list[float], wall: float, errors: int) -> dict:
    arr = np.asarray(lat, dtype=np.float64) * 1e3
    return {"requests": int(arr.size), "errors": int(errors), "seconds": round(wall, 3),
            "rps": arr.size / wall if wall > 0 else 0.0,
            "p50_ms": float(np.percentile(arr, 50)) if arr.size else float("nan"),
            "p99_ms": float(np.percentile(arr, 99)) if arr.size else float("nan")}


class RawClient:
    """A minimal HTTP/1.1 keep-alive client on one asyncio connection: pre-formatted ``GET`` requests,
    responses read by their ``Content-Length``. Far cheaper per request than a general client, so that on
    a small machine the measurement is of the server rather than of the load generator."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, target: str) -> int:
        """Send ``GET target``; returns the status code (0 when the connection failed)."""
        for attempt in range(2):
            try:
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                self.writer.write(f"GET {target} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
                head = await self.reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                lower = head.lower()
                at = lower.find(b"content-length:")
                length = int(lower[at + 15:lower.find(b"\r\n", at)]) if at >= 0 else 0
                await self.reader.readexactly(length)
                if b"connection: close" in lower:
                    await self.close()
                return status
            except (OSError, asyncio.IncompleteReadError, ValueError):
                await self.close()
        return 0

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


async def _raw_level(url: str, queries: np.ndarray, k: int, concurrency: int, seconds: float, meter: Meter,
                     max_requests: int, warmup: float) -> dict:
    from urllib.parse import quote

    parts = urlsplit(url)
    clients = [RawClient(parts.hostname, parts.port or 80) for _ in range(concurrency)]
    lat: list[float] = []
    errors = 0
    nxt = 0
    phase = {"measure": False, "deadline": time.perf_counter() + warmup}

    async def worker(client: RawClient) -> None:
        nonlocal nxt, errors
        while time.perf_counter() < phase["deadline"] and (not phase["measure"] or len(lat) < max_requests):
            q = queries[nxt % len(queries)]
            nxt += 1
            t = time.perf_counter()
            ok = await client.get(f"/related?item={quote(str(q))}&k={k}&titles=false") == 200
            if phase["measure"]:
                if ok:
                    lat.append(time.perf_counter() - t)
                else:
                    errors += 1

    try:
        await asyncio.gather(*(worker(c) for c in clients))  # warm-up
        phase.update(measure=True, deadline=time.perf_counter() + seconds)
        meter.start()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in clients))
        wall = time.perf_counter() - t0
        meter.stop()
    finally:
        for c in clients:
            await c.close()
    return _summary(lat, wall, errors)


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


# ---------------------------------------------------------------------------------------- report
def table(rows: list[dict]) -> str:
    lines = ["| mode | concurrency | requests | req/s | p50 ms | p99 ms | errors |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['mode']} | {r['concurrency']} | {r['requests']} | {r['rps']:.0f} | "
                     f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} |")
    return "\n".join(lines)


def ratio_table(ratios: list[dict]) -> str:
    lines = ["| concurrency | server / in-process req/s | server / in-process p50 | server / in-process p99 |",
             "|---:|---:|---:|---:|"]
    for r in ratios:
        lines.append(f"| {r['concurrency']} | {r['rps_ratio']:.3f} | {r['p50_ratio']:.1f}x | {r['p99_ratio']:.1f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="an existing run directory to serve")
    src.add_argument("--items", type=int, help="build (once) a synthetic run of this many items")
    ap.add_argument("--dim", type=int, default=64, help="synthetic embedding dimension (default 64)")
    ap.add_argument("--kind", default="hnsw", help="synthetic run's index kind (default hnsw)")
    ap.add_argument("--workdir", default="bench_out/serve_runs", help="where synthetic runs are kept")
    ap.add_argument("--url", help="benchmark an already running server at this loopback URL instead of starting one")
    ap.add_argument("--concurrency", default="1,8,64", help="comma list (default 1,8,64)")
    ap.add_argument("--client", default="raw", choices=["raw", "httpx"],
                    help="load generator: raw (minimal keep-alive HTTP/1.1 on asyncio streams; default) or "
                         "httpx (httpx.AsyncClient: a general client, itself a few ms of CPU per request)")
    ap.add_argument("--seconds", type=float, default=10.0, help="measured seconds per mode and concurrency")
    ap.add_argument("--requests", type=int, default=200_000, help="at most this many requests per mode and concurrency")
    ap.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each measurement")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--server-threads", type=int, default=None, help="pinsage serve --threads (default its own)")
    ap.add_argument("--startup-timeout", type=float, default=600.0, help="seconds to wait for the server's /health")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="bench_out/serve.json", help="where to write the results")
    args = ap.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if not levels or min(levels) < 1 or args.seconds <= 0 or args.requests < 1:
        raise SystemExit("--concurrency, --seconds and --requests must be positive")
    given_url = _loopback_url(args.url) if args.url else None  # refused before anything is built or sent
    t_start = time.perf_counter()

    run = Path(args.run) if args.run else synthetic_run(Path(args.workdir), args.items, args.dim, args.kind, args.seed)
    index = RunDir.open(run).index()
    queries = np.random.default_rng(args.seed + 1).choice(np.asarray(index.ids), size=max(args.requests, 10_000))
    out = Path(args.json)
    proc = None
    try:
        if given_url:
            url = given_url
        else:
            proc, url = start_server(run, args.server_threads, out.with_suffix(".server.log"), args.startup_timeout)
        url = _loopback_url(url)
        rows = []
        for c in levels:
            meter = Meter(proc.pid if proc is not None else None)
            level = _raw_level if args.client == "raw" else _http_level
            res = asyncio.run(level(url, queries, args.k, c, args.seconds, meter, args.requests, args.warmup))
            res.update(meter.per_request(res["requests"]))
            rows.append({"mode": "server", "concurrency": c, **res})
            print(f"  server c={c}: {res['rps']:.0f} req/s, p50 {res['p50_ms']:.2f} ms, CPU ms per request: "
                  f"server {res.get('server_cpu_ms_per_request')}, client {res['client_cpu_ms_per_request']}",
                  file=sys.stderr, flush=True)
            res = _inprocess_level(index, queries, args.k, c, args.seconds, args.requests, args.warmup)
            rows.append({"mode": "in-process", "concurrency": c, **res})
            print(f"  in-process c={c}: {res['rps']:.0f} req/s, p50 {res['p50_ms']:.3f} ms", file=sys.stderr, flush=True)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    ratios = []
    for c in levels:
        s = next(r for r in rows if r["mode"] == "server" and r["concurrency"] == c)
        p = next(r for r in rows if r["mode"] == "in-process" and r["concurrency"] == c)
        ratios.append({"concurrency": c, "rps_ratio": s["rps"] / p["rps"] if p["rps"] else float("nan"),
                       "p50_ratio": s["p50_ms"] / p["p50_ms"] if p["p50_ms"] else float("nan"),
                       "p99_ratio": s["p99_ms"] / p["p99_ms"] if p["p99_ms"] else float("nan")})
    result = {
        "benchmark": "serve", "argv": sys.argv[1:] if argv is None else list(argv),
        "run": str(run), "items": len(index), "dim": index.dim, "index": {"kind": index.kind, "params": index.params},
        "k": args.k, "client": args.client, "seconds": args.seconds, "requests_cap": args.requests, "warmup_s": args.warmup,
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                    "load_avg_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "total_s": round(time.perf_counter() - t_start, 1),
        "rows": rows, "ratios": ratios,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(rows))
    print()
    print(ratio_table(ratios))
    print(f"\nwrote {out} ({result['total_s']:.0f}s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

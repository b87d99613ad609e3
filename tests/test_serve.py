"""``pinsage serve`` end to end: a real server process on a free loopback port, a real HTTP client.

One tiny run (written without training, see ``_tiny_run.py``) and one server for the whole module:
related items (one and a batch, exclusions, titles), recommendations (users of the graph, histories,
both methods), unknown ids (404), bad parameters (422), oversized requests (413), metadata, and reloads
(``POST /reload`` and SIGHUP) while requests are in flight. Then a server of two worker processes
(``--workers 2``) on its own copy of the run: a reload by either means reaches both workers, with
requests in flight throughout, and a failed one moves neither.
"""
from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (pip install -e '.[dev]')")
pytest.importorskip("fastapi", reason="pinsage serve needs the serve extra (pip install -e '.[serve]')")
pytest.importorskip("uvicorn", reason="pinsage serve needs the serve extra (pip install -e '.[serve]')")

from _tiny_run import write_tiny_run  # noqa: E402

from pinsage._io import InputError  # noqa: E402
from pinsage.graph.histories import group_histories  # noqa: E402
from pinsage.index import ItemIndex  # noqa: E402
from pinsage.index.histories import Histories  # noqa: E402
from pinsage.run import RunDir  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MAX_BODY = 64 * 1024


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _health(url: str) -> dict | None:
    """``GET /health`` on a new connection (so that any worker process may answer), or None."""
    try:
        r = httpx.get(url + "/health", timeout=5, headers={"connection": "close"})
        return r.json() if r.status_code == 200 else None
    except httpx.TransportError:
        return None


def _start(run_path: Path, log: Path, *flags: str, workers: int = 1):
    """A ``pinsage serve`` process on a free port, once ``workers`` distinct processes answered /health."""
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pinsage.cli", "serve", "--run", str(run_path),
                                 "--port", str(port), "--workers", str(workers), *flags],
                                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    pids: set[int] = set()
    while len(pids) < workers:
        if proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode}:\n{log.read_text()}")
        h = _health(url)
        if h is not None:
            pids.add(h["pid"])
        if time.monotonic() > deadline:
            _stop(proc)
            pytest.fail(f"{len(pids)} of {workers} server processes answered /health in time:\n{log.read_text()}")
        time.sleep(0.02 if h is not None else 0.1)
    return proc, url, pids


def _stop(proc) -> int:
    proc.terminate()
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The tiny run and a server on it: ``{"url", "proc", "run", "log"}``."""
    root = tmp_path_factory.mktemp("serve")
    run = write_tiny_run(root / "run")
    log = root / "server.log"
    proc, url, _ = _start(run["path"], log, "--max-body-bytes", str(MAX_BODY), "--max-batch", "200", "--threads", "8")
    try:
        yield {"url": url, "proc": proc, "run": run, "log": log}
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server["url"], timeout=30) as c:
        yield c


def _exact(run) -> ItemIndex:
    return ItemIndex.build(run["emb"], run["ids"], kind="exact")


def _detail(resp) -> str:
    body = resp.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str), body
    assert "Traceback" not in body["detail"]
    return body["detail"]


# ------------------------------------------------------------------------------------------ imports
def test_import_pinsage_does_not_import_fastapi():
    code = ("import sys, pinsage, pinsage.cli, pinsage.serve; pinsage.cli.build_parser(); "
            "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'pydantic') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------ metadata
def test_health_and_meta(server, client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["items"] == len(server["run"]["ids"])
    meta = client.get("/meta").json()
    run = server["run"]
    assert meta["items"] == len(run["ids"]) and meta["dim"] == run["emb"].shape[1]
    assert meta["index"]["kind"] in ("exact", "hnsw") and meta["index"]["metric"] == "ip"
    config = (run["path"] / "config.yaml").read_bytes()
    assert meta["config_sha256"] == hashlib.sha256(config).hexdigest()
    assert meta["titles"] is True and meta["users"] == run["graph"].num_groups and meta["ordered_by_time"] is True
    assert meta["limits"]["max_body_bytes"] == MAX_BODY and meta["limits"]["max_k"] == 1000


# ------------------------------------------------------------------------------------------ related
def test_related_one_and_batch(server, client):
    run = server["run"]
    index = _exact(run)
    q = run["ids"][7]
    resp = client.get("/related", params={"item": q, "k": 5})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    (result,) = resp.json()["results"]
    want_ids, want_scores = index.related(q, k=5)
    assert result["item"] == q and result["title"] == run["titles"][7]
    assert [r["item"] for r in result["related"]] == want_ids.tolist()
    np.testing.assert_allclose([r["score"] for r in result["related"]], want_scores, atol=1e-5)
    titles = dict(zip(run["ids"].tolist(), run["titles"].tolist()))
    assert all(r["title"] == titles[r["item"]] for r in result["related"])

    queries = run["ids"][[1, 40, 90]].tolist()
    excl = [[want_ids[0]], None, []]
    body = client.post("/related", json={"items": queries, "k": 4, "exclude": excl, "titles": False}).json()
    want, _ = index.related(queries, k=4, exclude=excl)
    assert [[r["item"] for r in res["related"]] for res in body["results"]] == want.tolist()
    assert "title" not in body["results"][0] and "title" not in body["results"][0]["related"][0]
    flat = client.post("/related", json={"items": queries, "k": 4, "exclude": want[:, 0].tolist()}).json()
    got = {r["item"] for res in flat["results"] for r in res["related"]}
    assert not got & set(want[:, 0].tolist())

    # a batch over --inline-results (30 x 10 results) is answered in the worker threads: the same results
    many = run["ids"][::4][:30].tolist()
    body = client.post("/related", json={"items": many, "k": 10, "exclude": [many[0]]}).json()
    want, want_scores = index.related(many, k=10, exclude=[many[0]])
    assert [[r["item"] for r in res["related"]] for res in body["results"]] == want.tolist()
    np.testing.assert_allclose([[r["score"] for r in res["related"]] for res in body["results"]], want_scores,
                               atol=1e-5)
    via_get = client.get("/related", params=[("item", q) for q in many[:3]] + [("k", "3"), ("titles", "no")]).json()
    assert [[r["item"] for r in res["related"]] for res in via_get["results"]] == index.related(many[:3], k=3)[0].tolist()
    assert "title" not in via_get["results"][0]


# ------------------------------------------------------------------------------------------ recommend
def test_recommend_users_and_histories(server, client):
    run = server["run"]
    graph = run["graph"]
    index = _exact(run)
    users = graph.group_ids[[0, 5, 9]].tolist()
    body = client.post("/recommend", json={"users": users, "n": 6}).json()
    assert body["method"] == "recency" and [r["user"] for r in body["results"]] == users
    indptr, items = group_histories(graph, np.array([0, 5, 9]), 1000)
    want, _ = index.recommend(Histories(indptr, items), N=6)
    assert [[r["item"] for r in res["items"]] for res in body["results"]] == want.tolist()
    for u, res in enumerate(body["results"]):  # a user's own items are left out
        seen = set(run["ids"][items[indptr[u]:indptr[u + 1]]].tolist())
        assert len(res["items"]) == 6 and not seen & {r["item"] for r in res["items"]}

    history = run["ids"][[3, 33, 95]].tolist()
    for method in ("recency", "interests"):
        got = client.post("/recommend", json={"history": history, "n": 5, "method": method, "clusters": 2}).json()
        want, _ = index.recommend(history, N=5, method=method, clusters=2)
        assert [r["item"] for r in got["results"][0]["items"]] == want.tolist()
    via_get = client.get("/recommend", params=[("item", h) for h in history] + [("n", "5")]).json()
    assert via_get["results"][0]["history_length"] == 3 and len(via_get["results"][0]["items"]) == 5
    one = client.get("/recommend", params={"user": users[0], "n": 6}).json()
    assert one["results"][0]["items"] == body["results"][0]["items"]


# ------------------------------------------------------------------------------------------ errors
def test_unknown_ids_are_404(server, client):
    q = server["run"]["ids"][0]
    resp = client.get("/related", params={"item": "no-such-pin"})
    assert resp.status_code == 404 and "unknown item id 'no-such-pin'" in _detail(resp)
    resp = client.post("/related", json={"items": [q, "ghost-1", "ghost-2"]})
    assert resp.status_code == 404 and "ghost-1" in _detail(resp) and "ghost-2" in _detail(resp)
    resp = client.post("/recommend", json={"user": "board_nobody"})
    assert resp.status_code == 404 and "unknown user id 'board_nobody'" in _detail(resp)
    resp = client.post("/recommend", json={"history": [q, "ghost-3"]})
    assert resp.status_code == 404 and "ghost-3" in _detail(resp)


@pytest.mark.parametrize("method,path,kwargs,needle", [
    ("GET", "/related", {"params": {"item": "pin_00001", "k": 0}}, "k must be between 1 and 1000"),
    ("GET", "/related", {"params": {"item": "pin_00001", "k": 100000}}, "k must be between 1 and 1000"),
    ("GET", "/related", {"params": {"item": "pin_00001", "k": "ten"}}, "k: "),
    ("GET", "/related", {"params": {}}, "item: Field required"),
    ("POST", "/related", {"json": {"items": ["pin_00001"], "k": -3}}, "k must be between"),
    ("POST", "/related", {"json": {"items": ["pin_00001"], "colour": "red"}}, "colour"),
    ("POST", "/related", {"json": {"items": []}}, "at least one item"),
    ("POST", "/related", {"content": b"{not json", "headers": {"content-type": "application/json"}}, "not valid JSON"),
    ("POST", "/recommend", {"json": {"user": "board_0001", "method": "magic"}}, "method"),
    ("POST", "/recommend", {"json": {"user": "board_0001", "history": ["pin_00001"]}}, "exactly one of"),
    ("POST", "/recommend", {"json": {"user": "board_0001", "half_life": -2}}, "half_life"),
    ("POST", "/recommend", {"json": {"user": "board_0001", "n": 0}}, "n must be between"),
    ("POST", "/recommend", {"json": {"histories": [[]]}}, "empty"),
])
def test_bad_parameters_are_422(client, method, path, kwargs, needle):
    resp = client.request(method, path, **kwargs)
    assert resp.status_code == 422, resp.text
    assert needle in _detail(resp)


def test_oversized_requests_are_413(server, client):
    ids = server["run"]["ids"]
    big = b'{"items": [' + b'"pin_00001",' * (MAX_BODY // 10) + b'"pin_00002"]}'
    resp = client.post("/related", content=big, headers={"content-type": "application/json"})
    assert resp.status_code == 413 and "too large" in _detail(resp)

    def chunks():  # no Content-Length: the streamed size is counted
        for _ in range(MAX_BODY // 1024 + 4):
            yield b" " * 1024

    resp = client.post("/related", content=chunks(), headers={"content-type": "application/json"})
    assert resp.status_code == 413 and "too large" in _detail(resp)
    resp = client.post("/related", json={"items": [ids[0]] * 201})  # --max-batch 200
    assert resp.status_code == 413 and "limit is 200" in _detail(resp)
    assert client.get("/health").status_code == 200  # and the server goes on


# ------------------------------------------------------------------------------------------ reload
def test_reload_while_requests_are_in_flight(server, client):
    run = server["run"]
    before = client.get("/meta").json()
    assert before["index"]["saved"] is False
    stop = threading.Event()
    statuses: list[int] = []
    errors: list[BaseException] = []
    rng = np.random.default_rng(0)
    queries = rng.choice(run["ids"], 400).tolist()

    def hammer(offset: int) -> None:
        with httpx.Client(base_url=server["url"], timeout=30) as c:
            i = offset
            while not stop.is_set() and i < offset + 400:
                try:
                    r = c.get("/related", params={"item": queries[i % 400], "k": 10})
                    statuses.append(r.status_code)
                    assert r.status_code != 200 or len(r.json()["results"][0]["related"]) == 10
                except BaseException as exc:  # collected: a failed request fails the test below
                    errors.append(exc)
                i += 1

    threads = [threading.Thread(target=hammer, args=(t * 50,)) for t in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    RunDir(run["path"]).write_index(ItemIndex.build(run["emb"], run["ids"], kind="hnsw"))  # a new index
    answered_before = len(statuses)
    resp = client.post("/reload")
    assert resp.status_code == 200, resp.text
    assert resp.json()["generation"] == before["generation"] + 1
    server["proc"].send_signal(signal.SIGHUP)  # and once more by signal
    deadline = time.monotonic() + 30
    while client.get("/health").json()["generation"] < before["generation"] + 2:
        assert time.monotonic() < deadline, server["log"].read_text()
        time.sleep(0.05)
    time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[:3]
    assert 0 < answered_before < len(statuses)  # requests were answered before, during and after the reloads
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    after = client.get("/meta").json()
    assert after["index"]["kind"] == "hnsw" and after["index"]["saved"] is True
    assert after["generation"] == before["generation"] + 2
    saved = RunDir(run["path"]).index()  # the server answers as the saved HNSW index does
    q = queries[:5]
    got = client.post("/related", json={"items": q, "k": 7, "titles": False}).json()
    assert [[r["item"] for r in res["related"]] for res in got["results"]] == saved.related(q, k=7)[0].tolist()


def test_a_failed_reload_keeps_serving(server, client):
    run = server["run"]
    ids_file = run["path"] / "item_ids.npy"
    saved = ids_file.read_bytes()
    generation = client.get("/health").json()["generation"]
    try:
        ids_file.write_bytes(saved[:-8])  # damaged: its checksum no longer matches run.json
        resp = client.post("/reload")
        assert resp.status_code == 409 and "still serving generation" in _detail(resp)
    finally:
        ids_file.write_bytes(saved)
    assert client.get("/health").json()["generation"] == generation
    assert client.get("/related", params={"item": run["ids"][0]}).status_code == 200


# ------------------------------------------------------------------------------------------ the benchmark
def test_serve_benchmark_runs_against_the_server(server, tmp_path):
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("bench_serve", ROOT / "benchmarks" / "serve.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "serve.json"
    assert bench.main(["--run", str(server["run"]["path"]), "--url", server["url"], "--concurrency", "1,4",
                       "--seconds", "0.3", "--warmup", "0.1", "--requests", "40", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert [(r["mode"], r["concurrency"]) for r in res["rows"]] == [
        ("server", 1), ("in-process", 1), ("server", 4), ("in-process", 4)]
    assert all(r["requests"] > 0 and r["errors"] == 0 and r["p50_ms"] <= r["p99_ms"] for r in res["rows"])
    assert len(res["ratios"]) == 2
    with pytest.raises(SystemExit, match="loopback"):
        bench.main(["--run", str(server["run"]["path"]), "--url", "http://192.0.2.1:80", "--json", str(out)])


# ------------------------------------------------------------------------------------------ --workers 2
def _generations(url: str, pids: set[int], at_least: int, timeout: float = 120) -> dict[int, int]:
    """Ask /health on new connections until every one of ``pids`` reported generation ``at_least`` or more."""
    seen: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    while not all(seen.get(p, -1) >= at_least for p in pids):
        assert time.monotonic() < deadline, f"workers {seen} did not all reach generation {at_least}"
        h = _health(url)
        if h is not None:
            seen[h["pid"]] = h["generation"]
        time.sleep(0.02)
    return seen


def test_two_workers_reload_together_while_requests_are_in_flight(tmp_path):
    run = write_tiny_run(tmp_path / "run")
    log = tmp_path / "server.log"
    proc, url, pids = _start(run["path"], log, "--threads", "2", workers=2)
    try:
        assert len(pids) == 2 and proc.pid not in pids  # two worker processes under the supervisor
        stop = threading.Event()
        statuses: list[int] = []
        generations: list[int] = []
        errors: list[BaseException] = []
        queries = np.random.default_rng(1).choice(run["ids"], 200).tolist()

        def hammer(offset: int, keep_alive: bool) -> None:
            headers = {} if keep_alive else {"connection": "close"}
            with httpx.Client(base_url=url, timeout=30, headers=headers) as c:
                i = offset
                while not stop.is_set() and i < offset + 5000:
                    try:
                        r = c.get("/related", params={"item": queries[i % 200], "k": 5})
                        statuses.append(r.status_code)
                        if r.status_code == 200:
                            body = r.json()
                            assert len(body["results"][0]["related"]) == 5
                            generations.append(body["generation"])
                    except BaseException as exc:  # collected: a failed request fails the test below
                        errors.append(exc)
                    i += 1

        threads = [threading.Thread(target=hammer, args=(t * 31, t % 2 == 0)) for t in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        RunDir(run["path"]).write_index(ItemIndex.build(run["emb"], run["ids"], kind="hnsw"))
        resp = httpx.post(url + "/reload", timeout=60)  # answered by one worker ...
        assert resp.status_code == 200, resp.text
        assert resp.json()["generation"] == 1 and resp.json()["pid"] in pids
        assert set(_generations(url, pids, 1)) == pids  # ... and both swapped
        proc.send_signal(signal.SIGHUP)  # the supervisor: one of the workers reloads, the other follows
        assert set(_generations(url, pids, 2)) == pids
        meta = httpx.get(url + "/meta", headers={"connection": "close"}).json()
        assert meta["index"]["kind"] == "hnsw" and meta["index"]["saved"] is True

        ids_file = run["path"] / "item_ids.npy"  # a reload that fails moves neither worker
        saved = ids_file.read_bytes()
        try:
            ids_file.write_bytes(saved[:-8])
            resp = httpx.post(url + "/reload", timeout=60)
            assert resp.status_code == 409 and "still serving generation 2" in _detail(resp)
        finally:
            ids_file.write_bytes(saved)
        time.sleep(1.0)  # longer than the workers' watch interval
        assert _generations(url, pids, 2) == {p: 2 for p in pids}
        time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert not errors, errors[:3]
        assert statuses and set(statuses) == {200}, sorted(set(statuses))
        assert {0, 2} <= set(generations)  # answers before and after the reloads
    finally:
        code = _stop(proc)
    assert code == 0, log.read_text()
    text = log.read_text()
    assert "followed the reload" in text and "reloaded (SIGHUP)" in text and "Traceback" not in text


def test_workers_that_cannot_load_the_run_stop_the_server(tmp_path):
    run = write_tiny_run(tmp_path / "run")
    (run["path"] / "item_ids.npy").write_bytes(b"damaged")  # a run, but its ids fail their checksum
    out = subprocess.run([sys.executable, "-m", "pinsage.cli", "serve", "--run", str(run["path"]), "--port", "0",
                          "--workers", "2"], capture_output=True, text=True, cwd=ROOT, timeout=240,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    assert out.returncode == 2, out.stderr
    assert "item_ids.npy" in out.stderr.splitlines()[-1]


def test_shared_reload_counters_in_process(tmp_path):
    """Two holders over one set of counters, as two workers have: a reload by one is followed by the
    other; a SIGHUP request is taken up once; a failed reload publishes nothing."""
    from pinsage.serve.reloads import SharedReloads
    from pinsage.serve.state import RunHolder

    run = write_tiny_run(tmp_path / "run")
    (tmp_path / "shared").mkdir()
    shared = SharedReloads.create(tmp_path / "shared")
    a, b = RunHolder(run["path"], shared=shared), RunHolder(run["path"], shared=shared)
    assert a.current.generation == b.current.generation == 0
    assert a.reload().generation == 1 and shared.generation() == 1 and b.current.generation == 0
    b.sync()
    assert b.current.generation == 1 and b.current is not a.current
    shared.request()  # SIGHUP to the supervisor
    a.sync()  # the first to look takes it up ...
    assert a.current.generation == 2 and shared.handled() == shared.requested() == 1
    b.sync()  # ... and the other follows
    assert b.current.generation == 2
    ids_file = run["path"] / "item_ids.npy"
    saved = ids_file.read_bytes()
    ids_file.write_bytes(saved[:-8])
    with pytest.raises(InputError):
        b.reload()
    ids_file.write_bytes(saved)
    a.sync()
    assert shared.generation() == 2 and a.current.generation == b.current.generation == 2
    with shared.locked() as mine, shared.locked(wait=False) as theirs:
        assert mine and not theirs  # one reload at a time across the workers

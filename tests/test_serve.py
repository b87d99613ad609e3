"""``pinsage serve`` end to end: a real server process on a free loopback port, a real HTTP client.

One tiny run (written without training, see ``_tiny_run.py``) and one server for the whole module:
related items (one and a batch, exclusions, titles), recommendations (users of the graph, histories,
both methods), unknown ids (404), bad parameters (422), oversized requests (413), metadata, and reloads
(``POST /reload`` and SIGHUP) while requests are in flight.
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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The tiny run and a server on it: ``{"url", "proc", "run", "log"}``."""
    root = tmp_path_factory.mktemp("serve")
    run = write_tiny_run(root / "run")
    port = _free_port()
    log = root / "server.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pinsage.cli", "serve", "--run", str(run["path"]),
                                 "--port", str(port), "--max-body-bytes", str(MAX_BODY), "--max-batch", "200",
                                 "--threads", "8"], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer /health in time:\n{log.read_text()}")
            time.sleep(0.1)
        yield {"url": url, "proc": proc, "run": run, "log": log}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


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

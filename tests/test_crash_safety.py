"""Crashes lose nothing: ``kill -9`` at random moments of ``train``, ``index`` and ``embed`` leaves each
output either absent (or the previous complete one) or complete and loadable, never half-written; and
``train --resume`` after a kill reaches bit-identical embeddings to an uninterrupted run.

Each trial runs the real command line in a subprocess and kills it with SIGKILL after a seeded random
share of the command's measured duration (:class:`Killer`). 20 trials in all, about 1.5 minutes on
2 cores.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from pinsage import PinSageEmbedder
from pinsage.datasets import make_pinboard, pinboard_features_frame
from pinsage.run import RunDir

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")

CONFIG = {"train": {"epochs": 3, "pairs_per_epoch": 3000, "batch_size": 128, "easy_negatives": 32,
                    "num_workers": 0, "warmup_steps": 2},
          "sampler": {"num_walks": 20, "num_neighbors": 5},
          "model": {"spectral_dim": 4, "hidden_channels": 16, "out_channels": 8, "id_dim": 8}}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TRIALS = {"train": 8, "index": 6, "embed": 6}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pinsage.cli", *args]


def run_to_end(argv: list[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return time.perf_counter() - t0


class Killer:
    """Runs a command and SIGKILLs it after a seeded random share of its duration.

    The duration is re-estimated from every run that finished before its kill (the machine's load
    changes), so that the kills keep landing inside the run: a third of them inside its last 30 %
    (where the outputs are written), none before the interpreter has started.
    """

    def __init__(self, argv: list[str], duration: float, startup: float, seed: int) -> None:
        self.argv, self.duration, self.startup = argv, duration, min(startup, 0.5 * duration)
        self.rng = np.random.default_rng(seed)
        self.trials = self.kills = 0

    def __call__(self) -> int | None:
        """One trial: the exit code if the command finished first, else None (killed)."""
        late = self.trials % 3 == 2
        share = self.rng.uniform(0.7, 1.0) if late else self.rng.uniform(0.0, 1.0)
        delay = self.startup + share * max(self.duration - self.startup, 0.05)
        self.trials += 1
        t0 = time.perf_counter()
        proc = subprocess.Popen(self.argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            code = proc.wait(timeout=delay)
            self.duration = min(self.duration, time.perf_counter() - t0)
            return code
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            self.kills += 1
            return None


@pytest.fixture(scope="module")
def startup() -> float:
    """Seconds to start the command line (imports included) and exit: kills before it test nothing."""
    return run_to_end(cli("--help"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    pins = make_pinboard(n_topics=4, pins_per_topic=40, n_boards=160, mean_board_size=8.0, seed=5)
    pins.interactions.to_csv(root / "inter.csv", index=False)
    pinboard_features_frame(pins).to_csv(root / "feats.csv", index=False)
    (root / "cfg.yaml").write_text(yaml.safe_dump(CONFIG))
    return root


def train_argv(root: Path, out: Path, *extra: str) -> list[str]:
    return cli("train", "--interactions", str(root / "inter.csv"), "--user-col", "board", "--item-col", "pin",
               "--time-col", "time", "--item-features", str(root / "feats.csv"), "--item-key", "pin",
               "--config", str(root / "cfg.yaml"), "--out", str(out), "--quiet", *extra)


def assert_complete_run(out: Path) -> None:
    """Every file run.json lists is there with its checksum, and the run loads."""
    run = RunDir(out)
    sums = run.meta()["checksums"]
    assert {"item_embeddings.npy", "item_ids.npy", "model.pt", "config.yaml"} <= set(sums)
    for role in ("embeddings", "ids", "model", "config", "graph", "neighborhoods", "features", "encoder", "inputs"):
        run.verify(role)
    model = PinSageEmbedder.load(out)
    assert model.item_embeddings_.shape[0] == len(model.item_ids_) > 0


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """An uninterrupted run (subprocess, as the trials) and its duration."""
    out = tmp_path_factory.mktemp("ref") / "run"
    seconds = run_to_end(train_argv(data, out))
    return out, seconds


def test_kill_during_train_leaves_no_half_written_run(data, reference, startup, tmp_path):
    ref, duration = reference
    outcomes = []
    kill = Killer([], duration, startup, seed=0)
    for trial in range(TRIALS["train"]):
        out = tmp_path / f"run{trial}"
        previous = trial % 2 == 1  # every other trial overwrites an earlier complete run
        if previous:
            shutil.copytree(ref, out)
        kill.argv = train_argv(data, out, "--overwrite")
        code = kill()
        assert code in (None, 0), code
        if out.exists():
            assert_complete_run(out)  # the earlier run, untouched, or the new one, whole
        else:
            assert not previous, "the earlier run vanished"
        outcomes.append("finished" if code == 0 else ("complete" if out.exists() else "absent"))
    assert kill.kills >= TRIALS["train"] // 2, outcomes  # most trials really were killed mid-run


def test_kill_during_index_keeps_a_loadable_index(data, reference, startup, tmp_path):
    ref, _ = reference
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    argv = cli("index", "--run", str(run), "--kind", "hnsw", "--param", "M=16")
    duration = run_to_end(argv)
    before = RunDir(run).index(warn_to=None)
    kill = Killer(argv, duration, startup, seed=1)
    for _ in range(TRIALS["index"]):
        code = kill()
        assert code in (None, 0), code
        index = RunDir(run).index(warn_to=None)  # loads: checksums hold, files belong together
        assert len(index) == len(before) and index.kind == before.kind
        assert_complete_run(run)  # and the rest of the run is as it was
    assert kill.kills >= TRIALS["index"] // 2


def test_kill_during_embed_never_leaves_embeddings_without_ids(data, reference, startup, tmp_path):
    ref, _ = reference
    out = tmp_path / "emb"
    argv = cli("embed", "--run", str(ref), "--interactions", str(data / "inter.csv"), "--out", str(out), "--overwrite")
    duration = run_to_end(argv)
    expected_emb, expected_ids = RunDir(out).embeddings_and_ids()
    kill = Killer(argv, duration, startup, seed=2)
    for trial in range(TRIALS["embed"]):
        if trial % 2 == 0:
            shutil.rmtree(out, ignore_errors=True)
        code = kill()
        assert code in (None, 0), code
        if out.exists():
            emb, ids = RunDir(out).embeddings_and_ids()  # verified against its run.json
            assert ids.tolist() == expected_ids.tolist()
            np.testing.assert_array_equal(emb, expected_emb)
    assert kill.kills >= TRIALS["embed"] // 2


def test_resume_after_kill_is_bit_identical(data, reference, tmp_path):
    ref, _ = reference
    out = tmp_path / "run"
    checkpoint = out.parent / f".{out.name}.partial" / "checkpoint.pt"
    proc = subprocess.Popen(train_argv(data, out), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "training ended before it could be killed after its first epoch"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert checkpoint.exists() and not out.exists()
    run_to_end(train_argv(data, out, "--resume"))
    epochs = [json.loads(line)["epoch"] for line in (out / "train_log.jsonl").read_text().splitlines()
              if '"epoch_loss"' in line]
    assert epochs == list(range(1, CONFIG["train"]["epochs"] + 1))  # the log too: each epoch once
    a, b = RunDir(ref).embeddings_and_ids(), RunDir(out).embeddings_and_ids()
    assert a[1].tolist() == b[1].tolist()
    np.testing.assert_array_equal(a[0], b[0])  # bit for bit

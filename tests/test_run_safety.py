"""Run directories are safe to load: no file in them can run code, damage is named, modes follow the umask."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pinsage import InputError, PinSageEmbedder
from pinsage.cli import main
from pinsage.datasets import make_pinboard
from pinsage.run import RunDir

TINY = {"train": {"epochs": 2, "pairs_per_epoch": 1000, "batch_size": 128, "easy_negatives": 32, "num_workers": 0,
                  "warmup_steps": 2},
        "sampler": {"num_walks": 20, "num_neighbors": 5},
        "model": {"spectral_dim": 4, "hidden_channels": 16, "out_channels": 8, "id_dim": 8}}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, one_torch_thread):
    root = tmp_path_factory.mktemp("safety")
    data = make_pinboard(n_topics=3, pins_per_topic=20, n_boards=60, mean_board_size=6.0, seed=1)
    data.interactions.to_csv(root / "inter.csv", index=False)
    (root / "cfg.yaml").write_text(yaml.safe_dump(TINY))
    out = root / "run"
    old = os.umask(0o022)
    try:
        assert main(["train", "--interactions", str(root / "inter.csv"), "--user-col", "board", "--item-col", "pin",
                     "--config", str(root / "cfg.yaml"), "--out", str(out), "--quiet"]) == 0
    finally:
        os.umask(old)
    return root, out


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_planted_pickle_in_model_pt_does_not_run(run_dir, tmp_path, capsys):
    root, out = run_dir
    run = _copy_run(out, tmp_path / "run")
    marker = tmp_path / "PWNED"
    torch.save({"state_dict": {}, "kwargs": _Exploit(marker)}, run / "model.pt")
    RunDir(run).record_checksums()  # the attacker also fixes run.json: the loader must still refuse
    code = main(["embed", "--run", str(run), "--interactions", str(root / "inter.csv"), "--out", str(tmp_path / "z")])
    err = capsys.readouterr().err
    assert code == 2 and not marker.exists()
    assert "model.pt" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(InputError, match="model.pt"):
        PinSageEmbedder.load(run)
    assert not marker.exists()


def test_a_damaged_file_is_named_before_it_is_parsed(run_dir, tmp_path, capsys):
    _, out = run_dir
    run = _copy_run(out, tmp_path / "run")
    emb = run / "item_embeddings.npy"
    raw = bytearray(emb.read_bytes())
    raw[-1] ^= 0xFF  # one flipped bit in the data: numpy would read it without complaint
    emb.write_bytes(bytes(raw))
    assert main(["related", "--run", str(run), "--item", "pin_00001"]) == 2
    err = capsys.readouterr().err
    assert "item_embeddings.npy" in err and "damaged" in err
    os.remove(run / "neighborhoods.npz")
    with pytest.raises(InputError, match="neighborhoods.npz: missing"):
        RunDir(run).neighborhoods()


def test_checksums_cover_the_run_and_the_index(run_dir, tmp_path):
    _, out = run_dir
    run = _copy_run(out, tmp_path / "run")
    sums = json.loads((run / "run.json").read_text())["checksums"]
    assert {"item_embeddings.npy", "item_ids.npy", "model.pt", "config.yaml", "neighborhoods.npz"} <= set(sums)
    before = (run / "run.json").read_bytes()
    assert main(["index", "--run", str(run), "--kind", "exact"]) == 0
    # writing an index is one atomic step: its own meta.json holds its checksums, run.json is untouched
    assert (run / "run.json").read_bytes() == before
    index_sums = json.loads((run / "index" / "meta.json").read_text())["checksums"]
    assert set(index_sums) == {"index.faiss", "ids.npy"}
    assert len(RunDir(run).index()) == len(np.load(run / "item_ids.npy"))
    raw = bytearray((run / "index" / "index.faiss").read_bytes())
    raw[-1] ^= 0xFF
    (run / "index" / "index.faiss").write_bytes(bytes(raw))
    with pytest.raises(InputError, match="index.faiss: damaged"):
        RunDir(run).index()


def test_files_follow_the_umask(run_dir):
    _, out = run_dir
    for p in [out, out / "graph", *out.rglob("*")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o755 if p.is_dir() else 0o644), (p, oct(mode))


def test_string_ids_are_saved_without_pickle(run_dir):
    _, out = run_dir
    ids = np.load(out / "item_ids.npy", allow_pickle=False)
    assert ids.dtype.kind == "U" and ids[0].startswith("pin_")


def test_an_unexpected_error_is_one_line_with_exit_status_1(monkeypatch, tmp_path, capsys):
    import pinsage.commands.index as index_command

    def boom(args):
        raise RuntimeError("something broke\nsecond line")

    monkeypatch.setattr(index_command, "run", boom)
    from pinsage.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["index", "--run", str(tmp_path)])
    assert args.func is boom
    assert main(["index", "--run", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error: RuntimeError: something broke" in err[0] and "--debug" in err[0]
    with pytest.raises(RuntimeError):
        main(["--debug", "index", "--run", str(tmp_path)])


@pytest.fixture(scope="module")
def run_with_features(tmp_path_factory, one_torch_thread):
    from pinsage.datasets import pinboard_features_frame

    root = tmp_path_factory.mktemp("confined")
    data = make_pinboard(n_topics=3, pins_per_topic=20, n_boards=60, mean_board_size=6.0, seed=2)
    data.interactions.to_csv(root / "inter.csv", index=False)
    feats = pinboard_features_frame(data)
    feats.to_csv(root / "feats.csv", index=False)
    (root / "cfg.yaml").write_text(yaml.safe_dump(TINY))
    out = root / "run"
    assert main(["train", "--interactions", str(root / "inter.csv"), "--user-col", "board", "--item-col", "pin",
                 "--item-features", str(root / "feats.csv"), "--item-key", "pin",
                 "--config", str(root / "cfg.yaml"), "--out", str(out), "--quiet"]) == 0
    return root, out


def test_the_run_carries_its_features_file_and_works_when_moved(run_with_features, tmp_path):
    root, out = run_with_features
    meta = RunDir(out).meta()
    assert meta["item_features"] == "inputs/item_features.csv"  # relative, inside the run
    assert meta["item_features_source"] == str(root / "feats.csv")  # a record only
    assert "inputs/item_features.csv" in meta["checksums"]
    moved = _copy_run(out, tmp_path / "elsewhere" / "run")
    (root / "feats.csv").rename(root / "feats.gone")  # the original is not needed any more
    try:
        assert main(["related", "--run", str(moved), "--item", "pin_00000", "--k", "3",
                     "--output", str(tmp_path / "r.json")]) == 0
        rel = json.loads((tmp_path / "r.json").read_text())
        assert rel[0]["title"] == "topic 0 pin 0" and all(" pin " in r["title"] for r in rel[0]["related"])
        assert main(["embed", "--run", str(moved), "--interactions", str(root / "inter.csv"),
                     "--out", str(tmp_path / "z")]) == 0
    finally:
        (root / "feats.gone").rename(root / "feats.csv")


@pytest.mark.parametrize("recorded", ["/etc/passwd", "../secret.csv", "inputs/../../secret.csv", "link.csv"])
def test_paths_in_run_json_outside_the_run_are_refused(run_with_features, tmp_path, capsys, recorded):
    root, out = run_with_features
    run = _copy_run(out, tmp_path / "run")
    secret = tmp_path / "secret.csv"
    secret.write_text("pin,title\npin_00000,SECRET\n")
    (run / "link.csv").symlink_to(secret)  # a link inside the run to a file outside it
    meta = RunDir(run).meta()
    meta["item_features"] = recorded
    RunDir(run).write_meta(meta)
    # titles are optional: related answers without them and never shows the outside file's content
    assert main(["related", "--run", str(run), "--item", "pin_00000", "--k", "3",
                 "--output", str(tmp_path / "r.json")]) == 0
    assert "SECRET" not in (tmp_path / "r.json").read_text()
    capsys.readouterr()
    # embed needs the features: it refuses in one line naming run.json and the recorded path
    code = main(["embed", "--run", str(run), "--interactions", str(root / "inter.csv"), "--out", str(tmp_path / "z")])
    err = capsys.readouterr().err
    assert code == 2 and "run.json" in err and recorded in err and "--item-features" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "z").exists()

"""``pinsage index``: build a nearest-neighbour index over a run's item embeddings.

Reads ``DIR/item_embeddings.npy`` and ``DIR/item_ids.npy`` and writes a :class:`pinsage.index.ItemIndex`
into ``DIR/index/`` (atomically: an interrupted build leaves any previous index in place).
``pinsage related --run DIR`` uses it when present.

Kinds: ``auto`` (exact below 100k items, HNSW above), ``exact``, ``hnsw``, ``ivfpq``. Parameters are
given as ``--param key=value`` (repeatable), e.g. ``--kind hnsw --param M=32 --param ef_search=256`` or
``--kind ivfpq --param nlist=1024 --param refine=fp16``; see :class:`pinsage.index.ItemIndex` for the
parameters of each kind.

Example::

    pinsage index --run runs/pins --kind hnsw --param ef_search=256
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from pinsage._io import InputError

#: files a run directory must hold for ``index`` / ``related`` / ``evaluate``
RUN_FILES = ("item_embeddings.npy", "item_ids.npy")
#: the index sub-directory of a run
INDEX_DIR = "index"


# ---------------------------------------------------------------------------------------------
# helpers shared by the run-reading commands (related, evaluate, embed)
# ---------------------------------------------------------------------------------------------

def require_run(run: str | Path, files: tuple[str, ...] = RUN_FILES) -> Path:
    """``run`` as a Path; InputError unless it is a directory holding ``files``."""
    path = Path(run)
    if not path.exists():
        raise InputError(f"--run {path}: no such directory; give a run directory written by `pinsage train --out`")
    if not path.is_dir():
        raise InputError(f"--run {path}: not a directory; give a run directory written by `pinsage train --out`")
    missing = [f for f in files if not (path / f).is_file()]
    if missing:
        raise InputError(f"--run {path}: not a pinsage run ({', '.join(missing)} missing); "
                         "give a run directory written by `pinsage train --out`")
    return path


def load_run_meta(run: Path) -> dict:
    """``run.json`` as a dict (empty when absent)."""
    p = run / "run.json"
    if not p.is_file():
        return {}
    try:
        meta = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{p}: unreadable run metadata: {exc}") from exc
    return meta if isinstance(meta, dict) else {}


def load_embeddings_and_ids(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(item_embeddings (n, d) float32, item_ids (n,))`` of a run; InputError when inconsistent."""
    try:
        emb = np.load(run / "item_embeddings.npy", allow_pickle=False)
        ids = np.load(run / "item_ids.npy", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"--run {run}: could not read item_embeddings.npy / item_ids.npy: {exc}") from exc
    if emb.ndim != 2 or ids.ndim != 1 or len(ids) != len(emb):
        raise InputError(f"--run {run}: item_embeddings.npy {emb.shape} and item_ids.npy {ids.shape} "
                         "do not match one row per item")
    return np.ascontiguousarray(emb, dtype=np.float32), ids


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """``["M=32", "refine=fp16", "k_factor=2.5"]`` -> ``{"M": 32, "refine": "fp16", "k_factor": 2.5}``."""
    out: dict[str, Any] = {}
    for item in pairs or []:
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key or not raw:
            raise InputError(f"--param {item!r}: expected key=value, e.g. --param ef_search=256")
        value: Any = raw
        try:
            value = int(raw)
        except ValueError:
            try:
                value = float(raw)
            except ValueError:
                pass
        out[key] = value
    return out


def open_index(run: Path, embeddings: np.ndarray, ids: np.ndarray, verbose_to=None):
    """The run's saved ``index/`` when present and matching the run's items, else an exact index."""
    from pinsage.index import ItemIndex

    path = run / INDEX_DIR
    if path.is_dir():
        index = ItemIndex.load(path)
        same = len(index) == len(ids) and index.dim == embeddings.shape[1]
        if same:
            try:
                same = bool(np.all(np.asarray(index.ids).astype(str) == ids.astype(str)))
            except (TypeError, ValueError):
                same = False
        if same:
            return index
        if verbose_to is not None:
            print(f"pinsage: {path} does not match the run's items (stale index); using exact search",
                  file=verbose_to)
    return ItemIndex.build(embeddings, ids, kind="exact")


# ---------------------------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------------------------

def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="build a FAISS index over a run's item embeddings (DIR/index/)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, metavar="DIR", help="run directory written by `pinsage train`")
    p.add_argument("--kind", default="auto", choices=["auto", "exact", "hnsw", "ivfpq"],
                   help="index kind (default auto: exact below 100k items, else hnsw)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="index parameter, repeatable (hnsw: M, ef_construction, ef_search; ivfpq: nlist, m, "
                        "nbits, nprobe, refine, k_factor, train_size, seed)")
    p.add_argument("--metric", default="ip", choices=["ip", "cosine"],
                   help="similarity: inner product (default; the model's score) or cosine (direction only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pinsage.index import ItemIndex

    run_dir = require_run(args.run)
    params = parse_params(args.param)
    emb, ids = load_embeddings_and_ids(run_dir)
    t0 = time.perf_counter()
    index = ItemIndex.build(emb, ids, kind=args.kind, metric=args.metric, **params)
    build_s = time.perf_counter() - t0
    out = index.save(run_dir / INDEX_DIR)
    print(f"pinsage index: kind={index.kind} n={len(index)} dim={index.dim} metric={index.metric} "
          f"built in {build_s:.2f} s; wrote {out}")
    return 0

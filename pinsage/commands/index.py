"""``pinsage index``: build a nearest-neighbour index over a run's item embeddings.

Reads ``DIR/item_embeddings.npy`` and ``DIR/item_ids.npy`` and writes a :class:`pinsage.index.ItemIndex`
into ``DIR/index/`` (atomically: an interrupted build leaves any previous index in place).
``pinsage related --run DIR`` uses it when present.

Kinds: ``auto`` (exact up to 50k items, HNSW above), ``exact``, ``hnsw``, ``ivfpq``, or any faiss
index factory string such as ``HNSW32,Flat`` or ``IVF1024,PQ16`` (trained on the run's vectors). Parameters are
given as ``--param key=value`` (repeatable), e.g. ``--kind hnsw --param M=32 --param ef_search=256`` or
``--kind ivfpq --param nlist=1024 --param refine=fp16``; see :class:`pinsage.index.ItemIndex` for the
parameters of each kind.

Example::

    pinsage index --run runs/pins --kind hnsw --param ef_search=256
"""
from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from pinsage._io import InputError
from pinsage.run import RunDir

log = logging.getLogger(__name__)


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


# ---------------------------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------------------------

def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="build a FAISS index over a run's item embeddings (DIR/index/)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, metavar="DIR", help="run directory written by `pinsage train`")
    p.add_argument("--kind", default="auto", metavar="KIND",
                   help="auto (default: exact up to 50k items, else hnsw), exact, hnsw, ivfpq, or a faiss factory "
                        "string such as HNSW32,Flat or IVF1024,PQ16")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="index parameter, repeatable (hnsw: M, ef_construction, ef_search; ivfpq: nlist, m, "
                        "nbits, nprobe, refine, k_factor, train_size, seed; factory strings: nprobe, ef_search, "
                        "ef_construction, k_factor, train_size, seed)")
    p.add_argument("--metric", default="ip", choices=["ip", "cosine"],
                   help="similarity: inner product (default; the model's score) or cosine (direction only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pinsage.index import ItemIndex

    run = RunDir.open(args.run)
    params = parse_params(args.param)
    emb, ids = run.embeddings_and_ids()
    t0 = time.perf_counter()
    index = ItemIndex.build(emb, ids, kind=args.kind, metric=args.metric, **params)
    build_s = time.perf_counter() - t0
    out = run.write_index(index)
    log.info("kind=%s n=%d dim=%d metric=%s built in %.2f s; wrote %s", index.kind, len(index), index.dim,
             index.metric, build_s, out)
    return 0

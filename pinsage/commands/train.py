"""``pinsage train``: interactions file in, a run directory out (the contract of docs/cli.md).

DIR receives item_embeddings.npy, item_ids.npy, config.yaml, model.pt (+ checkpoint.pt),
train_log.jsonl, run.json (sizes, timings, the seed, package versions, the command line and the
SHA-256 of the input files), the model card README.md, and what ``pinsage embed | index | related``
need; with ``--plots`` also training_curve.png and embedding_map.png. ``--interactions -`` (or
``--item-features -``) reads that file from standard input. The run is built in a sibling
``.DIR.partial`` directory and renamed into place when complete, so an interrupted run never leaves
a half-written DIR; ``--resume`` continues from the partial directory's last epoch checkpoint.
Under ``torchrun`` (WORLD_SIZE > 1) training is data parallel (gloo on CPU, NCCL on GPUs).
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from pinsage._io import (
    InputError, STDIN, is_stdin, read_stdin, read_table, replace_dir, sha256_bytes, sha256_file, stdin_label,
)
from pinsage.run import RunDir

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train PinSage on an interactions file and write a run directory",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--interactions", required=True, action="append", metavar="FILE[:RELATION]",
                   help="CSV or Parquet file of (user/board, item[, time]) rows (- reads standard input); repeat "
                        "as FILE:RELATION for several relations (e.g. --interactions clicks.csv:click "
                        "--interactions tags.csv:tag)")
    p.add_argument("--user-col", required=True, action="append", metavar="[RELATION=]COL",
                   help="column of the groups: users or boards (several relations: the other node's column; "
                        "RELATION=COL for one relation)")
    p.add_argument("--item-col", required=True, action="append", metavar="[RELATION=]COL",
                   help="column of the items (RELATION=COL for one relation)")
    p.add_argument("--time-col", default=None, action="append", metavar="[RELATION=]COL",
                   help="column of interaction times (numbers or datetimes); several relations: every file "
                        "that has it, RELATION=COL for one, RELATION= for none")
    p.add_argument("--weight-col", default=None, action="append", metavar="[RELATION=]COL",
                   help="column of non-negative edge weights (ratings, play counts, dwell time): walks step "
                        "in proportion to them (sets sampler.weighted; decay: sampler.weight_half_life); "
                        "several relations as --time-col")
    p.add_argument("--item-features", default=None,
                   help="CSV or Parquet file of item features (- reads standard input)")
    p.add_argument("--item-key", default=None, help="column of --item-features holding the item ids")
    p.add_argument("--config", default=None, help="YAML config (sections model, sampler, train)")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    p.add_argument("--seed", type=int, default=None, help="override train.seed")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--plots", action="store_true",
                   help="also write training_curve.png and embedding_map.png (needs pinsage[plot])")
    p.set_defaults(func=run)


def partial_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


class _Input:
    """A file option's table and its record for run.json: the path (absolute, or ``-`` for standard
    input), the SHA-256 of the bytes read and, for standard input, the bytes (to copy into the run)."""

    def __init__(self, option: str, value: str) -> None:
        self.option, self.stdin = option, is_stdin(value)
        self.data: bytes | None = None
        if self.stdin:
            self.data = read_stdin(f"{option} {STDIN}")
            self.source = stdin_label(option)
            self.table = read_table(value, data=self.data, label=self.source)
            self.path, self.sha256 = STDIN, sha256_bytes(self.data)
        else:
            self.source = str(value)
            self.table = read_table(value)
            self.path, self.sha256 = os.path.abspath(value), sha256_file(value)


def _command_line(args: argparse.Namespace) -> list[str]:
    """The command line as typed (``pinsage train ...``), for run.json."""
    argv = getattr(args, "argv", None)
    return [str(a) for a in argv] if argv else ["pinsage", *sys.argv[1:]]


def _init_distributed() -> bool:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return True


def run(args: argparse.Namespace) -> int:
    import pandas as pd  # noqa: F401  (fail early on a broken install)
    import torch

    from pinsage.config import PinSageConfig
    from pinsage.estimator import PinSageEmbedder

    from pinsage.graph.relation_files import single_table_options

    if not single_table_options(args):
        return run_relations(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        holds_run = RunDir(out).holds_run()
        what = "holds another run" if holds_run else "is not empty"
        raise InputError(f"--out {out}: {what}; pass --overwrite to replace it or choose another directory")
    if args.item_features and not args.item_key:
        raise InputError("--item-features needs --item-key (the column holding item ids)")
    if is_stdin(args.interactions) and is_stdin(args.item_features):
        raise InputError("--interactions - and --item-features -: standard input holds one file; "
                         "give the other as a path")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and (is_stdin(args.interactions) or is_stdin(args.item_features)):
        raise InputError(f"{'--interactions' if is_stdin(args.interactions) else '--item-features'} -: "
                         f"standard input cannot feed the {world_size} processes of data-parallel training; "
                         "give a file")
    if getattr(args, "plots", False):
        _check_plot_deps()
    cfg = PinSageConfig.from_yaml(args.config) if args.config else PinSageConfig()
    if args.epochs is not None:
        cfg = cfg.override(train__epochs=args.epochs)
    if args.seed is not None:
        cfg = cfg.override(train__seed=args.seed)

    from pinsage.graph import InteractionGraph

    interactions = _Input("--interactions", args.interactions)
    features_input = _Input("--item-features", args.item_features) if args.item_features else None
    feats = features_input.table if features_input is not None else None
    if feats is not None and args.item_key not in feats.columns:
        raise InputError(f"{features_input.source}: --item-key column {args.item_key!r} not found; "
                         f"columns are {list(feats.columns)}")
    source = interactions.source
    # the graph now, so that the table is not held during training (graph L: 0.6 GB)
    graph = InteractionGraph.from_pandas(interactions.table, args.user_col, args.item_col, time_col=args.time_col,
                                         weight_col=args.weight_col, source=source)
    interactions.table = interactions.data = None

    distributed = _init_distributed()
    rank = int(os.environ.get("RANK", "0"))
    work = partial_dir(out)
    if rank == 0:
        if work.exists() and not args.resume:
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
    if distributed:
        torch.distributed.barrier()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if distributed and device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    model = PinSageEmbedder(cfg, device=device, progress=not args.quiet and sys.stderr.isatty())
    try:
        model.fit(graph, group_col=args.user_col, item_col=args.item_col, time_col=args.time_col,
                  item_features=feats, item_key=args.item_key, work_dir=work, resume=args.resume,
                  source=source, weight_col=args.weight_col)
    except InputError:
        if rank == 0 and not (work / "checkpoint.pt").exists():
            shutil.rmtree(work, ignore_errors=True)  # nothing to resume: leave no trace
        raise
    if rank == 0:
        # the features file travels with the run (embed's default, titles); the input paths are a record only
        features_copy = None
        if features_input is not None:
            features_copy = RunDir(work).copy_input(args.item_features, "item_features", data=features_input.data)
        model.save(work, extra={
            "interactions": interactions.path, "user_col": args.user_col, "item_col": args.item_col,
            "time_col": args.time_col, "weight_col": args.weight_col, "item_features": features_copy, "item_key": args.item_key,
            "item_features_source": features_input.path if features_input is not None else None,
            "world_size": world_size,
            **_provenance(args, interactions, features_input),
        })
        if getattr(args, "plots", False):
            write_plots(model, work)
        write_card(work, out)
        RunDir(work).record_checksums()
        replace_dir(work, out)
        t = model.timings_
        n_new = len(model.catalogue_ids_)
        cold = f" (+ {n_new} catalogue items without interactions, embedded from their content)" if n_new else ""
        log.info("%d items%s, %d groups, %d edges; trained %d epochs in %.0f s (total %.0f s); wrote %s",
                 model.graph_.num_items, cold, model.graph_.num_groups, model.graph_.num_edges, cfg.train.epochs,
                 t["train_s"], t["total_s"], out)
    if distributed:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return 0


def run_relations(args: argparse.Namespace) -> int:
    """``pinsage train`` over several relations (``--interactions FILE:RELATION`` repeated): one process (data
    parallel training is for one table), the same run directory, the graph saved as a HeteroGraph."""
    import torch

    from pinsage.config import PinSageConfig
    from pinsage.estimator import PinSageEmbedder
    from pinsage.graph.relation_files import relation_columns, relations_graph, split_relation

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        what = "holds another run" if RunDir(out).holds_run() else "is not empty"
        raise InputError(f"--out {out}: {what}; pass --overwrite to replace it or choose another directory")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise InputError("several relations (--interactions FILE:RELATION) train in one process; data-parallel "
                         "training (torchrun) is for one table")
    if args.item_features and not args.item_key:
        raise InputError("--item-features needs --item-key (the column holding item ids)")
    specs = [split_relation(v) for v in args.interactions]
    if sum(is_stdin(f) for f, _ in specs) + is_stdin(args.item_features) > 1:
        raise InputError("standard input (-) holds one file; give the others as paths")
    if getattr(args, "plots", False):
        _check_plot_deps()
    cfg = PinSageConfig.from_yaml(args.config) if args.config else PinSageConfig()
    if args.epochs is not None:
        cfg = cfg.override(train__epochs=args.epochs)
    if args.seed is not None:
        cfg = cfg.override(train__seed=args.seed)
    inputs = {r: _Input(f"--interactions {f}:{r}" if is_stdin(f) else "--interactions", f) for f, r in specs}
    tables = {r: (inp.source, inp.table) for r, inp in inputs.items()}
    columns = relation_columns(tables, args.user_col, args.item_col, args.time_col, args.weight_col)
    graph = relations_graph(tables, columns)
    for inp in inputs.values():
        inp.table = inp.data = None
    features_input = _Input("--item-features", args.item_features) if args.item_features else None
    feats = features_input.table if features_input is not None else None
    if feats is not None and args.item_key not in feats.columns:
        raise InputError(f"{features_input.source}: --item-key column {args.item_key!r} not found; "
                         f"columns are {list(feats.columns)}")
    weights = {r: c["weight_col"] for r, c in columns.items() if c["weight_col"]}
    work = partial_dir(out)
    if work.exists() and not args.resume:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = PinSageEmbedder(cfg, device=device, progress=not args.quiet and sys.stderr.isatty())
    try:
        model.fit(graph, item_features=feats, item_key=args.item_key, work_dir=work, resume=args.resume,
                  source=", ".join(inp.source for inp in inputs.values()), weight_col=weights or None)
    except InputError:
        if not (work / "checkpoint.pt").exists():
            shutil.rmtree(work, ignore_errors=True)
        raise
    features_copy = None
    if features_input is not None:
        features_copy = RunDir(work).copy_input(args.item_features, "item_features", data=features_input.data)
    per = {k: {r: c[k] for r, c in columns.items()} for k in ("user_col", "item_col", "time_col", "weight_col")}
    model.save(work, extra={
        "interactions": {r: inp.path for r, inp in inputs.items()},
        "interactions_sha256": {r: inp.sha256 for r, inp in inputs.items()},
        **per, "item_features": features_copy, "item_key": args.item_key,
        "item_features_source": features_input.path if features_input is not None else None, "world_size": 1,
        "command": _command_line(args),
        "item_features_sha256": features_input.sha256 if features_input is not None else None,
    })
    if getattr(args, "plots", False):
        write_plots(model, work)
    write_card(work, out)
    RunDir(work).record_checksums()
    replace_dir(work, out)
    t = model.timings_
    log.info("%d items, relations %s, %d edges; trained %d epochs in %.0f s (total %.0f s); wrote %s",
             model.graph_.num_items, list(graph.relations), graph.num_edges, cfg.train.epochs, t["train_s"],
             t["total_s"], out)
    return 0


def _provenance(args: argparse.Namespace, interactions: _Input, features: _Input | None) -> dict[str, Any]:
    """What run.json records beyond the estimator's own keys: the command line and the SHA-256 of the
    bytes of each input file (``interactions_sha256``, ``item_features_sha256``)."""
    return {"command": _command_line(args), "interactions_sha256": interactions.sha256,
            "item_features_sha256": features.sha256 if features is not None else None}


def write_card(work: Path, out: Path) -> None:
    """Write the run's model card (README.md) into the partial directory ``work``, titled by the final
    name ``out``. A failure is reported as a warning and leaves the (complete) run without a card."""
    from pinsage.card import write_model_card

    try:
        write_model_card(work, name=out.name, run_arg=str(out))
    except Exception as exc:  # the card is a summary: never lose the trained run over it
        log.warning("could not write the model card README.md: %s: %s", type(exc).__name__, exc)


def _degrees_of_rows(model) -> "np.ndarray":
    """Interaction counts in the row order of ``item_embeddings_`` (catalogue items, listed last, have 0)."""
    import numpy as np

    deg = np.asarray(model.graph_.item_degree)
    return np.concatenate([deg, np.zeros(len(model.item_embeddings_) - len(deg), dtype=deg.dtype)])


def _check_plot_deps() -> None:
    """Fail before training, in one line, when ``--plots`` cannot be honoured."""
    import importlib.util

    missing = [m for m in ("matplotlib", "sklearn") if importlib.util.find_spec(m) is None]
    if missing:
        names = ", ".join("scikit-learn" if m == "sklearn" else m for m in missing)
        raise InputError(f'--plots needs {names}: pip install "pinsage[plot]"')


#: items drawn in embedding_map.png (t-SNE of a random sample beyond this)
PLOT_MAX_POINTS = 2000


def write_plots(model, run_dir: Path) -> list[Path]:
    """Write ``training_curve.png`` (from ``train_log.jsonl``) and ``embedding_map.png`` (t-SNE of
    the item embeddings coloured by log degree) into ``run_dir``, each through a temp file + rename.

    A plotting failure is reported as a warning (the ``pinsage.commands.train`` logger) and leaves the
    (complete) run without that figure.
    """
    import numpy as np

    from pinsage._io import atomic_path
    from pinsage.plot import _pyplot, plot_embedding_map, plot_training_curve

    plt = _pyplot()
    figures = {
        "training_curve.png": lambda: plot_training_curve(run_dir / "train_log.jsonl"),
        "embedding_map.png": lambda: plot_embedding_map(
            model.item_embeddings_, np.log1p(_degrees_of_rows(model)), method="tsne",
            max_points=PLOT_MAX_POINTS, seed=model.config_.train.seed, label_name="log(1 + degree)",
            title=f"Item embeddings, t-SNE ({min(PLOT_MAX_POINTS, len(model.item_embeddings_))} "
                  f"of {len(model.item_embeddings_)} items)"),
    }
    written = []
    for name, make in figures.items():
        try:
            fig = make()
            try:
                with atomic_path(run_dir / name) as tmp:
                    fig.savefig(tmp, format="png", dpi=110)
            finally:
                plt.close(fig)
            written.append(run_dir / name)
        except Exception as exc:  # a figure is a convenience: never lose the trained run over it
            log.warning("could not write %s: %s: %s", name, type(exc).__name__, exc)
    return written

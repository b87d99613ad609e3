"""``pinsage train``: interactions file in, a run directory out (the contract of docs/cli.md).

DIR receives item_embeddings.npy, item_ids.npy, config.yaml, model.pt (+ checkpoint.pt),
train_log.jsonl and what ``pinsage embed | index | related`` need; with ``--plots`` also
training_curve.png and embedding_map.png. The run is built in a sibling
``.DIR.partial`` directory and renamed into place when complete, so an interrupted run never leaves
a half-written DIR; ``--resume`` continues from the partial directory's last epoch checkpoint.
Under ``torchrun`` (WORLD_SIZE > 1) training is data parallel (gloo on CPU, NCCL on GPUs).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from pinsage._io import InputError, read_table, replace_dir
from pinsage.run import RunDir


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train PinSage on an interactions file and write a run directory",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--interactions", required=True, help="CSV or Parquet file of (user/board, item[, time]) rows")
    p.add_argument("--user-col", required=True, help="column of the groups: users or boards")
    p.add_argument("--item-col", required=True, help="column of the items")
    p.add_argument("--time-col", default=None, help="column of interaction times (numbers or datetimes)")
    p.add_argument("--item-features", default=None, help="CSV or Parquet file of item features")
    p.add_argument("--item-key", default=None, help="column of --item-features holding the item ids")
    p.add_argument("--config", default=None, help="YAML config (sections model, sampler, train)")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    p.add_argument("--seed", type=int, default=None, help="override train.seed")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--plots", action="store_true",
                   help="also write training_curve.png and embedding_map.png (needs pinsage[plot])")
    p.set_defaults(func=run)


def partial_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


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

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        holds_run = RunDir(out).holds_run()
        what = "holds another run" if holds_run else "is not empty"
        raise InputError(f"--out {out}: {what}; pass --overwrite to replace it or choose another directory")
    if args.item_features and not args.item_key:
        raise InputError("--item-features needs --item-key (the column holding item ids)")
    if getattr(args, "plots", False):
        _check_plot_deps()
    cfg = PinSageConfig.from_yaml(args.config) if args.config else PinSageConfig()
    if args.epochs is not None:
        cfg = cfg.override(train__epochs=args.epochs)
    if args.seed is not None:
        cfg = cfg.override(train__seed=args.seed)

    from pinsage.graph import InteractionGraph

    df = read_table(args.interactions)
    feats = read_table(args.item_features) if args.item_features else None
    if feats is not None and args.item_key not in feats.columns:
        raise InputError(f"{args.item_features}: --item-key column {args.item_key!r} not found; "
                         f"columns are {list(feats.columns)}")
    # the graph now, so that the table is not held during training (graph L: 0.6 GB)
    graph = InteractionGraph.from_pandas(df, args.user_col, args.item_col, time_col=args.time_col,
                                         source=str(args.interactions))
    del df

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
                  source=str(args.interactions))
    except InputError:
        if rank == 0 and not (work / "checkpoint.pt").exists():
            shutil.rmtree(work, ignore_errors=True)  # nothing to resume: leave no trace
        raise
    if rank == 0:
        # the features file travels with the run (embed's default, titles); the input paths are a record only
        features_copy = RunDir(work).copy_input(args.item_features, "item_features") if args.item_features else None
        model.save(work, extra={
            "interactions": os.path.abspath(args.interactions), "user_col": args.user_col, "item_col": args.item_col,
            "time_col": args.time_col, "item_features": features_copy, "item_key": args.item_key,
            "item_features_source": os.path.abspath(args.item_features) if args.item_features else None,
            "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        })
        if getattr(args, "plots", False):
            write_plots(model, work)
        RunDir(work).record_checksums()
        replace_dir(work, out)
        t = model.timings_
        n_new = len(model.catalogue_ids_)
        cold = f" (+ {n_new} catalogue items without interactions, embedded from their content)" if n_new else ""
        print(f"pinsage train: {model.graph_.num_items} items{cold}, {model.graph_.num_groups} groups, "
              f"{model.graph_.num_edges} edges; trained {cfg.train.epochs} epochs in {t['train_s']:.0f} s "
              f"(total {t['total_s']:.0f} s); wrote {out}")
    if distributed:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return 0


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

    A plotting failure is reported on stderr and leaves the (complete) run without that figure.
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
            print(f"pinsage train: warning: could not write {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return written

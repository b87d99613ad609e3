"""``pinsage embed``: embed the items of a new or changed interaction graph with a trained run's model,
without retraining (PinSage is inductive).

The new interactions file is turned into a graph; every item of it is embedded by the run's
trained network over importance neighbourhoods sampled on the *new* graph (with the run's sampler
settings and seed), with node inputs rebuilt on the new graph:

* content features: the run's saved feature encoder applied to ``--item-features`` (default: the
  run's features file, as recorded in run.json); items without a row get the encoder's missing
  flag, as in training;
* the log-degree feature (when the run used it) recomputed from the new graph's degrees;
* the learnable id embedding (when the run has one): items of the run's training catalogue keep
  their trained rows; items not in it (new items) get a **zero** id embedding, so they are embedded
  from their content features and graph neighbourhood alone.

Items of the run that are absent from the new file are not embedded. ``--as-of TIME`` keeps only the
rows with time <= TIME, so the output is the graph as it stood then (items first seen later are left
out); what still reflects later data is the run itself: the trained weights and id rows, and the
structural (spectral) inputs of the run's items, computed on its training graph (docs/guide.md). When the new file is the
training file, the output equals the run's ``item_embeddings.npy`` (same neighbourhoods and inputs).

Output: the directory ``--out DIR``, holding ``item_embeddings.npy`` float32 ``(n, d)`` (one row per
item of the new graph), ``item_ids.npy`` (the items' original ids in the same order) and ``run.json``
(counts and checksums), the names of a run directory. The directory is written beside its final place
and renamed into it, so a crash leaves either no output (or the previous one) or the complete pair,
never embeddings without their ids. ``pinsage index --run DIR`` indexes it.

Example::

    pinsage embed --run runs/pins --interactions pins_today.csv --out runs/pins_today
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from pinsage._io import (
    STDIN, InputError, atomic_dir, is_stdin, read_stdin, read_table, sha256_bytes, sha256_file, stdin_label,
)
from pinsage.ids import positions
from pinsage.run import FILES, RunDir

log = logging.getLogger(__name__)

#: what a run must hold to embed a new graph
REQUIRED = ("ids", "config", "model")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="embed the items of a new/changed interactions file with a trained run",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, metavar="DIR", help="run directory written by `pinsage train`")
    p.add_argument("--interactions", required=True, action="append", metavar="FILE[:RELATION]",
                   help="CSV or Parquet file of (user/board, item[, time]) rows (- reads standard input); a run "
                        "over several relations: one FILE:RELATION per relation of the run")
    p.add_argument("--user-col", default=None, action="append", metavar="[RELATION=]COL",
                   help="column of the groups (default: the run's)")
    p.add_argument("--item-col", default=None, action="append", metavar="[RELATION=]COL",
                   help="column of the items (default: the run's)")
    p.add_argument("--time-col", default=None, action="append", metavar="[RELATION=]COL",
                   help="column of interaction times (default: the run's, if present)")
    p.add_argument("--item-features", default=None,
                   help="CSV or Parquet file of item features (default: the run's features file; "
                        "- reads standard input)")
    p.add_argument("--item-key", default=None, help="column of --item-features holding the item ids "
                                                     "(default: the run's)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output directory: item_embeddings.npy float32 (n, d), item_ids.npy and run.json, "
                        "written as one unit")
    p.add_argument("--as-of", default=None, metavar="TIME",
                   help="embed the graph as it stood at TIME: only rows with time <= TIME (a number in the time "
                        "column's units, or a date for a column of dates); needs the time column")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier embed output in --out")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1, ...")
    p.set_defaults(func=run)


def check_out(out: Path, overwrite: bool) -> Path:
    """The output directory, or InputError: not a ``.npy`` name (the old two-file form), not a file,
    and not a non-empty directory unless ``overwrite`` (then only an earlier ``embed`` output)."""
    if out.suffix.lower() in (".npy", ".npz"):
        raise InputError(f"--out {out}: pinsage embed writes a directory (item_embeddings.npy and item_ids.npy, "
                         f"written as one unit); give a directory name such as --out {out.with_suffix('')}")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        earlier = RunDir(out).meta().get("embedded_by") == "pinsage embed"
        if not (overwrite and earlier):
            what = "holds an earlier embed output; pass --overwrite to replace it" if earlier else \
                "is not empty and not an embed output; choose another directory"
            raise InputError(f"--out {out}: {what}")
    return out


def run(args: argparse.Namespace) -> int:
    from pinsage.graph import InteractionGraph
    from pinsage.sampling import importance_neighborhoods

    from pinsage.graph.relation_files import single_table_options

    run = RunDir.open(args.run, require=REQUIRED)
    run_dir = run.path
    meta = run.meta()
    out = check_out(Path(args.out), overwrite=args.overwrite)
    single = single_table_options(args)
    if isinstance(meta.get("relations"), dict):
        return run_relations(args, run, meta, out)
    if not single:
        raise InputError(f"--run {run_dir}: the run was trained on one table; give one --interactions FILE "
                         f"(no :RELATION)")
    if args.item_features and not (args.item_key or meta.get("item_key")):
        raise InputError("--item-features needs --item-key (the column holding item ids)")
    if is_stdin(args.interactions) and is_stdin(args.item_features):
        raise InputError("--interactions - and --item-features -: standard input holds one file; "
                         "give the other as a path")

    user_col = args.user_col or meta.get("user_col")
    item_col = args.item_col or meta.get("item_col")
    if not user_col or not item_col:
        raise InputError(f"--run {run_dir}: run.json does not name the user/item columns; "
                         "give --user-col and --item-col")
    cfg = run.config()
    # weighted walks need the run's weight column (and its times, for an age decay) in the new file too
    weight_col = meta.get("weight_col") if cfg.sampler.weighted else None
    needs_time = (cfg.sampler.weighted and cfg.sampler.weight_half_life > 0) or args.as_of is not None
    time_col = args.time_col or meta.get("time_col")
    if args.as_of is not None and not time_col:
        raise InputError(f"--as-of {args.as_of!r} needs a time column: the run has none; give --time-col")
    wanted = [user_col, item_col] + ([args.time_col] if args.time_col else [])
    wanted += [c for c in ([time_col] if needs_time else []) + [weight_col] if c and c not in wanted]
    # standard input: its bytes are read once, checksummed and parsed like a file's
    inter_data = read_stdin(f"--interactions {STDIN}") if is_stdin(args.interactions) else None
    source = stdin_label("--interactions") if inter_data is not None else str(args.interactions)
    df = read_table(args.interactions, columns=wanted, data=inter_data, label=source)
    inter_sha = sha256_bytes(inter_data) if inter_data is not None else sha256_file(args.interactions)
    inter_data = None
    if args.as_of is not None:
        from pinsage.graph.as_of import rows_as_of

        df = df[rows_as_of(df, time_col, args.as_of, source)].reset_index(drop=True)
    if time_col and time_col not in df.columns:
        time_col = None  # the run's time column is optional here unless weights decay with age
    graph = InteractionGraph.from_pandas(df, user_col, item_col, time_col=time_col, weight_col=weight_col,
                                         source=source)

    kwargs, state = run.model_config_and_state()
    train_ids = run.ids()

    # ---- neighbourhoods on the new graph, as in training (same settings and seed)
    nb = importance_neighborhoods(graph, cfg.sampler, seed=cfg.train.seed)
    new_ids = np.asarray(graph.item_ids)
    known_rows = positions(new_ids, train_ids)
    # the run's catalogue items (embedded from content, listed after the graph's items) have no trained
    # id row or structural input: they count as new here
    known_rows[known_rows >= int(kwargs["num_items"])] = -1

    # ---- node inputs on the new graph, in the training layout (the estimator's own assembly)
    features = _node_inputs(run, args, meta, cfg, graph, known_rows, nb)
    # ---- the model over the new catalogue: trained id rows for known items, zeros for new ones
    n_new = int((known_rows < 0).sum())
    z = _embed(run_dir, args, kwargs, state, known_rows, nb, features)

    with atomic_dir(out) as tmp:  # embeddings and ids appear together or not at all
        result = RunDir(tmp)
        result.write_embeddings(z, new_ids)
        result.write_meta({"embedded_by": "pinsage embed", "run": str(run_dir.resolve()),
                           "interactions": STDIN if is_stdin(args.interactions)
                           else str(Path(args.interactions).resolve()),
                           "interactions_sha256": inter_sha, "as_of": args.as_of, "num_items": graph.num_items,
                           "num_new_items": n_new, "num_groups": graph.num_groups, "num_edges": graph.num_edges})
        result.record_checksums()
    log.info("%d items (%d not in the run's training catalogue), %d groups, %d edges; wrote %s/%s %s and %s",
             graph.num_items, n_new, graph.num_groups, graph.num_edges, out, FILES["embeddings"], z.shape, FILES["ids"])
    return 0



def _embed(run_dir, args: argparse.Namespace, kwargs: dict, state: dict, known_rows: np.ndarray, nb,
           features: np.ndarray | None) -> np.ndarray:
    """``(N, d)`` float32 embeddings of the new graph: the trained model widened to the new catalogue
    (trained id rows for known items, zeros for new ones) over neighbourhoods ``nb`` and node inputs
    ``features``, on ``--device``. InputError when the inputs' width is not the model's or the device is
    unknown."""
    import torch

    from pinsage.inference import embed_all
    from pinsage.new_items import model_for_catalogue
    from pinsage.nn.model import PinSage

    got = 0 if features is None else features.shape[1]
    if got != int(kwargs.get("feature_dim", 0)):
        raise InputError(f"--run {run_dir}: rebuilt node inputs have {got} columns but the model expects "
                         f"{kwargs.get('feature_dim', 0)}; the run's feature encoder/config and model.pt disagree")
    trained = PinSage.from_config(kwargs)
    trained.load_state_dict(state)
    model = model_for_catalogue(trained, known_rows)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    try:
        device = torch.device(device)
    except RuntimeError as exc:
        raise InputError(f"--device {args.device!r}: {exc}") from exc
    return embed_all(model, nb, features, device=device).cpu().numpy().astype(np.float32)

def _node_inputs(run: RunDir, args: argparse.Namespace, meta: dict, cfg, graph, known_rows, nb):
    """The node inputs of ``graph`` in the run's layout (content from the run's encoder, log degree and
    structural inputs rebuilt), or None; InputError when their width is not the model's."""
    from pinsage.features import rebuild_node_inputs

    encoder = run.feature_encoder()
    feats = None
    if encoder is not None:
        if args.item_features:
            feat_path = Path(args.item_features)
        else:
            try:
                feat_path = run.resolve(meta.get("item_features"))
            except InputError as exc:
                raise InputError(f"{exc}; give --item-features") from exc
            if feat_path is None:
                raise InputError(f"--run {run.path}: the model uses item content features and the run "
                                 "holds no copy of its features file; give --item-features")
            run.verify("inputs")
        key = args.item_key or meta.get("item_key") or encoder.key
        if is_stdin(args.item_features):
            feats = read_table(STDIN, columns=[key], data=read_stdin(f"--item-features {STDIN}"),
                               label=stdin_label("--item-features"))
        else:
            feats = read_table(feat_path, columns=[key])
        if key != encoder.key:
            feats = feats.drop(columns=[encoder.key], errors="ignore").rename(columns={key: encoder.key})
    return rebuild_node_inputs(graph, cfg.model, encoder, feats, run.item_features(), known_rows, nb)


def run_relations(args: argparse.Namespace, run: RunDir, meta: dict, out: Path) -> int:
    """``pinsage embed`` for a run over several relations: the new files (one ``FILE:RELATION`` per relation of
    the run; the columns default to the run's per relation) make a new :class:`~pinsage.graph.HeteroGraph`, whose
    items are embedded over the mixed walk's neighbourhoods (merged or per relation, as in training)."""
    from pinsage.config import relation_settings
    from pinsage.graph.relation_files import column_options, relation_columns, relations_graph, split_relation
    from pinsage.sampling.relations import merge_tables, mixed_neighborhoods

    run_dir = run.path
    trained_relations = list(meta["relations"])
    if args.as_of is not None:
        raise InputError("--as-of is not built for runs over several relations yet")
    specs = [split_relation(v) for v in (args.interactions if isinstance(args.interactions, list)
                                         else [args.interactions])]
    unnamed = [f for f, r in specs if r is None]
    if unnamed:
        raise InputError(f"--interactions {unnamed[0]}: the run {run_dir} has relations {trained_relations}; "
                         f"give one --interactions FILE:RELATION per relation")
    names = [r for _, r in specs]
    if sorted(names) != sorted(trained_relations) or len(set(names)) != len(names):
        raise InputError(f"--interactions names relations {names}; the run {run_dir} was trained on "
                         f"{trained_relations}: give each of them once (new relations need a new run)")
    if sum(is_stdin(f) for f, _ in specs) + is_stdin(args.item_features) > 1:
        raise InputError("standard input (-) holds one file; give the others as paths")
    if args.item_features and not (args.item_key or meta.get("item_key")):
        raise InputError("--item-features needs --item-key (the column holding item ids)")
    cfg = run.config()
    tables, sums = {}, {}
    for f, r in sorted(specs, key=lambda s: trained_relations.index(s[1])):  # the run's relation order
        data = read_stdin(f"--interactions {STDIN}") if is_stdin(f) else None
        label = stdin_label("--interactions") if data is not None else str(f)
        tables[r] = (label, read_table(f, data=data, label=label))
        sums[r] = sha256_bytes(data) if data is not None else sha256_file(f)

    def options(key: str, given) -> list[str]:
        """The run's per-relation columns, overridden by the command line's (plain or RELATION=)."""
        recorded = meta.get(key) if isinstance(meta.get(key), dict) else {}
        plain, per = column_options(given, trained_relations, "--" + key.replace("_", "-"))
        out = {r: recorded.get(r) for r in trained_relations}
        if plain is not None:
            out = {r: plain for r in trained_relations}
        out.update(per)
        return [f"{r}={c or ''}" for r, c in out.items()]

    weights = options("weight_col", None) if cfg.sampler.weighted else None
    columns = relation_columns(tables, options("user_col", args.user_col), options("item_col", args.item_col),
                               options("time_col", args.time_col), weights)
    hetero = relations_graph(tables, columns)
    graph = hetero.merged_graph()
    probs, _ = relation_settings(cfg, hetero.relations, source=str(run_dir / "config.yaml"))
    nb = mixed_neighborhoods(hetero, cfg.sampler, probs, seed=cfg.train.seed)
    kwargs, state = run.model_config_and_state()
    new_ids = np.asarray(hetero.item_ids)
    known_rows = positions(new_ids, run.ids())
    known_rows[known_rows >= int(kwargs["num_items"])] = -1
    features = _node_inputs(run, args, meta, cfg, graph, known_rows, merge_tables(nb))
    z = _embed(run_dir, args, kwargs, state, known_rows, nb, features)
    n_new = int((known_rows < 0).sum())
    with atomic_dir(out) as tmp:
        result = RunDir(tmp)
        result.write_embeddings(z, new_ids)
        result.write_meta({"embedded_by": "pinsage embed", "run": str(run_dir.resolve()),
                           "interactions": {r: STDIN if is_stdin(f) else str(Path(f).resolve()) for f, r in specs},
                           "interactions_sha256": sums, "as_of": None, "num_items": hetero.num_items,
                           "num_new_items": n_new, "num_groups": graph.num_groups, "num_edges": hetero.num_edges,
                           "relations": list(hetero.relations)})
        result.record_checksums()
    log.info("%d items (%d not in the run's training catalogue), relations %s, %d edges; wrote %s/%s %s and %s",
             hetero.num_items, n_new, list(hetero.relations), hetero.num_edges, out, FILES["embeddings"], z.shape,
             FILES["ids"])
    return 0

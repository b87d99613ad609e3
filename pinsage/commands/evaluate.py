"""``pinsage evaluate``: related-item retrieval quality of a run's embeddings on held-out pairs.

``--test FILE`` is a CSV or Parquet file of held-out rows with columns ``query`` and ``target``
(item ids) and, optionally, ``user`` (the user/board id, as in the run's --user-col) -- e.g. the
``test`` table of :func:`pinsage.evaluation.leave_last_out`, whose ``train`` table the run was
trained on. For every row the whole catalogue is scored by dot product with the query's embedding;
the query and, when a ``user`` column is given, the user's training items (the run's graph) are
excluded; the target's rank gives HR@k, NDCG@k, MRR (the protocol of docs/quality.md, computed by
:func:`pinsage.evaluation.evaluate_embeddings`; ties count as a random tie-break). Rows whose query
or target is not among the run's items are skipped and counted. ``--test -`` reads the file from
standard input.

Output: a readable table of the metrics; ``--format json|csv|parquet`` (``--json`` is ``--format
json``) prints them as JSON or a one-row CSV on stdout, or writes them into ``--output FILE`` (the
format from its suffix unless ``--format`` says). ``--record`` also stores them in the run's
``run.json`` (``evaluations``: one entry per test file and k, with the file's SHA-256) and renders the
run's model card ``README.md`` again with them.

Example::

    pinsage evaluate --run runs/ml100k --test ml100k_test.csv
    pinsage evaluate --run runs/ml100k --test ml100k_test.csv --k 20 --json
    pinsage evaluate --run runs/ml100k --test ml100k_test.csv --record --output metrics.csv
"""
from __future__ import annotations

import argparse
import logging
import os
from typing import Any

import numpy as np
import pandas as pd

from pinsage._io import STDIN, InputError, is_stdin, read_stdin, read_table, sha256_bytes, sha256_file, stdin_label
from pinsage.ids import coerce_ids, lookup_keys
from pinsage.results import add_output_options, emit_results, output_target
from pinsage.run import RunDir

TEST_COLUMNS = ("query", "target")
#: the most evaluations run.json keeps (the latest of each test file and k)
MAX_RECORDED = 20

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="HR@k, NDCG@k, MRR of a run's embeddings on held-out (user, query, target) rows",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, metavar="DIR", help="run directory written by `pinsage train`")
    p.add_argument("--test", required=True, metavar="FILE",
                   help="CSV/Parquet with columns query, target and optionally user (- reads standard input)")
    p.add_argument("--k", type=int, default=10, help="cut-off of HR@k and NDCG@k (default 10)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON (the same as --format json)")
    add_output_options(p)
    p.add_argument("--record", action="store_true",
                   help="also store the metrics in the run's run.json and re-render its model card README.md")
    p.set_defaults(func=run)


def _as_ids(col: pd.Series, like: np.ndarray) -> np.ndarray:
    """The column's values in the dtype of ``like`` where they differ (e.g. ints read as strings);
    values that cannot convert become ids that match nothing."""
    vals = col.to_numpy()
    if vals.dtype.kind == like.dtype.kind or (vals.dtype == object and like.dtype.kind in "US"):
        return lookup_keys(vals)
    conv, bad = coerce_ids(vals, like)
    if bad.any():
        conv = conv.astype(object)
        conv[bad] = [f"\x00pinsage-unknown-{j}" for j in np.flatnonzero(bad)]  # match no id
    return conv


def run(args: argparse.Namespace) -> int:
    from pinsage.evaluation import Split, evaluate_embeddings

    if args.k < 1:
        raise InputError(f"--k must be a positive integer, got {args.k}")
    fmt = getattr(args, "format", None)
    if args.json and fmt not in (None, "json"):
        raise InputError(f"--json and --format {fmt} ask for different formats; give one")
    out_path, fmt = output_target(getattr(args, "output", None), fmt or ("json" if args.json else None))
    run = RunDir.open(args.run)
    run_dir = run.path
    emb, ids = run.embeddings_and_ids()
    data = read_stdin(f"--test {STDIN}") if is_stdin(args.test) else None
    test_name = stdin_label("--test") if data is not None else str(args.test)
    test = read_table(args.test, columns=list(TEST_COLUMNS), data=data, label=test_name)
    test_sha = sha256_bytes(data) if data is not None else sha256_file(args.test)
    del data
    if len(test) == 0:
        raise InputError(f"--test {args.test}: no rows")
    has_user = "user" in test.columns
    frame = pd.DataFrame({"query": _as_ids(test["query"], ids), "target": _as_ids(test["target"], ids)})
    if has_user:
        if not run.has("graph"):
            raise InputError(f"--run {run_dir}: graph/ missing; it is needed to exclude the users' training "
                             "items (or drop the test file's user column)")
        graph = run.graph()
        users = np.asarray(graph.group_ids)
        train = pd.DataFrame({"user": users[graph.edge_groups()],
                              "item": np.asarray(graph.item_ids)[graph.group_items]})
        frame.insert(0, "user", _as_ids(test["user"], users))
    else:
        # no users: exclude only the query. Test users 0..n-1 match no training row; the one
        # placeholder row (user -1) keeps the user x item matrix non-empty.
        train = pd.DataFrame({"user": np.full(1, -1, dtype=np.int64), "item": ids[:1]})
        frame.insert(0, "user", np.arange(len(frame), dtype=np.int64))
    split = Split(train=train, test=frame, user_col="user", item_col="item")
    res = evaluate_embeddings(emb, split, item_ids=ids, k=args.k)
    res = {"k": args.k, **res, "excluded_user_items": has_user}
    if getattr(args, "record", False):
        record_evaluation(run, res, STDIN if is_stdin(args.test) else os.path.abspath(args.test), test_sha)
    if fmt is not None:
        emit_results(out_path, fmt, pd.DataFrame([res]), lambda: res)
        if out_path is not None:
            log.info("%d rows evaluated, %d skipped; wrote %s", res["n_evaluated"], res["n_skipped"], out_path)
        return 0
    print(f"pinsage evaluate: {run_dir} on {test_name}: {res['n_evaluated']} rows evaluated, "
          f"{res['n_skipped']} skipped (query or target not among the run's {len(ids)} items)")
    names = [f"HR@{args.k}", f"NDCG@{args.k}", "MRR", "MRR_scaled", "mean_rank"]
    width = max(len(n) for n in names)
    print(f"{'metric':<{width}}  value")
    for n in names:
        v = res[n]
        print(f"{n:<{width}}  {v:.4f}" if n != "mean_rank" else f"{n:<{width}}  {v:.1f}")
    return 0


def record_evaluation(run: RunDir, result: dict[str, Any], test: str, test_sha256: str) -> dict[str, Any]:
    """Store ``result`` in the run's run.json (``evaluations``, replacing an earlier one of the same test
    file contents and k) and render the model card README.md again. Returns the stored entry.

    run.json is rewritten whole through a temporary file and a rename; its checksums of the run's
    files stay as they are (neither run.json nor README.md is among them).
    """
    from datetime import datetime, timezone

    from pinsage.card import write_model_card

    entry = {"test": test, "test_sha256": test_sha256,
             "evaluated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
             **{k: (v.item() if isinstance(v, np.generic) else v) for k, v in result.items()}}
    meta = run.meta()
    kept = [e for e in meta.get("evaluations") or []
            if isinstance(e, dict) and (e.get("test_sha256"), e.get("k")) != (test_sha256, entry["k"])]
    meta["evaluations"] = (kept + [entry])[-MAX_RECORDED:]
    run.write_meta(meta)
    path = write_model_card(run)
    log.info("recorded the evaluation in %s and %s", run.file("meta"), path)
    return entry

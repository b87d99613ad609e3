"""The model card of a run: ``DIR/README.md``, a short summary for people, rendered from ``run.json`` and
``config.yaml``.

``pinsage train`` writes it as part of the run (before the run is renamed into place);
``pinsage evaluate --record`` adds its measurements to ``run.json`` and renders the card again. It
lists the data sizes, the settings that matter, the training time, the input files with their SHA-256,
the package versions, the command line and the recorded evaluations ("not evaluated" and how to, until
one is recorded). The card is left out of ``run.json``'s checksums (:data:`pinsage.run.UNCHECKED`): no
command reads it, and re-rendering it never makes a run's files fail verification.

>>> text = render_model_card({"num_items": 3, "num_groups": 2, "num_edges": 4}, None, name="demo")
>>> text.splitlines()[0]
'# Model card: demo'
>>> "Not evaluated" in text
True
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from pinsage._io import atomic_path
from pinsage.config import PinSageConfig
from pinsage.run import FILES, RunDir

__all__ = ["render_model_card", "write_model_card", "CARD_METRICS"]

#: the metrics of an evaluation record shown on the card, in order (``k`` makes ``HR@k``, ``NDCG@k``)
CARD_METRICS = ("HR@{k}", "NDCG@{k}", "MRR", "mean_rank")


def _cell(value: Any) -> str:
    """A value for a Markdown table cell (``|`` escaped, None shown as a dash)."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    return "–" if value in (None, "") else f"`{_cell(value)}`"


def _seconds(s: Any) -> str:
    if not isinstance(s, (int, float)):
        return "–"
    if s < 120:
        return f"{s:.1f} s"
    return f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def _table(header: tuple[str, str], rows: list[tuple[str, str]]) -> list[str]:
    return [f"| {header[0]} | {header[1]} |", "|---|---|", *[f"| {a} | {b} |" for a, b in rows]]


def _settings(cfg: PinSageConfig | None, meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    if cfg is None:
        return [("settings", "config.yaml missing or unreadable")]
    m, s, t = cfg.model, cfg.sampler, cfg.train
    scoring = ("dot product (learned length x cosine; `model.magnitude: true`)" if m.magnitude
               else "cosine (unit-length embeddings; `model.magnitude: false`)")
    method = meta.get("neighborhood_method")
    neighbourhoods = (f"{method} (`sampler.method: {s.method}`)" if method and method != s.method else s.method)
    walks = f"{s.num_neighbors} neighbours, walks of length {s.walk_length}, restart {s.restart_prob}"
    if s.method != "exact" and method != "exact":
        walks += f", {s.num_walks} walks per item"
    if s.weighted:
        walks += ", weighted" + (f" (half-life {s.weight_half_life})" if s.weight_half_life else "")
    pairs = f"`train.pairs_per_epoch`: {t.pairs_per_epoch:,} (0: every pair once), batches of {t.batch_size:,}"
    if isinstance(meta.get("pairs_per_epoch"), int):
        pairs = (f"{meta['pairs_per_epoch']:,} per epoch ({meta.get('steps_per_epoch', '?')} steps of "
                 f"{t.batch_size:,}; `train.pairs_per_epoch`: {t.pairs_per_epoch:,})")
        if isinstance(meta.get("num_positive_pairs"), int):
            pairs += f", drawn from {meta['num_positive_pairs']:,} positive pairs"
    loss = t.loss + (f" (temperature {t.temperature})" if t.loss == "softmax" else f" (margin {t.margin})")
    return [
        ("layers (`model.num_layers`)", _cell(m.num_layers)),
        ("embedding dimension (`model.out_channels`)", _cell(m.out_channels)),
        ("id embedding (`model.id_dim`)", _cell(m.id_dim) if m.id_dim else "none (content and structure only)"),
        ("loss (`train.loss`)", loss),
        ("scoring", scoring),
        ("neighbourhoods (`sampler.method`)", f"{neighbourhoods}: {walks}"),
        ("epochs (`train.epochs`)", _cell(t.epochs)),
        ("training pairs", pairs),
        ("negatives", f"{t.easy_negatives} easy per batch, up to {t.hard_negatives_max} hard per pair"),
        ("seed (`train.seed`)", _cell(meta.get("seed", t.seed))),
    ]


def _evaluation(meta: Mapping[str, Any], run_arg: str) -> list[str]:
    records = [r for r in meta.get("evaluations") or [] if isinstance(r, Mapping)]
    if not records:
        return ["Not evaluated. To measure related-item retrieval on held-out pairs (columns `query`, `target`,",
                "optionally `user`) and record the result here:", "",
                f"    pinsage evaluate --run {run_arg} --test test.csv --record"]
    lines = ["| test file (SHA-256) | rows | " + " | ".join(m.split("@")[0] + ("@k" if "@" in m else "")
                                                          for m in CARD_METRICS) + " | k |",
             "|---|---|" + "---|" * len(CARD_METRICS) + "---|"]
    for r in records:
        k = r.get("k", 10)
        sha, path = r.get("test_sha256"), r.get("test")
        shown = _code("standard input" if path == "-" else (os.path.basename(str(path)) if path else None))
        test = f"{shown} ({str(sha)[:12]}…)" if sha else shown
        rows = f"{_cell(r.get('n_evaluated'))} ({_cell(r.get('n_skipped'))} skipped)"
        vals = [_cell(r.get(m.format(k=k))) for m in CARD_METRICS]
        lines.append(f"| {test} | {rows} | " + " | ".join(vals) + f" | {k} |")
    lines += ["", "Protocol: docs/quality.md (every item scored by dot product; the query and, with a `user` "
              "column, the user's training items excluded)."]
    return lines


def render_model_card(meta: Mapping[str, Any], config: PinSageConfig | None, name: str = "run",
                      run_arg: str | None = None) -> str:
    """The model card (Markdown) of a run, from its ``run.json`` (``meta``) and its settings.

    Args:
        meta: the run's metadata (keys missing from older runs are shown as dashes).
        config: the run's :class:`~pinsage.PinSageConfig` (None: not shown).
        name: the run's name, for the title.
        run_arg: the run directory as commands should be shown it (default ``name``).

    Returns:
        The card's text, ending in a newline.
    """
    run_arg = run_arg or name
    n_cat = meta.get("num_catalogue_items") or 0
    n_items = meta.get("num_items")
    when = meta.get("trained_at")
    timings = meta.get("timings") or {}
    versions = meta.get("versions") or {}
    out = [f"# Model card: {name}", ""]
    head = "PinSage item embeddings written by `pinsage train`"
    if versions.get("pinsage"):
        head += f" (pinsage {versions['pinsage']})"
    if when:
        head += f" on {when}"
    out += [head + f". `{FILES['embeddings']}` holds one row per item of `{FILES['ids']}`; "
            f"`pinsage related --run {run_arg} --item ID` lists an item's neighbours.", ""]

    out += ["## Data", ""]
    out += _table(("", "count"), [
        ("items", _cell(n_items)),
        ("items with interactions (graph items)", _cell(meta.get("num_graph_items", n_items))),
        ("items without interactions (embedded from content)", _cell(n_cat)),
        (f"groups (`{meta.get('user_col') or 'user'}`)", _cell(meta.get("num_groups"))),
        ("edges (interactions)", _cell(meta.get("num_edges"))),
    ])
    cols = [f"group {_code(meta.get('user_col'))}", f"item {_code(meta.get('item_col'))}",
            f"time {_code(meta.get('time_col'))}"]
    if meta.get("weight_col"):
        cols.append(f"weight {_code(meta.get('weight_col'))}")
    out += ["", "Columns: " + ", ".join(cols) + ".", ""]

    out += ["## Settings", ""]
    out += _table(("setting", "value"), _settings(config, meta))
    out += ["", f"Every setting: `{FILES['config']}` (`pinsage train --config {run_arg}/{FILES['config']}` "
            "repeats the run).", ""]

    out += ["## Training", ""]
    out += _table(("step", "time"), [
        ("importance neighbourhoods", _seconds(timings.get("neighborhoods_s"))),
        ("pairs and negatives", _seconds(timings.get("pairs_negatives_s"))),
        ("training", _seconds(timings.get("train_s"))),
        ("embedding every item", _seconds(timings.get("inference_s"))),
        ("total", _seconds(timings.get("total_s"))),
    ])
    if meta.get("world_size", 1) and int(meta.get("world_size", 1)) > 1:
        out += ["", f"Data parallel over {meta['world_size']} processes."]
    out += [""]

    out += ["## Inputs", ""]
    inputs = [("interactions", meta.get("interactions"), meta.get("interactions_sha256"))]
    if meta.get("item_features_source") or meta.get("item_features"):
        inputs.append(("item features", meta.get("item_features_source"), meta.get("item_features_sha256")))
    out += ["| input | file | SHA-256 |", "|---|---|---|"]
    for role, path, sha in inputs:
        shown = "standard input" if path == "-" else (os.path.basename(str(path)) if path else None)
        out.append(f"| {role} | {_code(shown)} | {_code(sha)} |")
    if meta.get("item_features"):
        out += ["", f"A copy of the item features travels with the run: {_code(meta['item_features'])}."]
    out += [""]

    out += ["## Software", ""]
    out += _table(("package", "version"), [(k, _code(v)) for k, v in versions.items()] or [("versions", "not recorded")])
    command = meta.get("command")
    if isinstance(command, list) and command:
        import shlex

        out += ["", "Command line:", "", "    " + " ".join(shlex.quote(str(a)) for a in command)]
    out += [""]

    out += ["## Evaluation", ""]
    out += _evaluation(meta, run_arg)
    return "\n".join(out).rstrip("\n") + "\n"


def write_model_card(run: RunDir | str | os.PathLike, name: str | None = None, run_arg: str | None = None) -> Path:
    """Render the card of ``run`` from its ``run.json`` and ``config.yaml`` and write ``README.md``
    atomically (a temporary file and a rename). Returns the card's path.

    Args:
        run: the run directory (or its path).
        name: the run's name for the title (default: the directory's name; ``pinsage train`` passes
            the final name while the run is still being assembled under ``.DIR.partial``).
        run_arg: the directory as the card's example commands show it (default ``name``).
    """
    run = run if isinstance(run, RunDir) else RunDir(run)
    try:
        config = run.config() if run.has("config") else None
    except Exception:  # an unreadable config is shown as such; the card never fails a run
        config = None
    name = name or run.path.name
    text = render_model_card(run.meta(), config, name=name, run_arg=run_arg or name)
    path = run.file("card")
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return path

"""Several relations from the command line: ``--interactions FILE:RELATION`` (repeated) and column options
given once for every relation (``--user-col user_id``) or per relation (``--user-col genre=genre``).

``pinsage train`` and ``pinsage embed`` share these rules (docs/cli.md, "Several relations"):

* ``FILE:RELATION`` names the relation of each file (a name of letters, digits, ``_ . -``, not starting with
  a digit); one ``--interactions`` without a name is the single-table run of today;
* ``--user-col C`` / ``--item-col C``: the other node's / the item's column of every relation;
  ``--user-col RELATION=C`` sets one relation's (it wins over the plain form);
* ``--time-col C`` / ``--weight-col C``: every relation whose file has column ``C`` (at least one must);
  ``RELATION=C`` requires it of that file; ``RELATION=`` (empty) gives that relation none.

Errors name the file, the column and, for bad values, the first offending row.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import pandas as pd

from pinsage._io import InputError
from pinsage.graph.hetero import HeteroGraph

__all__ = ["split_relation", "column_options", "relation_columns", "relations_graph", "single_table_options"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def split_relation(value: str) -> tuple[str, str | None]:
    """``"clicks.csv:click"`` -> ``("clicks.csv", "click")``; ``"clicks.csv"`` -> ``("clicks.csv", None)``.

    >>> split_relation("data/tags.csv:tag"), split_relation("plain.csv")
    (('data/tags.csv', 'tag'), ('plain.csv', None))
    """
    path, sep, name = value.rpartition(":")
    if sep and path and _NAME.match(name) and "/" not in name:
        return path, name
    return value, None


def column_options(values: Sequence[str] | str | None, relations: Sequence[str],
                   option: str) -> tuple[str | None, dict[str, str | None]]:
    """``(the plain value, {relation: value})`` of a repeated column option; ``RELATION=`` gives None.
    Raises InputError for two plain values or a relation that is not one of ``relations``."""
    if values is None:
        return None, {}
    if isinstance(values, str):
        values = [values]
    plain, per = None, {}
    for v in values:
        name, sep, col = v.partition("=")
        if sep and _NAME.match(name):
            if name not in relations:
                raise InputError(f"{option} {v}: no relation {name!r}; the relations are {list(relations)} "
                                 f"(named by --interactions FILE:RELATION)")
            per[name] = col or None
        else:
            if plain is not None:
                raise InputError(f"{option} given twice ({plain!r} and {v!r}); give one plain column and "
                                 f"RELATION=COLUMN for the others")
            plain = v
    return plain, per


def relation_columns(tables: Mapping[str, tuple[str, pd.DataFrame]], user_col: Sequence[str] | str | None,
                     item_col: Sequence[str] | str | None, time_col: Sequence[str] | str | None = None,
                     weight_col: Sequence[str] | str | None = None) -> dict[str, dict[str, str | None]]:
    """Each relation's columns ``{relation: {"user_col", "item_col", "time_col", "weight_col"}}`` from the
    options (see the module doc). ``tables``: relation -> ``(file label, DataFrame)`` (the columns are
    checked against each file; only the header matters)."""
    names = list(tables)
    out: dict[str, dict[str, str | None]] = {r: {} for r in names}
    for key, values, required in (("user_col", user_col, True), ("item_col", item_col, True),
                                  ("time_col", time_col, False), ("weight_col", weight_col, False)):
        option = "--" + key.replace("_", "-")
        plain, per = column_options(values, names, option)
        for r in names:
            label, df = tables[r]
            if r in per:
                col = per[r]
                if col is not None and col not in df.columns:
                    raise InputError(f"{label}: {option} {r}={col}: column {col!r} not found; columns are "
                                     f"{list(df.columns)}")
            elif required:
                col = plain
                if col is None:
                    raise InputError(f"{label}: no {option} for relation {r!r}; give {option} COLUMN or "
                                     f"{option} {r}=COLUMN")
                if col not in df.columns:
                    raise InputError(f"{label}: {option} column {col!r} not found (relation {r!r}); columns are "
                                     f"{list(df.columns)}; give {option} {r}=COLUMN for this file")
            else:
                col = plain if plain is not None and plain in df.columns else None
            out[r][key] = col
        if not required and plain is not None and not any(plain in tables[r][1].columns for r in names if r not in per):
            raise InputError(f"{option} {plain}: no file has column {plain!r} "
                             f"({', '.join(tables[r][0] for r in names)})")
    return out


def relations_graph(tables: Mapping[str, tuple[str, pd.DataFrame]],
                    columns: Mapping[str, Mapping[str, str | None]]) -> HeteroGraph:
    """The :class:`HeteroGraph` of the relation tables with :func:`relation_columns`' columns; other node types
    are the user columns' names (so relations with one user column share their users). Errors of the build
    name the file beside the relation."""
    frames = {r: df for r, (_, df) in tables.items()}
    pick = {k: {r: columns[r][k] for r in tables} for k in ("user_col", "item_col", "time_col", "weight_col")}
    try:
        return HeteroGraph.from_pandas(frames, other_col=pick["user_col"], item_col=pick["item_col"],
                                       time_col=pick["time_col"], weight_col=pick["weight_col"])
    except InputError as exc:
        msg = str(exc)
        for r, (label, _) in tables.items():
            msg = msg.replace(f"relation {r!r}:", f"{label} (relation {r!r}):")
        raise InputError(msg) from None


def single_table_options(args: Any) -> bool:
    """Whether a command line (``argparse`` namespace with the repeated options ``interactions``, ``user_col``,
    ``item_col``, ``time_col``, ``weight_col``) names one table (today's form); then the options become plain
    strings again. Several ``--interactions`` must each name their relation (``FILE:RELATION``)."""
    specs = [split_relation(v) for v in args.interactions]
    if len(specs) == 1 and specs[0][1] is None:
        args.interactions = args.interactions[0]
        for key in ("user_col", "item_col", "time_col", "weight_col"):
            values = getattr(args, key, None)
            if values is None:
                continue
            option = "--" + key.replace("_", "-")
            if len(values) > 1:
                raise InputError(f"{option} given {len(values)} times for one --interactions file; several columns "
                                 f"of one kind need several relations (--interactions FILE:RELATION)")
            setattr(args, key, values[0])
        return True
    unnamed = [v for v, (_, r) in zip(args.interactions, specs) if r is None]
    if unnamed:
        raise InputError(f"--interactions {unnamed[0]}: several relations need a name for every file: "
                         f"--interactions FILE:RELATION (e.g. clicks.csv:click)")
    names = [r for _, r in specs]
    if len(set(names)) != len(names):
        raise InputError(f"--interactions: relation names must differ, got {names}")
    return False

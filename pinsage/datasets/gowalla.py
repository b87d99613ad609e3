"""Reader for Gowalla check-ins in the LightGCN / NGCF text format (``train.txt``, ``test.txt``).

Each line is a user id followed by the ids of the items (locations) the user checked in at, separated
by spaces: ``"17 4 80 81 2309"``. The two files are one random split of each user's items; for the
related-item protocol (``docs/quality.md``) they are read as one interaction set. There is no time
column: :func:`pinsage.evaluation.leave_last_out` orders each user's items by a seeded permutation.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from pinsage._io import InputError

__all__ = ["read_gowalla", "read_user_item_lists"]

GOWALLA_FILES: tuple[str, ...] = ("train.txt", "test.txt")


def read_user_item_lists(path: str | os.PathLike) -> pd.DataFrame:
    """One ``user item item ...`` file: columns ``user_id``, ``item_id`` (int64), one row per listed item.

    A line with a user and no items contributes no rows; blank lines are skipped. Raises
    :class:`~pinsage.InputError` naming the file, the line and the field that is not a
    non-negative integer.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found (expected a 'user item item ...' text file)")
    users: list[int] = []
    counts: list[int] = []
    line_numbers: list[int] = []
    tokens: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if not fields[0].isdigit():
                raise InputError(f"{path}, line {line_no}: the user id must be a non-negative integer, "
                                 f"got {fields[0]!r}")
            users.append(int(fields[0]))
            line_numbers.append(line_no)
            counts.append(len(fields) - 1)
            tokens.extend(fields[1:])
    try:
        items = np.array(tokens, dtype=np.int64)
    except ValueError:
        items = None
    if items is None or (items < 0).any():
        bad = next(j for j, t in enumerate(tokens) if not t.isdigit())
        line_of = np.repeat(np.arange(len(counts)), counts)[bad]
        field_no = bad - int(np.sum(counts[:line_of])) + 2  # the user id is field 1
        raise InputError(f"{path}, line {line_numbers[line_of]}, field {field_no}: an item id must be a "
                         f"non-negative integer, got {tokens[bad]!r}")
    return pd.DataFrame({"user_id": np.repeat(np.asarray(users, dtype=np.int64), counts), "item_id": items})


def read_gowalla(path: str | os.PathLike, files: Sequence[str] = GOWALLA_FILES) -> pd.DataFrame:
    """Gowalla check-ins (``path``: a directory with ``train.txt`` and ``test.txt``, or one such file).

    Returns columns ``user_id``, ``item_id`` (int64), the files' rows in order (``train.txt`` first),
    duplicates kept (the protocol drops them). For the shared ``gowalla-3k`` subset: 3,000 user lines,
    35,182 items after the protocol's filtering.
    """
    path = Path(path)
    if path.is_file():
        return read_user_item_lists(path)
    if not path.is_dir():
        raise InputError(f"{path}: not found (expected a directory with {', '.join(files)})")
    missing = [name for name in files if not (path / name).is_file()]
    if missing:
        raise InputError(f"directory {path} has no {', '.join(missing)} (expected the Gowalla files {', '.join(files)})")
    return pd.concat([read_user_item_lists(path / name) for name in files], ignore_index=True)

"""Files shared by the graph stores (:class:`~pinsage.graph.InteractionGraph`'s format 1 and
:class:`~pinsage.graph.CompressedGraph`'s format 2): the id maps and the memory-mapped ``.npy`` arrays."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from pinsage._io import InputError

ID_MAPS = ("item_ids", "group_ids")


def save_id_maps(directory: Path, header: dict[str, Any], item_ids: np.ndarray, group_ids: np.ndarray) -> list[str]:
    """Write the two id maps into ``directory`` (``.npy``; Parquet for object ids, which ``.npy`` would
    pickle) and record their dtypes in ``header``; returns the file names written."""
    written = []
    for name, ids in (("item_ids", item_ids), ("group_ids", group_ids)):
        ids = np.asarray(ids)
        header[f"{name}_dtype"] = str(ids.dtype)
        if ids.dtype == object:
            pd.DataFrame({"id": ids}).to_parquet(directory / f"{name}.parquet")
            written.append(f"{name}.parquet")
        else:
            np.save(directory / f"{name}.npy", ids)
            written.append(f"{name}.npy")
    return written


def load_id_maps(directory: Path, header: dict[str, Any]) -> dict[str, np.ndarray]:
    """``{"item_ids": ..., "group_ids": ...}`` as :func:`save_id_maps` wrote them (never unpickled)."""
    ids = {}
    for name in ID_MAPS:
        f = directory / (f"{name}.parquet" if header.get(f"{name}_dtype") == "object" else f"{name}.npy")
        try:
            ids[name] = pd.read_parquet(f)["id"].to_numpy() if f.suffix == ".parquet" else np.load(f)
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"{f}: missing or unreadable: {exc}") from exc
    return ids


def load_arrays(directory: Path, names: Iterable[str], present: set[str], mmap: bool = True) -> dict[str, np.ndarray | None]:
    """``{name: array}`` of ``directory/name.npy`` for each name in ``present`` (memory-mapped when
    ``mmap``), None for the others; InputError naming a file that is unreadable or truncated."""
    mode = "r" if mmap else None
    arrays: dict[str, np.ndarray | None] = {}
    for name in names:
        f = directory / f"{name}.npy"
        if name not in present:
            arrays[name] = None
            continue
        try:
            arrays[name] = np.load(f, mmap_mode=mode, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"{f}: unreadable or truncated: {exc}") from exc
    return arrays

"""Atomic file writing and tabular input reading shared by every user-facing path."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

__all__ = ["atomic_path", "atomic_dir", "replace_dir", "save_npy_atomic", "read_table", "sha256_file", "InputError"]


class InputError(ValueError):
    """Bad user input: the message names the file, column, row and what was expected."""


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _follow_umask(path: str | os.PathLike, directory: bool = False) -> None:
    """Give a ``mkstemp`` / ``mkdtemp`` result (0600 / 0700 whatever the umask) the mode an ordinary
    ``open`` / ``mkdir`` would: 0666 / 0777 less the umask, so a colleague or a serving account can read it."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    Readers never see a half-written file: either the old content or the complete new one.
    On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    _follow_umask(tmp)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; on success it replaces ``path``.

    An interrupted writer leaves no half-written ``path``. An existing ``path`` is replaced whole.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    _follow_umask(tmp, directory=True)
    try:
        yield tmp
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    return False  # e.g. a filesystem without RENAME_EXCHANGE: fall back to two renames


def replace_dir(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Move the complete directory ``src`` onto ``dst``, replacing any existing ``dst`` whole.

    Where the system can (Linux), the two directories are exchanged in one atomic step, so there is no
    moment without ``dst``; elsewhere ``dst`` is first renamed aside under a fresh unique name. The old
    copy is removed afterwards.
    """
    src, dst = Path(src), Path(dst)
    if not dst.exists():
        os.replace(src, dst)
        return
    if _exchange(src, dst):
        shutil.rmtree(src, ignore_errors=True)  # src now holds the old copy
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old.", dir=dst.parent))
    os.rmdir(old)
    os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as hex (read in 1 MiB blocks)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_npy_atomic(path: str | os.PathLike, array: np.ndarray) -> None:
    """``np.save`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=array.dtype == object)


def read_table(path: str | os.PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a CSV (``.csv``, ``.tsv``, ``.txt``, optionally gzipped) or Parquet file into a DataFrame.

    Raises :class:`InputError` naming the file when it is missing, of another format, or unreadable,
    and naming the missing column when ``columns`` are asked for and absent.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            df = pd.read_parquet(path)
        elif name.endswith((".csv", ".csv.gz", ".txt", ".tsv", ".tsv.gz")):
            sep = "\t" if ".tsv" in name else ","
            df = pd.read_csv(path, sep=sep)
        else:
            raise InputError(
                f"{path}: not a CSV or Parquet file (expected a name ending in .csv, .tsv or .parquet)"
            )
    except InputError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable files
        raise InputError(f"{path}: could not be read as {'Parquet' if 'parq' in name else 'CSV'}: {exc}") from exc
    if columns:
        missing = [c for c in columns if c is not None and c not in df.columns]
        if missing:
            raise InputError(
                f"{path}: missing column(s) {missing}; the file has columns {list(df.columns)}"
            )
    return df

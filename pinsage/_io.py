"""Atomic file writing and tabular input reading shared by every user-facing path.

An input option given as ``-`` reads standard input (:data:`STDIN`, :func:`read_stdin`): its bytes are read
into memory once and go through the same readers as a file's (:func:`read_table` with ``data=``), the
format told from the bytes themselves (Parquet's ``PAR1`` magic, gzip's ``1f 8b``, else CSV).
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import shutil
import sys
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator, Union

import numpy as np
import pandas as pd

__all__ = ["atomic_path", "atomic_dir", "replace_dir", "save_npy_atomic", "read_table", "sha256_file", "sha256_bytes",
           "InputError", "sniff_separator", "check_header", "STDIN", "is_stdin", "read_stdin", "stdin_label",
           "sniff_suffix"]


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
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """The SHA-256 of ``data``, as hex (that of the bytes read from standard input, for run.json)."""
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# standard input
# ---------------------------------------------------------------------------------------------

#: the file name that means standard input on the command line
STDIN = "-"
_PARQUET_MAGIC = b"PAR1"
_GZIP_MAGIC = b"\x1f\x8b"


def is_stdin(arg: str | os.PathLike | None) -> bool:
    """Whether a file option's value is ``-`` (standard input)."""
    return arg is not None and str(arg) == STDIN


def stdin_label(option: str) -> str:
    """How messages name a file option given as ``-``: ``"--interactions - (standard input)"``."""
    return f"{option} {STDIN} (standard input)"


def read_stdin(what: str = STDIN) -> bytes:
    """Every byte of standard input, for a file option given as ``-``; ``what`` names it in messages
    (``"--interactions -"``).

    Raises :class:`InputError` naming it when standard input is a terminal (nothing is piped in: the
    command would wait for typing), closed, unreadable, or empty.
    """
    stream = sys.stdin
    hint = f"pipe a file in, e.g. `pinsage ... {what} < file.csv` or `cat file.csv | pinsage ... {what}`"
    if stream is None or getattr(stream, "closed", False):
        raise InputError(f"{what}: standard input is closed; {hint}")
    try:
        tty = stream.isatty()
    except (OSError, ValueError):
        tty = False
    if tty:
        raise InputError(f"{what}: standard input is a terminal; {hint}")
    try:
        buffer = getattr(stream, "buffer", None)
        data = buffer.read() if buffer is not None else stream.read()
    except (OSError, ValueError) as exc:
        raise InputError(f"{what}: could not read standard input: {exc}") from exc
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not data:
        raise InputError(f"{what}: standard input is empty (expected the bytes of a file piped in)")
    return data


def sniff_suffix(data: bytes) -> str:
    """The file-name suffix bytes read from standard input would have: ``.parquet``, ``.csv.gz`` or ``.csv``
    (what :meth:`pinsage.run.RunDir.copy_input` names their copy)."""
    if data.startswith(_PARQUET_MAGIC):
        return ".parquet"
    if data.startswith(_GZIP_MAGIC):
        return ".csv.gz"
    return ".csv"


class _Bytes:
    """An input held in memory (read from standard input): what the readers need of a file."""

    def __init__(self, data: bytes, label: str) -> None:
        self.label = label
        self.gzipped = data.startswith(_GZIP_MAGIC)
        self.raw = data
        self._data: bytes | None = None

    @property
    def data(self) -> bytes:
        """The bytes, decompressed when gzipped (once)."""
        if self._data is None:
            if self.gzipped:
                import gzip

                try:
                    self._data = gzip.decompress(self.raw)
                except (OSError, EOFError) as exc:
                    raise InputError(f"{self.label}: not a readable gzip stream: {exc}") from exc
            else:
                self._data = self.raw
        return self._data

    def __str__(self) -> str:
        return self.label


#: a file on disk, or bytes read from standard input
_Source = Union[Path, _Bytes]


def save_npy_atomic(path: str | os.PathLike, array: np.ndarray) -> None:
    """``np.save`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=array.dtype == object)


#: the separators a ``.csv`` / ``.txt`` file may use; a tie in the header line goes to the earlier one
CSV_SEPARATORS = (",", "\t", ";", "|")
_CSV_SUFFIXES = (".csv", ".csv.gz", ".txt", ".txt.gz", ".tsv", ".tsv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_HEAD_BYTES = 1 << 16
_BLOCK_BYTES = 1 << 24
_QUOTED = re.compile(r'"[^"]*"')


def _open_bytes(path: _Source) -> BinaryIO:
    """The file's bytes, decompressed when its name ends in ``.gz`` (in-memory input: when gzipped)."""
    if isinstance(path, _Bytes):
        return io.BytesIO(path.data)
    if path.name.lower().endswith(".gz"):
        import gzip

        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _csv_header(path: _Source) -> tuple[str | None, str]:
    """``(header line, encoding)`` of a CSV file: its first non-blank line (None when the file holds
    nothing but blanks) and ``"utf-16"`` when it starts with a UTF-16 byte-order mark, else
    ``"utf-8-sig"`` (UTF-8, a byte-order mark skipped). Reads only the file's first block."""
    with _open_bytes(path) as f:
        head = f.read(_HEAD_BYTES)
        while b"\n" not in head and len(head) < _BLOCK_BYTES:  # a header line longer than one block
            more = f.read(_HEAD_BYTES)
            if not more:
                break
            head += more
    encoding = "utf-16" if head.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    text = head.decode(encoding, errors="replace")  # a bad byte is located later, when pandas meets it
    line = next((ln.rstrip("\r") for ln in text.split("\n") if ln.strip()), None)
    return line, encoding


def sniff_separator(line: str) -> str:
    """The separator of a header line: the most frequent of :data:`CSV_SEPARATORS` outside double
    quotes (ties to the earlier one); ``","`` when none occurs (a file of one column)."""
    bare = _QUOTED.sub("", line)
    counts = [bare.count(s) for s in CSV_SEPARATORS]
    best = max(range(len(counts)), key=lambda i: (counts[i], -i))
    return CSV_SEPARATORS[best] if counts[best] else ","


def check_header(path: Path | str | _Bytes, line: str, sep: str) -> None:
    """Refuse a header that names a column twice (pandas would silently rename the second ``x.1``)."""
    try:
        names = next(csv.reader([line], delimiter=sep, skipinitialspace=True))
    except (csv.Error, StopIteration):
        return  # a header csv cannot split on its own (a quoted newline): pandas has the last word
    first: dict[str, int] = {}
    for pos, name in enumerate(names, 1):
        if name in first and name.strip():
            raise InputError(f"{path}, line 1 (header): column {name!r} appears twice (columns {first[name]} "
                             f"and {pos}); expected unique column names")
        first.setdefault(name, pos)


def _undecodable_line(path: _Source) -> str:
    """Where a file stops being UTF-8: ``"line N (bytes b'...')"``, scanning whole lines block by block
    (a newline byte never lies inside a UTF-8 character). Only called to word an error."""
    line_no, carry = 1, b""
    with _open_bytes(path) as f:
        while True:
            block = f.read(_BLOCK_BYTES)
            data = carry + block
            cut = data.rfind(b"\n") + 1 if block else len(data)
            part, carry = data[:cut], data[cut:]
            if line_no == 1 and part.startswith(b"\xef\xbb\xbf"):
                part = part[3:]
            try:
                part.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad_line = line_no + part.count(b"\n", 0, exc.start)
                return f"line {bad_line} (bytes {part[exc.start:exc.end + 2]!r})"
            line_no += part.count(b"\n")
            if not block:
                return "somewhere"


def _pandas_input(path: _Source) -> Path | BinaryIO:
    """What pandas reads: the path (it decompresses ``.gz`` itself), or a fresh stream over in-memory bytes."""
    return io.BytesIO(path.data) if isinstance(path, _Bytes) else path


def _read_csv(path: _Source, name: str) -> pd.DataFrame:
    """A CSV file with pandas' C parser, after checking its header line (see :func:`read_table`)."""
    line, encoding = _csv_header(path)
    if line is None:
        raise InputError(f"{path}: no rows (the file is empty; expected a header line, then one row per line)")
    sep = "\t" if ".tsv" in name else sniff_separator(line)
    check_header(path, line, sep)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)  # mixed chunks: handled below
            df = pd.read_csv(_pandas_input(path), sep=sep, encoding=encoding, skipinitialspace=True)
            # a long column can be typed per block (numbers in one, text in another): "12" would then be
            # the number 12 on one row and the text "12" on another. Such columns are read again as text.
            mixed = [c for c in df.columns if df[c].dtype == object
                     and pd.api.types.infer_dtype(df[c], skipna=True).startswith("mixed")]
            if mixed:
                text = pd.read_csv(_pandas_input(path), sep=sep, encoding=encoding, skipinitialspace=True,
                                   usecols=mixed, dtype=str)
                for c in mixed:
                    df[c] = text[c]
    except UnicodeDecodeError as exc:
        where = _undecodable_line(path) if encoding != "utf-16" else "somewhere"
        raise InputError(f"{path}, {where}: not UTF-8 text ({exc.reason}); expected a UTF-8 (or UTF-16 "
                         f"with a byte-order mark) file: save it as UTF-8") from exc
    if len(df) == 0:
        raise InputError(f"{path}: no rows (only the header line, with columns {list(df.columns)})")
    return df


def _read_parquet(path: _Source) -> pd.DataFrame:
    """A Parquet file; binary columns holding UTF-8 become text (see :func:`read_table`)."""
    import pyarrow.parquet as pq

    names = pq.read_schema(_pandas_input(path)).names  # the footer only; pandas/pyarrow fail obscurely on repeated names
    dup = [n for i, n in enumerate(names) if n in names[:i]]
    if dup:
        raise InputError(f"{path}: column {dup[0]!r} appears twice (columns {names.index(dup[0]) + 1} and "
                         f"{names.index(dup[0], names.index(dup[0]) + 1) + 1}); expected unique column names")
    df = pd.read_parquet(_pandas_input(path))
    if len(df) == 0:
        raise InputError(f"{path}: no rows (columns {list(df.columns)})")
    for c in df.columns:
        if df[c].dtype == object and pd.api.types.infer_dtype(df[c], skipna=True) == "bytes":
            try:
                df[c] = df[c].str.decode("utf-8")
            except UnicodeDecodeError:
                pass  # raw bytes stay bytes: id readers refuse them, naming the row
    return df


def read_table(path: str | os.PathLike, columns: list[str] | None = None, *, data: bytes | None = None,
               label: str | None = None) -> pd.DataFrame:
    """Read a CSV (``.csv``, ``.tsv``, ``.txt``, optionally gzipped) or Parquet file into a DataFrame.

    ``path`` ``-`` reads standard input (:func:`read_stdin`); ``data``, when given, is the input's bytes
    already read (e.g. from standard input, by a caller that checksums them), and ``path`` only names
    it. In-memory bytes are Parquet when they start with ``PAR1``, gzipped CSV when they start with
    ``1f 8b``, else CSV (the separator sniffed as for a ``.csv`` file). ``label`` names in-memory input
    in messages (default ``standard input``; see :func:`stdin_label`); a file is named by its path.

    CSV files are UTF-8 (a byte-order mark is skipped) or UTF-16 with a byte-order mark. The separator
    of a ``.tsv`` file is a tab; that of a ``.csv`` / ``.txt`` file is whichever of ``,`` tab ``;``
    ``|`` its header line holds most often (outside quotes). Spaces after a separator are skipped
    (``user, item``). Values may be quoted (``"a,b"``; ``"123"`` is the number 123 in a numeric column). A column that pandas types per block (numbers in one block,
    text in another) is read again as text, so one id is one value throughout. Binary Parquet columns
    holding UTF-8 become text. ``df.attrs["source"]`` holds the path, for messages.

    Raises :class:`InputError` naming the file when it is missing, of another format, unreadable, not
    UTF-8, has no rows (empty or only a header), or names a column twice (pandas would rename the
    second ``x.1``); and naming the missing column when ``columns`` are asked for and absent.
    """
    src: _Source
    if data is not None or is_stdin(path):
        if data is None:
            data = read_stdin(label or STDIN)
        src = _Bytes(data, label or ("standard input" if is_stdin(path) else str(path)))
        name = ".parquet" if data.startswith(_PARQUET_MAGIC) else ".csv"
    else:
        src = Path(path)
        if not src.exists():
            raise InputError(f"{src}: file not found")
        name = src.name.lower()
    where = str(src)
    is_parquet = name.endswith(_PARQUET_SUFFIXES)
    try:
        if is_parquet:
            df = _read_parquet(src)
        elif name.endswith(_CSV_SUFFIXES):
            df = _read_csv(src, name)
        else:
            raise InputError(
                f"{where}: not a CSV or Parquet file (expected a name ending in .csv, .tsv or .parquet)"
            )
    except InputError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{where}: could not be read as {'Parquet' if is_parquet else 'CSV'}: {first}") from exc
    if columns:
        missing = [c for c in columns if c is not None and c not in df.columns]
        if missing:
            raise InputError(
                f"{where}: missing column(s) {missing}; the file has columns {list(df.columns)}"
            )
    df.attrs["source"] = where
    return df

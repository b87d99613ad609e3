"""The interactions as they stood at a time: the rows of a table with time <= a cut-off, for
``pinsage embed --as-of`` (the graph as of that time, nothing later)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pinsage._io import InputError
from pinsage.graph.interaction import InteractionGraph

__all__ = ["rows_as_of"]


def _is_date_column(s: pd.Series) -> bool:
    """Whether ``s`` holds dates (datetimes, or text that is not numbers), as
    :meth:`InteractionGraph.from_pandas` reads a time column."""
    if pd.api.types.is_datetime64_any_dtype(s):
        return True
    return bool(pd.to_numeric(s, errors="coerce").isna().any())


def rows_as_of(df: pd.DataFrame, time_col: str, when: str | float, source: str = "interactions") -> np.ndarray:
    """``(len(df),)`` bool: the rows whose time is at or before ``when``.

    ``when`` is read as the column is: a number for a numeric time column (same units), a date or
    date-time text (``2024-05-01``, ``2024-05-01T12:00:00Z``) for a column of dates; both compared on the
    times :meth:`InteractionGraph.from_pandas` keeps (int64 microseconds for dates, UTC).

    Raises:
        InputError: a missing column, a ``when`` of the other kind than the column (naming both), or no
            row at or before ``when`` (naming the earliest time).
    """
    if time_col not in df.columns:
        raise InputError(f"{source}: --as-of needs the time column {time_col!r}; columns are {list(df.columns)}")
    times = InteractionGraph._numeric_time(df, time_col, source)
    col_dates = _is_date_column(df[time_col])
    when_frame = pd.DataFrame({time_col: [when]})
    when_dates = _is_date_column(when_frame[time_col])
    if col_dates != when_dates:
        kind = "dates" if col_dates else "numbers"
        raise InputError(f"--as-of {when!r}: column {time_col!r} of {source} holds {kind}; give the time as "
                         f"{'a date such as 2024-05-01' if col_dates else 'a number in the same units'}")
    cut = InteractionGraph._numeric_time(when_frame, time_col, f"--as-of {when!r}")[0]
    keep = times <= cut
    if not keep.any():
        first = df[time_col].iloc[int(np.argmin(times))]
        raise InputError(f"--as-of {when!r}: no interaction of {source} at or before it (the earliest is {first!r})")
    return keep

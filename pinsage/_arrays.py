"""Small numpy helpers shared by the builders of large arrays."""
from __future__ import annotations

import numpy as np

__all__ = ["shrink_rows"]


def shrink_rows(a: np.ndarray, rows: int) -> np.ndarray:
    """The first ``rows`` rows of the C-contiguous, array-owning ``a`` without a copy: resized in
    place, so the tail's memory is released (for arrays preallocated at an upper bound)."""
    a.resize((rows,) + a.shape[1:], refcheck=False)
    return a

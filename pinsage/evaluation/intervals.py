"""Paired bootstrap intervals over test users, for claims that one method is ahead of another.

Two methods evaluated on the same test users give per-user values ``a_u`` and ``b_u`` (an HR@10 hit,
an NDCG@10 gain; :func:`pinsage.evaluation.evaluate_per_user`). The claim "a is ahead of b" is the
mean difference ``d = mean_u (a_u - b_u)``. Its 95% interval comes from resampling users with
replacement (the pairs stay together):

    d*_r = mean_{u in sample r} (a_u - b_u),   r = 1..R,   interval = percentiles 2.5 and 97.5 of d*.

"Ahead" is claimed only where the whole interval lies above zero. Per-user values of several seeds of
one method are averaged first (:func:`mean_over_runs`), so the interval is over users, not over seeds.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["BootstrapResult", "paired_bootstrap", "mean_over_runs", "compare_per_user"]


@dataclass(frozen=True)
class BootstrapResult:
    """A paired comparison ``a - b`` over ``n`` users.

    Attributes: ``mean_a``, ``mean_b`` (the two methods' means), ``diff`` (``mean_a - mean_b``),
    ``low``, ``high`` (the percentile interval of ``diff`` at ``confidence``), ``ratio``
    (``mean_a / mean_b``; inf when ``mean_b`` is 0), ``n``, ``n_resamples``, ``confidence``.
    """

    mean_a: float
    mean_b: float
    diff: float
    low: float
    high: float
    ratio: float
    n: int
    n_resamples: int
    confidence: float

    @property
    def ahead(self) -> bool:
        """True when the interval excludes zero on the positive side (a is ahead of b)."""
        return self.low > 0.0

    @property
    def behind(self) -> bool:
        """True when the interval excludes zero on the negative side (a is behind b)."""
        return self.high < 0.0

    def verdict(self) -> str:
        """"ahead", "behind" or "tied" (the interval contains zero)."""
        return "ahead" if self.ahead else "behind" if self.behind else "tied"

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict()}


def paired_bootstrap(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
                     n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0,
                     chunk: int = 500) -> BootstrapResult:
    """Paired bootstrap interval of ``mean(a) - mean(b)``.

    Args:
        a: per-user values of the first method, shape (n,).
        b: the second method's, shape (n,), row u for the same user as in ``a``.
        n_resamples: bootstrap resamples R.
        confidence: interval coverage, in (0, 1).
        seed: seed of the resampling.
        chunk: resamples drawn at once (memory O(chunk * n)).

    Returns:
        :class:`BootstrapResult`.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_bootstrap: a and b must be 1-D of one length, got {a.shape} and {b.shape}")
    if len(a) == 0:
        raise ValueError("paired_bootstrap: no users to compare")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"paired_bootstrap: confidence must be in (0, 1), got {confidence!r}")
    if n_resamples < 1:
        raise ValueError(f"paired_bootstrap: n_resamples must be >= 1, got {n_resamples!r}")
    d = a - b
    n = len(d)
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        m = min(chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(m, n))
        means[start:start + m] = d[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    mean_a, mean_b = float(a.mean()), float(b.mean())
    ratio = mean_a / mean_b if mean_b != 0 else float("inf")
    return BootstrapResult(mean_a=mean_a, mean_b=mean_b, diff=float(d.mean()), low=float(low), high=float(high),
                           ratio=float(ratio), n=n, n_resamples=int(n_resamples), confidence=float(confidence))


def mean_over_runs(frames: Sequence[pd.DataFrame], metrics: Sequence[str]) -> pd.DataFrame:
    """Average per-user tables of several runs (seeds) of one method.

    ``frames``: outputs of :func:`pinsage.evaluation.evaluate_per_user`; only the test rows present in
    every frame are kept. Returns ``test_row`` plus the mean of each of ``metrics``.
    """
    if not frames:
        raise ValueError("mean_over_runs: no runs given")
    common = frames[0]["test_row"].to_numpy()
    for f in frames[1:]:
        common = np.intersect1d(common, f["test_row"].to_numpy())
    out = pd.DataFrame({"test_row": np.sort(common)})
    for m in metrics:
        stacked = np.stack([f.set_index("test_row").loc[out["test_row"], m].to_numpy() for f in frames])
        out[m] = stacked.mean(axis=0)
    return out


def compare_per_user(a: pd.DataFrame, b: pd.DataFrame, metric: str, **kwargs) -> BootstrapResult:
    """:func:`paired_bootstrap` of ``metric`` between two per-user tables, paired on ``test_row``
    (users evaluable by only one of them are left out)."""
    for name, f in (("a", a), ("b", b)):
        if "test_row" not in f.columns or metric not in f.columns:
            raise ValueError(f"compare_per_user: table {name} needs columns 'test_row' and {metric!r}")
    m = a[["test_row", metric]].merge(b[["test_row", metric]], on="test_row", suffixes=("_a", "_b"))
    return paired_bootstrap(m[f"{metric}_a"].to_numpy(), m[f"{metric}_b"].to_numpy(), **kwargs)

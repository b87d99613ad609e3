"""Synthetic power-law bipartite graphs for the scale benchmarks (``docs/benchmarks/scale.md``).

The generator reproduces, edge for edge, the reference generator used beside DGL
(``shared/bench/dgl_anchor/synth.py``)::

    rng = np.random.default_rng(seed)
    items = rng.choice(n_items, n_draws, p=w_items / w_items.sum())
    users = rng.choice(n_users, n_draws, p=w_users / w_users.sum())
    key = np.unique(users * n_items + items)
    return key // n_items, key % n_items

but is much faster and leaner on graph "L" (measured on a 2-core machine: ~4 s and 0.7 GB peak RSS,
of which 0.59 GB is the output, against ~75 s and 3.1 GB for the reference, where np.unique alone took
~55 s):

* ``Generator.choice(n, size, p)`` is inverse-CDF sampling: ``cdf = cumsum(p) / cdf[-1]``,
  ``u = rng.random(size)``, ``idx = searchsorted(cdf, u, side="right")``. We consume exactly the same
  uniforms (``rng.random`` in chunks yields the same stream as one call) but replace the
  ``O(log n)`` cache-missing binary search by a bucket table: with ``K = 2^k`` buckets,
  ``lo[b] = searchsorted(cdf, b / K, "right")`` is a lower bound of the answer for every
  ``u`` in ``[b/K, (b+1)/K)`` (``b = floor(u K)`` is exact since ``K`` is a power of two), and the
  answer is reached by at most ``max_b(lo[b+1] - lo[b])`` vectorised steps ``idx += cdf[idx] <= u``.
  The result is bit-identical to ``searchsorted``.
* The edge keys ``user * n_items + item`` are built in one int64 buffer, sorted in place and
  compacted in place (what ``np.unique`` does, without its copies); users are recovered from the
  sorted keys by counting keys per user block instead of a 64-bit division.
"""
from __future__ import annotations

import numpy as np

__all__ = ["SIZES", "powerlaw_bipartite", "powerlaw_weights", "scale_graph"]

#: Benchmark sizes: name -> (n_items, n_users, n_draws). "S" gives ~1.75M edges, "L" ~36.7M.
SIZES: dict[str, tuple[int, int, int]] = {
    "S": (100_000, 50_000, 2_000_000),
    "L": (2_000_000, 1_000_000, 40_000_000),
}

_CHUNK = 1 << 17  # elements per vectorised chunk: buffers stay in cache, page faults are avoided


def powerlaw_weights(n: int, a: float = 1.2) -> np.ndarray:
    """Unnormalised Zipf weights ``w[i] = 1 / (i + 1)^(1/a)``, shape ``(n,)`` float64.

    Node ``i`` (0-based rank) is drawn with probability ``w[i] / sum(w)``. The expected degree of
    rank ``i`` is then proportional to ``(i + 1)^(-1/a)``, i.e. a Zipf law with exponent ``1/a``;
    the degree distribution has a power-law tail ``P(deg >= d) ~ d^(-a)``.
    """
    return 1.0 / np.arange(1, n + 1) ** (1 / a)


def _cdf(n: int, a: float) -> np.ndarray:
    """The CDF ``Generator.choice`` builds from ``p = w / w.sum()``, bit for bit."""
    w = powerlaw_weights(n, a)
    cdf = (w / w.sum()).cumsum()
    cdf /= cdf[-1]
    return cdf


def _bucket_table(cdf: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Lower bounds ``lo[b] = searchsorted(cdf, b / K, "right")`` for ``b < K``, shape ``(K,)``.

    Returns ``(lo, K, steps)`` where ``steps = max_b(lo[b+1] - lo[b])`` bounds the corrections.
    ``K`` is the power of two at least ``8 n`` (at least 1024), so almost every bucket holds at most
    one CDF value. Built in ``O(n + K)`` without a search: ``cdf[j] <= b / K`` iff
    ``ceil(K cdf[j]) <= b`` (``K cdf[j]`` is exact), so ``lo = cumsum(bincount(ceil(K cdf)))[:K]``.
    """
    n = len(cdf)
    size = 1 << max(10, int(np.ceil(np.log2(8 * n))))
    counts = np.bincount(np.ceil(cdf * size).astype(np.int64), minlength=size + 1)
    steps = int(counts[1:].max())
    lo = np.cumsum(counts[:size], dtype=np.int64 if n >= 2**31 else np.int32)
    return lo, size, steps


def _sample_into(
    rng: np.random.Generator, cdf: np.ndarray, out: np.ndarray, scale: int = 1
) -> None:
    """``out[:] += scale * rng.choice(len(cdf), len(out), p=...)`` using the CDF ``cdf``.

    Consumes ``len(out)`` uniforms from ``rng``, exactly as ``Generator.choice`` does, chunk by chunk
    into reused buffers (fresh large temporaries cost page faults). ``out``: int64, shape
    ``(n_draws,)``, updated in place.
    """
    lo, size, steps = _bucket_table(cdf)
    chunk = min(_CHUNK, max(len(out), 1))
    u = np.empty(chunk)
    v = np.empty(chunk)
    b = np.empty(chunk, dtype=np.int64)
    idx = np.empty(chunk, dtype=lo.dtype)
    le = np.empty(chunk, dtype=bool)
    wide = np.empty(chunk, dtype=np.int64)
    for s in range(0, len(out), chunk):
        k = min(chunk, len(out) - s)
        uk, vk, bk, ik, lk, wk = u[:k], v[:k], b[:k], idx[:k], le[:k], wide[:k]
        rng.random(out=uk)
        np.multiply(uk, size, out=vk)
        bk[...] = vk  # floor(u K): exact, u K >= 0
        np.take(lo, bk, out=ik)
        for _ in range(steps):  # idx += cdf[idx] <= u, never past searchsorted(cdf, u, "right")
            np.take(cdf, ik, out=vk)
            np.less_equal(vk, uk, out=lk)
            ik += lk
        if scale == 1:
            out[s : s + k] += ik
        else:
            wk[...] = ik  # widen before scaling: user * n_items overflows int32
            wk *= scale
            out[s : s + k] += wk


def powerlaw_bipartite(
    n_items: int, n_users: int, n_draws: int, seed: int = 0, a: float = 1.2
) -> tuple[np.ndarray, np.ndarray]:
    """A power-law bipartite user-item graph, duplicates removed.

    ``n_draws`` (item, user) pairs are drawn independently: item ``i`` with probability
    ``(i+1)^(-1/a) / sum_j (j+1)^(-1/a)`` and user ``u`` likewise over ``n_users``; item draws use the
    first ``n_draws`` uniforms of ``np.random.default_rng(seed)``, user draws the next ``n_draws``.
    Repeated pairs are kept once.

    Returns ``(users, items)``: two int64 arrays of shape ``(n_edges,)``, sorted by user then item,
    with ``n_edges <= n_draws``. Identical to the reference generator's output
    (``np.unique(users * n_items + items)`` split back into user and item).
    """
    if n_items <= 0 or n_users <= 0 or n_draws < 0:
        raise ValueError("n_items and n_users must be positive and n_draws non-negative")
    if n_users * n_items >= 2**63:
        raise ValueError("n_users * n_items must fit in int64")
    rng = np.random.default_rng(seed)
    key = np.zeros(n_draws, dtype=np.int64)
    _sample_into(rng, _cdf(n_items, a), key)  # key = item
    _sample_into(rng, _cdf(n_users, a), key, scale=n_items)  # key += user * n_items
    key.sort()
    # In-place compaction of the sorted keys to their distinct values (writes never pass the reads).
    m = 0
    prev = None  # last key of the previous block, read before the write may overwrite it
    block = keep = kept = None
    for s in range(0, n_draws, _CHUNK):
        block = key[s : s + _CHUNK]
        keep = np.empty(len(block), dtype=bool)
        keep[0] = prev is None or block[0] != prev
        np.not_equal(block[1:], block[:-1], out=keep[1:])
        prev = block[-1].copy()
        kept = block[keep]
        key[m : m + len(kept)] = kept
        m += len(kept)
    del block, keep, kept
    key.resize(m, refcheck=False)
    # Users from per-user key blocks: user u owns keys in [u * n_items, (u + 1) * n_items).
    bounds = key.searchsorted(np.arange(n_users + 1, dtype=np.int64) * n_items)
    users = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(bounds))
    for s in range(0, m, _CHUNK):
        key[s : s + _CHUNK] -= users[s : s + _CHUNK] * n_items  # key becomes the item id
    return users, key


def scale_graph(size: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark graph ``size`` ("S" or "L", see :data:`SIZES`) as ``(users, items)`` int64 arrays."""
    try:
        n_items, n_users, n_draws = SIZES[size]
    except KeyError:
        raise ValueError(f"unknown size {size!r}; expected one of {sorted(SIZES)}") from None
    return powerlaw_bipartite(n_items, n_users, n_draws, seed=seed)

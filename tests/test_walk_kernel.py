"""The walk kernel's schedule (seeds grouped, walks advanced hop level by hop level, draws replayed first)
and its top-T selection give exactly the neighbourhoods of the plain per-seed lane walk
(``_kernels._walk_one``) ranked by a full sort: same draws, same walks, same visits, same order."""
import numpy as np
import pytest

from pinsage.graph import InteractionGraph
from pinsage.graph.weights import walk_weights
from pinsage.sampling import _kernels as K


def graph(seed=0, n_groups=50, n_items=90, n_edges=1200, weights=False):
    """Power-law item popularity, isolated items (the last two) and an empty group; with weights,
    some zero-weight edges (items whose every edge has weight 0 cannot be left)."""
    rng = np.random.default_rng(seed)
    items = np.minimum((rng.pareto(0.8, n_edges) * 3).astype(np.int64), n_items - 3)
    groups = rng.integers(0, n_groups - 1, n_edges)
    w = None
    if weights:
        w = rng.choice([0.0, 1.0, 2.0, 7.0], n_edges, p=[0.1, 0.4, 0.3, 0.2])
    return InteractionGraph.from_edges(groups, items, num_groups=n_groups, num_items=n_items, weight=w)


def reference(g, alias, seeds, W, L, r, T, key, row_ids):
    """Per seed: ``_walk_one``'s visits, counted and fully sorted by (count desc, item asc)."""
    item_alias, group_alias, item_total = alias
    always_stop = r >= 1.0
    threshold = np.uint64(0) if always_stop else np.uint64(r * 18446744073709549568.0)
    base = K._splitmix64(np.uint64(key))
    nbr = np.full((len(seeds), T), -1, np.int64)
    cnt = np.zeros((len(seeds), T), np.int32)
    nout = np.zeros(len(seeds), np.int64)
    visits = np.empty(W * L, np.int64)
    for b, s in enumerate(seeds):
        with np.errstate(over="ignore"):  # the stream seed wraps around 2**64 as in the kernel
            state = K._splitmix64(base ^ (np.uint64(row_ids[b] + 1) * np.uint64(K._GOLDEN))) | np.uint64(1)
        nv = K._walk_one(s, state, g.item_indptr, g.item_groups, g.group_indptr, g.group_items, item_alias,
                         group_alias, item_total, W, L, threshold, always_stop, visits)
        items, counts = np.unique(visits[:nv], return_counts=True)
        order = np.lexsort((items, -counts))[:T]
        k = len(order)
        nbr[b, :k], cnt[b, :k], nout[b] = items[order], counts[order], k
    return nbr, cnt, nout


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("W, L, r, T", [(10, 3, 0.5, 3), (200, 3, 0.5, 50), (37, 5, 0.3, 100), (1, 2, 1.0, 5),
                                        (300, 4, 0.0, 20), (600, 3, 0.5, 64), (17, 6, 0.7, 65)])
def test_kernel_equals_the_per_seed_lane_walk(weighted, W, L, r, T):
    g = graph(3, weights=weighted)
    alias = ((None, None, None) if not weighted else
             (lambda w: (w.item_alias, w.group_alias, w.item_total))(walk_weights(g)))
    rng = np.random.default_rng(W + L)
    seeds = np.r_[np.arange(g.num_items), rng.integers(0, g.num_items, 300)]  # isolated seeds included
    row_ids = rng.integers(0, 10**9, len(seeds))
    want = reference(g, alias, seeds, W, L, r, T, 77, row_ids)
    nbr = np.full((len(seeds), T), -1, np.int64)
    cnt = np.zeros((len(seeds), T), np.int32)
    nout = np.zeros(len(seeds), np.int64)
    for lo, hi in [(0, 5), (5, 200), (200, len(seeds))]:  # row ranges as threads get them
        K.walk_topk_range(seeds, g.item_indptr, g.item_groups, g.group_indptr, g.group_items, *alias,
                          W, L, r, 77, row_ids, nbr, cnt, nout, lo, hi)
    for a, b in zip(want, (nbr, cnt, nout)):
        np.testing.assert_array_equal(a, b)

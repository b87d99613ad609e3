"""The per-epoch pair count scales down with small graphs."""
from __future__ import annotations

import pytest

from pinsage import InputError, PinSageConfig
from pinsage.train.data import pairs_per_epoch


@pytest.mark.parametrize("edges,expected", [(6_000, 30_000), (40_000, 200_000), (1_000_000, 200_000), (10, 512)])
def test_default_pairs_per_epoch_follow_the_graph(edges, expected):
    assert pairs_per_epoch(PinSageConfig().train, edges) == expected


def test_pairs_per_epoch_settings():
    cfg = PinSageConfig().override(train__pairs_per_edge=0.0)
    assert pairs_per_epoch(cfg.train, 6_000) == 200_000          # no cap
    cfg = PinSageConfig().override(train__pairs_per_epoch=0)
    assert pairs_per_epoch(cfg.train, 6_000) == 0                # every pair once, uncapped
    cfg = PinSageConfig().override(train__pairs_per_epoch=1_000, train__pairs_per_edge=2.0)
    assert pairs_per_epoch(cfg.train, 6_000) == 1_000
    with pytest.raises(InputError, match="train.pairs_per_edge"):
        PinSageConfig().override(train__pairs_per_edge=-1.0)


def test_walk_pairs_follow_the_neighbourhood_weights():
    import numpy as np
    import pandas as pd

    from pinsage.graph import InteractionGraph
    from pinsage.train.pairs import walk_pairs

    g = InteractionGraph.from_pandas(pd.DataFrame({"u": [0, 0, 1, 1, 2], "i": [0, 1, 1, 2, 3]}), "u", "i")
    # item 0 -> {1: 0.75, 2: 0.25}; item 1 -> {0: 1.0}; item 2 -> {}; item 3 -> {0: 1.0}
    indptr = np.array([0, 2, 3, 3, 4])
    indices = np.array([1, 2, 0, 0])
    weights = np.array([0.75, 0.25, 1.0, 1.0])
    pairs, owners = walk_pairs(g, indptr, indices, weights, np.random.default_rng(0), per_edge=4000,
                               return_groups=True)
    q, j = pairs[:, 0], pairs[:, 1]
    assert 2 not in q  # an empty neighbourhood yields no pair
    assert set(map(tuple, pairs[q == 1])) == {(1, 0)}
    share = (j[q == 0] == 1).mean()
    assert abs(share - 0.75) < 0.03, share
    assert (q == 1).sum() == 2 * 4000  # item 1 has two edges
    assert len(owners) == len(pairs) and set(owners[q == 3]) == {2}


def test_untimed_partners_per_edge():
    from pinsage.train.pairs import group_partners_for

    assert group_partners_for(178_917) == 10          # Gowalla-3k
    assert group_partners_for(36_700_000) == 1        # graph L: the pool is large already
    assert group_partners_for(4_000_000) == 5
    assert group_partners_for(36_700_000, partners=3) == 3

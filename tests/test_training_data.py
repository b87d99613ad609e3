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

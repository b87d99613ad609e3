"""Seeded outputs stay what they were: small runs compared with arrays committed from earlier code.

The arrays in ``tests/golden/`` were written by ``tests/golden/make_golden.py``. A refactor must
reproduce them; a change that is meant to alter training (new defaults, a fixed bug) rewrites them
with that script and says so in its commit.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

GOLDEN = Path(__file__).resolve().parent / "golden"

#: name -> (config overrides, use content features, use the time column)
CASES: dict[str, tuple[dict, bool, bool]] = {
    "pinboard_time": ({}, False, True),
    "pinboard_untimed_features": ({"model__num_layers": 2, "model__magnitude": False}, True, False),
}


def golden_run(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Train case ``name`` on a small pin-board graph; returns (item ids, item embeddings)."""
    from pinsage import PinSageConfig, PinSageEmbedder
    from pinsage.datasets import make_pinboard, pinboard_features_frame

    overrides, features, timed = CASES[name]
    data = make_pinboard(n_topics=4, pins_per_topic=30, n_boards=150, mean_board_size=8.0, seed=3)
    cfg = PinSageConfig().override(
        train__epochs=3, train__pairs_per_epoch=3000, train__batch_size=128, train__easy_negatives=64,
        train__num_workers=0, train__warmup_steps=5, sampler__num_walks=40, sampler__num_neighbors=10,
        model__spectral_dim=8, model__hidden_channels=32, model__out_channels=16, model__id_dim=16,
        **overrides)
    feats = None
    if features:  # only pins with interactions (the catalogue case has its own tests)
        feats = pinboard_features_frame(data)
        feats = feats[feats["pin"].isin(data.interactions["pin"])]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        est = PinSageEmbedder(cfg, progress=False).fit(
            data.interactions, group_col="board", item_col="pin", time_col="time" if timed else None,
            item_features=feats,
            item_key="pin" if features else None)
    finally:
        torch.set_num_threads(threads)
    return np.asarray(est.item_ids_), est.item_embeddings_


@pytest.mark.parametrize("name", sorted(CASES))
def test_seeded_run_matches_golden(name):
    ids_path, emb_path = GOLDEN / f"{name}_ids.npy", GOLDEN / f"{name}_embeddings.npy"
    assert ids_path.exists() and emb_path.exists(), f"golden arrays missing: run tests/golden/make_golden.py"
    ids, emb = golden_run(name)
    np.testing.assert_array_equal(np.asarray(ids).astype(str), np.load(ids_path, allow_pickle=False))
    # bit-identical on one machine; the tolerance absorbs BLAS differences between machines
    np.testing.assert_allclose(emb, np.load(emb_path, allow_pickle=False), rtol=1e-4, atol=2e-5)

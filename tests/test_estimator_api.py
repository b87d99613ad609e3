"""PinSageEmbedder follows scikit-learn's estimator conventions."""
from __future__ import annotations

import numpy as np
import pytest

from pinsage import PinSageConfig, PinSageEmbedder
from pinsage.datasets import make_pinboard
from pinsage.estimator import NotFittedError

TINY = dict(train__epochs=1, train__pairs_per_epoch=600, train__batch_size=100, train__easy_negatives=32,
            train__num_workers=0, train__warmup_steps=2, sampler__num_walks=20, sampler__num_neighbors=5,
            model__spectral_dim=4, model__hidden_channels=16, model__out_channels=8, model__id_dim=8)


@pytest.fixture(scope="module")
def data():
    return make_pinboard(n_topics=3, pins_per_topic=20, n_boards=60, mean_board_size=6.0, seed=2)


def test_parameters_are_stored_as_given():
    est = PinSageEmbedder()
    assert est.get_params() == {"config": None, "device": "cpu", "progress": True}
    cfg = PinSageConfig()
    assert est.set_params(config=cfg, progress=False) is est
    assert est.get_params()["config"] is cfg and est.progress is False
    with pytest.raises(ValueError, match="unknown parameter"):
        est.set_params(learning_rate=1.0)
    assert "PinSageEmbedder(config=" in repr(est)


def test_a_clear_error_before_fit():
    est = PinSageEmbedder()
    for call in (lambda: est.transform(), lambda: est.similar_items(["a"]), lambda: est.embed(),
                 lambda: est.save("/nonexistent")):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            call()


def test_refit_drops_the_cached_index(data, one_torch_thread):
    fit = dict(group_col="board", item_col="pin", time_col="time")
    est = PinSageEmbedder(PinSageConfig().override(**TINY), progress=False).fit(data.interactions, **fit)
    q = est.item_ids_[:1]
    first, _ = est.similar_items(q, k=5)
    assert est.config is not None and est.config_ is est.config
    est.set_params(config=PinSageConfig().override(**{**TINY, "train__seed": 7}))
    est.fit(data.interactions, **fit)
    second, scores = est.similar_items(q, k=5)
    # the answer comes from the new model, not from an index built for the old one
    z = est.item_embeddings_
    expect = np.argsort(-(z @ z[0]))
    expect = [est.item_ids_[i] for i in expect if i != 0][:5]
    assert list(second[0]) == expect
    rows = [list(est.item_ids_).index(i) for i in second[0]]
    np.testing.assert_allclose(scores[0], z[rows] @ z[0], rtol=1e-5)

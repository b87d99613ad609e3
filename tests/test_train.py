"""Training: positive pairs, negatives, losses, schedule, config, the estimator and ``pinsage train``.

Every training run here is tiny (100 pins, ~20 optimiser steps, about a second each). The module
pins torch to one intra-op thread: on a small, busy machine the default thread pool makes the same
runs ~30x slower.
"""
from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from pinsage._io import InputError
from pinsage.cli import main
from pinsage.config import PinSageConfig
from pinsage.datasets import make_pinboard
from pinsage.estimator import PinSageEmbedder
from pinsage.sampling import all_neighborhoods
from pinsage.graph import InteractionGraph
from pinsage.sampling.blocks import Neighborhoods
from pinsage.sampling import ImportanceSampler
from pinsage.train.loss import max_margin_loss, sampled_softmax_loss
from pinsage.train.negatives import HardNegatives, curriculum_hard_count, rank_window, walk_window_sampler
from pinsage.train.pairs import GroupBalancedDraw, co_group_pairs, positive_pairs, time_window_pairs
from pinsage.train.trainer import Trainer, warmup_decay

PINS_PER_TOPIC = 25
TINY = dict(train__epochs=2, train__pairs_per_epoch=3000, train__batch_size=256, train__easy_negatives=64,
            train__num_workers=0, sampler__num_walks=30)
TINY_YAML = {"train": {"epochs": 2, "pairs_per_epoch": 3000, "batch_size": 256, "easy_negatives": 64,
                       "num_workers": 0},
             "sampler": {"num_walks": 30}}
FIT = dict(group_col="board", item_col="pin", time_col="time")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    return make_pinboard(n_topics=4, pins_per_topic=PINS_PER_TOPIC, n_boards=120, seed=0)


def tiny_config(**kw) -> PinSageConfig:
    return PinSageConfig().override(**{**TINY, **kw})


def topic_of(ids) -> np.ndarray:
    """Topic of pin ids, either "pin_00042" strings or integers 42."""
    ids = np.asarray(ids)
    if ids.dtype.kind in "iu":
        return ids // PINS_PER_TOPIC
    return np.array([int(str(s)[4:]) for s in ids]) // PINS_PER_TOPIC


def same_topic_at_5(emb: np.ndarray, topics: np.ndarray) -> float:
    """Mean share of each item's top-5 cosine neighbours (itself excluded) in its own topic."""
    z = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    s = z @ z.T
    np.fill_diagonal(s, -np.inf)
    nn = np.argsort(-s, axis=1, kind="stable")[:, :5]
    return float((topics[nn] == topics[:, None]).mean())


# ---------------------------------------------------------------------------------- positive pairs
def timed_graph() -> InteractionGraph:
    """group 0: items 3 (t=5), 1 (t=1), 2 (t=3) -> time order 1, 2, 3
    group 1: items 0 (t=2), 2 (t=0)            -> time order 2, 0
    group 2: item 4 alone                      -> no pairs
    group 3: items 5 (t=7), 1 (t=7), 4 (t=9)   -> tie broken by item index: 1, 5, 4"""
    groups = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3])
    items = np.array([3, 1, 2, 0, 2, 4, 5, 1, 4])
    times = np.array([5, 1, 3, 2, 0, 4, 7, 7, 9])
    return InteractionGraph.from_edges(groups, items, time=times)


def both(pairs):
    return Counter([tuple(p) for p in pairs] + [tuple(p[::-1]) for p in pairs])


def as_counter(arr: np.ndarray) -> Counter:
    assert arr.ndim == 2 and arr.shape[1] == 2
    return Counter(map(tuple, arr.tolist()))


def test_time_window_pairs_window_1():
    got = time_window_pairs(timed_graph(), 1)
    assert got.dtype == np.int64
    assert as_counter(got) == both([(1, 2), (2, 3), (2, 0), (1, 5), (5, 4)])


def test_time_window_pairs_window_2_and_larger():
    g = timed_graph()
    expected = both([(1, 2), (2, 3), (2, 0), (1, 5), (5, 4), (1, 3), (1, 4)])
    assert as_counter(time_window_pairs(g, 2)) == expected
    # no history is longer than 3, so wider windows add nothing
    assert as_counter(time_window_pairs(g, 5)) == expected


def test_pairs_with_their_groups_and_balance_weights():
    g = timed_graph()
    pairs, owners = time_window_pairs(g, 2, return_groups=True)
    assert np.array_equal(pairs, time_window_pairs(g, 2)) and owners.shape == (len(pairs),)
    members = [set(g.group_items[g.group_indptr[k]:g.group_indptr[k + 1]].tolist()) for k in range(g.num_groups)]
    assert all({int(a), int(b)} <= members[o] for (a, b), o in zip(pairs, owners))
    uniform = GroupBalancedDraw(owners, 0.0).pair_probabilities()
    assert np.allclose(uniform, 1 / len(pairs))                         # beta = 0: every pair alike
    w = GroupBalancedDraw(owners, 1.0).pair_probabilities()
    share = np.bincount(owners, weights=w)
    assert np.isclose(w.sum(), 1.0) and np.allclose(share[share > 0], 1 / len(np.unique(owners)))
    half = GroupBalancedDraw(owners, 0.5).pair_probabilities()  # between: big groups keep more than an equal share
    counts = np.bincount(owners)
    big = counts.argmax()
    assert share[big] < np.bincount(owners, weights=half)[big] < counts[big] / len(owners)
    # the draws follow those probabilities (time-window pairs are not stored group by group)
    draw = GroupBalancedDraw(owners, 1.0)
    assert draw.order is not None and len(draw) == len(pairs)
    got = np.bincount(draw.draw(np.random.default_rng(0), 200_000), minlength=len(pairs)) / 200_000
    assert np.abs(got - w).max() < 0.01
    # co-group pairs report their groups too, from the same random stream
    p2, o2 = positive_pairs(InteractionGraph.from_edges(np.array([0, 0, 0, 1, 1]), np.array([0, 1, 2, 2, 3])),
                            2, np.random.default_rng(0), return_groups=True)
    assert len(p2) == len(o2) and set(o2.tolist()) <= {0, 1}
    assert GroupBalancedDraw(o2, 1.0).order is None  # co-group pairs come group by group: no permutation


def test_group_balance_changes_which_pairs_are_drawn():
    from pinsage.train.loader import PairBatchDataset

    # one heavy group (200 items) and 20 light ones (4 items each), with times
    groups = np.concatenate([np.zeros(200, np.int64), np.repeat(np.arange(1, 21), 4)])
    items = np.concatenate([np.arange(200), np.arange(80) % 50])
    g = InteractionGraph.from_edges(groups, items, time=np.arange(len(groups)))
    pairs, owners = time_window_pairs(g, 3, return_groups=True)
    heavy = owners == owners[np.argmax(np.bincount(owners)[owners])]
    def heavy_share(weights):
        ds = PairBatchDataset(pairs, g.num_items, None, 1, None, None, 64, 8, 0, epoch=1, seed=0,
                              pairs_per_epoch=20_000, balanced_draw=weights)
        order = ds.order()
        n = 20_000 if weights is not None else len(pairs)  # weighted: drawn with replacement
        assert len(order) == n and len(ds) == n // 64
        return heavy[order].mean()
    assert heavy_share(None) == pytest.approx(heavy.mean(), abs=0.02)   # ~0.8 of the pairs
    assert heavy_share(GroupBalancedDraw(owners, 1.0)) == pytest.approx(1 / 21, abs=0.01)
    with pytest.raises(InputError, match="group_balance"):
        PinSageConfig().override(train__group_balance=1.5)


def test_time_window_pairs_needs_time():
    g = InteractionGraph.from_edges(np.array([0, 0]), np.array([0, 1]))
    with pytest.raises(ValueError):
        time_window_pairs(g, 1)


def test_co_group_pairs_share_a_group_and_are_never_self_pairs():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 30, 400)
    items = rng.integers(0, 60, 400)
    groups = np.append(groups, 30)          # a one-item group: must yield nothing
    items = np.append(items, 60)
    g = InteractionGraph.from_edges(groups, items)
    pairs = co_group_pairs(g, np.random.default_rng(1), per_edge=3)
    assert pairs.dtype == np.int64 and pairs.ndim == 2 and pairs.shape[1] == 2
    assert len(pairs) > g.num_edges  # ~3 per edge, minus the self draws
    assert (pairs[:, 0] != pairs[:, 1]).all()
    member = set(zip(g.edge_groups().tolist(), np.asarray(g.group_items).tolist()))
    groups_of = {}
    for grp, it in member:
        groups_of.setdefault(it, set()).add(grp)
    for a, b in pairs.tolist():
        assert groups_of[a] & groups_of[b], (a, b)
    assert 60 not in set(pairs.ravel().tolist())


# ---------------------------------------------------------------------------------- losses
def test_max_margin_loss_matches_hand_computation():
    q = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    p = torch.tensor([[0.5, 0.0], [0.0, 1.0]])         # s(q, p) = 0.5, 2.0
    neg = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 1.0]])
    # s(q, n): row 0 = [1, 0, -1], row 1 = [0, 2, 2]
    margin = 0.25
    hinge = [[max(0, 1 - 0.5 + margin), max(0, 0 - 0.5 + margin), max(0, -1 - 0.5 + margin)],
             [max(0, 0 - 2 + margin), max(0, 2 - 2 + margin), max(0, 2 - 2 + margin)]]
    expected = sum(map(sum, hinge)) / 6
    assert math.isclose(float(max_margin_loss(q, p, neg, margin)), expected, rel_tol=1e-6)

    mask = torch.tensor([[False, True, True], [True, True, False]])
    kept = hinge[0][1] + hinge[0][2] + hinge[1][0] + hinge[1][1]
    assert math.isclose(float(max_margin_loss(q, p, neg, margin, mask)), kept / 4, rel_tol=1e-6)

    # per-pair negatives (B, N, d): the same numbers when every pair gets the shared ones
    per_pair = neg.unsqueeze(0).expand(2, -1, -1)
    assert math.isclose(float(max_margin_loss(q, p, per_pair, margin, mask)), kept / 4, rel_tol=1e-6)


def test_max_margin_loss_masked_entries_do_not_count():
    torch.manual_seed(0)
    q, p, neg = torch.randn(4, 8), torch.randn(4, 8), torch.randn(5, 8)
    mask = torch.ones(4, 5, dtype=torch.bool)
    mask[1, 2] = mask[3, 0] = False
    base = max_margin_loss(q, p, neg, 0.1, mask)
    # changing a masked-out negative's score cannot change the loss... but negatives are shared,
    # so use per-pair negatives and perturb only the masked slots
    per = neg.unsqueeze(0).repeat(4, 1, 1)
    per2 = per.clone()
    per2[1, 2] += 100.0
    per2[3, 0] -= 100.0
    assert torch.allclose(max_margin_loss(q, p, per, 0.1, mask), base)
    assert torch.allclose(max_margin_loss(q, p, per2, 0.1, mask), base)
    # an all-False mask gives 0, not NaN
    assert float(max_margin_loss(q, p, neg, 0.1, torch.zeros(4, 5, dtype=torch.bool))) == 0.0


@pytest.mark.parametrize("with_hard", [False, True])
@pytest.mark.parametrize("with_mask", [False, True])
def test_sampled_softmax_equals_cross_entropy(with_hard, with_mask):
    g = torch.Generator().manual_seed(3)
    B, N, H, d, tau = 6, 7, 3, 5, 0.3
    q, p = torch.randn(B, d, generator=g), torch.randn(B, d, generator=g)
    shared = torch.randn(N, d, generator=g)
    hard = torch.randn(B, H, d, generator=g) if with_hard else None
    smask = torch.rand(B, N, generator=g) > 0.3 if with_mask else None
    hmask = (torch.rand(B, H, generator=g) > 0.3) if (with_mask and with_hard) else None
    got = sampled_softmax_loss(q, p, shared, tau, smask, hard, hmask)

    logits = [(q * p).sum(1, keepdim=True), q @ shared.T]
    if with_hard:
        logits.append(torch.einsum("bd,bhd->bh", q, hard))
    z = torch.cat(logits, 1) / tau
    if with_mask:
        keep = [torch.ones(B, 1, dtype=torch.bool), smask] + ([hmask] if with_hard else [])
        z = z.masked_fill(~torch.cat(keep, 1), float("-inf"))
    want = F.cross_entropy(z, torch.zeros(B, dtype=torch.long))
    assert torch.isfinite(got)
    assert torch.allclose(got, want, atol=1e-5), (float(got), float(want))


def test_sampled_softmax_empty_per_pair_is_ignored():
    g = torch.Generator().manual_seed(0)
    q, p, s = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g), torch.randn(5, 4, generator=g)
    a = sampled_softmax_loss(q, p, s, 0.1)
    b = sampled_softmax_loss(q, p, s, 0.1, per_pair=torch.zeros(3, 0, 4), per_pair_mask=torch.zeros(3, 0, dtype=torch.bool))
    assert torch.allclose(a, b)


# ---------------------------------------------------------------------------------- schedule, negatives
def test_warmup_decay():
    warmup, total, final = 10, 110, 0.1
    assert warmup_decay(0, warmup, total, final) == pytest.approx(1 / warmup)
    assert warmup_decay(4, warmup, total, final) == pytest.approx(5 / warmup)
    assert warmup_decay(warmup - 1, warmup, total, final) == pytest.approx(1.0)
    assert warmup_decay(warmup, warmup, total, final) == pytest.approx(1.0)
    assert warmup_decay(60, warmup, total, final) == pytest.approx(1.0 - 0.9 * 0.5)
    assert warmup_decay(total, warmup, total, final) == pytest.approx(final)
    assert warmup_decay(total + 50, warmup, total, final) == pytest.approx(final)  # clamped
    values = [warmup_decay(s, warmup, total, final) for s in range(total + 1)]
    assert all(a <= b + 1e-12 for a, b in zip(values[:warmup], values[1:warmup + 1]))  # rising
    assert all(a >= b - 1e-12 for a, b in zip(values[warmup:], values[warmup + 1:]))  # then falling
    assert warmup_decay(0, 0, 10, 0.5) == pytest.approx(1.0)  # no warm-up
    assert warmup_decay(10, 0, 10, 0.5) == pytest.approx(0.5)


def test_curriculum_hard_count():
    assert [curriculum_hard_count(e, 6) for e in range(1, 10)] == [0, 1, 2, 3, 4, 5, 6, 6, 6]
    assert curriculum_hard_count(5, 0) == 0
    assert curriculum_hard_count(3, 1) == 1


def test_rank_window():
    assert rank_window(100, (0.02, 0.10), (10, 50)) == (10, 50)
    assert rank_window(10_000, (0.02, 0.10), (10, 50)) == (200, 1000)
    assert rank_window(20, (0.02, 0.10), (10, 50)) == (10, 19)
    for n in range(2, 300):
        for fr, mn in [((0.02, 0.1), (10, 50)), ((0.5, 0.9), (1, 2)), ((0.0, 0.0), (0, 0))]:
            lo, hi = rank_window(n, fr, mn)
            assert 0 <= lo < hi <= n - 1, (n, fr, mn, lo, hi)


def _item_transition(g: InteractionGraph):
    """``P[i, j]``: probability that one item -> uniform group -> uniform item hop from i ends at j."""
    import scipy.sparse as sp

    A = sp.csr_matrix((np.ones(g.num_edges), g.group_items, g.group_indptr), shape=(g.num_groups, g.num_items))
    inv = lambda d: sp.diags(1.0 / np.maximum(np.asarray(d, np.float64).ravel(), 1))  # noqa: E731
    return (inv(A.sum(0)) @ A.T @ inv(A.sum(1)) @ A).tocsr(), A


def _exact_ppr(g: InteractionGraph, restart: float = 0.15, iters: int = 300) -> np.ndarray:
    """``(n, n)``: personalised PageRank of every item from every item by power iteration on the
    bipartite graph (each step follows one edge uniformly, restart ``restart`` per step); written
    here from scratch rather than with :func:`pinsage.sampling.personalized_pagerank`."""
    import scipy.sparse as sp

    _, A = _item_transition(g)
    n_g, n = A.shape
    B = sp.bmat([[None, A.T], [A, None]]).tocsr()                     # items first, then groups
    W = (B @ sp.diags(1.0 / np.maximum(np.asarray(B.sum(0)).ravel(), 1))).tocsr()  # column-stochastic
    E = np.zeros((n + n_g, n))
    E[np.arange(n), np.arange(n)] = 1.0
    x = E.copy()
    for _ in range(iters):                                            # (1 - 0.15)^300 ~ 1e-21
        x = restart * E + (1 - restart) * (W @ x)
    return x[:n].T


def _exact_walk_visits(g: InteractionGraph, walk_length: int, restart: float) -> np.ndarray:
    """``(n, n)``: expected visits per walk, sum_h (1-r)^(h-1) P^h (what the walks estimate)."""
    P = _item_transition(g)[0].toarray()
    x, out = np.eye(g.num_items), np.zeros((g.num_items, g.num_items))
    for h in range(1, walk_length + 1):
        x = x @ P
        out += (1 - restart) ** (h - 1) * x
    return out


def _ranks(scores: np.ndarray) -> np.ndarray:
    """0-based rank of every item by decreasing score from each query row (the query itself last)."""
    s = scores.astype(np.float64, copy=True)
    np.fill_diagonal(s, -np.inf)
    order = np.argsort(-s, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(s.shape[1])[None, :], 1)
    return ranks


def test_hard_negatives_exclude_the_query_and_lie_in_the_ppr_rank_window(data):
    g = InteractionGraph.from_pandas(data.interactions, "board", "pin", time_col="time")
    n = g.num_items
    window = rank_window(n, (0.02, 0.10), (10, 50))
    lo, hi = window
    hn = HardNegatives(g, window, seed=0)
    assert hn.table.shape == (n, hi - lo)
    assert ((hn.table >= -1) & (hn.table < n)).all()
    assert (hn.table >= 0).mean() > 0.5
    assert not (hn.table == np.arange(n)[:, None]).any()
    queries = np.array([0, 5, 5, 99, 42])
    out = hn(queries, 7, np.random.default_rng(0))
    assert out.shape == (5, 7)
    assert not (out == queries[:, None]).any()
    for qi, row in zip(queries, out):
        assert set(row.tolist()) <= set(hn.table[qi].tolist())
    # the same seed gives the same table
    assert np.array_equal(HardNegatives(g, window, seed=0).table, hn.table)

    # where the samples rank, from every query, by independently computed exact scores
    all_q = np.arange(n)
    rows = all_q[:, None]
    ppr = _ranks(_exact_ppr(g, hn.restart_prob))
    visits = _ranks(_exact_walk_visits(g, hn.walk_length, hn.restart_prob))

    def shares(neg: np.ndarray, ranks: np.ndarray) -> tuple[float, float, float]:
        assert (neg >= 0).all()
        r = ranks[np.broadcast_to(rows, neg.shape), neg]
        inside, near = (r >= lo) & (r < hi), (r >= lo - 5) & (r < hi + 5)
        return float(inside.mean()), float((r < lo).mean()), float(near.mean())

    # with enough walks the visit ranking is nearly exact: the samples lie in the window, not in the
    # top ranks (there 23% would be harder than lo) nor 3 ranks off (91-92% inside). Seeds 0..5: 97-98%
    # in [lo, hi) by exact visits, 93-95% by exact PPR, >= 99% within 5 ranks of it, <= 2% below lo
    many = HardNegatives(g, window, num_walks=20_000, seed=0)
    # the table is exactly the slice [lo, hi) of its walks' own ranking (an off-by-one fails here)
    ranked = walk_window_sampler(g, (0, n - 1), 20_000, seed=0).sample_arrays(all_q, key=0)[0]
    assert np.array_equal(many.table, ranked[:, lo:hi])
    neg = many(all_q, 20, np.random.default_rng(1))
    inside, below, near = shares(neg, visits)
    assert inside >= 0.95 and below <= 0.02 and near >= 0.99, (inside, below, near)
    inside, below, near = shares(neg, ppr)
    assert inside >= 0.90 and below <= 0.03 and near >= 0.98, (inside, below, near)
    # the default walk count (what training uses) is noisier, still mostly inside (seeds 0..5: 78-82%)
    inside, below, _ = shares(hn(all_q, 20, np.random.default_rng(1)), ppr)
    assert inside >= 0.7 and below <= 0.08, (inside, below)
    # ...and uniformly random items would not pass these checks (the window holds 40% of the items)
    uniform = (all_q[:, None] + np.random.default_rng(2).integers(1, n, (n, 20))) % n  # never the query
    inside, below, _ = shares(uniform, ppr)
    assert inside < 0.55 and below > 0.05, (inside, below)


def _closure(nb, q: int, fan: int) -> set[int]:
    """q, its first ``fan`` importance neighbours and theirs (the reference for the kernel)."""
    row = lambda v: nb.indices[nb.indptr[v]:nb.indptr[v + 1]][:fan].tolist()  # noqa: E731
    out = {q, *row(q)}
    for n1 in row(q):
        out.update(row(n1))
    return out


def test_closure_hard_negatives_lie_past_the_closure_and_are_reproducible(data):
    g = InteractionGraph.from_pandas(data.interactions, "board", "pin", time_col="time")
    nb = all_neighborhoods(ImportanceSampler(g, num_walks=100, walk_length=3, restart_prob=0.5,
                                             num_neighbors=10, seed=0))
    window = (9, 30)                                                  # fan-out ceil(sqrt(9)) = 3
    hn = HardNegatives(g, window, seed=0, neighborhoods=nb, method="closure")
    assert hn.table is None and hn.fan_out == 3
    queries = np.arange(g.num_items)
    out = hn(queries, 5, np.random.default_rng(0), key=11)
    assert out.shape == (g.num_items, 5) and out.dtype == np.int64
    assert (out >= 0).mean() > 0.9 and ((out >= -1) & (out < g.num_items)).all()
    for q in range(0, g.num_items, 7):
        H = _closure(nb, q, hn.fan_out)
        got = [v for v in out[q].tolist() if v >= 0]
        assert not H & set(got), (q, H & set(got))
    # a longer row extends the shorter one (the curriculum's growing count keeps earlier samples)
    assert np.array_equal(hn(queries, 8, None, key=11)[:, :5], out)
    # seeded by (seed, key) alone: the same key repeats, another key differs
    assert np.array_equal(hn(queries, 5, np.random.default_rng(1), key=11), out)
    assert not np.array_equal(hn(queries, 5, None, key=12), out)
    # a closure that covers the whole catalogue leaves nothing to sample: -1, masked by the loader
    everyone = Neighborhoods.from_lists([list(range(g.num_items))] * g.num_items)
    wide = HardNegatives(g, (g.num_items ** 2, g.num_items ** 2 + 1), neighborhoods=everyone, method="closure", max_tries=3)
    assert (wide(queries[:20], 2, None) == -1).all()


def test_hard_negative_method_selection(data, monkeypatch):
    g = InteractionGraph.from_pandas(data.interactions, "board", "pin", time_col="time")
    nb = all_neighborhoods(ImportanceSampler(g, num_walks=30, walk_length=3, num_neighbors=10, seed=0))
    assert HardNegatives(g, (5, 20), neighborhoods=nb).method == "table"
    monkeypatch.setattr("pinsage.train.negatives.TABLE_MAX_ITEMS", g.num_items - 1)
    assert HardNegatives(g, (5, 20), neighborhoods=nb).method == "closure"
    with pytest.raises(ValueError, match="needs the importance neighborhoods"):
        HardNegatives(g, (5, 20))
    with pytest.raises(ValueError, match="neighborhoods cover 3 items, the graph has"):
        HardNegatives(g, (5, 20), neighborhoods=Neighborhoods.from_lists([[1], [0], [0]]), method="closure")
    with pytest.raises(ValueError, match="method must be one of"):
        HardNegatives(g, (5, 20), method="exact")
    with pytest.raises(InputError, match="train.hard_negative_method must be one of"):
        PinSageConfig.from_dict({"train": {"hard_negative_method": "exact"}})


def test_fit_with_closure_hard_negatives(data):
    est = PinSageEmbedder(tiny_config(train__hard_negative_method="closure"), progress=False)
    est.fit(data.interactions, **FIT)
    assert [h["hard_negatives"] for h in est.history_] == [0, 1]
    assert np.isfinite(est.item_embeddings_).all()


def test_all_neighborhoods_stores_int32_indices(data):
    g = InteractionGraph.from_pandas(data.interactions, "board", "pin", time_col="time")
    sampler = ImportanceSampler(g, num_walks=50, walk_length=3, num_neighbors=7, seed=3)
    nb = all_neighborhoods(sampler, chunk=13)                      # several chunks, a short last one
    assert nb.indices.dtype == np.int32 and nb.weights.dtype == np.float32
    assert nb.nnz == int(nb.indptr[-1]) == len(nb.indices) and nb.num_nodes == g.num_items
    for c, lo in enumerate(range(0, g.num_items, 13)):             # chunk c is sampled with key c
        hi = min(lo + 13, g.num_items)
        ref = sampler(np.arange(lo, hi), key=c)
        a, b = nb.indptr[lo], nb.indptr[hi]
        assert np.array_equal(nb.indptr[lo:hi + 1] - a, ref.offsets.numpy())
        assert np.array_equal(nb.indices[a:b], ref.indices.numpy())
        assert np.array_equal(nb.weights[a:b], ref.weights.numpy())
    # int32 survives the Neighborhoods round trip, and gather returns the stored rows
    ptr, idx, w = nb.gather(np.array([3, 3, 0]))
    assert idx.dtype == np.int32
    assert np.array_equal(idx[:ptr[1]], nb.indices[nb.indptr[3]:nb.indptr[4]])


# ---------------------------------------------------------------------------------- config
def test_config_yaml_round_trip(tmp_path):
    cfg = PinSageConfig().override(model__aggr="mean", model__dropout=0.25, sampler__num_walks=17,
                                   train__hard_rank_window=[0.05, 0.2], train__loss="softmax", train__lr=1e-3)
    path = tmp_path / "c.yaml"
    text = cfg.to_yaml(path)
    assert path.read_text() == text
    back = PinSageConfig.from_yaml(path)
    assert back == cfg
    assert back.train.hard_rank_window == (0.05, 0.2)
    assert PinSageConfig.from_yaml(path).to_yaml() == text
    assert PinSageConfig.from_dict(yaml.safe_load(PinSageConfig().to_yaml())) == PinSageConfig()


def test_config_unknown_key_names_key_and_section(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"train": {"epochs": 2, "num_epochs": 3}}))
    with pytest.raises(InputError) as err:
        PinSageConfig.from_yaml(path)
    msg = str(err.value)
    assert "num_epochs" in msg and "'train'" in msg and str(path) in msg
    with pytest.raises(InputError, match="trainer"):
        PinSageConfig.from_dict({"trainer": {"epochs": 1}})


def test_config_wrong_types(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"train": {"epochs": "three"}}))
    with pytest.raises(InputError, match="train.epochs"):
        PinSageConfig.from_yaml(path)
    with pytest.raises(InputError, match="model.log_degree"):
        PinSageConfig.from_dict({"model": {"log_degree": 1}})
    with pytest.raises(InputError, match="sampler.restart_prob"):
        PinSageConfig.from_dict({"sampler": {"restart_prob": True}})
    with pytest.raises(InputError):
        PinSageConfig.from_dict(["not", "a", "mapping"])
    path.write_text("train: [unclosed")
    with pytest.raises(InputError, match="YAML"):
        PinSageConfig.from_yaml(path)
    # ints given for float settings become floats
    assert isinstance(PinSageConfig.from_dict({"train": {"lr": 1}}).train.lr, float)


# ---------------------------------------------------------------------------------- estimator
@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory):
    work = tmp_path_factory.mktemp("fit_a")
    t0 = time.perf_counter()
    est = PinSageEmbedder(tiny_config(), progress=False).fit(data.interactions, work_dir=work, **FIT)
    est.wall_s_ = time.perf_counter() - t0
    return est, work


def test_embeddings_shape_finite_learned_length(fitted, data):
    est, work = fitted
    z = est.item_embeddings_
    n = data.interactions["pin"].nunique()
    assert z.shape == (n, 64) and z.dtype == np.float32
    assert np.isfinite(z).all()
    norms = np.linalg.norm(z, axis=1)  # unit direction times the learned length m in (0, 2)
    assert (norms > 0).all() and (norms < 2).all() and norms.std() > 1e-4
    assert len(est.item_ids_) == n
    assert np.array_equal(est.transform(est.item_ids_[:3]), z[:3])
    assert (Path(work) / "checkpoint.pt").exists() and (Path(work) / "train_log.jsonl").exists()
    assert [h["epoch"] for h in est.history_] == [1, 2]
    assert [h["hard_negatives"] for h in est.history_] == [0, 1]
    assert all(math.isfinite(h["epoch_loss"]) for h in est.history_)


@pytest.fixture(scope="module")
def untrained(data):
    """The same model and inputs with no training step: the baseline any loss must clearly beat."""
    est = PinSageEmbedder(tiny_config(train__epochs=0), progress=False).fit(data.interactions, **FIT)
    assert est.history_ == []
    return same_topic_at_5(est.item_embeddings_, topic_of(est.item_ids_))


def test_training_puts_same_topic_items_together(fitted, untrained):
    """The default loss (sampled softmax) learns: ``fitted`` runs the defaults apart from its size."""
    assert PinSageConfig().train.loss == tiny_config().train.loss == "softmax"
    est, _ = fitted
    assert est.trainer_.config.loss == "softmax"
    trained = same_topic_at_5(est.item_embeddings_, topic_of(est.item_ids_))
    # chance is 24/99 ~ 0.24; seeds 0..5 give 0.99-1.00 trained, 0.54-0.64 untrained (structural
    # inputs alone already group topics somewhat)
    assert trained > 0.85, trained
    assert trained > untrained + 0.2, (trained, untrained)


def test_fit_is_deterministic(fitted, data):
    est, _ = fitted
    again = PinSageEmbedder(tiny_config(), progress=False).fit(data.interactions, **FIT)
    assert np.array_equal(again.item_embeddings_, est.item_embeddings_)
    other = PinSageEmbedder(tiny_config(train__seed=1), progress=False).fit(data.interactions, **FIT)
    assert not np.allclose(other.item_embeddings_, est.item_embeddings_)


def test_resume_reaches_the_uninterrupted_result(data, tmp_path):
    # extending a finished 1-epoch run to 2 epochs equals a 2-epoch run when the LR schedule does not
    # depend on the run length (constant rate); interrupted runs are covered below with any schedule
    flat = dict(train__warmup_steps=0, train__final_lr_ratio=1.0)
    est = PinSageEmbedder(tiny_config(**flat), progress=False).fit(data.interactions, **FIT)
    PinSageEmbedder(tiny_config(train__epochs=1, **flat), progress=False).fit(
        data.interactions, work_dir=tmp_path, **FIT)
    resumed = PinSageEmbedder(tiny_config(**flat), progress=False).fit(data.interactions, work_dir=tmp_path,
                                                                        resume=True, **FIT)
    assert [h["epoch"] for h in resumed.history_] == [1, 2]
    assert torch.allclose(torch.from_numpy(resumed.item_embeddings_), torch.from_numpy(est.item_embeddings_),
                          atol=1e-6)
    lines = [json.loads(x) for x in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines if "epoch_loss" in r] == [1, 2]


def interrupt_after_epoch_1(monkeypatch) -> None:
    """Make training raise KeyboardInterrupt right after the epoch-1 checkpoint is written."""
    original = Trainer.save_checkpoint

    def save_then_interrupt(self):
        original(self)
        if self.state.epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_interrupt)


def test_resume_after_an_interruption_restores_the_schedule(data, tmp_path, monkeypatch):
    """The epochs=1-then-2 test above uses a constant learning rate, which does not depend on
    ``epochs``. Here the run keeps ``epochs=2``, is interrupted after epoch 1, and the schedule
    (warm-up 5 steps, then decay) must carry over."""
    cfg = tiny_config(train__warmup_steps=5)
    full = PinSageEmbedder(cfg, progress=False).fit(data.interactions, **FIT)
    interrupt_after_epoch_1(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        PinSageEmbedder(cfg, progress=False).fit(data.interactions, work_dir=tmp_path, **FIT)
    monkeypatch.undo()
    # what a kill after the checkpoint leaves in the log: steps the resumed run repeats, a torn line
    log = tmp_path / "train_log.jsonl"
    with open(log, "a") as f:
        f.write(json.dumps({"epoch": 2, "step": 10_000, "loss": 1.0}) + "\n" + '{"epoch": 2, "st')
    resumed = PinSageEmbedder(cfg, progress=False).fit(data.interactions, work_dir=tmp_path, resume=True, **FIT)
    records = [json.loads(x) for x in log.read_text().splitlines()]  # every line whole
    assert [r["epoch"] for r in records if "epoch_loss" in r] == [1, 2]
    assert all(r["step"] <= full.trainer_.state.step for r in records)
    assert resumed.trainer_.state.step == full.trainer_.state.step
    assert resumed.trainer_.scheduler.get_last_lr() == pytest.approx(full.trainer_.scheduler.get_last_lr())
    assert torch.allclose(torch.from_numpy(resumed.item_embeddings_), torch.from_numpy(full.item_embeddings_),
                          atol=1e-6)


def test_max_margin_loss_trains_end_to_end(data, untrained, monkeypatch):
    """The paper's max-margin loss (not the default) through ``PinSageEmbedder.fit``, with the
    hard-negative curriculum of epoch 2, learns as well as the default."""
    import pinsage.train.trainer as trainer_module

    calls = Counter()

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(trainer_module, "max_margin_loss", counted("margin", max_margin_loss))
    monkeypatch.setattr(trainer_module, "sampled_softmax_loss", counted("softmax", sampled_softmax_loss))
    est = PinSageEmbedder(tiny_config(train__loss="margin"), progress=False).fit(data.interactions, **FIT)
    assert est.trainer_.config.loss == "margin"
    steps = est.trainer_.state.step
    # one hinge over the easy negatives per step, plus one over the hard ones in epoch 2
    assert calls["softmax"] == 0 and steps < calls["margin"] <= 2 * steps, (calls, steps)
    assert [h["hard_negatives"] for h in est.history_] == [0, 1]
    # hinge scale (margin 0.1: 0.05-0.08 per epoch), not the softmax's (> 3 here)
    assert all(0 <= h["epoch_loss"] < 0.5 for h in est.history_), est.history_
    assert np.isfinite(est.item_embeddings_).all()
    trained = same_topic_at_5(est.item_embeddings_, topic_of(est.item_ids_))
    # seeds 0..5: 0.99-1.00 trained, 0.54-0.64 untrained
    assert trained > 0.85, trained
    assert trained > untrained + 0.2, (trained, untrained)


# ---------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def files(data, tmp_path_factory):
    root = tmp_path_factory.mktemp("train_cli")
    inter = data.interactions.copy()
    inter.to_csv(root / "str.csv", index=False)
    ints = inter.copy()
    ints["pin"] = ints["pin"].str[4:].astype(np.int64)
    ints.to_csv(root / "int.csv", index=False)
    (root / "cfg.yaml").write_text(yaml.safe_dump(TINY_YAML))
    return root


def train_args(files, csv: str, out, *extra: str) -> list[str]:
    return ["train", "--interactions", str(files / csv), "--user-col", "board", "--item-col", "pin",
            "--time-col", "time", "--config", str(files / "cfg.yaml"), "--out", str(out), "--quiet", *extra]


@pytest.fixture(scope="module")
def int_run(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("int_run") / "run"
    assert main(train_args(files, "int.csv", out, "--seed", "3")) == 0
    return out


def check_run(out: Path, expected_ids: np.ndarray, expected_cfg: PinSageConfig) -> np.ndarray:
    for name in ("item_embeddings.npy", "item_ids.npy", "config.yaml", "model.pt", "checkpoint.pt",
                 "train_log.jsonl", "run.json"):
        assert (out / name).is_file(), name
    z = np.load(out / "item_embeddings.npy")
    ids = np.load(out / "item_ids.npy", allow_pickle=False)
    assert z.dtype == np.float32 and z.shape == (len(expected_ids), 64) and np.isfinite(z).all()
    assert np.array_equal(ids, expected_ids)
    assert PinSageConfig.from_yaml(out / "config.yaml") == expected_cfg
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert records and all(math.isfinite(r.get("loss", r.get("epoch_loss", math.nan))) for r in records)
    assert [r["epoch"] for r in records if "epoch_loss" in r] == list(range(1, expected_cfg.train.epochs + 1))
    assert not (out.parent / f".{out.name}.partial").exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    return z


def test_cli_train_int_ids(int_run, files, capsys):
    expected_cfg = PinSageConfig.from_yaml(files / "cfg.yaml").override(train__seed=3)
    raw = np.sort(np.unique(np.loadtxt(files / "int.csv", delimiter=",", skiprows=1, usecols=1, dtype=np.int64)))
    z = check_run(int_run, raw, expected_cfg)
    assert np.load(int_run / "item_ids.npy").dtype == np.int64
    assert same_topic_at_5(z, topic_of(raw)) > 0.4


def test_cli_train_string_ids(files, data, tmp_path, capsys):
    out = tmp_path / "run"
    loud = [a for a in train_args(files, "str.csv", out, "--epochs", "1") if a != "--quiet"]
    assert main(loud) == 0
    assert "pinsage train: 100 items, " in capsys.readouterr().err  # the summary: a status message, on stderr
    expected = np.sort(data.interactions["pin"].unique()).astype(str)
    check_run(out, expected, PinSageConfig.from_yaml(files / "cfg.yaml").override(train__epochs=1))
    assert np.load(out / "item_ids.npy").dtype.kind == "U"


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("pinsage train: error:"), err
    return err[0]


def test_cli_missing_column(files, tmp_path, capsys):
    args = train_args(files, "int.csv", tmp_path / "run")
    args[args.index("--user-col") + 1] = "boardz"
    assert main(args) == 2
    assert "boardz" in one_line_error(capsys)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name,content", [("bad.parquet", b"this is not parquet"),
                                          ("missing.csv", None), ("data.json", b"{}")])
def test_cli_unreadable_file(files, tmp_path, capsys, name, content):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    args = train_args(files, "int.csv", tmp_path / "run")
    args[args.index("--interactions") + 1] = str(path)
    assert main(args) == 2
    assert name in one_line_error(capsys)
    assert not (tmp_path / "run").exists()


def test_cli_refuses_an_existing_run(files, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "item_embeddings.npy").write_bytes(b"old")
    assert main(train_args(files, "int.csv", out)) == 2
    msg = one_line_error(capsys)
    assert "another run" in msg and "--overwrite" in msg
    assert (out / "item_embeddings.npy").read_bytes() == b"old"
    # --overwrite replaces it
    assert main(train_args(files, "int.csv", out, "--overwrite", "--epochs", "1")) == 0
    assert np.load(out / "item_embeddings.npy").shape == (100, 64)


def test_cli_features_with_items_without_interactions(files, tmp_path, capsys):
    # a catalogue lists items nobody has engaged with yet: they are embedded from their content
    feats = tmp_path / "feats.csv"
    feats.write_text("pin,f0\n0,1.0\n1,2.0\n99999,3.0\n")
    out = tmp_path / "run"
    args = train_args(files, "int.csv", out, "--item-features", str(feats), "--item-key", "pin")
    assert main([a for a in args if a != "--quiet"]) == 0
    ids = np.load(out / "item_ids.npy", allow_pickle=False)
    assert ids[-1] == 99999 and ids.dtype.kind == "i"
    assert json.loads((out / "run.json").read_text())["num_catalogue_items"] == 1
    assert "1 catalogue items without interactions" in capsys.readouterr().err


def test_cli_features_need_item_key(files, tmp_path, capsys):
    feats = tmp_path / "feats.csv"
    feats.write_text("pin,f0\n0,1.0\n")
    assert main(train_args(files, "int.csv", tmp_path / "run", "--item-features", str(feats))) == 2
    assert "--item-key" in one_line_error(capsys)
    # a key column that is not in the file is named
    assert main(train_args(files, "int.csv", tmp_path / "run", "--item-features", str(feats),
                           "--item-key", "pin_id")) == 2
    assert "pin_id" in one_line_error(capsys)


def test_cli_interrupted_run_resumes(files, int_run, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    partial = tmp_path / ".run.partial"
    interrupt_after_epoch_1(monkeypatch)
    assert main(train_args(files, "int.csv", out, "--seed", "3")) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not out.exists()
    assert (partial / "checkpoint.pt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.partial"]
    monkeypatch.undo()

    assert main(train_args(files, "int.csv", out, "--seed", "3", "--resume")) == 0
    assert not partial.exists()
    ids = np.load(int_run / "item_ids.npy")
    z = check_run(out, ids, PinSageConfig.from_yaml(files / "cfg.yaml").override(train__seed=3))
    # same data, config and seed as the uninterrupted int_run
    assert torch.allclose(torch.from_numpy(z), torch.from_numpy(np.load(int_run / "item_embeddings.npy")), atol=1e-6)


def test_cli_without_resume_starts_over(files, tmp_path, monkeypatch):
    """A stale partial directory is discarded when --resume is not given."""
    partial = tmp_path / ".run.partial"
    partial.mkdir()
    (partial / "stale.txt").write_text("x")
    assert main(train_args(files, "int.csv", tmp_path / "run", "--epochs", "1")) == 0
    assert not partial.exists() and not (tmp_path / "run" / "stale.txt").exists()


# ---------------------------------------------------------------------------------- data parallel
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_data_parallel_torchrun(files, int_run, tmp_path):
    """Two CPU processes (gloo) at the same global batch as the single-process int_run train on the
    same batches with the same loss (tests/test_data_parallel.py checks that exactly): they differ
    only by the order of float sums (DDP adds the two halves' gradients). Measured (2026-12-01):
    epoch losses within 2e-7 (epoch 1) and 3e-4 (epoch 2, 3.24), embeddings within 3.6e-3 (scale
    0.36, cosine >= 0.9999). Adam amplifies float noise over the 22 steps: scaling the single run's
    loss by 1 + 1e-7 alone moves its embeddings by 8e-3. Before every draw was keyed by its
    position in the global batch, the 2-process run trained on other hard negatives: epoch 2's loss
    differed by 4e-2 (and the log showed rank 0's half: 2e-2 in epoch 1)."""
    out = tmp_path / "ddp_run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           "-m", "pinsage.cli", *train_args(files, "int.csv", out, "--seed", "3")]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ids = np.load(int_run / "item_ids.npy")
    z = check_run(out, ids, PinSageConfig.from_yaml(files / "cfg.yaml").override(train__seed=3))
    assert json.loads((out / "run.json").read_text())["world_size"] == 2
    single = np.load(int_run / "item_embeddings.npy")

    def epoch_losses(run: Path) -> list[float]:
        return [r["epoch_loss"] for r in map(json.loads, (run / "train_log.jsonl").read_text().splitlines())
                if "epoch_loss" in r]

    l_ddp, l_single = epoch_losses(out), epoch_losses(int_run)
    q_ddp, q_single = same_topic_at_5(z, topic_of(ids)), same_topic_at_5(single, topic_of(ids))
    diff = float(np.abs(z - single).max())
    cos = float(((z * single).sum(1) / np.linalg.norm(z, axis=1) / np.linalg.norm(single, axis=1)).min())
    print(f"torchrun 2 procs: {elapsed:.1f} s; epoch losses ddp {l_ddp} vs single {l_single}; same-topic@5 ddp "
          f"{q_ddp:.3f} vs single {q_single:.3f}; max |z_ddp - z_single| {diff:.2e}, min cosine {cos:.6f}")
    assert abs(l_ddp[0] - l_single[0]) < 1e-4, (l_ddp, l_single)   # epoch 1: 11 steps, no hard negatives
    assert abs(l_ddp[1] - l_single[1]) < 3e-3, (l_ddp, l_single)   # epoch 2: with hard negatives
    assert diff < 0.02 and cos > 0.999, (diff, cos)
    assert abs(q_ddp - q_single) <= 0.01 and q_ddp > 0.4, (q_ddp, q_single)


@pytest.mark.parametrize("key,value", [("train__batch_size", 0), ("train__temperature", 0.0),
                                       ("sampler__restart_prob", 1.5), ("train__hard_rank_window", [0.5, 0.1])])
def test_config_ranges_are_checked(key, value):
    with pytest.raises(InputError, match=key.replace("__", ".")):
        PinSageConfig().override(**{key: value})


def test_accumulation_steps_even_with_fewer_batches_than_accumulate(data):
    est = PinSageEmbedder(tiny_config(train__accumulate=64, train__epochs=1), progress=False).fit(
        data.interactions, **FIT)
    assert est.trainer_.state.step >= 1


def test_resume_refuses_a_checkpoint_of_other_data(data, tmp_path):
    PinSageEmbedder(tiny_config(train__epochs=1), progress=False).fit(data.interactions, work_dir=tmp_path, **FIT)
    fewer = data.interactions.iloc[: len(data.interactions) // 2]
    with pytest.raises(InputError, match="another run"):
        PinSageEmbedder(tiny_config(), progress=False).fit(fewer, work_dir=tmp_path, resume=True, **FIT)

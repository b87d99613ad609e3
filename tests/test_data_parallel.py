"""Data parallelism trains on the batches one process would: a global batch split over ``R`` ranks
(rank ``r`` takes positions ``r::R``) has exactly the pairs, shared easy negatives, per-pair hard
negatives, masks and neighbourhoods of the single-process batch, and the ranks' scaled losses average
to the single-process loss and gradient (docs/scaling.md). No processes are spawned here: the ranks'
datasets are built side by side (``tests/test_train.py::test_data_parallel_torchrun`` runs torchrun).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pinsage.config import TrainConfig
from pinsage.datasets import make_pinboard
from pinsage.graph import InteractionGraph
from pinsage.nn.model import PinSage
from pinsage.sampling import ImportanceSampler
from pinsage.train.loader import PairBatch, PairBatchDataset
from pinsage.train.negatives import HardNegatives, rank_window
from pinsage.train.pairs import positive_pairs
from pinsage.train.trainer import loss_counts, pair_batch_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BATCH = 50  # not a multiple of 3: 3 ranks get shares of 17, 17 and 16 pairs
EPOCHS = (1, 2, 5)
HARD = 3


@pytest.fixture(scope="module")
def setup():
    data = make_pinboard(n_topics=4, pins_per_topic=25, n_boards=120, seed=0)
    g = InteractionGraph.from_pandas(data.interactions, "board", "pin", time_col="time")
    sampler = ImportanceSampler(g, num_walks=30, walk_length=3, restart_prob=0.5, num_neighbors=6, seed=0)
    nb = sampler.all_neighborhoods()
    pairs = positive_pairs(g, 3, np.random.default_rng(0))
    window = rank_window(g.num_items, (0.15, 0.40), (10, 50))
    hard = {m: HardNegatives(g, window, seed=0, neighborhoods=nb, method=m) for m in ("table", "closure")}
    return g, sampler, nb, pairs, hard


def dataset(setup, method: str, sampled: bool, epoch: int, rank: int, world: int) -> PairBatchDataset:
    g, sampler, nb, pairs, hard = setup
    return PairBatchDataset(pairs, g.num_items, sampler if sampled else nb, 2, None, hard[method], BATCH,
                            easy_negatives=20, hard_negatives=HARD, epoch=epoch, seed=7, pairs_per_epoch=400,
                            rank=rank, world_size=world)


def by_id(batch: PairBatch) -> dict[str, np.ndarray]:
    """The batch's fields as item ids (positions in ``nodes`` resolved) and masks."""
    nodes = batch.nodes.numpy()
    return {"query": nodes[batch.query.numpy()], "positive": nodes[batch.positive.numpy()],
            "hard": nodes[batch.hard.numpy()], "hard_mask": batch.hard_mask.numpy(),
            "easy_mask": batch.easy_mask.numpy(), "easy": nodes[batch.easy.numpy()]}


def model(num_items: int) -> PinSage:
    torch.manual_seed(0)
    return PinSage(num_items, feature_dim=0, id_dim=8, hidden_channels=16, out_channels=8, num_layers=2)


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("method,sampled", [("table", False), ("closure", False), ("table", True)])
def test_ranks_together_see_the_single_process_batches(setup, method, sampled, world):
    g = setup[0]
    net = model(g.num_items).eval()
    checked_hard = 0
    for epoch in EPOCHS:
        single = list(dataset(setup, method, sampled, epoch, 0, 1))
        shares = [list(dataset(setup, method, sampled, epoch, r, world)) for r in range(world)]
        assert len(single) == 400 // BATCH and all(len(s) == len(single) for s in shares)
        for b, whole in enumerate(single):
            want = by_id(whole)
            assert len(want["query"]) == BATCH
            with torch.no_grad():
                z_whole = net(whole.blocks)
            for r in range(world):
                part = shares[r][b]
                got = by_id(part)
                np.testing.assert_array_equal(got["easy"], want["easy"])  # the shared set, on every rank
                for k in ("query", "positive", "hard", "hard_mask", "easy_mask"):
                    np.testing.assert_array_equal(got[k], want[k][r::world], err_msg=f"{k} epoch {epoch} batch {b}")
                # the same neighbourhoods (fixed or sampled): the same embedding of every node
                with torch.no_grad():
                    z_part = net(part.blocks)
                for k in ("query", "positive", "easy", "hard"):
                    rows = getattr(whole, k)[r::world] if k != "easy" else whole.easy
                    torch.testing.assert_close(z_part[getattr(part, k)], z_whole[rows], atol=1e-5, rtol=1e-5)
            checked_hard += int(want["hard_mask"].sum())
    assert checked_hard > 0  # the hard negatives were compared, not only empty masks


def test_union_of_the_ranks_pairs_is_the_batch(setup):
    """Every pair of the epoch goes to exactly one rank, at its global position."""
    single = list(dataset(setup, "table", False, 3, 0, 1))
    parts = [list(dataset(setup, "table", False, 3, r, 2)) for r in range(2)]
    for b, whole in enumerate(single):
        want = by_id(whole)
        merged = np.empty_like(want["query"])
        merged[0::2], merged[1::2] = by_id(parts[0][b])["query"], by_id(parts[1][b])["query"]
        np.testing.assert_array_equal(merged, want["query"])


@pytest.mark.parametrize("method", ["table", "closure"])
def test_hard_negatives_depend_on_the_position_only(setup, method):
    hn = setup[4][method]
    q = np.random.default_rng(1).integers(0, setup[0].num_items, 40)
    whole = hn(q, 5, np.random.default_rng(9), key=11)
    pos = np.array([39, 0, 17, 17, 3])
    part = hn(q[pos], 5, np.random.default_rng(9), key=11, positions=pos, num_positions=40)
    np.testing.assert_array_equal(part, whole[pos])
    with pytest.raises(ValueError, match="positions"):
        hn(q[:2], 5, np.random.default_rng(9), positions=np.array([0, 40]), num_positions=40)


@pytest.mark.parametrize("loss", ["softmax", "margin"])
@pytest.mark.parametrize("world", [2, 3])
def test_ranks_scaled_losses_average_to_the_single_process_loss(setup, loss, world):
    """What DistributedDataParallel computes (the mean over ranks of each rank's gradient) is the
    single-process gradient, also with unequal shares (50 pairs over 3 ranks) and masks that differ."""
    g = setup[0]
    cfg = TrainConfig(loss=loss)
    whole = list(dataset(setup, "table", False, 2, 0, 1))[1]
    parts = [list(dataset(setup, "table", False, 2, r, world))[1] for r in range(world)]
    net = model(g.num_items)
    params = [p for p in net.parameters() if p.requires_grad]

    def grads(value: torch.Tensor) -> list[torch.Tensor]:
        return [x if x is not None else torch.zeros_like(p)
                for x, p in zip(torch.autograd.grad(value, params, allow_unused=True), params)]

    want = pair_batch_loss(net(whole.blocks), whole, cfg, HARD)
    want_grad = grads(want)
    totals = torch.stack([loss_counts(p, HARD) for p in parts]).sum(0).tolist()
    assert totals == loss_counts(whole, HARD).tolist()
    got, got_grad = 0.0, [torch.zeros_like(p) for p in params]
    for part in parts:
        value = pair_batch_loss(net(part.blocks), part, cfg, HARD, totals, scale=float(world))
        got = got + float(value.detach()) / world
        got_grad = [a + b / world for a, b in zip(got_grad, grads(value))]
    assert got == pytest.approx(float(want.detach()), rel=1e-5)
    for a, b in zip(got_grad, want_grad):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)  # float32 sums in another order: ~1e-6 apart


# ------------------------------------------------------------------- workers forked once for all epochs
@pytest.mark.parametrize("workers", [0, 2])
def test_epoch_loader_gives_each_epoch_the_batches_of_a_fresh_loader(setup, workers):
    """One persistent loader (workers forked at epoch 1) against a fresh loader per epoch, with the
    first epoch left half-read, as the trainer does when it stops at ``steps_per_epoch``."""
    from pinsage.train.loader import EpochLoader, make_loader

    loader = EpochLoader(lambda e: dataset(setup, "table", False, e, 0, 1), workers)
    try:
        loader.start()  # forked before the first epoch is asked for (the estimator: before the model)
        pids = set()
        for epoch in (1, 2, 3):
            want = [by_id(b) for b in make_loader(dataset(setup, "table", False, epoch, 0, 1), 0)]
            got = []
            for batch in loader(epoch):
                got.append(by_id(batch))
                if epoch == 1 and len(got) == 3:
                    break  # stopped early: the next epoch must not see this one's prefetched batches
            if workers:
                pids |= {w.pid for w in loader._loader._iterator._workers}
            assert len(got) == (3 if epoch == 1 else len(want))
            for g, w in zip(got, want):
                for field in w:
                    np.testing.assert_array_equal(g[field], w[field])
        assert len(pids) == workers  # the same processes served every epoch
    finally:
        loader.close()
    if workers:
        assert loader._loader._iterator is None


def test_epoch_loader_start_leaves_torch_generator_as_it_was(setup):
    from pinsage.train.loader import EpochLoader

    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    loader = EpochLoader(lambda e: dataset(setup, "table", False, e, 0, 1), 1)
    try:
        loader.start()
        torch.testing.assert_close(torch.rand(3), expected)  # the model built next gets the same weights
    finally:
        loader.close()

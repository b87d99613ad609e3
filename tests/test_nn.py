"""Tests for pinsage.nn (blocks, ImportanceConv, PinSage) and pinsage.inference."""
from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pinsage.inference import embed_all, embed_sampled
from pinsage.nn import AGGREGATORS, ImportanceConv, PinSage
from pinsage.sampling import Block, Neighborhoods, build_blocks


def random_neighborhoods(n: int, max_t: int = 5, seed: int = 0, empty_frac: float = 0.1) -> Neighborhoods:
    """Random top-T-like neighbourhoods: distinct neighbours != self, weights sum to 1."""
    rng = np.random.default_rng(seed)
    neighbors, weights = [], []
    for v in range(n):
        t = 0 if rng.random() < empty_frac else int(rng.integers(1, max_t + 1))
        cand = np.setdiff1d(rng.choice(n, size=min(n, t + 1), replace=False), [v])[:t]
        w = rng.random(cand.size) + 0.1
        neighbors.append(cand.tolist())
        weights.append((w / w.sum()).tolist() if cand.size else [])
    return Neighborhoods.from_lists(neighbors, weights)


def random_bipartite(n_src: int, n_dst: int, e: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, n_src, (e,), generator=g)
    dst = torch.randint(0, n_dst, (e,), generator=g)
    w = torch.rand(e, generator=g) + 0.1
    wsum = torch.zeros(n_dst).index_add_(0, dst, w)
    return torch.stack([src, dst]), w / wsum[dst]


# --------------------------------------------------------------------------- conv
def dense_reference(conv: ImportanceConv, x_src, x_dst, edge_index, edge_weight):
    n_src, n_dst = x_src.size(0), x_dst.size(0)
    A = torch.zeros(n_dst, n_src)
    A.index_put_((edge_index[1], edge_index[0]), edge_weight, accumulate=True)
    Q, q = conv.lin_q.weight, conv.lin_q.bias
    W, b = conv.lin_w.weight, conv.lin_w.bias
    m = torch.relu(x_src @ Q.T + q)
    n = A @ m
    z = torch.relu(torch.cat([x_dst, n], 1) @ W.T + b)
    return z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)


def test_importance_conv_matches_dense_reference():
    torch.manual_seed(0)
    conv = ImportanceConv((6, 5), 7, 8)
    x_src, x_dst = torch.randn(20, 6), torch.randn(9, 5)
    edge_index, w = random_bipartite(20, 9, 60)
    out = conv((x_src, x_dst), edge_index, w)
    assert out.shape == (9, 8)
    torch.testing.assert_close(out, dense_reference(conv, x_src, x_dst, edge_index, w), atol=1e-5, rtol=1e-5)


def test_block_layout_single_tensor_with_size():
    torch.manual_seed(1)
    conv = ImportanceConv(4, 6, 5)
    x = torch.randn(12, 4)
    edge_index, w = random_bipartite(12, 5, 30)
    a = conv(x, edge_index, w, size=(12, 5))
    b = conv((x, x[:5]), edge_index, w)
    torch.testing.assert_close(a, b)


def test_weights_matter_for_importance_not_for_mean():
    torch.manual_seed(2)
    x_src, x_dst = torch.randn(15, 4), torch.randn(6, 4)
    edge_index, w = random_bipartite(15, 6, 40, seed=3)
    w2 = torch.rand_like(w)
    imp = ImportanceConv(4, 8, 8, aggr="importance")
    mean = ImportanceConv(4, 8, 8, aggr="mean")
    assert not torch.allclose(imp((x_src, x_dst), edge_index, w), imp((x_src, x_dst), edge_index, w2))
    torch.testing.assert_close(mean((x_src, x_dst), edge_index, w), mean((x_src, x_dst), edge_index, w2))
    # importance with uniform weights == mean pooling
    mean.load_state_dict(imp.state_dict())
    torch.testing.assert_close(imp((x_src, x_dst), edge_index, None), mean((x_src, x_dst), edge_index))


def test_empty_neighbourhood_and_unit_norm():
    torch.manual_seed(3)
    conv = ImportanceConv(4, 8, 16)
    x_src, x_dst = torch.randn(10, 4), torch.randn(5, 4)
    edge_index = torch.tensor([[3, 4, 7], [0, 0, 2]])  # dst 1, 3, 4 have no neighbours
    w = torch.tensor([0.25, 0.75, 1.0])
    out = conv((x_src, x_dst), edge_index, w)
    assert torch.isfinite(out).all()
    # n_v = 0 for an empty neighbourhood
    z = torch.relu(conv.lin_w(torch.cat([x_dst, torch.zeros(5, 8)], 1)))
    torch.testing.assert_close(out[1], F.normalize(z, dim=1)[1])
    torch.testing.assert_close(out.norm(dim=1), torch.ones(5), atol=1e-5, rtol=0)
    # no edges at all
    out0 = conv((x_src, x_dst), torch.empty(2, 0, dtype=torch.long), torch.empty(0))
    assert out0.shape == (5, 16) and torch.isfinite(out0).all()


@pytest.mark.parametrize("aggr", AGGREGATORS)
def test_aggr_variants_run(aggr):
    torch.manual_seed(4)
    conv = ImportanceConv(4, 8, 8, aggr=aggr)
    edge_index, w = random_bipartite(12, 6, 30)
    x = torch.randn(12, 4, requires_grad=True)
    out = conv((x, x[:6]), edge_index, w)
    assert out.shape == (6, 8) and torch.isfinite(out).all()
    out.sum().backward()
    assert x.grad is not None
    with pytest.raises(ValueError):
        ImportanceConv(4, 8, 8, aggr="lstm")


# --------------------------------------------------------------------------- blocks
def test_neighborhoods_gather():
    nb = random_neighborhoods(30, seed=5)
    nodes = np.array([4, 0, 4, 29, 7])
    ptr, idx, w = nb.gather(nodes)
    for i, v in enumerate(nodes):
        s, e = nb.indptr[v], nb.indptr[v + 1]
        np.testing.assert_array_equal(idx[ptr[i]: ptr[i + 1]], nb.indices[s:e])
        np.testing.assert_array_equal(w[ptr[i]: ptr[i + 1]], nb.weights[s:e])


def test_build_blocks_invariants():
    nb = random_neighborhoods(40, seed=6)
    seeds = torch.tensor([5, 17, 3, 5, 30])  # duplicate seed kept
    blocks = build_blocks(seeds, nb, 2)
    assert len(blocks) == 2
    torch.testing.assert_close(blocks[-1].dst_nodes, seeds)
    assert torch.equal(blocks[1].src_nodes, blocks[0].src_nodes[: blocks[0].n_dst])
    for b in blocks:
        assert b.src_nodes.dtype == torch.long and b.edge_index.dtype == torch.long
        assert b.edge_weight.dtype == torch.float32
        assert b.edge_index.shape == (2, b.edge_weight.numel())
        assert (b.edge_index[1] < b.n_dst).all() and (b.edge_index[0] < b.n_src).all()
        # non-dst src nodes are unique and disjoint from dst nodes
        extra = b.src_nodes[b.n_dst:]
        assert extra.unique().numel() == extra.numel()
        assert not np.isin(extra.numpy(), b.dst_nodes.numpy()).any()
        # every dst's edges are exactly its global neighbourhood with its weights
        for d in range(b.n_dst):
            v = int(b.src_nodes[d])
            mask = b.edge_index[1] == d
            got = b.src_nodes[b.edge_index[0, mask]].numpy()
            s, e = nb.indptr[v], nb.indptr[v + 1]
            np.testing.assert_array_equal(got, nb.indices[s:e])
            np.testing.assert_allclose(b.edge_weight[mask].numpy(), nb.weights[s:e])
        # sources: exactly the dst nodes plus their neighbours
        ptr, idx, _ = nb.gather(b.dst_nodes)
        assert set(b.src_nodes.tolist()) == set(b.dst_nodes.tolist()) | set(idx.tolist())


def test_build_blocks_accepts_sampler_callable():
    nb = random_neighborhoods(25, seed=7)
    calls = []

    def sampler(nodes: torch.Tensor):
        calls.append(nodes.numel())
        ptr, idx, w = nb.gather(nodes.numpy())
        return torch.from_numpy(ptr), torch.from_numpy(idx), torch.from_numpy(w)

    a = build_blocks(torch.arange(6), sampler, 2)
    b = build_blocks(np.arange(6), nb, 2)
    assert len(calls) == 2
    for x, y in zip(a, b):
        assert torch.equal(x.src_nodes, y.src_nodes) and x.n_dst == y.n_dst
        assert torch.equal(x.edge_index, y.edge_index) and torch.equal(x.edge_weight, y.edge_weight)


# --------------------------------------------------------------------------- model + inference
def _features(n: int, f: int, seed: int = 0):
    if f == 0:
        return None
    return np.random.default_rng(seed).standard_normal((n, f)).astype(np.float32)


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("feature_dim,id_dim", [(0, 8), (5, 0), (5, 4)])
def test_embed_all_equals_embed_sampled(num_layers, feature_dim, id_dim):
    torch.manual_seed(10)
    n = 60
    nb = random_neighborhoods(n, seed=11)
    feats = _features(n, feature_dim)
    model = PinSage(n, feature_dim=feature_dim, id_dim=id_dim, hidden_channels=16,
                    out_channels=12, num_layers=num_layers, dropout=0.3)
    model.train()
    full = embed_all(model, nb, feats, chunk_size=17)
    assert model.training  # mode restored
    sampled = embed_sampled(model, np.arange(n), nb, feats, batch_size=13)
    assert full.shape == (n, 12)
    torch.testing.assert_close(full, sampled, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(full.norm(dim=1), torch.ones(n), atol=1e-5, rtol=0)
    # subset of items, tensor features
    items = np.array([3, 59, 0, 3])
    sub = embed_sampled(model, items, nb, None if feats is None else torch.from_numpy(feats), batch_size=3)
    torch.testing.assert_close(sub, full[items], atol=1e-5, rtol=1e-5)


def test_gradients_flow():
    torch.manual_seed(12)
    n = 40
    nb = random_neighborhoods(n, seed=13, empty_frac=0.0)
    feats = torch.randn(n, 3)
    model = PinSage(n, feature_dim=3, id_dim=4, hidden_channels=8, out_channels=8, num_layers=2)
    blocks = build_blocks(torch.tensor([1, 2, 3]), nb, 2)
    out = model(blocks, feats[blocks[0].src_nodes])
    assert out.shape == (3, 8)
    (out @ torch.randn(8)).sum().backward()
    named = dict(model.named_parameters())
    for name in ["id_embedding.weight", "input_proj.weight", "g1.weight", "g2.weight"] + [
        f"convs.{k}.{p}.weight" for k in range(2) for p in ("lin_q", "lin_w")
    ]:
        g = named[name].grad
        assert g is not None and g.abs().sum() > 0, name


def test_model_validation_and_sparse_embedding():
    with pytest.raises(ValueError):
        PinSage(10, feature_dim=0, id_dim=0)
    model = PinSage(10, id_dim=4, hidden_channels=8, out_channels=4, num_layers=1, sparse=True,
                    normalize_output=False, aggr="max")
    nb = random_neighborhoods(10, seed=14)
    blocks = build_blocks(torch.tensor([0, 1]), nb, 1)
    model(blocks).sum().backward()
    assert model.id_embedding.weight.grad.is_sparse
    with pytest.raises(ValueError):
        model(build_blocks(torch.tensor([0]), nb, 2))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dist_worker(rank: int, world_size: int, port: int, state: dict, nb_arrays, feats, expected, q):
    import torch.distributed as dist

    torch.set_num_threads(1)  # a forked child: no OpenMP team inherited from the parent (as DataLoader workers)
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        model = PinSage(nb_arrays[0].size - 1, feature_dim=feats.shape[1], id_dim=4, hidden_channels=16,
                        out_channels=8, num_layers=2)
        model.load_state_dict(state)
        out = embed_all(model, Neighborhoods(*nb_arrays), feats, chunk_size=7, rank=rank, world_size=world_size)
        q.put((rank, float((out - expected).abs().max())))
    finally:
        dist.destroy_process_group()


def test_embed_all_sharded_ranks(monkeypatch):
    """world_size=3 ranks as threads, with an in-process all_gather (fast; same code path)."""
    import threading

    import torch.distributed as dist

    torch.manual_seed(17)
    n, world = 50, 3
    nb = random_neighborhoods(n, seed=18)
    feats = _features(n, 3)
    model = PinSage(n, feature_dim=3, id_dim=4, hidden_channels=16, out_channels=8, num_layers=2)
    expected = embed_all(model, nb, feats)

    barrier = threading.Barrier(world)
    slots: dict = {}
    calls = []

    def fake_all_gather(tensor_list, tensor, group=None, async_op=False):
        rank = int(threading.current_thread().name)
        calls.append(rank)
        slots[rank] = tensor.clone()
        barrier.wait()
        for r in range(world):
            tensor_list[r].copy_(slots[r])
        barrier.wait()

    monkeypatch.setattr(dist, "all_gather", fake_all_gather)
    models = [PinSage(n, feature_dim=3, id_dim=4, hidden_channels=16, out_channels=8, num_layers=2)
              for _ in range(world)]
    outs: dict = {}
    for m in models:
        m.load_state_dict(model.state_dict())

    def run(rank: int):
        outs[rank] = embed_all(models[rank], nb, feats, chunk_size=6, rank=rank, world_size=world)

    threads = [threading.Thread(target=run, args=(r,), name=str(r)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(calls) == world * 3  # M^(1), M^(2), final embeddings
    for r in range(world):
        torch.testing.assert_close(outs[r], expected, atol=1e-5, rtol=1e-5)


def _process_start_method() -> str | None:
    """``fork`` where the platform has it (the children start in milliseconds: no second import of
    torch and pinsage, which made the test take ~21 s with ``spawn`` on a loaded 2-core machine),
    else ``spawn``; None where no child process can be started."""
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    return "fork" if "fork" in methods else ("spawn" if "spawn" in methods else None)


@pytest.mark.skipif(_process_start_method() is None or not torch.distributed.is_available()
                    or not torch.distributed.is_gloo_available(),
                    reason="needs child processes and torch.distributed with gloo")
def test_embed_all_distributed_gloo():
    """Two real processes over gloo (the threaded test above fakes all_gather)."""
    import torch.multiprocessing as mp

    torch.manual_seed(15)
    n = 53
    nb = random_neighborhoods(n, seed=16)
    feats = _features(n, 3)
    model = PinSage(n, feature_dim=3, id_dim=4, hidden_channels=16, out_channels=8, num_layers=2)
    expected = embed_all(model, nb, feats)
    method = _process_start_method()
    ctx = mp.get_context(method)
    q = ctx.Queue()
    mp.start_processes(_dist_worker, nprocs=2, start_method=method,
                       args=(2, _free_port(), model.state_dict(), (nb.indptr, nb.indices, nb.weights),
                             feats, expected, q))
    results = dict(q.get(timeout=30) for _ in range(2))
    assert set(results) == {0, 1}
    assert max(results.values()) < 1e-5


# --------------------------------------------------------------------------- learned length, bf16
def test_magnitude_head_starts_at_unit_length_and_learns():
    torch.manual_seed(3)
    n = 30
    nb = random_neighborhoods(n, seed=4, empty_frac=0.0)
    model = PinSage(n, id_dim=4, hidden_channels=8, out_channels=6, num_layers=1, magnitude=True)
    blocks = build_blocks(torch.arange(n), nb, 1)
    z = model(blocks)
    assert torch.allclose(z.norm(dim=1), torch.ones(n), atol=1e-5)  # m_v = 2 sigmoid(0) = 1 at init
    # the length follows a target norm per item (0.5 for even items, 1.5 for odd ones)
    target = torch.where(torch.arange(n) % 2 == 0, 0.5, 1.5)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        ((model(blocks).norm(dim=1) - target) ** 2).mean().backward()
        opt.step()
    norms = model(blocks).norm(dim=1).detach()
    assert ((norms > 0) & (norms < 2)).all()
    assert norms[1::2].mean() - norms[0::2].mean() > 0.5
    direction = F.normalize(model(blocks), dim=1)
    assert torch.allclose(direction.norm(dim=1), torch.ones(n), atol=1e-5)
    with pytest.raises(ValueError, match="normalize_output"):
        PinSage(n, id_dim=4, magnitude=True, normalize_output=False)


def test_conv_under_bf16_autocast_sums_in_float32():
    # CUDA has no bf16 sparse-dense product (it raised under train.amp=bf16 on an H100); the weighted
    # sum runs in float32 outside autocast, on every device. Checked here on the CPU.
    torch.manual_seed(5)
    conv = ImportanceConv(8, 8, 8)
    ei, w = random_bipartite(20, 6, 40, seed=6)
    x_src, x_dst = torch.randn(20, 8), torch.randn(6, 8)
    want = conv((x_src, x_dst), ei, w)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = conv((x_src, x_dst), ei, w)
        n = ImportanceConv.weighted_sum(x_src.bfloat16(), ei, w, 6)
    assert n.dtype == torch.float32
    torch.testing.assert_close(got.float(), want, atol=0.05, rtol=0.05)


def test_weighted_sum_csr_and_coo_paths_agree():
    """Destination-grouped edges take the CSR product, shuffled ones the COO product: same sums and
    the same gradient for the source rows; learnable weights always take COO (and get gradients)."""
    g = torch.Generator().manual_seed(3)
    n_src, n_dst, deg = 40, 9, 5
    src = torch.randint(0, n_src, (n_dst * deg,), generator=g)
    dst = torch.arange(n_dst).repeat_interleave(deg)
    dst[-deg:] = n_dst - 2                                # two rows merged, the last one empty
    w = torch.rand(n_dst * deg, generator=g)
    m = torch.randn(n_src, 6, generator=g, requires_grad=True)
    out_csr = ImportanceConv.weighted_sum(m, torch.stack([src, dst]), w, n_dst)
    (grad_csr,) = torch.autograd.grad(out_csr.square().sum(), m)
    perm = torch.randperm(len(src), generator=g)
    out_coo = ImportanceConv.weighted_sum(m, torch.stack([src[perm], dst[perm]]), w[perm], n_dst)
    (grad_coo,) = torch.autograd.grad(out_coo.square().sum(), m)
    dense = torch.zeros(n_dst, n_src).index_put_((dst, src), w, accumulate=True)
    assert torch.allclose(out_csr, dense @ m, atol=1e-5) and torch.allclose(out_coo, out_csr, atol=1e-5)
    assert torch.allclose(grad_csr, grad_coo, atol=1e-5)
    assert not out_csr[-1].any()
    w_learn = w.clone().requires_grad_(True)
    out = ImportanceConv.weighted_sum(m, torch.stack([src, dst]), w_learn, n_dst)
    (gw,) = torch.autograd.grad(out.sum(), w_learn)
    assert torch.allclose(out, out_csr, atol=1e-5) and gw.abs().sum() > 0


# --------------------------------------------------------------------------------- id dropout
def test_id_dropout_zeroes_whole_id_rows_in_training_only():
    torch.manual_seed(21)
    n, f = 40, 3
    feats = torch.from_numpy(_features(n, f))
    model = PinSage(n, feature_dim=f, id_dim=4, hidden_channels=8, out_channels=6, num_layers=1, id_dropout=0.5)
    nodes = torch.arange(n)
    with torch.no_grad():
        zero_ids = F.relu(model.input_proj(torch.cat([feats, torch.zeros(n, 4)], dim=1)))  # every item "new"
        full = F.relu(model.input_proj(torch.cat([feats, model.id_embedding(nodes)], dim=1)))
        model.eval()
        torch.testing.assert_close(model.encode(nodes, feats), full)  # no effect at inference
        model.train()
        h = model.encode(nodes, feats)
    dropped = torch.isclose(h, zero_ids).all(dim=1)
    kept = torch.isclose(h, full).all(dim=1)
    assert bool((dropped | kept).all())  # a row is either the new-item row or the full one, never rescaled
    assert 0.25 < dropped.float().mean() < 0.75  # about half of 40
    # the setting travels with the model's config
    assert PinSage.from_config(model.get_config()).id_dropout == 0.5
    with pytest.raises(ValueError, match="id_dropout"):
        PinSage(n, id_dim=4, id_dropout=1.0)

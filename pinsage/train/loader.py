"""Producer side of training: minibatches of positive pairs with negatives, K-hop blocks and
gathered features, built in DataLoader worker processes so the consumer only runs the model."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from pinsage.sampling.blocks import Block, Neighborhoods, NeighborSampler, build_blocks
from pinsage.sampling.hetero_blocks import RelationalBlock, build_relational_blocks
from pinsage.sampling.importance import ImportanceSampler
from pinsage.train.negatives import HardNegatives
from pinsage.train.pairs import GroupBalancedDraw

if TYPE_CHECKING:
    from pinsage.train.time_snapshots import TimeSnapshots

__all__ = ["PairBatch", "PairBatchDataset", "make_loader", "EpochLoader"]


@dataclass
class PairBatch:
    """One training step's inputs. Embeddings are computed once per distinct node ``nodes``; the
    other fields index into that list.

    * ``blocks``: K blocks whose last destination nodes are ``nodes`` ``(U,)``;
    * ``features``: ``(n_src0, f)`` content features of ``blocks[0].src_nodes`` (or None);
    * ``query``, ``positive``: ``(B,)`` positions in ``nodes``;
    * ``easy``: ``(N,)`` positions of the shared easy negatives; ``easy_mask`` ``(B, N)``;
    * ``hard``: ``(B, H)`` positions of per-pair hard negatives; ``hard_mask`` ``(B, H)``.
    """

    blocks: list[Block] | list[RelationalBlock]
    features: torch.Tensor | None
    nodes: torch.Tensor
    query: torch.Tensor
    positive: torch.Tensor
    easy: torch.Tensor
    easy_mask: torch.Tensor
    hard: torch.Tensor
    hard_mask: torch.Tensor

    def to(self, device: torch.device | str) -> "PairBatch":
        if torch.device(device).type == "cpu":
            return self
        nb = dict(non_blocking=True)
        return PairBatch(
            blocks=[b.to(device, **nb) for b in self.blocks],
            features=None if self.features is None else self.features.to(device, **nb),
            **{k: getattr(self, k).to(device, **nb) for k in
               ("nodes", "query", "positive", "easy", "easy_mask", "hard", "hard_mask")},
        )


class PairBatchDataset(IterableDataset):
    """Yields the :class:`PairBatch` es of one epoch (this rank's share of each global batch).

    Every random choice is keyed by ``(seed, epoch, global batch number, position in the global
    batch)``, never by the rank, the number of ranks or workers, or the order of the calls, so any
    number of workers, any number of ranks and a resumed run see the same global batches. Batch
    ``b`` is built by worker ``b % num_workers``; under data parallelism rank ``r`` of
    ``world_size`` takes positions ``r, r + world_size, ...`` of each global batch of
    ``batch_size`` pairs, and the union over the ranks is exactly the batch one process would get:

    * the pairs: global batch ``b`` is rows ``[b * batch_size, (b + 1) * batch_size)`` of the
      epoch's order (:meth:`order`, keyed by ``(seed, epoch)``);
    * the ``easy_negatives`` shared negatives: drawn once per global batch from the generator of
      ``(seed, epoch, b)``, identical on every rank;
    * the hard negatives of the pair at position ``i``: from the same generator's column draws for
      all ``batch_size`` positions (``"table"``) or the walk stream of ``(seed, key(epoch, b), i)``
      (``"closure"``); see :class:`~pinsage.train.negatives.HardNegatives`;
    * the batches: with time snapshots (``snapshots``, time-respecting training) each batch holds pairs of
      one snapshot and uses its neighbourhoods and log degree (:meth:`batches`);
    * the neighbourhoods, when ``neighborhoods`` is an :class:`~pinsage.sampling.ImportanceSampler`
      rather than a fixed table: item ``v``'s neighbourhood at hop ``h`` of batch ``b`` comes from
      the walk stream of ``(seed, key(epoch, b, h), v)``, whichever other items the rank's batch
      holds. (Any other sampler callable is called as it is, unkeyed.)
    * per-relation neighbourhoods (a dict relation -> :class:`~pinsage.sampling.Neighborhoods`, for a model with
      per-relation layers): the blocks are :class:`~pinsage.sampling.RelationalBlock` s.

    Only which rank computes a pair's loss changes; the masks, node ids and positions of a pair are
    the same (``tests/test_data_parallel.py``).
    """

    def __init__(
        self,
        pairs: np.ndarray,
        num_items: int,
        neighborhoods: Neighborhoods | ImportanceSampler | NeighborSampler | Mapping[str, Neighborhoods],
        num_layers: int,
        features: np.ndarray | None,
        hard_negatives_sampler: "HardNegatives | None",
        batch_size: int,
        easy_negatives: int,
        hard_negatives: int,
        epoch: int,
        seed: int = 0,
        pairs_per_epoch: int = 0,
        rank: int = 0,
        world_size: int = 1,
        balanced_draw: GroupBalancedDraw | None = None,
        snapshots: "TimeSnapshots | None" = None,
    ) -> None:
        self.pairs = pairs
        self.snapshots = snapshots
        self.balanced_draw = balanced_draw
        self.num_items = num_items
        self.neighborhoods = neighborhoods
        self.num_layers = num_layers
        self.features = features
        self.hard_sampler = hard_negatives_sampler
        self.batch_size = batch_size
        self.easy_negatives = easy_negatives
        self.hard_negatives = hard_negatives if hard_negatives_sampler is not None else 0
        self.epoch = epoch
        self.seed = seed
        self.pairs_per_epoch = pairs_per_epoch
        self.rank = rank
        self.world_size = world_size

    def order(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch, 0xA11])
        n = len(self.pairs)
        if self.balanced_draw is not None:  # group-balanced draws (with replacement)
            return self.balanced_draw.draw(rng, self.pairs_per_epoch or n)
        if self.pairs_per_epoch and self.pairs_per_epoch < n:
            return rng.choice(n, self.pairs_per_epoch, replace=False)
        return rng.permutation(n)

    def __len__(self) -> int:
        if self.snapshots is not None:
            return len(self.batches())
        n = len(self.pairs)
        if self.pairs_per_epoch:
            n = self.pairs_per_epoch if self.balanced_draw is not None else min(self.pairs_per_epoch, n)
        return max(1, n // self.batch_size)

    def batches(self) -> list[tuple[int | None, np.ndarray]]:
        """The epoch's global batches: ``(snapshot or None, rows of pairs)`` each.

        Without snapshots, consecutive runs of ``batch_size`` rows of :meth:`order` (the last partial one
        dropped). With time snapshots (time-respecting training) each snapshot's rows of the order are cut
        into ``round(n_k / batch_size)`` (at least one) nearly equal batches, so no batch mixes snapshots,
        and the batches are shuffled (keyed by ``(seed, epoch)``)."""
        order = self.order()
        if self.snapshots is None:
            n_batches = max(1, len(order) // self.batch_size)
            return [(None, order[b * self.batch_size:(b + 1) * self.batch_size]) for b in range(n_batches)]
        snap = self.snapshots.pair_snapshot[order]
        out: list[tuple[int | None, np.ndarray]] = []
        for k in range(len(self.snapshots)):
            rows = order[snap == k]
            if len(rows):
                n_batches = max(1, int(round(len(rows) / self.batch_size)))
                out += [(k, part) for part in np.array_split(rows, n_batches)]
        shuffle = np.random.default_rng([self.seed, self.epoch, 0x5AA]).permutation(len(out))
        return [out[i] for i in shuffle]

    def __iter__(self) -> Iterator[PairBatch]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        batches = self.batches()
        for b in range(worker, len(batches), workers):
            snapshot, rows = batches[b]
            yield self.make_batch(self.pairs[rows], b, snapshot)

    def batch_key(self, batch_number: int) -> int:
        """The integer key of global batch ``batch_number`` of this epoch (closure walks, sampling)."""
        return self.epoch * 1_000_003 + batch_number

    def make_batch(self, batch_pairs: np.ndarray, batch_number: int, snapshot: int | None = None) -> PairBatch:
        """This rank's share of global batch ``batch_number``, whose pairs are ``batch_pairs`` ``(G, 2)``
        (every rank's): the pairs at positions ``rank::world_size``, ``B = ceil((G - rank) / world_size)``
        of them, with the batch's ``N`` shared easy negatives and ``H`` hard negatives per pair
        (drawn for their global positions, see the class doc). ``snapshot``: the time snapshot whose
        neighbourhoods and log degree the batch uses (:mod:`pinsage.train.time_snapshots`)."""
        G = len(batch_pairs)
        positions = np.arange(self.rank, G, self.world_size, dtype=np.int64)   # (B,) in the global batch
        pairs = batch_pairs[positions]
        rng = np.random.default_rng([self.seed, self.epoch, batch_number, 0xBEE])
        B = len(pairs)
        q, p = pairs[:, 0], pairs[:, 1]
        easy = rng.integers(0, self.num_items, self.easy_negatives)            # (N,) the same on every rank
        if self.hard_negatives > 0:
            hard = self.hard_sampler(q, self.hard_negatives, rng, key=self.batch_key(batch_number),
                                     positions=positions, num_positions=G)    # (B, H)
        else:
            hard = np.zeros((B, 0), dtype=np.int64)
        hard_mask = (hard >= 0) & (hard != p[:, None]) & (hard != q[:, None])
        hard = np.where(hard >= 0, hard, q[:, None])
        easy_mask = (easy[None, :] != p[:, None]) & (easy[None, :] != q[:, None])
        nodes, inverse = np.unique(np.concatenate([q, p, easy, hard.ravel()]), return_inverse=True)
        neighborhoods = self.neighborhoods if snapshot is None else self.snapshots.neighborhoods[snapshot]
        if isinstance(neighborhoods, ImportanceSampler):
            neighborhoods = _KeyedSampler(neighborhoods, self.batch_key(batch_number), self.num_layers)
        if isinstance(neighborhoods, Mapping):
            blocks = build_relational_blocks(torch.from_numpy(nodes), neighborhoods, self.num_layers)
        else:
            blocks = build_blocks(torch.from_numpy(nodes), neighborhoods, self.num_layers)
        feats = None
        if self.features is not None:
            src = blocks[0].src_nodes.numpy()
            feats = np.ascontiguousarray(self.features[src])
            if snapshot is not None and self.snapshots.log_degree is not None:
                feats[:, -1] = self.snapshots.log_degree[snapshot][src]  # the degree as of the snapshot
            feats = torch.from_numpy(feats)
        inv = torch.from_numpy(inverse.astype(np.int64))
        n_easy = len(easy)
        return PairBatch(
            blocks=blocks, features=feats, nodes=torch.from_numpy(nodes),
            query=inv[:B], positive=inv[B:2 * B], easy=inv[2 * B:2 * B + n_easy],
            easy_mask=torch.from_numpy(easy_mask),
            hard=inv[2 * B + n_easy:].reshape(B, hard.shape[1]), hard_mask=torch.from_numpy(hard_mask),
        )


class _KeyedSampler:
    """The sampler of one global batch: hop ``h`` (0 = the seeds' own neighbourhoods, in the order
    :func:`build_blocks` asks) samples with key ``2**40 + batch_key * num_layers + h`` and one walk
    stream per item id, so an item's neighbourhood depends on ``(seed, batch, hop, item)`` only
    (the offset keeps these keys apart from :func:`~pinsage.sampling.all_neighborhoods`' chunk keys)."""

    def __init__(self, sampler: ImportanceSampler, batch_key: int, num_layers: int) -> None:
        self.sampler, self.key, self.num_layers, self.hop = sampler, batch_key, num_layers, 0

    def __call__(self, nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ids = nodes.numpy() if isinstance(nodes, torch.Tensor) else np.asarray(nodes)
        nb = self.sampler(ids, key=(1 << 40) + self.key * self.num_layers + self.hop, stream_ids=ids)
        self.hop += 1
        return nb.offsets, nb.indices, nb.weights


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def make_loader(dataset: PairBatchDataset, num_workers: int) -> DataLoader:
    """A DataLoader over ready-made batches (``batch_size=None``); workers use one thread each."""
    return DataLoader(dataset, batch_size=None, num_workers=num_workers,
                      worker_init_fn=_worker_init if num_workers else None,
                      prefetch_factor=4 if num_workers else None,
                      persistent_workers=False)


class _CurrentEpochDataset(IterableDataset):
    """The batches of the epoch written in a shared one-element tensor: what the workers of one
    persistent :class:`~torch.utils.data.DataLoader` produce, epoch after epoch."""

    def __init__(self, dataset_for_epoch: Callable[[int], PairBatchDataset]) -> None:
        self.dataset_for_epoch = dataset_for_epoch
        self.epoch = torch.ones(1, dtype=torch.int64).share_memory_()  # 8 bytes of shared memory

    def __iter__(self) -> Iterator[PairBatch]:
        return iter(self.dataset_for_epoch(int(self.epoch[0])))

    def __len__(self) -> int:
        return len(self.dataset_for_epoch(int(self.epoch[0])))


class EpochLoader:
    """One loader for every epoch, whose worker processes are forked once, at the first epoch.

    ``loader(epoch)`` returns the DataLoader producing ``dataset_for_epoch(epoch)`` (the same batches
    as :func:`make_loader` of that dataset). A fresh loader per epoch forks its workers again, and from
    epoch 2 the training process they fork from holds the optimiser's moments and the trained id table:
    every page of those it then writes is copied while the worker still maps the old one (graph L:
    1.5 GB more in the process tree). Forked at epoch 1, before the optimiser has any state, the
    workers share only what they need. ``dataset_for_epoch`` runs in the workers, so it must be cheap
    (views of arrays the parent holds); neighbourhoods redrawn per epoch need :func:`make_loader`.
    Call :meth:`close` to stop the workers.
    """

    def __init__(self, dataset_for_epoch: Callable[[int], PairBatchDataset], num_workers: int) -> None:
        self._data = _CurrentEpochDataset(dataset_for_epoch)
        self._loader = DataLoader(self._data, batch_size=None, num_workers=num_workers,
                                  worker_init_fn=_worker_init if num_workers else None,
                                  prefetch_factor=4 if num_workers else None,
                                  persistent_workers=num_workers > 0)

    def __call__(self, epoch: int) -> DataLoader:
        # read by the workers when the loader's next iteration starts (torch resets persistent workers
        # at each ``iter(loader)``, discarding batches they prefetched for the epoch before)
        self._data.epoch[0] = epoch
        return self._loader

    def start(self) -> None:
        """Fork the workers now (they begin epoch 1), e.g. before the model is built, so that they
        share none of its memory. The first ``iter(loader(epoch))`` restarts them on that epoch."""
        if self._loader.num_workers > 0 and getattr(self._loader, "_iterator", None) is None:
            # a persistent loader keeps this iterator, and its workers, for later epochs; making it draws
            # a base seed from torch's global generator, which is put back so that what the caller draws
            # next (the model's initial weights) is what it would be without the early start
            rng = torch.get_rng_state()
            iter(self._loader)
            torch.set_rng_state(rng)

    def close(self) -> None:
        """Stop the worker processes (they live as long as the loader's iterator otherwise)."""
        iterator = getattr(self._loader, "_iterator", None)  # where DataLoader keeps persistent workers
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
        self._loader._iterator = None

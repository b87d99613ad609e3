"""The consumer: optimisation loop with warm-up/decay, accumulation, clipping, AMP, JSONL logging,
atomic per-epoch checkpoints and resume, and data parallelism over torch.distributed."""
from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from pinsage._io import InputError, atomic_path
from pinsage.config import TrainConfig
from pinsage.nn.model import PinSage
from pinsage.train.loader import PairBatch
from pinsage.train.loss import max_margin_loss, sampled_softmax_loss

log = logging.getLogger(__name__)

__all__ = ["Trainer", "warmup_decay", "TrainState", "DenseSparseAdam", "make_optimizer", "clip_grad_norm",
           "loss_counts", "pair_batch_loss"]


class DenseSparseAdam(torch.optim.Optimizer):
    """Adam on the dense parameters and :class:`torch.optim.SparseAdam` (lazy Adam: only the rows a
    step touched move) on those with sparse gradients, as one optimizer (one LR schedule, one state
    dict). For a large id-embedding table: dense Adam reads and writes every row at every step
    (graph L, 2M x 64: ~1 s per step on one core, and a 0.5 GB dense gradient). ``weight_decay``
    applies to the dense parameters only."""

    def __init__(self, dense: list, sparse: list, lr: float, weight_decay: float = 0.0) -> None:
        self.dense = torch.optim.Adam(dense, lr=lr, weight_decay=weight_decay) if dense else None
        self.sparse = torch.optim.SparseAdam(sparse, lr=lr)
        super().__init__(list(dense) + list(sparse), {"lr": lr})
        # the inner optimizers' groups, so that LR schedulers act on them
        self.param_groups = (self.dense.param_groups if self.dense else []) + self.sparse.param_groups

    def _parts(self) -> list:
        return [o for o in (self.dense, self.sparse) if o is not None]

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = closure() if closure is not None else None
        for opt in self._parts():
            opt.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self._parts():
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:  # type: ignore[override]
        return {"dense": self.dense.state_dict() if self.dense else None, "sparse": self.sparse.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:  # type: ignore[override]
        if self.dense is not None:
            self.dense.load_state_dict(state_dict["dense"])
        self.sparse.load_state_dict(state_dict["sparse"])
        self.param_groups = (self.dense.param_groups if self.dense else []) + self.sparse.param_groups


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adam, or :class:`DenseSparseAdam` when the model has embeddings with sparse gradients."""
    sparse = [p for m in model.modules() if isinstance(m, torch.nn.Embedding) and m.sparse
              for p in m.parameters() if p.requires_grad]
    if not sparse:
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    ids = {id(p) for p in sparse}
    dense = [p for p in model.parameters() if id(p) not in ids and p.requires_grad]
    return DenseSparseAdam(dense, sparse, lr=lr, weight_decay=weight_decay)


def clip_grad_norm(parameters, max_norm: float) -> torch.Tensor:
    """:func:`torch.nn.utils.clip_grad_norm_` (L2), also over sparse gradients (coalesced in place)."""
    params = [p for p in parameters if p.grad is not None]
    if not any(p.grad.is_sparse for p in params):
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    norms = []
    for p in params:
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()
            norms.append(torch.linalg.vector_norm(p.grad._values()))
        else:
            norms.append(torch.linalg.vector_norm(p.grad))
    total = torch.linalg.vector_norm(torch.stack([n.float() for n in norms]))
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for p in params:
        p.grad.mul_(coef.to(p.grad.dtype))
    return total


def warmup_decay(step: int, warmup: int, total: int, final_ratio: float) -> float:
    """LR multiplier: linear from ~0 to 1 over ``warmup`` steps, then linear to ``final_ratio`` at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    frac = min(1.0, (step - warmup) / span)
    return 1.0 - (1.0 - final_ratio) * frac


def loss_counts(batch: PairBatch, hard_count: int) -> torch.Tensor:
    """``(3,)`` float64 on the batch's device: what :func:`pair_batch_loss` averages over, for this
    batch: its pairs, its easy (pair, negative) terms that count (``easy_mask``), and its hard ones
    (``hard_mask``; 0 when ``hard_count`` is 0)."""
    dev = batch.easy_mask.device
    hard = batch.hard_mask.sum() if hard_count > 0 else torch.zeros((), dtype=torch.long, device=dev)
    return torch.stack([torch.tensor(batch.query.numel(), device=dev), batch.easy_mask.sum(), hard]).double()


def pair_batch_loss(z: torch.Tensor, batch: PairBatch, config: TrainConfig, hard_count: int,
                    totals: "list[float] | None" = None, scale: float = 1.0) -> torch.Tensor:
    r"""The loss of ``batch`` from ``z`` ``(U, d)``, the embeddings of ``batch.nodes``.

    ``totals`` None: the batch's own means (softmax: over its ``B`` pairs; margin: over its easy
    terms, plus over its hard terms). Else ``totals`` are the :func:`loss_counts` of a whole batch
    this one is a share of (summed over the ranks), and the loss is ``scale`` x this share's sums
    divided by the whole batch's counts. With ``scale`` = the number of ranks :math:`R`, the gradient
    that DistributedDataParallel averages, :math:`rac1R \sum_r R\,
abla S_r / M = 
abla \sum_r S_r / M`,
    is the whole batch's gradient: equal shares or not, and whatever the masks drop on each rank.
    """
    q, p = z[batch.query], z[batch.positive]
    n_pairs, n_easy, n_hard = totals if totals is not None else (None, None, None)
    use_hard = hard_count > 0 and batch.hard.numel() > 0
    if config.loss == "softmax":
        hard = z[batch.hard] if use_hard else None
        loss = sampled_softmax_loss(q, p, z[batch.easy], config.temperature, batch.easy_mask,
                                    hard, batch.hard_mask, denominator=n_pairs)
    else:
        loss = max_margin_loss(q, p, z[batch.easy], config.margin, batch.easy_mask, denominator=n_easy)
        if use_hard:
            loss = loss + max_margin_loss(q, p, z[batch.hard], config.margin, batch.hard_mask, denominator=n_hard)
    return loss * scale if totals is not None else loss


@dataclass
class TrainState:
    epoch: int = 0          #: epochs completed
    step: int = 0           #: optimiser steps taken
    history: list[dict] = field(default_factory=list)


def _amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    if mode == "off":
        return None
    if mode == "bf16":
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


class Trainer:
    """Trains a :class:`~pinsage.nn.PinSage` model on :class:`PairBatch` es.

    ``loader_for_epoch(epoch)`` returns an iterable of batches for 1-based ``epoch`` (the
    curriculum changes the batches per epoch). Checkpoints ``checkpoint.pt`` in ``work_dir`` after
    every epoch (temp file + rename); :meth:`fit` with ``resume=True`` continues from it and, with
    the same seed, reaches the same parameters as an uninterrupted run. Under torch.distributed the
    model is wrapped in DistributedDataParallel and only rank 0 writes files.
    """

    def __init__(
        self,
        model: PinSage,
        config: TrainConfig,
        loader_for_epoch: Callable[[int], object],
        steps_per_epoch: int,
        work_dir: str | os.PathLike,
        device: torch.device | str = "cpu",
        progress: bool = True,
        signature: dict | None = None,
    ) -> None:
        self.config = config
        self.signature = signature  #: what a checkpoint must match to be resumed (sizes, config)
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.loader_for_epoch = loader_for_epoch
        self.steps_per_epoch = max(1, steps_per_epoch // max(1, config.accumulate))
        self.work_dir = Path(work_dir)
        self.progress = progress
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world_size = dist.get_world_size() if self.distributed else 1
        self.net = DistributedDataParallel(self.model) if self.distributed else self.model
        self.optimizer = make_optimizer(self.model, config.lr, config.weight_decay)
        total = self.steps_per_epoch * config.epochs
        # a short run still reaches its peak rate: warm-up is at most a fifth of all steps
        warmup = min(config.warmup_steps, total // 5)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: warmup_decay(s, warmup, total, config.final_lr_ratio))
        self.amp_dtype = _amp_dtype(config.amp, self.device)
        self.state = TrainState()
        self.log_path = self.work_dir / "train_log.jsonl"
        self.checkpoint_path = self.work_dir / "checkpoint.pt"

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> None:
        if self.rank != 0:
            return
        payload = {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "epoch": self.state.epoch, "step": self.state.step,
            "history": self.state.history, "torch_rng": torch.get_rng_state(), "signature": self.signature,
        }
        with atomic_path(self.checkpoint_path) as tmp:
            torch.save(payload, tmp)

    def load_checkpoint(self) -> bool:
        if not self.checkpoint_path.exists():
            return False
        try:  # tensors and plain values only: a checkpoint never runs code on load
            payload = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types on a corrupt or unsafe file
            raise InputError(f"{self.checkpoint_path}: could not be read as a pinsage checkpoint: "
                             f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
        if payload.get("signature") not in (None, self.signature):
            raise InputError(f"{self.checkpoint_path}: the checkpoint belongs to another run (data, model or "
                             f"config differ: {payload.get('signature')} vs {self.signature}); "
                             "start without --resume")
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.state = TrainState(payload["epoch"], payload["step"], payload["history"])
        self._trim_log()
        torch.set_rng_state(payload["torch_rng"].cpu())
        return True

    def release_state(self) -> None:
        """Free what only training needs (the optimiser's moments: for Adam two tables the size of the
        parameters), keeping the model and the history."""
        self.optimizer.state.clear()
        if isinstance(self.optimizer, DenseSparseAdam):  # its state lives in its parts
            for part in self.optimizer._parts():
                part.state.clear()

    def _trim_log(self) -> None:
        """Keep only the log lines of the checkpointed steps (a run killed after its last checkpoint
        logged steps that the resumed run repeats, and may have left a torn last line)."""
        if self.rank != 0 or not self.log_path.exists():
            return
        kept = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line torn by the kill
            if isinstance(record, dict) and record.get("epoch", 0) <= self.state.epoch \
                    and record.get("step", 0) <= self.state.step:
                kept.append(line)
        with atomic_path(self.log_path) as tmp:
            Path(tmp).write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")

    def _log(self, record: dict) -> None:
        if self.rank != 0:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    # ------------------------------------------------------------------ loop
    def compute_loss(self, batch: PairBatch, hard_count: int) -> torch.Tensor:
        """The loss of this rank's share of a global batch. Under data parallelism the shares'
        :func:`loss_counts` are summed over the ranks first (one all-reduce of 3 numbers), so that
        the averaged gradient is the whole global batch's (:func:`pair_batch_loss`)."""
        z = self.net(batch.blocks, batch.features)                       # (U, d)
        totals = None
        if self.world_size > 1:  # every rank takes part, also one without pairs
            counts = loss_counts(batch, hard_count)
            dist.all_reduce(counts)
            totals = counts.tolist()
        if batch.query.numel() == 0:
            return z.sum() * 0.0  # this rank got no pairs: contribute zero gradients, not NaN
        return pair_batch_loss(z, batch, self.config, hard_count, totals, float(self.world_size))

    def _batch_loss_value(self, loss: torch.Tensor) -> float:
        """The global batch's loss: under data parallelism the mean of the ranks' scaled shares."""
        value = loss.detach().float()
        if self.world_size > 1:
            value = value.clone()
            dist.all_reduce(value)
            value = value / self.world_size
        return float(value)

    def fit(self, resume: bool = False, hard_count_for_epoch: Callable[[int], int] = lambda e: 0) -> TrainState:
        cfg = self.config
        if resume and self.load_checkpoint():
            pass
        elif self.rank == 0 and self.log_path.exists():
            self.log_path.unlink()
        from tqdm.auto import tqdm

        while self.state.epoch < cfg.epochs:
            epoch = self.state.epoch + 1
            torch.manual_seed(cfg.seed * 1000 + epoch)
            hard_count = hard_count_for_epoch(epoch)
            self.net.train()
            bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {epoch}/{cfg.epochs}", unit="step",
                       disable=not self.progress or self.rank != 0, leave=False)
            wait = compute = 0.0
            losses: list[float] = []
            window: list[float] = []
            t_prev = time.perf_counter()
            micro = 0
            steps_this_epoch = 0
            self.optimizer.zero_grad(set_to_none=True)
            loader = self.loader_for_epoch(epoch)
            n_batches = len(loader) if hasattr(loader, "__len__") else None
            for batch in loader:
                t_got = time.perf_counter()
                wait += t_got - t_prev
                batch = batch.to(self.device)
                with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                    enabled=self.amp_dtype is not None):
                    loss = self.compute_loss(batch, hard_count)
                (loss / cfg.accumulate).backward()
                micro += 1
                window.append(self._batch_loss_value(loss))
                if micro % cfg.accumulate == 0 or micro == n_batches:
                    if cfg.clip_norm > 0:
                        clip_grad_norm(self.model.parameters(), cfg.clip_norm)
                    self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
                    self.scheduler.step()
                    self.state.step += 1
                    steps_this_epoch += 1
                    bar.update(1)
                    if self.state.step % cfg.log_every == 0:
                        mean = float(np.mean(window))
                        losses.extend(window)
                        window = []
                        bar.set_postfix(loss=f"{mean:.4f}")
                        self._log({"epoch": epoch, "step": self.state.step, "loss": mean,
                                   "lr": self.scheduler.get_last_lr()[0], "data_wait_s": wait,
                                   "compute_s": compute + time.perf_counter() - t_got})
                    if steps_this_epoch >= self.steps_per_epoch:
                        t_prev = time.perf_counter()
                        compute += t_prev - t_got
                        break
                t_prev = time.perf_counter()
                compute += t_prev - t_got
            bar.close()
            losses.extend(window)
            record = {"epoch": epoch, "step": self.state.step, "epoch_loss": float(np.mean(losses)) if losses else math.nan,
                      "hard_negatives": hard_count, "data_wait_s": wait, "compute_s": compute,
                      "data_wait_share": wait / max(wait + compute, 1e-9)}
            self.state.history.append(record)
            self._log(record)
            if self.rank == 0:
                log.info("epoch %d/%d: loss %.4f, %d hard negatives per pair, %.1f s (%.0f%% waiting for data)",
                         epoch, cfg.epochs, record["epoch_loss"], hard_count, wait + compute,
                         100 * record["data_wait_share"])
            self.state.epoch = epoch
            self.save_checkpoint()
        return self.state

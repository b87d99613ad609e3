"""Dataclass configuration for a PinSage run, with YAML in and out.

Every setting a run uses lives here, so ``config.yaml`` written next to a run repeats it exactly.
Unknown keys in a YAML file are an error naming the key and the section.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from pinsage._io import InputError, atomic_path

__all__ = ["ModelConfig", "SamplerConfig", "TrainConfig", "PinSageConfig"]


@dataclass
class ModelConfig:
    """The network: input encoder, ``num_layers`` ImportanceConv layers, head G1/G2."""

    id_dim: int = 64                 #: learnable id embedding size (0: content features only)
    hidden_channels: int = 128       #: width of the input projection, the convolutions and G1
    out_channels: int = 64           #: final embedding size
    num_layers: int = 1              #: K, convolution layers over K-hop neighbourhoods (the paper: 2; 1 won on MovieLens validation, docs/quality.md)
    aggr: str = "importance"         #: neighbour pooling: importance | mean | max | sum
    dropout: float = 0.0
    id_dropout: float = 0.0          #: per training step, the share of nodes whose id embedding is zeroed, as a new item's is at embed time
    use_features: bool = True        #: use item content features when a features file is given
    log_degree: bool = True          #: append standardised log(1 + degree) to the node inputs
    spectral_dim: int = 64           #: structural inputs: rank of the graph's truncated SVD (0: off)
    magnitude: bool = True           #: learned embedding length: dot products rank by length x cosine (how readily an item is engaged)
    sparse_id_min_items: int = 250_000  #: catalogues this large get sparse id-embedding gradients (SparseAdam; dense Adam costs O(items) per step)
    relation_combine: str = "mean"   #: several relations with sampler.merge_relations false: combine the per-relation convolutions by sum | mean | attention


@dataclass
class SamplerConfig:
    """Random-walk importance neighbourhoods (see :class:`pinsage.ImportanceSampler`)."""

    num_walks: int = 200
    walk_length: int = 3
    restart_prob: float = 0.5
    num_neighbors: int = 50          #: T, the top-T neighbourhood size (the paper's 50)
    resample_every_epoch: bool = False  #: draw fresh neighbourhoods each epoch (else fixed ones)
    method: str = "auto"             #: walks (Monte Carlo visit counts) | exact (expected visit counts) | auto (exact while items x edges <= 1e10; chosen on validation, docs/quality.md)
    weighted: bool = False           #: walk steps proportional to edge weights (the weight column, else duplicate counts); ``--weight-col`` turns it on
    weight_half_life: float = 0.0    #: with weighted walks: halve an edge's weight per this age before the newest edge, in the time column's units (datetimes: microseconds); 0: no decay
    relation_probs: dict = field(default_factory=dict)  #: several relations: relation -> step probability of the mixed walk (renormalised; {}: every relation alike)
    merge_relations: bool = True     #: several relations: one merged neighbourhood per item (the homogeneous model) | false: one per relation (RelationalPinSageConv layers)


@dataclass
class TrainConfig:
    """Positive pairs, negatives with the hard-negative curriculum, and the optimiser."""

    epochs: int = 10
    batch_size: int = 512            #: positive pairs per step (global, over all processes)
    lr: float = 5e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100          #: linear warm-up (at most 1/5 of all steps), then linear decay to ``final_lr_ratio * lr``
    final_lr_ratio: float = 0.1
    accumulate: int = 1              #: gradient accumulation steps
    clip_norm: float = 1.0           #: gradient clipping (0: off)
    loss: str = "softmax"            #: softmax (sampled softmax; better on MovieLens, docs/quality.md) | margin (the paper's hinge)
    margin: float = 0.1              #: max-margin ranking loss margin
    temperature: float = 0.07        #: softmax loss temperature
    easy_negatives: int = 500        #: random items shared by every pair of a batch
    hard_negatives_max: int = 6      #: curriculum: epoch n adds n-1 hard negatives per pair, up to this
    hard_rank_window: tuple[float, float] = (0.15, 0.40)  #: PPR rank window as catalogue fractions
    hard_rank_min: tuple[int, int] = (10, 50)  #: ...but at least these absolute ranks
    hard_rank_max: tuple[int, int] = (2000, 5000)  #: ...and at most these (the paper's window)
    hard_negative_method: str = "auto"  #: auto | table (walk-estimated windows, precomputed) | closure (per batch; auto above 200k items)
    pair_window: int = 3             #: with time: pair items at most this many steps apart in a history
    group_partners: int = 0          #: without time: random co-members paired with each edge's item (0: auto, 10 while that makes at most 20M pairs; chosen on validation, docs/quality.md)
    pair_source: str = "groups"      #: groups (items engaged together) | walks (each edge's item with a draw from its importance neighbourhood)
    group_balance: float = 1.0       #: draw a group's pairs with probability ~ (its pair count)^-this: 0 every pair alike, 1 every group alike
    time_respecting: bool = False    #: with time: each pair's neighbourhoods and log degree from edges older than the pair (time snapshots; docs/time.md)
    time_snapshots: int = 8          #: with time_respecting: snapshots at the pair-time quantiles (one neighbourhood table each)
    pairs_per_epoch: int = 200_000   #: positive pairs sampled per epoch (0: all pairs once)
    positive_relations: dict = field(default_factory=dict)  #: several relations: relation -> weight of its groups' positive pairs (a list: weight 1 each; {}: the first relation)
    pairs_per_edge: float = 5.0      #: ...but at most this many per training edge, so small graphs train in seconds (0: no cap)
    num_workers: int = -1            #: DataLoader worker processes (-1: 1 when >= 2 CPUs, else 0)
    amp: str = "auto"                #: auto | bf16 | off (auto: bf16 autocast on CUDA where supported)
    seed: int = 0
    log_every: int = 20


@dataclass
class PinSageConfig:
    """Every setting of a run: sections ``model``, ``sampler`` and ``train``, YAML in and out.

    Example:
        >>> cfg = PinSageConfig().override(train__epochs=3, sampler__num_neighbors=10)
        >>> cfg.train.epochs, cfg.sampler.num_neighbors, cfg.model.aggr
        (3, 10, 'importance')
        >>> PinSageConfig.from_dict(yaml.safe_load(cfg.to_yaml())) == cfg
        True
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict of the settings (tuples as lists), as written to ``config.yaml``."""
        d = asdict(self)
        d["train"]["hard_rank_window"] = list(self.train.hard_rank_window)
        d["train"]["hard_rank_min"] = list(self.train.hard_rank_min)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, source: str = "config") -> "PinSageConfig":
        """Build from nested dicts; unknown sections or keys and out-of-range values raise
        :class:`~pinsage.InputError` naming ``source`` and the key. Missing keys keep their defaults."""
        d = d or {}
        if not isinstance(d, dict):
            raise InputError(f"{source}: expected a mapping with sections model, sampler, train")
        unknown = set(d) - {"model", "sampler", "train"}
        if unknown:
            raise InputError(f"{source}: unknown section(s) {sorted(unknown)}; expected model, sampler, train")
        parts = {}
        for f in fields(cls):
            sub_cls = {"model": ModelConfig, "sampler": SamplerConfig, "train": TrainConfig}[f.name]
            sub = d.get(f.name) or {}
            names = {x.name: x for x in fields(sub_cls)}
            bad = set(sub) - set(names)
            if bad:
                raise InputError(f"{source}: unknown key(s) {sorted(bad)} in section {f.name!r}; "
                                 f"known keys: {sorted(names)}")
            kwargs = {}
            for key, value in sub.items():
                kwargs[key] = _check_value(f"{source}: {f.name}.{key}", getattr(sub_cls(), key), value, key)
            parts[f.name] = sub_cls(**kwargs)
        cfg = cls(**parts)
        _validate_ranges(cfg, source)
        return cfg

    def override(self, **dotted: Any) -> "PinSageConfig":
        """A copy with ``section__key=value`` overrides, e.g. ``train__epochs=3``."""
        d = self.to_dict()
        for key, value in dotted.items():
            section, _, name = key.partition("__")
            d.setdefault(section, {})[name] = value
        return PinSageConfig.from_dict(d, source="overrides")

    def to_yaml(self, path: str | os.PathLike | None = None) -> str:
        """The settings as YAML text; also written (atomically) to ``path`` when given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            with atomic_path(path) as tmp:
                Path(tmp).write_text(text)
        return text

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "PinSageConfig":
        """Read a YAML file written by :meth:`to_yaml` or by hand (any subset of the settings)."""
        path = Path(path)
        if not path.exists():
            raise InputError(f"{path}: config file not found")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: not valid YAML: {exc}") from exc
        return cls.from_dict(data, source=str(path))


#: allowed values of the string settings
CHOICES = {"aggr": ("importance", "mean", "max", "sum"), "loss": ("margin", "softmax"),
           "amp": ("auto", "bf16", "off"), "hard_negative_method": ("auto", "table", "closure"),
           "pair_source": ("groups", "walks"), "method": ("walks", "exact", "auto"),
           "relation_combine": ("sum", "mean", "attention")}

#: mapping settings: key -> (what the values are, whether 0 is allowed); a list of names means weight 1 each
MAPPINGS = {"relation_probs": ("a step probability", True), "positive_relations": ("a pair weight", False)}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_mapping(where: str, value: Any, key: str) -> dict[str, float]:
    """A ``relation name -> number`` setting (:data:`MAPPINGS`): a mapping of non-empty names to finite numbers
    ``>= 0`` (``> 0`` where 0 is not allowed) with a positive sum, or a list of distinct names (weight 1 each).
    Returns a plain dict (names in the given order); the empty mapping is the documented default."""
    what, zero_ok = MAPPINGS[key]
    if isinstance(value, (list, tuple)):
        if not all(isinstance(v, str) and v for v in value) or len(set(value)) != len(value):
            raise InputError(f"{where} must be a mapping relation -> {what}, or a list of distinct relation "
                             f"names, got {value!r}")
        value = dict.fromkeys(value, 1.0)
    if not isinstance(value, dict):
        raise InputError(f"{where} must be a mapping relation -> {what} (e.g. {{click: 0.7, tag: 0.3}}), "
                         f"got {value!r}")
    out: dict[str, float] = {}
    for name, p in value.items():
        if not isinstance(name, str) or not name:
            raise InputError(f"{where}: relation names must be non-empty strings, got {name!r}")
        if not _is_number(p) or not math.isfinite(float(p)) or float(p) < 0 or (float(p) == 0 and not zero_ok):
            raise InputError(f"{where}[{name!r}] must be a finite number {'>= 0' if zero_ok else '> 0'}, got {p!r}")
        out[name] = float(p)
    if out and sum(out.values()) <= 0:
        raise InputError(f"{where} gives every relation 0: {out}; at least one must be positive")
    return out


def _check_value(where: str, default: Any, value: Any, key: str) -> Any:
    """Validate ``value`` against the type of ``default``; raise InputError naming ``where``."""
    if key in MAPPINGS:
        return _check_mapping(where, value, key)
    if isinstance(default, tuple):
        if (not isinstance(value, (list, tuple)) or len(value) != len(default) or not all(map(_is_number, value))
                or not all(math.isfinite(float(v)) for v in value)):
            raise InputError(f"{where} must be a list of {len(default)} finite numbers, got {value!r}")
        return tuple(type(d)(v) for d, v in zip(default, value))
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise InputError(f"{where} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if not _is_number(value) or not math.isfinite(float(value)) or float(value) != int(value):
            raise InputError(f"{where} must be a whole number, got {value!r}")
        return int(value)
    if isinstance(default, float):
        if not _is_number(value) or not math.isfinite(float(value)):
            raise InputError(f"{where} must be a finite number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if key in CHOICES and value not in CHOICES[key]:
            raise InputError(f"{where} must be one of {list(CHOICES[key])}, got {value!r}")
        return str(value)
    return value


def _validate_ranges(cfg: "PinSageConfig", source: str) -> None:
    """Raise InputError naming the first setting outside its range."""
    m, s, t = cfg.model, cfg.sampler, cfg.train
    checks = [
        ("model.num_layers", m.num_layers >= 1, ">= 1"), ("model.hidden_channels", m.hidden_channels >= 1, ">= 1"),
        ("model.out_channels", m.out_channels >= 1, ">= 1"), ("model.id_dim", m.id_dim >= 0, ">= 0"),
        ("model.spectral_dim", m.spectral_dim >= 0, ">= 0"), ("model.dropout", 0 <= m.dropout < 1, "in [0, 1)"),
        ("model.id_dropout", 0 <= m.id_dropout < 1, "in [0, 1)"),
        ("sampler.num_walks", s.num_walks >= 1, ">= 1"), ("sampler.walk_length", s.walk_length >= 1, ">= 1"),
        ("sampler.num_neighbors", s.num_neighbors >= 1, ">= 1"),
        ("sampler.restart_prob", 0 <= s.restart_prob <= 1, "in [0, 1]"),
        ("sampler.weight_half_life", s.weight_half_life >= 0, ">= 0"),
        ("train.epochs", t.epochs >= 0, ">= 0"), ("train.batch_size", t.batch_size >= 1, ">= 1"),
        ("train.lr", t.lr > 0, "> 0"), ("train.accumulate", t.accumulate >= 1, ">= 1"),
        ("train.log_every", t.log_every >= 1, ">= 1"), ("train.temperature", t.temperature > 0, "> 0"),
        ("train.easy_negatives", t.easy_negatives >= 1, ">= 1"),
        ("train.hard_negatives_max", t.hard_negatives_max >= 0, ">= 0"),
        ("train.pairs_per_epoch", t.pairs_per_epoch >= 0, ">= 0"),
        ("train.pairs_per_edge", t.pairs_per_edge >= 0 and t.pairs_per_edge < float("inf"), ">= 0 and finite"), ("train.pair_window", t.pair_window >= 1, ">= 1"),
        ("train.group_balance", 0.0 <= t.group_balance <= 1.0, "in [0, 1]"),
        ("train.time_snapshots", 1 <= t.time_snapshots <= 1000, "in [1, 1000]"),
        ("train.group_partners", 0 <= t.group_partners <= 1000, "in [0, 1000]"),
        ("train.hard_rank_window", 0 <= t.hard_rank_window[0] < t.hard_rank_window[1] <= 1,
         "two fractions 0 <= lo < hi <= 1"),
        ("train.num_workers", t.num_workers >= -1, ">= -1"),
        ("train.weight_decay", t.weight_decay >= 0, ">= 0"), ("train.warmup_steps", t.warmup_steps >= 0, ">= 0"),
        ("train.final_lr_ratio", 0 <= t.final_lr_ratio <= 1, "in [0, 1]"),
        ("train.clip_norm", t.clip_norm >= 0, ">= 0 (0: off)"), ("train.margin", t.margin >= 0, ">= 0"),
        ("train.hard_rank_min", 0 <= t.hard_rank_min[0] <= t.hard_rank_min[1], "two ranks 0 <= lo <= hi"),
        ("train.hard_rank_max", 1 <= t.hard_rank_max[0] < t.hard_rank_max[1], "two ranks 1 <= lo < hi"),
        ("model.sparse_id_min_items", m.sparse_id_min_items >= 0, ">= 0"),
        ("model.hidden_channels", m.hidden_channels <= 65536, "<= 65536"),
        ("model.out_channels", m.out_channels <= 65536, "<= 65536"),
        ("model.id_dim", m.id_dim <= 65536, "<= 65536"),
        ("model.num_layers", m.num_layers <= 8, "<= 8"),
        ("sampler.num_neighbors", s.num_neighbors <= 10_000, "<= 10000"),
        ("sampler.walk_length", s.walk_length <= 1000, "<= 1000"),
        ("train.batch_size", t.batch_size <= 1 << 24, "<= 16777216"),
        ("train.easy_negatives", t.easy_negatives <= 1 << 20, "<= 1048576"),
        ("train.epochs", t.epochs <= 100_000, "<= 100000"), ("sampler.num_walks", s.num_walks <= 1_000_000, "<= 1000000"),
        ("train.seed", 0 <= t.seed < 2 ** 63, "in [0, 2**63)"), ("train.lr", t.lr <= 10.0, "<= 10"),
        ("train.temperature", t.temperature <= 1e6, "<= 1e6"), ("train.accumulate", t.accumulate <= 10_000, "<= 10000"),
        ("train.hard_negatives_max", t.hard_negatives_max <= 10_000, "<= 10000"),
        ("train.pair_window", t.pair_window <= 10_000, "<= 10000"),
        ("train.pairs_per_epoch", t.pairs_per_epoch <= 10 ** 10, "<= 1e10"),
        ("model.spectral_dim", m.spectral_dim <= 4096, "<= 4096"),
        ("train.log_every", t.log_every <= 10 ** 9, "<= 1e9"),
        ("train.num_workers", t.num_workers <= 256, "<= 256"),
    ]
    for name, ok, expected in checks:
        if not ok:
            section, key = name.split(".")
            value = getattr(getattr(cfg, section), key)
            raise InputError(f"{source}: {name} must be {expected}, got {value!r}")


def replace(cfg: Any, **kw: Any) -> Any:
    return dataclasses.replace(cfg, **kw)


def relation_settings(cfg: "PinSageConfig", relations: tuple[str, ...] | list[str],
                      source: str = "config") -> tuple[dict[str, float], dict[str, float]]:
    """The relation settings of a run over a graph of ``relations``, checked and with defaults filled in:
    ``(step probabilities, positive-pair weights)``, both normalised to sum to 1, in relation order.

    ``sampler.relation_probs`` ``{}``: every relation alike (``1 / R`` each); relations not named step with
    probability 0. ``train.positive_relations`` ``{}``: the first relation's groups only. Raises
    :class:`~pinsage.InputError` for a name that is not a relation of the graph (listing the relations) and for
    probabilities that leave no relation to step or no relation to pair.
    """
    relations = list(relations)
    out = []
    for where, given, default in (("sampler.relation_probs", cfg.sampler.relation_probs, dict.fromkeys(relations, 1.0)),
                                  ("train.positive_relations", cfg.train.positive_relations, {relations[0]: 1.0})):
        unknown = [n for n in given if n not in relations]
        if unknown:
            raise InputError(f"{source}: {where} names unknown relation(s) {unknown}; the relations are {relations}")
        values = {n: float(given.get(n, 0.0)) for n in relations} if given else \
            {n: float(default.get(n, 0.0)) for n in relations}
        total = sum(values.values())
        if total <= 0:
            raise InputError(f"{source}: {where} gives every relation 0: {given}")
        out.append({n: v / total for n, v in values.items()})
    return out[0], out[1]

"""A synthetic Pinterest-like pin-board data set with planted topic structure.

Generative model (all draws vectorised, from ``np.random.default_rng(seed)``):

* ``T = n_topics`` topics, ``P = pins_per_topic`` pins each; pin ``p`` (``0 <= p < T P``) has topic
  ``p // P`` and within-topic rank ``p % P``; its id is ``"pin_%05d" % p``.
* Topic popularity is Zipf: board ``b`` picks its main topic ``t_b`` with probability
  ``(t + 1)^(-topic_exponent) / Z``.
* Board sizes are heavy tailed (shifted Pareto / Lomax, tail index 2):
  ``size = min_board_size + floor(s (U^(-1/2) - 1))``, ``U ~ Uniform(0, 1]``, capped at
  ``max_board_size``, ``P(size >= k) ~ k^(-2)`` below the cap; ``s`` is solved so that
  ``E[size] ~ mean_board_size`` despite the cap.
* Each slot of board ``b`` comes from ``t_b`` with probability ``1 - noise``, otherwise from one of
  the ``T - 1`` other topics uniformly, so the share of a board's pins from its main topic is
  ``Binomial(size, 1 - noise) / size``. Within the slot's topic, rank ``r`` is drawn with probability
  ``(r + 1)^(-pin_exponent) / Z'`` (power-law pin popularity); a pin already on the board is
  redrawn (same topic), so a board holds distinct pins: within-topic sampling without replacement.
* Content features: ``x_p = c_{topic(p)} + feature_noise * eps_p`` with topic centroids
  ``c_t ~ N(0, I_d)`` and ``eps_p ~ N(0, I_d)``: correlated with the topic, not a perfect label
  (the default noise leaves a minority of pins nearer another topic's centroid).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["PinBoardData", "make_pinboard", "pinboard_features_frame"]


@dataclass
class PinBoardData:
    """Output of :func:`make_pinboard`.

    Attributes:
        interactions: columns ``board`` (str, "board_0007"), ``pin`` (str, "pin_00042"), ``time``
            (int64, 0, 1, 2, ... in the order pins were added to the board); sorted by board, time.
        pins: one row per pin in pin-index order: ``pin`` (str id), ``topic`` (int64), ``title``
            ("topic 3 pin 17": topic and within-topic rank).
        features: float32 ``(n_pins, feature_dim)``, row ``i`` belongs to ``pins.pin[i]``.
        topics: int64 ``(n_pins,)``, the topic of each pin (same as ``pins.topic``).
        board_topics: int64 ``(n_boards,)``, each board's main topic; row ``b`` is "board_%04d" % b.
        centroids: float32 ``(n_topics, feature_dim)``, the topic centroids of the features.
        noise: share of each board's slots drawn from other topics.
        seed: the generator seed (:func:`pinboard_features_frame` derives its draws from it).
    """

    interactions: pd.DataFrame
    pins: pd.DataFrame
    features: np.ndarray
    topics: np.ndarray
    board_topics: np.ndarray
    centroids: np.ndarray
    noise: float
    seed: int

    @property
    def n_topics(self) -> int:
        return len(self.centroids)


def _ids(prefix: str, n: int, width: int) -> np.ndarray:
    """``[prefix_000, prefix_001, ...]``: object array of shape ``(n,)``, zero-padded to ``width``."""
    width = max(width, len(str(max(n - 1, 0))))
    nums = np.char.zfill(np.arange(n).astype(str), width)
    return np.char.add(prefix, nums).astype(object)


def _zipf_cdf(n: int, exponent: float) -> np.ndarray:
    """CDF of ``P(r) = (r + 1)^(-exponent) / Z`` over ``r < n``, shape ``(n,)``, last entry 1."""
    w = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(w)
    return cdf / cdf[-1]


def _draw(rng: np.random.Generator, cdf: np.ndarray, size: int) -> np.ndarray:
    """``size`` inverse-CDF draws from ``cdf`` (int64, shape ``(size,)``)."""
    return np.minimum(cdf.searchsorted(rng.random(size), side="right"), len(cdf) - 1)


def _board_sizes(
    rng: np.random.Generator, n: int, mean: float, lo: int, hi: int
) -> np.ndarray:
    """``n`` board sizes (int64): ``lo + floor(s (U^(-1/2) - 1))`` capped at ``hi``.

    ``X = s (U^(-1/2) - 1)`` is Lomax with tail index 2: ``P(X > x) = (s / (s + x))^2``. Capped at
    ``c = hi - lo``, ``E[min(X, c)] = s c / (s + c)``; flooring takes about 1/2 off. ``s`` solves
    ``s c / (s + c) = mean - lo + 1/2`` so that the mean size is about ``mean`` (when ``c`` is too
    small for that mean, most boards sit at the cap).
    """
    c = hi - lo
    target = mean - lo + 0.5
    s = target * c / (c - target) if c > target else 100.0 * max(c, 1)
    u = 1.0 - rng.random(n)  # (0, 1]
    sizes = lo + np.floor(s * (u**-0.5 - 1.0))
    return np.minimum(sizes, hi).astype(np.int64)


def _repeats(keys: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Positions (from ``positions``, increasing) whose key equals the key of an earlier position."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    later = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1]) + 1
    return positions[order[later]]


def make_pinboard(
    n_topics: int = 20,
    pins_per_topic: int = 100,
    n_boards: int = 2000,
    feature_dim: int = 32,
    mean_board_size: float = 20.0,
    noise: float = 0.1,
    seed: int = 0,
    *,
    min_board_size: int = 3,
    max_board_size: int | None = None,
    topic_exponent: float = 1.0,
    pin_exponent: float = 1.0,
    feature_noise: float = 1.5,
    max_rounds: int = 100,
) -> PinBoardData:
    """Generate a pin-board data set with planted topics (model in the module docstring).

    ``max_board_size`` defaults to ``max(min_board_size, min(pins_per_topic // 2, 20 * mean_board_size))``
    (a board's main topic must have enough distinct pins). Returns :class:`PinBoardData` with about
    ``n_boards * mean_board_size`` interactions.
    """
    if n_topics < 2 or pins_per_topic < 1 or n_boards < 1 or feature_dim < 1:
        raise ValueError("need n_topics >= 2 and positive pins_per_topic, n_boards, feature_dim")
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must be in [0, 1], got {noise}")
    if not mean_board_size > min_board_size >= 1:
        raise ValueError("need mean_board_size > min_board_size >= 1")
    rng = np.random.default_rng(seed)
    n_pins = n_topics * pins_per_topic
    if max_board_size is None:
        max_board_size = int(min(pins_per_topic // 2, 20 * mean_board_size))
    max_board_size = max(max_board_size, min_board_size)

    # Boards: main topic (Zipf popularity) and heavy-tailed size.
    board_topics = _draw(rng, _zipf_cdf(n_topics, topic_exponent), n_boards)
    sizes = _board_sizes(rng, n_boards, mean_board_size, min_board_size, max_board_size)

    # Slots: topic = main topic, or with probability `noise` one of the other topics.
    board = np.repeat(np.arange(n_boards), sizes)
    n_slots = len(board)
    topic = board_topics[board]
    off = rng.random(n_slots) < noise
    shift = rng.integers(1, n_topics, size=n_slots)
    topic = np.where(off, (topic + shift) % n_topics, topic)
    rank_cdf = _zipf_cdf(pins_per_topic, pin_exponent)
    rank = _draw(rng, rank_cdf, n_slots)
    pin = topic * pins_per_topic + rank

    # A board holds a pin once: redraw the rank (same slot, same topic) of repeated pins, in rounds
    # restricted to the boards that still had a repeat; repeats left after `max_rounds` are dropped.
    dup = np.zeros(n_slots, dtype=bool)
    active = np.arange(n_slots)
    for _ in range(max_rounds):
        dup_idx = _repeats(board[active] * n_pins + pin[active], active)
        if len(dup_idx) == 0:
            break
        pin[dup_idx] = topic[dup_idx] * pins_per_topic + _draw(rng, rank_cdf, len(dup_idx))
        again = np.zeros(n_boards, dtype=bool)
        again[board[dup_idx]] = True
        active = np.flatnonzero(again[board])
    else:
        dup[_repeats(board * n_pins + pin, np.arange(n_slots))] = True
    keep = ~dup
    board, pin = board[keep], pin[keep]
    starts = np.searchsorted(board, np.arange(n_boards))
    time = np.arange(len(board)) - starts[board]

    pin_ids = _ids("pin_", n_pins, 5)
    board_ids = _ids("board_", n_boards, 4)
    interactions = pd.DataFrame(
        {"board": board_ids[board], "pin": pin_ids[pin], "time": time.astype(np.int64)}
    )

    pin_topic = np.arange(n_pins) // pins_per_topic
    pin_rank = np.arange(n_pins) % pins_per_topic
    titles = np.char.add(
        np.char.add("topic ", pin_topic.astype(str)), np.char.add(" pin ", pin_rank.astype(str))
    ).astype(object)
    pins = pd.DataFrame({"pin": pin_ids, "topic": pin_topic.astype(np.int64), "title": titles})

    centroids = rng.standard_normal((n_topics, feature_dim))
    features = centroids[pin_topic] + feature_noise * rng.standard_normal((n_pins, feature_dim))
    return PinBoardData(
        interactions=interactions,
        pins=pins,
        features=features.astype(np.float32),
        topics=pin_topic.astype(np.int64),
        board_topics=board_topics.astype(np.int64),
        centroids=centroids.astype(np.float32),
        noise=float(noise),
        seed=int(seed),
    )


def _tag_table(n_topics: int, n_tags: int) -> np.ndarray:
    """``table[t, code]``: the "|"-joined tags of topic ``t`` whose bits are set in ``code``.

    Topic ``t``'s vocabulary is ``t{t}_{j}`` for ``j < n_tags``; shape ``(n_topics, 2^n_tags)``,
    entry ``[:, 0]`` is the empty string. Built with one vectorised string op per (code, bit).
    """
    vocab = [np.char.add(np.char.add("t", np.arange(n_topics).astype(str)), f"_{j}") for j in range(n_tags)]
    table = np.full((n_topics, 1 << n_tags), "", dtype=object)
    for code in range(1, 1 << n_tags):
        parts = [vocab[j] for j in range(n_tags) if code >> j & 1]
        joined = parts[0]
        for part in parts[1:]:
            joined = np.char.add(np.char.add(joined, "|"), part)
        table[:, code] = joined.astype(object)
    return table


def pinboard_features_frame(data: PinBoardData, n_tags: int = 5, tag_prob: float = 0.4) -> pd.DataFrame:
    """A side-feature table for the pins of ``data``, one row per pin in pin-index order.

    Columns: ``pin`` (str id), ``title`` ("topic 3 pin 17"), ``topic_name`` (categorical
    "topic_03"), ``tags`` (multi-hot "t3_0|t3_4": each of the pin's topic's ``n_tags`` tags present
    independently with probability ``tag_prob``, at least one), and ``f0 .. f{d-1}`` (float32, the
    content features). Deterministic given ``data.seed``.
    """
    rng = np.random.default_rng([data.seed, 1])
    n_pins, dim = data.features.shape
    width = len(str(max(data.n_topics - 1, 0)))
    names = np.char.add("topic_", np.char.zfill(np.arange(data.n_topics).astype(str), max(2, width)))
    bits = rng.random((n_pins, n_tags)) < tag_prob
    code = bits.astype(np.int64) @ (1 << np.arange(n_tags))
    code = np.where(code == 0, 1 << rng.integers(0, n_tags, size=n_pins), code)
    tags = _tag_table(data.n_topics, n_tags)[data.topics, code]
    frame = pd.DataFrame(
        {
            "pin": data.pins["pin"].to_numpy(),
            "title": data.pins["title"].to_numpy(),
            "topic_name": pd.Categorical.from_codes(data.topics, categories=list(names)),
            "tags": tags,
        }
    )
    numeric = pd.DataFrame(data.features, columns=[f"f{j}" for j in range(dim)])
    return pd.concat([frame, numeric], axis=1)

"""Exact visit expectations of the mixed-relation walk (dense, test sizes only), extending tests/_walks.py."""
from __future__ import annotations

import numpy as np

from _walks import dense_weights


def transition(A: np.ndarray) -> np.ndarray:
    """``(items, items)`` one-relation step matrix item -> group -> item in proportion to ``A`` (groups x items)."""
    di, dg = A.sum(0), A.sum(1)
    Pig = np.divide(A.T, di[:, None], out=np.zeros_like(A.T), where=di[:, None] > 0)
    Pgi = np.divide(A, dg[:, None], out=np.zeros_like(A), where=dg[:, None] > 0)
    return Pig @ Pgi


def relation_choice(As: list[np.ndarray], probs: np.ndarray) -> np.ndarray:
    """``(R, items)``: q_r(i) = p_r [i has weight in r] / sum over such relations (0 where none)."""
    has = np.stack([A.sum(0) > 0 for A in As]).astype(float) * probs[:, None]
    tot = has.sum(0)
    return np.divide(has, tot[None, :], out=np.zeros_like(has), where=tot[None, :] > 0)


def exact_mixed_visits(As: list[np.ndarray], probs: np.ndarray, s: int, L: int, r: float) -> tuple[np.ndarray, np.ndarray]:
    """``(merged (items,), per_relation (R, items))`` expected visits per walk from seed ``s`` (seed not counted):
    merged = sum_h (1-r)^(h-1) e_s P^h with P = sum_r diag(q_r) P_r; relation r's part = the visits of hops
    through r, sum_h (1-r)^(h-1) e_s P^(h-1) diag(q_r) P_r."""
    q = relation_choice(As, np.asarray(probs, dtype=float))
    Ps = [transition(A) for A in As]
    P = sum(q[k][:, None] * Ps[k] for k in range(len(As)))
    n = As[0].shape[1]
    x = np.zeros(n)
    x[s] = 1
    per = np.zeros((len(As), n))
    for h in range(1, L + 1):
        for k in range(len(As)):
            per[k] += (1 - r) ** (h - 1) * ((x * q[k]) @ Ps[k])
        x = x @ P
    per[:, s] = 0
    return per.sum(0), per


def relation_weights(hg, name: str, weighted: bool) -> np.ndarray:
    """Dense ``(groups, items)`` step weights of a HeteroGraph relation (edge weights, or 1 per edge)."""
    g = hg.relation(name)
    w = g.edge_weight if (weighted and g.edge_weight is not None) else 1.0
    return dense_weights(g, w)

"""Max-margin ranking loss (PinSage, eq. 1)."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["max_margin_loss", "sampled_softmax_loss"]


def max_margin_loss(
    query: Tensor, positive: Tensor, negatives: Tensor, margin: float, mask: Tensor | None = None,
    denominator: float | None = None,
) -> Tensor:
    r"""Mean hinge :math:`\max(0, s(q, n) - s(q, i) + \Delta)` over pairs and their negatives.

    Args:
        query: ``(B, d)`` query embeddings :math:`z_q`.
        positive: ``(B, d)`` positive item embeddings :math:`z_i`.
        negatives: ``(N, d)`` negatives shared by the batch, or ``(B, N, d)`` per pair.
        margin: :math:`\Delta`.
        mask: ``(B, N)`` bool, False where a negative must not count (it is the pair's own item).

        denominator: divide the summed hinge by this instead of by the number of terms that count
            (a share of a larger batch: the whole batch's count, so that the shares' losses add up
            to the whole batch's).

    Scores are dot products; the mean runs over the ``B x N`` (pair, negative) terms that count.
    """
    pos = (query * positive).sum(-1, keepdim=True)                     # (B, 1)
    if negatives.dim() == 2:
        neg = query @ negatives.T                                      # (B, N)
    else:
        neg = torch.einsum("bd,bnd->bn", query, negatives)             # (B, N)
    hinge = torch.relu(neg - pos + margin)
    if mask is not None:
        hinge = hinge * mask
    if denominator is not None:
        return hinge.sum() / max(float(denominator), 1.0)
    if mask is not None:
        return hinge.sum() / mask.sum().clamp_min(1)
    return hinge.mean()


def sampled_softmax_loss(
    query: Tensor, positive: Tensor, shared: Tensor, temperature: float, shared_mask: Tensor | None = None,
    per_pair: Tensor | None = None, per_pair_mask: Tensor | None = None, denominator: float | None = None,
) -> Tensor:
    r"""Cross-entropy of the positive against the negatives, scores :math:`s/\tau`:
    :math:`-\log \frac{e^{s(q,i)/\tau}}{e^{s(q,i)/\tau} + \sum_n e^{s(q,n)/\tau}}`, mean over pairs.

    Args:
        query, positive: ``(B, d)``.
        shared: ``(N, d)`` negatives shared by the batch; ``shared_mask`` ``(B, N)`` bool (False: skip).
        per_pair: optional ``(B, H, d)`` per-pair negatives; ``per_pair_mask`` ``(B, H)``.
        denominator: divide the summed cross-entropy by this instead of ``B`` (a share of a larger
            batch: the whole batch's pair count).
    """
    logits = [(query * positive).sum(-1, keepdim=True)]
    neg = query @ shared.T
    if shared_mask is not None:
        neg = neg.masked_fill(~shared_mask, float("-inf"))
    logits.append(neg)
    if per_pair is not None and per_pair.numel():
        hard = torch.bmm(per_pair, query.unsqueeze(-1)).squeeze(-1)
        if per_pair_mask is not None:
            hard = hard.masked_fill(~per_pair_mask, float("-inf"))
        logits.append(hard)
    z = torch.cat(logits, 1) / temperature
    ce = torch.logsumexp(z, 1) - z[:, 0]                               # (B,)
    if denominator is not None:
        return ce.sum() / max(float(denominator), 1.0)
    return ce.mean()

r"""The PinSage convolution over several relations: one :class:`~pinsage.nn.ImportanceConv` per relation,
combined across relations (the edge-type aggregation of heterogeneous PinSage)."""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pinsage.nn.conv import ImportanceConv

__all__ = ["RelationalPinSageConv", "COMBINES"]

COMBINES = ("sum", "mean", "attention")


class RelationalPinSageConv(nn.Module):
    r"""PinSage convolutions per relation, combined across relations.

    For each relation :math:`r` with neighbourhood :math:`\mathcal{N}_r(v)` and weights :math:`w^r_{uv}`
    (e.g. a :class:`~pinsage.sampling.MetapathSampler` ``merge=False`` result), an own
    :class:`~pinsage.nn.ImportanceConv` (own :math:`\mathbf{Q}_r, \mathbf{W}_r`, own pooling):

    .. math::
        \mathbf{z}^{r}_v = \mathrm{Convolve}_r\big(\mathbf{x}_v, \{\mathbf{x}_u, w^r_{uv}\}_{u \in \mathcal{N}_r(v)}\big)
        = \frac{\mathrm{ReLU}(\mathbf{W}_r [\mathbf{x}_v \Vert \sum_u w^r_{uv} \mathrm{ReLU}(\mathbf{Q}_r \mathbf{x}_u + \mathbf{q}_r)] + \mathbf{w}_r)}
               {\Vert \cdot \Vert_2}

    then a combination over the relations :math:`\mathcal{R}(v)` in which :math:`v` has at least one
    neighbour (all relations where it has none):

    .. math::
        \mathbf{h}_v = \sum_{r \in \mathcal{R}(v)} \alpha_{vr} \mathbf{z}^r_v, \qquad
        \alpha_{vr} = \begin{cases} 1 & \texttt{sum} \\ 1 / |\mathcal{R}(v)| & \texttt{mean} \\
        \mathrm{softmax}_{r \in \mathcal{R}(v)}\big(\mathbf{a}^\top \tanh(\mathbf{A} \mathbf{z}^r_v + \mathbf{b})\big)
        & \texttt{attention} \end{cases}

    and :math:`\mathbf{h}_v \leftarrow \mathbf{h}_v / \Vert \mathbf{h}_v \Vert_2` when ``normalize``. With one
    relation the result is :class:`~pinsage.nn.ImportanceConv`'s with the same weights (the second
    normalisation of a unit vector changes it by rounding only).

    Args:
        relations: the relation names, in the order the convolutions are stored (``convs[k]`` is relation ``k``).
        in_channels: as :class:`~pinsage.nn.ImportanceConv` (the same for every relation).
        hidden_channels: likewise.
        out_channels: likewise.
        aggr: likewise.
        bias: likewise.
        combine: ``"sum"``, ``"mean"`` (default) or ``"attention"``.
        normalize: L2-normalise each relation's output and the combined one (default ``True``).
        attention_channels: size of the attention's hidden layer :math:`\mathbf{A}` (default ``out_channels``).

    Shapes:
        - **input:** ``x`` :math:`(|\mathcal{V}_s|, F_{in})` (destination nodes first, as in a
          :class:`~pinsage.sampling.hetero_blocks.RelationalBlock`) or ``(x_src, x_dst)``;
          ``edge_index`` relation -> :math:`(2, |\mathcal{E}_r|)`; ``edge_weight`` relation ->
          :math:`(|\mathcal{E}_r|,)` *(optional)*; ``size`` :math:`(|\mathcal{V}_s|, |\mathcal{V}_t|)`.
        - **output:** :math:`(|\mathcal{V}_t|, F_{out})`; with ``return_attention=True`` also
          :math:`\alpha` :math:`(|\mathcal{V}_t|, R)`.
    """

    def __init__(
        self,
        relations: Sequence[str],
        in_channels: Union[int, Tuple[int, int]],
        hidden_channels: int,
        out_channels: int,
        aggr: str = "importance",
        combine: str = "mean",
        normalize: bool = True,
        bias: bool = True,
        attention_channels: Optional[int] = None,
    ) -> None:
        super().__init__()
        relations = tuple(relations)
        if not relations or len(set(relations)) != len(relations):
            raise ValueError(f"relations must be distinct names, at least one; got {relations}")
        if combine not in COMBINES:
            raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")
        self.relations = relations
        self.combine = combine
        self.normalize = normalize
        self.out_channels = out_channels
        self.convs = nn.ModuleList(
            ImportanceConv(in_channels, hidden_channels, out_channels, aggr=aggr, normalize=normalize, bias=bias)
            for _ in relations)
        if combine == "attention":
            a = attention_channels or out_channels
            self.att_lin = nn.Linear(out_channels, a)                  # A, b
            self.att_vec = nn.Parameter(torch.empty(a))                # a
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()
        if self.combine == "attention":
            self.att_lin.reset_parameters()
            nn.init.normal_(self.att_vec, std=self.att_vec.numel() ** -0.5)

    def conv(self, name: str) -> ImportanceConv:
        """Relation ``name``'s convolution."""
        return self.convs[self.relations.index(name)]

    def forward(
        self,
        x: Union[Tensor, Tuple[Tensor, Tensor]],
        edge_index: Mapping[str, Tensor],
        edge_weight: Optional[Mapping[str, Tensor]] = None,
        size: Optional[Tuple[int, int]] = None,
        return_attention: bool = False,
    ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        r"""Combine the relations' convolutions for every destination node.

        Args:
            x: ``(n_src, F)`` with destination nodes first (``size`` gives ``n_dst``), or ``(x_src, x_dst)``.
            edge_index: relation -> ``(2, E_r)`` source -> destination; a relation left out has no edges.
            edge_weight: relation -> ``(E_r,)`` importance weights (optional).
            size: ``(n_src, n_dst)``.
            return_attention: also return the combination weights :math:`\alpha` ``(n_dst, R)``.

        Returns:
            ``(n_dst, out_channels)`` (and :math:`\alpha`).
        """
        if isinstance(x, Tensor):
            x_src, x_dst = x, (x if size is None else x[: size[1]])
        else:
            x_src, x_dst = x
        unknown = set(edge_index) - set(self.relations)
        if unknown:
            raise KeyError(f"edge_index names relations {sorted(unknown)} this layer does not have "
                           f"{list(self.relations)}")
        n_dst = x_dst.size(0)
        device = x_dst.device
        empty = torch.empty(2, 0, dtype=torch.long, device=device)
        outs, has = [], []
        for name, conv in zip(self.relations, self.convs):
            ei = edge_index.get(name, empty)
            ew = edge_weight.get(name) if edge_weight is not None else None
            outs.append(conv.combine(conv.project(x_src), x_dst, ei, ew))
            has.append(torch.bincount(ei[1], minlength=n_dst)[:n_dst] > 0 if ei.numel() else
                       torch.zeros(n_dst, dtype=torch.bool, device=device))
        z = torch.stack(outs, dim=1)                                   # (n_dst, R, F_out)
        mask = torch.stack(has, dim=1)                                 # (n_dst, R)
        h, alpha = self.mix(z, mask)
        return (h, alpha) if return_attention else h

    def mix(self, z: Tensor, mask: Tensor) -> Tuple[Tensor, Tensor]:
        r"""Combine per-relation outputs ``z`` ``(n, R, F_out)`` where ``mask`` ``(n, R)`` marks the relations in
        which each node has neighbours (a node with none anywhere uses all relations): ``(h (n, F_out), alpha
        (n, R))``, ``h`` L2-normalised when ``normalize``. :meth:`forward`'s last step, exposed for layer-wise
        full-graph inference."""
        mask = mask | ~mask.any(dim=1, keepdim=True)                   # no neighbour anywhere: all relations
        if self.combine == "attention":
            score = torch.tanh(self.att_lin(z)) @ self.att_vec         # (n, R)
            alpha = torch.softmax(score.masked_fill(~mask, float("-inf")), dim=1)
        else:
            alpha = mask.to(z.dtype)
            if self.combine == "mean":
                alpha = alpha / alpha.sum(dim=1, keepdim=True)
        h = (alpha.unsqueeze(-1) * z).sum(dim=1)
        if self.normalize:
            h = F.normalize(h, p=2.0, dim=-1)
        return h, alpha

    @property
    def hidden_channels(self) -> int:
        return self.convs[0].hidden_channels

    def __repr__(self) -> str:
        c = self.convs[0]
        return (f"{self.__class__.__name__}({list(self.relations)}, {c.in_channels}, {c.hidden_channels}, "
                f"{c.out_channels}, aggr={c.pooling!r}, combine={self.combine!r}, normalize={self.normalize})")

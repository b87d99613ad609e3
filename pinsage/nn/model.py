r"""The PinSage model: input encoder, K importance convolutions, and the G1/G2 head."""
from __future__ import annotations

from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pinsage.sampling.blocks import Block
from pinsage.sampling.hetero_blocks import RelationalBlock
from pinsage.nn.conv import ImportanceConv
from pinsage.nn.hetero_conv import RelationalPinSageConv

__all__ = ["PinSage"]


class PinSage(nn.Module):
    r"""PinSage item embeddings (Ying et al., KDD 2018).

    **Input encoder.** For item :math:`v` with content features
    :math:`\mathbf{f}_v \in \mathbb{R}^{F}` (for example visual + text
    embeddings and the log degree, built by :mod:`pinsage.features`) and a
    learnable id embedding :math:`\mathbf{e}_v \in \mathbb{R}^{D}`:

    .. math::
        \mathbf{h}^{(0)}_v = \mathrm{ReLU}\left(\mathbf{A}\,
        [\mathbf{f}_v \,\Vert\, \mathbf{e}_v] + \mathbf{a}\right)
        \in \mathbb{R}^{H}

    Either part may be absent (``feature_dim=0`` or ``id_dim=0``), not both.

    **Convolutions.** :math:`K` :class:`ImportanceConv` layers,
    :math:`\mathbf{h}^{(k)}_v = \mathrm{Convolve}^{(k)}(\mathbf{h}^{(k-1)}_v,
    \{(\mathbf{h}^{(k-1)}_u, w_{uv})\}_{u \in \mathcal{N}(v)})`, each mapping
    :math:`H \to H` (hidden size of :math:`\mathbf{Q}` also :math:`H`), with
    L2-normalised outputs.

    **Head.**

    .. math::
        \mathbf{z}_v = \mathbf{G}_2\,\mathrm{ReLU}\left(\mathbf{G}_1
        \mathbf{h}^{(K)}_v + \mathbf{g}_1\right) + \mathbf{g}_2
        \in \mathbb{R}^{O},
        \qquad \mathbf{z}_v \leftarrow \mathbf{z}_v / \Vert\mathbf{z}_v\Vert_2
        \ (\text{if } \texttt{normalize\_output})

    With ``normalize_output=True`` (default) every embedding has unit norm, so
    the dot-product score of the loss and of the nearest-neighbour index equals
    the cosine similarity.

    **Magnitude** (``magnitude=True``). The unit vector is then scaled by a
    learned, bounded length

    .. math::
        \mathbf{z}_v \leftarrow m_v\,\mathbf{z}_v, \qquad
        m_v = 2\,\sigma\!\left(\mathbf{a}^\top \mathbf{h}^{(K)}_v + b\right) \in (0, 2),

    (:math:`\mathbf{a} = 0, b = 0` at initialisation, so :math:`m_v = 1`). The
    dot-product score :math:`\mathbf{z}_q^\top\mathbf{z}_v = m_q m_v \cos(q, v)`
    then ranks the candidates :math:`v` of a query by :math:`m_v \cos(q, v)`:
    the direction says *what* an item is like, the length how readily it is
    engaged with at all (popularity, learned from the log degree and the
    neighbourhood), which cosine similarity alone cannot express.

    Args:
        num_items: catalogue size :math:`N` (rows of the id embedding table).
        feature_dim: :math:`F`, content feature size (0: no content features).
        id_dim: :math:`D`, id embedding size (0: no id embedding).
        hidden_channels: :math:`H`.
        out_channels: :math:`O`, final embedding size.
        num_layers: :math:`K` (>= 1), number of convolutions (paper: 2).
        aggr: neighbour pooling of the convolutions: ``"importance"``,
            ``"mean"``, ``"max"`` or ``"sum"``.
        dropout: dropout rate on the input of every convolution (training only).
        id_dropout: probability :math:`p_{id}` that a node's id embedding is replaced by zeros in a
            training step (one draw per distinct node of the step, so the node is "new" wherever it
            appears in it). A new item gets a zero id row at inference (``pinsage embed``,
            catalogue items), so this trains the network to embed an item from its content and
            neighbourhood alone. Not rescaled (unlike dropout): the zeros are the state to learn,
            not noise. Training only.
        normalize_output: L2-normalise the final embedding.
        magnitude: scale the normalised embedding by the learned length
            :math:`m_v` (needs ``normalize_output``).
        sparse: make the id embedding produce sparse gradients (for large
            catalogues; optimise ``model.id_embedding`` with e.g.
            :class:`torch.optim.SparseAdam` and the rest with a dense optimiser).
        relations: several relations with per-relation neighbourhoods
            (``sampler.merge_relations: false``): the relation names; every layer is then a
            :class:`~pinsage.nn.RelationalPinSageConv` (own :math:`\mathbf{Q}_r, \mathbf{W}_r` per
            relation) over :class:`~pinsage.sampling.RelationalBlock` s. ``None`` (default): one
            neighbourhood, :class:`ImportanceConv` layers over :class:`~pinsage.sampling.Block` s. With
            one relation and ``combine`` sum or mean the outputs equal the ``None`` model's with the
            same weights (relation ``r``'s convolution holding the plain layer's).
        relation_combine: how a relational layer combines its relations: ``"sum"``, ``"mean"``,
            ``"attention"``.

    Shapes:
        - **forward input:** ``blocks`` (``K`` :class:`~pinsage.sampling.blocks.Block`),
          ``features`` :math:`(n_{src}^{(0)}, F)` gathered for ``blocks[0].src_nodes``
        - **forward output:** :math:`(n_{seeds}, O)`
    """

    def __init__(
        self,
        num_items: int,
        feature_dim: int = 0,
        id_dim: int = 0,
        hidden_channels: int = 64,
        out_channels: int = 64,
        num_layers: int = 2,
        aggr: str = "importance",
        dropout: float = 0.0,
        normalize_output: bool = True,
        sparse: bool = False,
        magnitude: bool = False,
        id_dropout: float = 0.0,
        relations: Optional[Sequence[str]] = None,
        relation_combine: str = "mean",
    ) -> None:
        super().__init__()
        if feature_dim < 0 or id_dim < 0:
            raise ValueError("feature_dim and id_dim must be >= 0")
        if feature_dim + id_dim == 0:
            raise ValueError("PinSage needs content features (feature_dim > 0) or an id embedding (id_dim > 0)")
        if num_layers < 1:
            raise ValueError("num_layers must be >= 1")
        self.num_items = num_items
        self.feature_dim = feature_dim
        self.id_dim = id_dim
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.num_layers = num_layers
        self.aggr = aggr
        self.dropout = dropout
        if not 0.0 <= id_dropout < 1.0:
            raise ValueError(f"id_dropout must be in [0, 1), got {id_dropout}")
        self.id_dropout = float(id_dropout)
        self.normalize_output = normalize_output
        if magnitude and not normalize_output:
            raise ValueError("magnitude=True needs normalize_output=True")
        self.magnitude = magnitude

        self.id_embedding: Optional[nn.Embedding] = (
            nn.Embedding(num_items, id_dim, sparse=sparse) if id_dim > 0 else None
        )
        self.input_proj = nn.Linear(feature_dim + id_dim, hidden_channels)
        self.relations = None if relations is None else [str(r) for r in relations]
        self.relation_combine = relation_combine
        if self.relations is None:
            self.convs = nn.ModuleList(
                ImportanceConv(hidden_channels, hidden_channels, hidden_channels, aggr=aggr, normalize=True)
                for _ in range(num_layers)
            )
        else:
            self.convs = nn.ModuleList(
                RelationalPinSageConv(self.relations, hidden_channels, hidden_channels, hidden_channels, aggr=aggr,
                                      combine=relation_combine, normalize=True)
                for _ in range(num_layers)
            )
        self.g1 = nn.Linear(hidden_channels, hidden_channels)
        self.g2 = nn.Linear(hidden_channels, out_channels)
        self.length: Optional[nn.Linear] = nn.Linear(hidden_channels, 1) if magnitude else None
        self.reset_parameters()

    #: the constructor arguments :meth:`get_config` records (``sparse`` is a training choice, not saved)
    CONFIG_KEYS = ("num_items", "feature_dim", "id_dim", "hidden_channels", "out_channels", "num_layers", "aggr",
                   "dropout", "magnitude", "id_dropout")

    def get_config(self) -> dict:
        """The architecture as plain values (JSON- and ``weights_only``-safe): ``PinSage(**get_config())``
        rebuilds it. ``normalize_output`` is recorded only when it differs from the default."""
        cfg = {k: getattr(self, k) for k in self.CONFIG_KEYS}
        if not self.normalize_output:
            cfg["normalize_output"] = False
        if self.relations is not None:
            cfg["relations"] = list(self.relations)
            cfg["relation_combine"] = self.relation_combine
        return cfg

    @classmethod
    def from_config(cls, config: dict, **overrides) -> "PinSage":
        """A fresh model from :meth:`get_config`'s output (``overrides`` replace entries, e.g. ``num_items``)."""
        allowed = set(cls.CONFIG_KEYS) | {"normalize_output", "sparse", "relations", "relation_combine"}
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise ValueError(f"PinSage.from_config: unknown key(s) {unknown}; known: {sorted(allowed)}")
        return cls(**{**config, **overrides})

    @classmethod
    def from_settings(cls, num_items: int, feature_dim: int, settings, sparse: bool = False,
                      relations: Optional[Sequence[str]] = None) -> "PinSage":
        """The model a run's ``model`` settings (:class:`pinsage.config.ModelConfig`) describe; ``relations``:
        per-relation layers over these relations (``model.relation_combine``), see the class doc."""
        m = settings
        extra = {} if relations is None else {"relations": list(relations), "relation_combine": m.relation_combine}
        return cls(num_items, feature_dim=feature_dim, id_dim=m.id_dim, hidden_channels=m.hidden_channels,
                   out_channels=m.out_channels, num_layers=m.num_layers, aggr=m.aggr, dropout=m.dropout,
                   magnitude=m.magnitude, sparse=sparse, id_dropout=m.id_dropout, **extra)

    def reset_parameters(self) -> None:
        if self.id_embedding is not None:
            nn.init.normal_(self.id_embedding.weight, std=0.1)
        self.input_proj.reset_parameters()
        for conv in self.convs:
            conv.reset_parameters()
        self.g1.reset_parameters()
        self.g2.reset_parameters()
        if self.length is not None:
            nn.init.zeros_(self.length.weight)
            nn.init.zeros_(self.length.bias)

    @property
    def layers(self) -> nn.ModuleList:
        """The ``K`` :class:`ImportanceConv` (or :class:`~pinsage.nn.RelationalPinSageConv`) layers, input -> output."""
        return self.convs

    @property
    def device(self) -> torch.device:
        return self.input_proj.weight.device

    def encode(self, nodes: Tensor, features: Optional[Tensor] = None) -> Tensor:
        r"""Input layer :math:`\mathbf{h}^{(0)}`.

        Args:
            nodes: ``(n,)`` global item indices (for the id embedding).
            features: ``(n, feature_dim)`` content features of ``nodes`` (any
                float dtype; cast to the model's dtype), or ``None`` when
                ``feature_dim == 0``.

        Returns:
            ``(n, hidden_channels)``.
        """
        parts: List[Tensor] = []
        w = self.input_proj.weight
        if self.feature_dim > 0:
            if features is None:
                raise ValueError(f"model expects content features of size {self.feature_dim}")
            features = torch.as_tensor(features)
            if features.dim() != 2 or features.size(1) != self.feature_dim:
                raise ValueError(
                    f"features must have shape (n, {self.feature_dim}), got {tuple(features.shape)}"
                )
            parts.append(features.to(device=w.device, dtype=w.dtype))
        if self.id_embedding is not None:
            ids = self.id_embedding(nodes.to(w.device))                       # (n, D)
            if self.training and self.id_dropout > 0:
                keep = torch.rand(ids.size(0), 1, device=ids.device) >= self.id_dropout
                ids = ids * keep.to(ids.dtype)                                 # rows of "new" items: 0
            parts.append(ids)
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
        return F.relu(self.input_proj(x))

    def head(self, h: Tensor) -> Tensor:
        r""":math:`\mathbf{z} = \mathbf{G}_2\,\mathrm{ReLU}(\mathbf{G}_1 \mathbf{h}^{(K)})`
        (+ L2 normalisation, + learned length :math:`m_v`), ``(n, hidden_channels) -> (n, out_channels)``."""
        z = self.g2(F.relu(self.g1(h)))
        if self.normalize_output:
            z = F.normalize(z, p=2.0, dim=-1)
        if self.length is not None:
            z = z * (2.0 * torch.sigmoid(self.length(h)))
        return z

    def forward(self, blocks: List[Union[Block, RelationalBlock]], features: Optional[Tensor] = None) -> Tensor:
        """Embed the seed items of a K-hop minibatch.

        Args:
            blocks: ``K`` blocks ordered input -> output (see :func:`~pinsage.sampling.blocks.build_blocks`),
                on the model's device; :class:`~pinsage.sampling.RelationalBlock` s
                (:func:`~pinsage.sampling.build_relational_blocks`) for a model with ``relations``.
            features: ``(len(blocks[0].src_nodes), feature_dim)`` content features
                already gathered for ``blocks[0].src_nodes``, or ``None``.

        Returns:
            ``(blocks[-1].n_dst, out_channels)`` embeddings of the seeds.
        """
        if len(blocks) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} blocks, got {len(blocks)}")
        h = self.encode(blocks[0].src_nodes, features)
        for block, conv in zip(blocks, self.convs):
            if h.size(0) != block.n_src:
                raise ValueError(f"block has {block.n_src} source nodes but the input has {h.size(0)} rows")
            h = F.dropout(h, p=self.dropout, training=self.training)
            if self.relations is None:
                h = conv((h, h[: block.n_dst]), block.edge_index, block.edge_weight)
            else:
                h = conv(h, block.edge_index, block.edge_weight, size=(block.n_src, block.n_dst))
        return self.head(h)

    def extra_repr(self) -> str:
        return (
            f"num_items={self.num_items}, feature_dim={self.feature_dim}, id_dim={self.id_dim}, "
            f"normalize_output={self.normalize_output}, magnitude={self.magnitude}"
        )

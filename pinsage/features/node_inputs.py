"""The node inputs :math:`\\mathbf{h}^{(0)}` of the model: one row per item, the parts side by side.

.. math::
    \\mathbf{h}^{(0)}_i = [\\,\\mathbf{c}_i \\,\\|\\, \\mathbf{s}_i \\,\\|\\, \\ell_i\\,]

with :math:`\\mathbf{c}_i` the encoded content (:class:`~pinsage.features.ItemFeatureEncoder`, its
last column the missing flag), :math:`\\mathbf{s}_i` the structural inputs
(:func:`~pinsage.features.spectral_item_features`, or their fold-in for a changed catalogue) and
:math:`\\ell_i` the standardised log degree (:func:`~pinsage.features.log_degree_feature`). Each
part is optional. Training (:class:`pinsage.PinSageEmbedder`) and re-embedding a changed graph
(``pinsage embed``) both build the matrix here, so the columns always line up with the model's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pinsage._io import InputError
from pinsage.features.content import ItemFeatureEncoder, _where, check_unknown
from pinsage.features.structural import fold_in_spectral, log_degree_feature, spectral_item_features
from pinsage.ids import coerce_ids, head, positions

if TYPE_CHECKING:
    import pandas as pd

    from pinsage.config import ModelConfig
    from pinsage.graph import InteractionGraph

__all__ = ["NodeInputLayout", "node_inputs", "fit_node_inputs", "rebuild_node_inputs", "catalogue_items",
           "catalogue_node_inputs"]


@dataclass(frozen=True)
class NodeInputLayout:
    """Where each part sits in the node-input matrix: ``content_dim`` columns, then ``spectral_dim``,
    then one log-degree column when ``log_degree``."""

    content_dim: int = 0
    spectral_dim: int = 0
    log_degree: bool = False

    @property
    def dim(self) -> int:
        return self.content_dim + self.spectral_dim + int(self.log_degree)

    @property
    def spectral(self) -> slice:
        """The structural columns."""
        return slice(self.content_dim, self.content_dim + self.spectral_dim)


def node_inputs(content: np.ndarray | None = None, spectral: np.ndarray | None = None,
                item_degree: np.ndarray | None = None) -> np.ndarray | None:
    """The node-input matrix from its parts (each optional).

    Args:
        content: ``(n, c)`` encoded content features.
        spectral: ``(n, s)`` structural inputs.
        item_degree: ``(n,)`` item degrees; when given, the standardised log degree is the last column.

    Returns:
        ``(n, c + s + 1)`` float32, C-contiguous (columns of absent parts left out), or None when every
        part is absent (the model then runs on its id embedding alone).
    """
    parts = [p for p in (content, spectral) if p is not None]
    if item_degree is not None:
        parts.append(log_degree_feature(item_degree))
    if not parts:
        return None
    rows = {len(p) for p in parts}
    if len(rows) != 1:
        raise ValueError(f"node_inputs: the parts have different row counts {sorted(rows)}")
    return np.ascontiguousarray(np.concatenate(parts, 1), dtype=np.float32)


def fit_node_inputs(graph: InteractionGraph, settings: ModelConfig, seed: int = 0,
                    item_features: pd.DataFrame | None = None,
                    item_key: str | None = None) -> tuple[np.ndarray | None, ItemFeatureEncoder | None]:
    """The training node inputs of ``graph``'s items and the content encoder fitted for them.

    Content when ``item_features`` is given and ``settings.use_features`` (the encoder is fitted on every
    row of the table, catalogue items without interactions included; see :func:`catalogue_items`);
    ``settings.spectral_dim``
    structural columns (seeded by ``seed``); the log degree when ``settings.log_degree``.

    Returns:
        ``(features (num_items, dim) float32 or None, encoder or None)``.
    """
    content, encoder = None, None
    if item_features is not None and settings.use_features:
        if item_key is None:
            raise InputError("item features: item_key (the column holding item ids) is required")
        if item_key not in item_features.columns:
            check_unknown(item_features, graph.item_ids, item_key)  # raises, naming the missing key column
        encoder = ItemFeatureEncoder(key=item_key)
        content, _missing = encoder.fit_transform(item_features, graph.item_ids)
    spectral = spectral_item_features(graph, settings.spectral_dim, seed=seed) if settings.spectral_dim > 0 else None
    return node_inputs(content, spectral, graph.item_degree if settings.log_degree else None), encoder


def rebuild_node_inputs(graph: InteractionGraph, settings: ModelConfig, encoder: ItemFeatureEncoder | None,
                        item_features: pd.DataFrame | None, trained_inputs: np.ndarray | None,
                        known_rows: np.ndarray, neighborhoods: Any) -> np.ndarray | None:
    """Node inputs of a new or changed graph for a trained model, in the training columns' layout.

    Content from the trained ``encoder`` applied to ``item_features`` (items without a row get its
    missing flag); structural columns folded in (:func:`fold_in_spectral`: known items keep their
    trained rows from ``trained_inputs``, new ones the weighted mean of their known neighbours); the
    log degree from the new graph.

    Args:
        known_rows: ``(graph.num_items,)`` row of each item in the training catalogue, -1 for new items.
        neighborhoods: the new graph's importance neighbourhoods (CSR ``indptr``, ``indices``,
            ``weights``, as :class:`pinsage.sampling.Neighborhoods` holds them; sampling is a later stage,
            so the type is not imported here).
    """
    content = None
    if encoder is not None:
        if item_features is None:
            raise InputError("the model uses item content features: give the items' features table")
        content, _missing = encoder.transform(item_features, graph.item_ids)
    layout = NodeInputLayout(0 if content is None else content.shape[1], settings.spectral_dim, settings.log_degree)
    spectral = None
    if settings.spectral_dim > 0:
        if trained_inputs is None:
            raise InputError("the model uses spectral inputs but the run holds no item_features.npy")
        trained = np.asarray(trained_inputs[:, layout.spectral])
        spectral = fold_in_spectral(trained, known_rows, neighborhoods.indptr, neighborhoods.indices,
                                    neighborhoods.weights)
    return node_inputs(content, spectral, graph.item_degree if settings.log_degree else None)


def catalogue_items(graph: InteractionGraph, item_features: pd.DataFrame, item_key: str) -> np.ndarray:
    """Ids of the features table that are not items of ``graph`` (a catalogue's items nobody has engaged
    with yet), in table order, converted to the graph's id type where they differ (``"7"`` -> ``7``).

    The keys are expected to have passed :meth:`ItemFeatureEncoder.fit` (no empty or repeated keys).

    Raises:
        InputError: naming the column and examples of keys that cannot be of the graph's id type.
    """
    # empty and repeated keys were refused, naming the rows, by the encoder's fit (fit_node_inputs)
    ids = np.asarray(graph.item_ids)
    values = item_features[item_key].to_numpy()
    if values.dtype.kind != ids.dtype.kind:
        conv, bad = coerce_ids(values, ids)
        if bad.any():
            raise InputError(f"{_where(item_features)}: column {item_key!r} holds ids that are not of the "
                             f"interactions' id type ({ids.dtype}), e.g. row {int(np.argmax(bad)) + 1}: "
                             f"{head(values[bad])}")
        values = conv
    new = positions(values, ids) < 0
    out = values[new]
    return out.astype(ids.dtype) if ids.dtype.kind in "iuf" else out


def catalogue_node_inputs(graph: InteractionGraph, settings: ModelConfig, encoder: ItemFeatureEncoder,
                          item_features: pd.DataFrame, new_ids: np.ndarray) -> np.ndarray:
    """Node inputs of items without interactions, in the training columns' layout.

    Content from the fitted ``encoder``; zeros for the structural columns (an item with no groups has no
    spectral factor, as in :func:`fold_in_spectral` without known neighbours); the log degree of 0 on the
    training items' scale.

    Shapes:
        ``new_ids``: ``(m,)``; returns ``(m, dim)`` float32.
    """
    content, _missing = encoder.transform(item_features, new_ids)
    spectral = np.zeros((len(new_ids), settings.spectral_dim), dtype=np.float32) if settings.spectral_dim > 0 else None
    parts = [content] + ([spectral] if spectral is not None else [])
    if settings.log_degree:
        parts.append(log_degree_feature(np.zeros(len(new_ids)), reference=graph.item_degree))
    return np.ascontiguousarray(np.concatenate(parts, 1), dtype=np.float32)

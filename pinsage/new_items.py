"""Embedding items the model did not train on: PinSage is inductive.

An item's embedding is a function of its node inputs and its neighbourhood, so a trained model embeds
items it never saw: a catalogue's items without interactions (content only: no neighbours, no id row),
or the items of a changed graph (``pinsage embed``). Two pieces make that possible without retraining:

* :func:`model_for_catalogue` copies a trained model onto another catalogue: items it knows keep their
  trained id-embedding rows, new items get zero rows (the id embedding of an unseen item carries no
  information, and zero is its neutral value in the input projection);
* :func:`with_isolated_items` appends empty neighbourhoods for items that have no groups.
"""
from __future__ import annotations

import numpy as np
import torch

from pinsage.inference import embed_all
from pinsage.nn.model import PinSage
from pinsage.sampling.blocks import Neighborhoods
from pinsage.sampling.relations import RelationNeighborhoods, num_nodes_of, with_isolated_rows

__all__ = ["model_for_catalogue", "with_isolated_items", "embed_with_new_items"]


def model_for_catalogue(model: PinSage, known_rows: np.ndarray) -> PinSage:
    """A copy of ``model`` over a catalogue of ``len(known_rows)`` items.

    Args:
        model: the trained model.
        known_rows: ``(n,)`` int, for each item of the new catalogue its row in the trained model's
            catalogue, or -1 for an item the model has not seen (its id-embedding row is zero).

    Returns:
        A new :class:`~pinsage.PinSage` with the same weights (on CPU), in eval mode.
    """
    known_rows = np.asarray(known_rows, dtype=np.int64)
    if len(known_rows) and known_rows.max() >= model.num_items:
        raise ValueError(f"known_rows refer to row {known_rows.max()} of a model over {model.num_items} items")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    new = PinSage.from_config(model.get_config(), num_items=len(known_rows))
    if "id_embedding.weight" in state:
        old = state["id_embedding.weight"]
        rows = torch.zeros((len(known_rows), old.shape[1]), dtype=old.dtype)
        known = known_rows >= 0
        rows[torch.from_numpy(known)] = old[torch.from_numpy(known_rows[known])]
        state["id_embedding.weight"] = rows
    new.load_state_dict(state)
    return new.eval()


def with_isolated_items(neighborhoods: Neighborhoods, n_new: int) -> Neighborhoods:
    """``neighborhoods`` with ``n_new`` empty rows appended (items without groups)."""
    nb = neighborhoods
    indptr = np.concatenate([nb.indptr, np.full(n_new, nb.indptr[-1], dtype=nb.indptr.dtype)])
    return Neighborhoods(indptr, nb.indices, nb.weights)


def embed_with_new_items(model: PinSage, neighborhoods: RelationNeighborhoods, features: np.ndarray | None,
                         new_features: np.ndarray, chunk_size: int = 8192,
                         device: str | torch.device = "cpu") -> np.ndarray:
    """Embeddings of the trained catalogue followed by ``m`` new items without interactions.

    Shapes:
        ``features``: ``(n, f)`` node inputs of the trained items; ``new_features``: ``(m, f)``;
        returns ``(n + m, d)`` float32. The trained items' rows equal the model's embeddings of them
        (no trained item has a new item in its neighbourhood). ``neighborhoods``: one table, or one per
        relation for a model with per-relation layers.
    """
    n, m = num_nodes_of(neighborhoods), len(new_features)
    model_ext = model_for_catalogue(model, np.concatenate([np.arange(n), np.full(m, -1)]))
    inputs = new_features if features is None else np.concatenate([np.asarray(features), new_features], 0)
    z = embed_all(model_ext, with_isolated_rows(neighborhoods, m), np.ascontiguousarray(inputs, dtype=np.float32),
                  chunk_size=chunk_size, device=device)
    return np.asarray(z.cpu().numpy(), dtype=np.float32)

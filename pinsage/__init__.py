"""pinsage: PinSage item embeddings from interaction graphs, with FAISS related-item lookups.

The public API:

* data: :class:`InteractionGraph`, :class:`CompressedGraph` (the compressed, memory-mapped store),
  :class:`HeteroGraph` (several relations over one item space), :class:`TimeIndex` (time-ordered adjacencies),
  :class:`ItemFeatureEncoder`;
* sampling: :class:`ImportanceSampler` (uniform, weighted or time-respecting walks), :class:`CompressedSampler`,
  :class:`MetapathSampler` (walks mixing relations), :func:`all_neighborhoods`, :class:`Neighborhoods`, :class:`Block`,
  :func:`build_blocks`, :func:`personalized_pagerank`, :func:`ppr_rank_window`;
* model: :class:`ImportanceConv`, :class:`RelationalPinSageConv`, :class:`PinSage`, :func:`embed_all`;
* training: :class:`PinSageConfig`, :class:`PinSageEmbedder` (fit / transform / similar_items / recommend);
* runs: :func:`write_model_card` / :func:`render_model_card` (a run directory's README.md);
* serving: :class:`ItemIndex` (build / related / recommend / save / load); :mod:`pinsage.serve`, the HTTP
  server of ``pinsage serve`` (needs the ``serve`` extra and is not imported by ``import pinsage``);
* evaluation: :mod:`pinsage.evaluation` (leave-last-out split, HR/NDCG/MRR, tuned baselines, intervals);
* figures: :mod:`pinsage.plot` (training curve, metric vs K, embedding map; needs the ``plot``
  extra and is not imported by ``import pinsage``).

Messages go through :mod:`logging` (the ``pinsage`` logger and its children, named after the modules);
the package configures no handler (``pinsage`` on the command line does, in :mod:`pinsage.cli`), so
progress messages (INFO) appear only once an application configures logging, e.g.
``logging.basicConfig(level=logging.INFO)``; warnings reach stderr as Python's default.
"""
from pinsage._io import InputError
from pinsage._version import __version__
from pinsage.card import render_model_card, write_model_card
from pinsage.config import ModelConfig, PinSageConfig, SamplerConfig, TrainConfig
from pinsage.estimator import PinSageEmbedder
from pinsage.features import ItemFeatureEncoder
from pinsage.graph import CompressedGraph, HeteroGraph, InteractionGraph
from pinsage.graph.time_index import TimeIndex
from pinsage.inference import embed_all, embed_sampled
from pinsage.nn import ImportanceConv, PinSage, RelationalPinSageConv
from pinsage.sampling import (
    Block, CompressedSampler, ImportanceSampler, MetapathSampler, Neighborhoods, SampledNeighborhoods, all_neighborhoods,
    build_blocks, personalized_pagerank, ppr_rank_window,
)


def __getattr__(name: str):
    # ItemIndex needs faiss: import it on first use, so that training and the benchmarks do not load it
    if name == "ItemIndex":
        from pinsage.index import ItemIndex

        return ItemIndex
    raise AttributeError(f"module 'pinsage' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"ItemIndex"})


__all__ = [
    "InputError", "InteractionGraph", "CompressedGraph", "HeteroGraph", "TimeIndex", "ItemFeatureEncoder",
    "ImportanceSampler", "CompressedSampler", "MetapathSampler", "SampledNeighborhoods", "RelationalPinSageConv",
    "personalized_pagerank", "ppr_rank_window", "ImportanceConv", "PinSage", "Block", "Neighborhoods",
    "build_blocks", "all_neighborhoods", "embed_all", "embed_sampled", "PinSageConfig", "ModelConfig", "SamplerConfig",
    "TrainConfig", "PinSageEmbedder", "ItemIndex", "render_model_card", "write_model_card", "__version__",
]

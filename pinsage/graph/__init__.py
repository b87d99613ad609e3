"""The graph store: :class:`InteractionGraph` (id maps, CSR both ways, edge weights and times, save/load,
SciPy and PyG export), its compiled CSR helpers, and :mod:`pinsage.graph.histories` (groups' items in time
order, batched: the histories that recommendations start from), the walk weights' alias tables
(:mod:`pinsage.graph.weights`) and the compressed store (:class:`CompressedGraph`)."""
from pinsage.graph.compressed import CompressedGraph, choose_encoding
from pinsage.graph.hetero import HETERO_FORMAT_VERSION, HeteroGraph
from pinsage.graph.interaction import FORMAT_VERSION, InteractionGraph
from pinsage.graph.weights import WalkWeights, walk_weights

__all__ = ["InteractionGraph", "FORMAT_VERSION", "CompressedGraph", "choose_encoding", "WalkWeights", "walk_weights",
           "HeteroGraph", "HETERO_FORMAT_VERSION"]

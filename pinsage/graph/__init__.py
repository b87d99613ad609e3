"""The graph store: :class:`InteractionGraph` (id maps, CSR both ways, edge weights and times, save/load,
SciPy and PyG export), its compiled CSR helpers, and :mod:`pinsage.graph.histories` (groups' items in time
order, batched: the histories that recommendations start from)."""
from pinsage.graph.interaction import FORMAT_VERSION, InteractionGraph

__all__ = ["InteractionGraph", "FORMAT_VERSION"]

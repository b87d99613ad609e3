"""The graph store: :class:`InteractionGraph` (id maps, CSR both ways, edge weights and times, save/load,
SciPy and PyG export) and its compiled CSR helpers."""
from pinsage.graph.interaction import FORMAT_VERSION, InteractionGraph

__all__ = ["InteractionGraph", "FORMAT_VERSION"]

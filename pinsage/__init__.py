"""pinsage: PinSage item embeddings from interaction graphs, with FAISS related-item lookups."""
from pinsage._io import InputError

__version__ = "0.1.0"
__all__ = ["InputError", "__version__"]

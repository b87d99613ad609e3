"""Data sets: synthetic scale graphs, a planted-topic pin-board generator and MovieLens readers."""
from pinsage.datasets.movielens import (
    read_ml100k,
    read_ml100k_items,
    read_movielens_movies,
    read_movielens_ratings,
)
from pinsage.datasets.pinboard import PinBoardData, make_pinboard, pinboard_features_frame
from pinsage.datasets.synthetic import SIZES, powerlaw_bipartite, powerlaw_weights, scale_graph

__all__ = [
    "SIZES",
    "PinBoardData",
    "make_pinboard",
    "pinboard_features_frame",
    "powerlaw_bipartite",
    "powerlaw_weights",
    "read_ml100k",
    "read_ml100k_items",
    "read_movielens_movies",
    "read_movielens_ratings",
    "scale_graph",
]

"""Data sets: synthetic scale graphs, a planted-topic pin-board generator, MovieLens and Gowalla readers."""
from pinsage.datasets.gowalla import read_gowalla, read_user_item_lists
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
    "read_gowalla",
    "read_ml100k",
    "read_ml100k_items",
    "read_movielens_movies",
    "read_movielens_ratings",
    "read_user_item_lists",
    "scale_graph",
]

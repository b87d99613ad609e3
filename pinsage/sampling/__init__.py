"""Sampling: random-walk importance neighbourhoods and personalised PageRank."""
from pinsage.sampling.importance import ImportanceSampler, SampledNeighborhoods
from pinsage.sampling.ppr import personalized_pagerank, ppr_rank_window

__all__ = ["ImportanceSampler", "SampledNeighborhoods", "personalized_pagerank", "ppr_rank_window"]

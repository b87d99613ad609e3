"""Sampling: random-walk importance neighbourhoods and their types (sampled, fixed, K-hop blocks), PPR."""
from pinsage.sampling.blocks import Block, NeighborSampler, Neighborhoods, build_blocks, one_hop_block
from pinsage.sampling.compressed import CompressedSampler
from pinsage.sampling.exact import exact_neighborhoods
from pinsage.sampling.hetero_blocks import RelationalBlock, build_relational_blocks, relational_one_hop_block
from pinsage.sampling.importance import (
    ImportanceSampler, SampledNeighborhoods, all_neighborhoods, importance_neighborhoods,
)
from pinsage.sampling.metapath import MetapathSampler
from pinsage.sampling.ppr import personalized_pagerank, ppr_rank_window

__all__ = ["ImportanceSampler", "CompressedSampler", "SampledNeighborhoods", "Neighborhoods", "Block", "NeighborSampler", "build_blocks",
           "one_hop_block", "all_neighborhoods", "importance_neighborhoods", "exact_neighborhoods", "personalized_pagerank", "ppr_rank_window",
           "MetapathSampler", "RelationalBlock", "relational_one_hop_block", "build_relational_blocks"]

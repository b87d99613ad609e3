"""Neural network parts of PinSage: minibatch blocks, the importance convolution, the model."""
from pinsage.nn.block import Block, NeighborSampler, Neighborhoods, build_blocks, one_hop_block
from pinsage.nn.conv import AGGREGATORS, ImportanceConv
from pinsage.nn.model import PinSage

__all__ = [
    "AGGREGATORS",
    "Block",
    "ImportanceConv",
    "NeighborSampler",
    "Neighborhoods",
    "PinSage",
    "build_blocks",
    "one_hop_block",
]

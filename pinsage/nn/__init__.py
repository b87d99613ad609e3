"""Neural network modules of PinSage: the importance convolution and the model (modules only; their
minibatch inputs, :class:`pinsage.sampling.Block`, belong to sampling)."""
from pinsage.nn.conv import AGGREGATORS, ImportanceConv
from pinsage.nn.hetero_conv import COMBINES, RelationalPinSageConv
from pinsage.nn.model import PinSage

__all__ = ["AGGREGATORS", "ImportanceConv", "PinSage", "RelationalPinSageConv", "COMBINES"]

"""Node inputs: content encoders (numeric, multi-hot, categorical, hashed text), structural inputs
(spectral factors, log degree) and their assembly into the model's input matrix."""
from pinsage.features.content import ItemFeatureEncoder, check_unknown, hash_token
from pinsage.features.node_inputs import (
    NodeInputLayout, catalogue_items, catalogue_node_inputs, fit_node_inputs, node_inputs, rebuild_node_inputs,
)
from pinsage.features.structural import (
    LEAN_MIN_ITEMS, fold_in_spectral, log_degree_feature, spectral_item_features,
)

__all__ = ["ItemFeatureEncoder", "check_unknown", "hash_token", "NodeInputLayout", "node_inputs", "fit_node_inputs", "rebuild_node_inputs", "catalogue_items",
           "catalogue_node_inputs",
           "LEAN_MIN_ITEMS", "fold_in_spectral", "log_degree_feature", "spectral_item_features"]

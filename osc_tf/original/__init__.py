"""The original PyTorch study (baldassarreFe/iclr-osc-22 at 88293f4) in osc_tf.

- ``weights``: which of our variables each tensor of its ``state_dict`` becomes
  (``parameter_map``, ``import_state_dict``, ``export_state_dict``);
- ``hydra``: its Hydra run configuration as gin bindings (``translate_config``);
- ``checkpoint``: its ``checkpoint.<epoch>.pth`` (or an ``.npz``) into an osc_tf
  workdir (``import_checkpoint``, what ``scripts/import_original.py`` runs).
"""

from osc_tf.original.checkpoint import BASE_GIN_FILE, TORCH_INSTALL, import_checkpoint
from osc_tf.original.hydra import ImportFailure, translate_config
from osc_tf.original.weights import (
    Entry,
    assign,
    check_supported,
    cross_attention_decoder_entries,
    cross_attention_entries,
    export_state_dict,
    import_state_dict,
    mlp_entries,
    parameter_map,
    queries_entries,
    self_attention_entries,
    slot_attention_entries,
    vit_entries,
)

__all__ = [
    "BASE_GIN_FILE",
    "TORCH_INSTALL",
    "Entry",
    "ImportFailure",
    "assign",
    "check_supported",
    "cross_attention_decoder_entries",
    "cross_attention_entries",
    "export_state_dict",
    "import_checkpoint",
    "import_state_dict",
    "mlp_entries",
    "parameter_map",
    "queries_entries",
    "self_attention_entries",
    "slot_attention_entries",
    "translate_config",
    "vit_entries",
]

"""DistilBERT (Sanh et al., 2019): BERT's post-LayerNorm layers without token types, with its own tensor
names (``q_lin``, ``sa_layer_norm``, ``ffn.lin1``...) and config keys (``dim``, ``n_heads``...), which
``CONFIG_ALIASES`` maps onto the names the shared encoder reads.
"""

import numpy as np

from minisbert.architectures.checkpoint import EncoderTensorNames, load_encoder
from minisbert.architectures.layers import embeddings
from minisbert.architectures.reference_or_fast import run_encoder

# transformers' DistilBertConfig defaults; its LayerNorms have a fixed eps of 1e-12.
CONFIG_DEFAULTS = {
    "dim": 768,
    "n_heads": 12,
    "n_layers": 6,
    "hidden_dim": 3072,
    "activation": "gelu",
    "max_position_embeddings": 512,
    "pad_token_id": 0,
    "layer_norm_eps": 1e-12,
}
# shared encoder's name -> DistilBERT's config.json name
CONFIG_ALIASES = {
    "hidden_size": "dim",
    "num_attention_heads": "n_heads",
    "num_hidden_layers": "n_layers",
    "intermediate_size": "hidden_dim",
    "hidden_act": "activation",
}
# transformers' DistilBertModel tensor names
TENSOR_NAMES = EncoderTensorNames(
    prefixes=("distilbert.", "model."),
    layer="transformer.layer.{}",
    layer_parts={
        "qkv": ("attention.q_lin", "attention.k_lin", "attention.v_lin"),
        "attention_output": "attention.out_lin",
        "attention_norm": "sa_layer_norm",
        "intermediate": "ffn.lin1",
        "output": "ffn.lin2",
        "output_norm": "output_layer_norm",
    },
    token_types=False,
)


def embedding_ids(config, input_ids, token_type_ids):
    # input_ids (batch, seq) -> position_ids (1, seq) counting from 0, None: no token types
    return np.arange(input_ids.shape[1])[None, :], None


def forward(params, config, input_ids, attention_mask, token_type_ids=None, record=None,
            first_token_only=False):
    # input_ids, attention_mask (batch, seq) -> token embeddings (batch, seq, hidden); no token types
    position_ids, _ = embedding_ids(config, input_ids, token_type_ids)
    x = embeddings(params["embeddings"], input_ids, position_ids, config["layer_norm_eps"])  # (batch, seq, hidden)
    return run_encoder(x, params["layers"], attention_mask, config, record=record, first_token_only=first_token_only)


def load_parameters(tensors, config):
    return load_encoder(tensors, config, TENSOR_NAMES)

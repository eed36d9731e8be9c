"""DistilBERT (Sanh et al., 2019): BERT's post-LayerNorm layers without token types, with its own tensor
names (``q_lin``, ``sa_layer_norm``, ``ffn.lin1``...) and config keys (``dim``, ``n_heads``...), which
``CONFIG_ALIASES`` maps onto the names the shared encoder reads.
"""

import numpy as np

from minisbert.architectures.checkpoint import Checkpoint
from minisbert.architectures.layers import embeddings, encoder

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


def forward(params, config, input_ids, attention_mask, token_type_ids=None, record=None):
    # input_ids, attention_mask (batch, seq) -> token embeddings (batch, seq, hidden); no token types
    position_ids = np.arange(input_ids.shape[1])[None, :]  # (1, seq)
    x = embeddings(params["embeddings"], input_ids, position_ids, config["layer_norm_eps"])  # (batch, seq, hidden)
    return encoder(x, params["layers"], attention_mask, config, record=record)


def load_parameters(tensors, config):
    """transformers' DistilBertModel tensor names -> the nested parameter dict ``forward`` reads."""
    checkpoint = Checkpoint(tensors, prefixes=("distilbert.", "model."))
    hidden, intermediate = config["hidden_size"], config["intermediate_size"]
    params = {
        "embeddings": checkpoint.embeddings(config),
        "layers": [],
    }
    for i in range(config["num_hidden_layers"]):
        name = f"transformer.layer.{i}"
        params["layers"].append(
            {
                "qkv": checkpoint.fused_linear(
                    [f"{name}.attention.{part}" for part in ("q_lin", "k_lin", "v_lin")], hidden, hidden
                ),
                "attention_output": checkpoint.linear(f"{name}.attention.out_lin", hidden, hidden),
                "attention_norm": checkpoint.norm(f"{name}.sa_layer_norm", hidden),
                "intermediate": checkpoint.linear(f"{name}.ffn.lin1", hidden, intermediate),
                "output": checkpoint.linear(f"{name}.ffn.lin2", intermediate, hidden),
                "output_norm": checkpoint.norm(f"{name}.output_layer_norm", hidden),
            }
        )
    checkpoint.check("distilbert")
    return params

"""EuroBERT (Boizard et al., 2025), a Llama made bidirectional: token embeddings, then pre-norm layers of rotary
self-attention over the whole text (grouped-query when num_key_value_heads < num_attention_heads) and a SwiGLU
feed-forward block, RMSNorm before each; a final RMSNorm. These are Qwen3's layers without the per-head q/k norms
and without the causal mask, and run as qwen3.py's code.
"""

import functools

from minisbert.architectures import qwen3
from minisbert.architectures.modern_layers import check_value, compiled_activation, rope_settings, unsupported
from minisbert.architectures.reference_or_fast import run_layout
from minisbert.files.loading import POSITIVE_NUMBER

# transformers' EuroBertConfig defaults, for the keys a config.json may leave out.
CONFIG_DEFAULTS = {
    "hidden_act": "silu",
    "rms_norm_eps": 1e-5,
    "attention_bias": False,
    "mlp_bias": False,
    "max_position_embeddings": 8192,
    "pad_token_id": 128001,
}
DEFAULT_THETA = 10_000.0


def forward(params, config, input_ids, attention_mask, token_type_ids=None, record=None,
            first_token_only=False):
    # input_ids, attention_mask (batch, seq) -> token embeddings (batch, seq, hidden); positions count from the
    # first column, as transformers'. Packed unless recording.
    run = functools.partial(qwen3.layers_forward, params, config, causal=False)
    return run_layout(run, input_ids, attention_mask, record, first_token_only)


def load_parameters(tensors, config):
    """transformers' EuroBertModel tensor names (under ``model.`` in a task model's checkpoint) -> the nested
    parameter dict qwen3.layers_forward reads."""
    for key in ("attention_bias", "mlp_bias"):
        if config[key]:
            raise unsupported("eurobert", key, config[key], "the bias-free layers of the released models")
    check_value("eurobert", "rms_norm_eps", config["rms_norm_eps"], POSITIVE_NUMBER)
    compiled_activation(config["hidden_act"])
    theta = rope_settings(config, "full_attention", "eurobert", ("rope_theta",), DEFAULT_THETA)
    return qwen3.llama_parameters(tensors, config, "eurobert", theta, qk_norms=False)

"""Data path, step 2: the forward passes, one module per architecture, chosen by config.json's ``model_type``
(ARCHITECTURES, the one list of the architectures minisbert runs).

Each architecture module has ``CONFIG_DEFAULTS``, ``load_parameters(tensors, config)`` and
``forward(params, config, input_ids, attention_mask, token_type_ids=None, record=None, first_token_only=False)``
(reference_or_fast.py says what record and first_token_only ask for); one whose
config.json names things its own way maps them with ``CONFIG_ALIASES`` (shared name -> its name). Those built
on layers.encoder (BERT and its descendants) also have ``TENSOR_NAMES``, where their checkpoint keeps each
parameter (checkpoint.load_encoder reads it, training writes it back), and ``embedding_ids``, the position ids
and token types their embeddings read.

The shared pieces: layers.py (the readable encoder and its pieces), modern_layers.py (those of ModernBERT,
Qwen3, Gemma 3 and T5), fast_encoder.py (layers.encoder computed fast), reference_or_fast.py (the one switch
between the readable and the fast path), checkpoint.py (a checkpoint's tensors -> parameters), heads.py
(classification heads). This package may import minisbert.kernels and minisbert.runtime, never files/,
modules/, families/, the CLI or the side rooms.
"""

from minisbert.architectures import (
    bert,
    deberta_v2,
    distilbert,
    electra,
    eurobert,
    gemma3,
    modernbert,
    mpnet,
    nomic_bert,
    qwen3,
    roberta,
    t5,
)

ARCHITECTURES = {
    "bert": bert,
    "deberta-v2": deberta_v2,
    "distilbert": distilbert,
    "electra": electra,
    "eurobert": eurobert,
    "gemma3_text": gemma3,
    "modernbert": modernbert,
    "mpnet": mpnet,
    "nomic_bert": nomic_bert,
    "qwen3": qwen3,
    "roberta": roberta,
    "t5": t5,
    "mt5": t5,
    "xlm-roberta": roberta,
}


class UnsupportedArchitectureError(ValueError):
    """config.json names a model_type minisbert has no forward pass for."""


def architecture_for(config):
    """The architecture module for a config dict, and the config completed with its defaults."""
    model_type = config.get("model_type")
    if model_type not in ARCHITECTURES:
        raise UnsupportedArchitectureError(
            f"unsupported architecture: config.json has model_type {model_type!r}; "
            f"minisbert supports {', '.join(sorted(ARCHITECTURES))}"
        )
    module = ARCHITECTURES[model_type]
    config = {**module.CONFIG_DEFAULTS, **config}
    aliases = getattr(module, "CONFIG_ALIASES", {})
    return module, {**config, **{shared: config[own] for shared, own in aliases.items()}}

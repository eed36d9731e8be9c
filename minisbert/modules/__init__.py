"""The modules a sentence-transformers model chains, as listed in its modules.json: Transformer (tokens ->
token embeddings), Pooling (token embeddings -> sentence embedding), Dense (a linear layer), Normalize.
Each reads and extends a ``features`` dict of NumPy arrays, as sentence-transformers' modules do with tensors.
Data path step 3: may import the tokenizer, the architectures, reading files, kernels and runtime.
"""

import logging
from pathlib import Path

import numpy as np

from minisbert.kernels.pooling import max_pool, mean_pool
from minisbert.kernels.similarity import normalize_rows
from minisbert.files.loading import (
    COUNT, FLAG, POSITIVE_NUMBER, POSITIVE_SIZE, TEXT, TEXT_OR_TEXTS, ConfigError, ModelLoadError, read_config,
    read_json, require_keys,
)
from minisbert.architectures import architecture_for
from minisbert.architectures.checkpoint import Checkpoint
from minisbert.architectures.layers import ACTIVATIONS
from minisbert.tokenization import TOKENIZER_CONFIG_CHECKS, Tokenizer
from minisbert.files.weights import load_weights

logger = logging.getLogger(__name__)


# The keys of a transformers config.json the architectures read (DistilBERT's own names too).
TRANSFORMER_CONFIG_CHECKS = {
    "model_type": TEXT,
    **dict.fromkeys(
        ("hidden_size", "dim", "num_hidden_layers", "n_layers", "num_attention_heads", "n_heads", "intermediate_size",
         "hidden_dim", "vocab_size", "max_position_embeddings", "relative_attention_num_buckets", "head_dim"),
        POSITIVE_SIZE,
    ),
    "type_vocab_size": COUNT,
    "pad_token_id": COUNT,
    "layer_norm_eps": POSITIVE_NUMBER,
    "hidden_act": TEXT,
    "activation": TEXT,
}
SENTENCE_BERT_CONFIG_CHECKS = {"max_seq_length": POSITIVE_SIZE, "do_lower_case": FLAG}


class Transformer:
    """Tokenizer plus forward pass: features["input_ids"...] -> features["token_embeddings"]."""

    def __init__(self, folder):
        folder = Path(folder)
        sentence_bert_config = read_config(
            folder / "sentence_bert_config.json", SENTENCE_BERT_CONFIG_CHECKS, required=False
        ) or {}
        config = read_config(folder / "config.json", TRANSFORMER_CONFIG_CHECKS)
        self.architecture, self.config = architecture_for(config)
        self.max_seq_length = sentence_bert_config.get("max_seq_length") or default_max_seq_length(
            folder, self.config
        )
        self.tokenizer = Tokenizer.from_folder(
            folder, self.max_seq_length, sentence_bert_config.get("do_lower_case", False)
        )
        try:
            self.params = self.architecture.load_parameters(load_weights(folder), self.config)
        except KeyError as error:  # a key the architecture needs, with no default
            raise ConfigError(f"corrupt model file {folder / 'config.json'}: missing {error}") from None

    @classmethod
    def from_folder(cls, folder):
        return cls(folder)

    def tokenize(self, texts):
        return self.tokenizer(texts)

    def __call__(self, features, record=None):
        features["token_embeddings"] = self.architecture.forward(
            self.params,
            self.config,
            features["input_ids"],
            features["attention_mask"],
            features.get("token_type_ids"),
            record=record,
        )
        return features


def default_max_seq_length(folder, config):
    """Without sentence_bert_config.json: the tokenizer's model_max_length, capped at the position table."""
    tokenizer_config = read_config(folder / "tokenizer_config.json", TOKENIZER_CONFIG_CHECKS, required=False) or {}
    limits = [tokenizer_config.get("model_max_length"), config.get("max_position_embeddings")]
    limits = [limit for limit in limits if isinstance(limit, int) and limit > 0]
    if not limits:
        raise ModelLoadError(f"{folder}: no max_seq_length, model_max_length or max_position_embeddings found")
    return min(limits)


# sentence-transformers' pooling modes, in the order a legacy config (below) concatenates the ones it enables.
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
# Pooling configs saved before sentence-transformers 6 switch each mode on with its own key.
LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


POOLING_CONFIG_CHECKS = {
    "embedding_dimension": POSITIVE_SIZE,
    "word_embedding_dimension": POSITIVE_SIZE,
    "pooling_mode": TEXT_OR_TEXTS,
    "include_prompt": FLAG,
    **dict.fromkeys(LEGACY_POOLING_KEYS, FLAG),
}


class Pooling:
    """Token embeddings (batch, seq, hidden) -> features["sentence_embedding"] (batch, modes * hidden): each
    mode's vector, concatenated. Without ``include_prompt`` the prompt's tokens are left out."""

    def __init__(self, embedding_dimension, pooling_mode="mean", include_prompt=True):
        modes = (pooling_mode,) if isinstance(pooling_mode, str) else tuple(pooling_mode)
        invalid = [mode for mode in modes if mode not in POOLING_MODES]
        if invalid or not modes:
            raise ModelLoadError(f"unsupported pooling mode {invalid or modes}; supported: {POOLING_MODES}")
        self.modes = modes
        self.include_prompt = include_prompt
        self.sentence_embedding_dimension = len(modes) * embedding_dimension

    @classmethod
    def from_folder(cls, folder):
        config = read_config(Path(folder) / "config.json", POOLING_CONFIG_CHECKS)
        dimension = config.get("embedding_dimension", config.get("word_embedding_dimension"))
        if dimension is None:
            raise ModelLoadError(f"{Path(folder) / 'config.json'} gives no embedding_dimension")
        mode = config.get("pooling_mode")
        if mode is None:  # legacy keys: the enabled modes in sentence-transformers' order, mean if none
            mode = tuple(name for key, name in LEGACY_POOLING_KEYS.items() if config.get(key)) or "mean"
        try:
            return cls(dimension, mode, config.get("include_prompt", True))
        except ModelLoadError as error:
            raise ModelLoadError(f"{Path(folder) / 'config.json'}: {error}") from None

    def __call__(self, features):
        token_embeddings = features["token_embeddings"]  # (batch, seq, hidden)
        attention_mask = features["attention_mask"]  # (batch, seq)
        pooling_mask = attention_mask
        if not self.include_prompt and features.get("prompt_length"):
            pooling_mask = mask_without_prompt(attention_mask, features["prompt_length"])
        vectors = [pool(mode, token_embeddings, pooling_mask, attention_mask) for mode in self.modes]
        features["sentence_embedding"] = np.concatenate(vectors, axis=-1)  # (batch, modes * hidden)
        return features


def first_token_index(attention_mask):
    # attention_mask (batch, seq) -> (batch,): the first position the mask keeps (0 for a row it keeps none of)
    return attention_mask.argmax(axis=1)


def mask_without_prompt(attention_mask, prompt_length):
    # attention_mask (batch, seq) -> (batch, seq) with the prompt's tokens (after any left padding) zeroed
    positions = np.arange(attention_mask.shape[1])[None, :]  # (1, seq)
    prompt_end = first_token_index(attention_mask)[:, None] + prompt_length  # (batch, 1)
    return np.where(positions < prompt_end, 0, attention_mask)


def pool(mode, token_embeddings, mask, attention_mask):
    # token_embeddings (batch, seq, hidden), mask (batch, seq) of the tokens to pool, attention_mask (batch, seq)
    # the tokenizer's (weightedmean counts positions from its first token) -> (batch, hidden)
    rows = np.arange(len(token_embeddings))
    if mode == "cls":
        return token_embeddings[rows, first_token_index(mask)]
    if mode == "max":
        return max_pool(token_embeddings, mask)
    if mode == "mean":
        return mean_pool(token_embeddings, mask)
    if mode == "mean_sqrt_len_tokens":  # the sum divided by the square root of the token count
        counts = np.maximum(mask.sum(axis=1, keepdims=True), 1e-9).astype(token_embeddings.dtype)  # (batch, 1)
        return mean_pool(token_embeddings, mask) * np.sqrt(counts)
    if mode == "weightedmean":  # token i of a text weighs i (from 1)
        positions = np.arange(1, mask.shape[1] + 1)[None, :] - first_token_index(attention_mask)[:, None]
        return mean_pool(token_embeddings, mask * positions.astype(np.float32))
    if mode == "lasttoken":  # the last token the mask keeps, zeros for a row it keeps none of
        seq = mask.shape[1]
        from_end = np.where(mask.max(axis=1) != 0, mask[:, ::-1].argmax(axis=1), seq - 1)
        last = seq - 1 - from_end  # (batch,)
        return token_embeddings[rows, last] * mask[rows, last][:, None].astype(token_embeddings.dtype)
    raise AssertionError(mode)


# torch.nn activation classes a Dense module saves (by class name) -> the function in NumPy.
DENSE_ACTIVATIONS = {
    "Tanh": np.tanh,
    "Identity": lambda x: x,
    "ReLU": ACTIVATIONS["relu"],
    "GELU": ACTIVATIONS["gelu"],
    "SiLU": ACTIVATIONS["silu"],
    "Sigmoid": lambda x: 1 / (1 + np.exp(-x)),
}


DENSE_CONFIG_CHECKS = {
    "in_features": POSITIVE_SIZE,
    "out_features": POSITIVE_SIZE,
    "bias": FLAG,
    "use_residual": FLAG,
    "activation_function": TEXT,
    "module_input_name": TEXT,
    "module_output_name": TEXT,
}


class Dense:
    """A linear layer and an activation on features[module_input_name] (the sentence embedding by default)."""

    def __init__(self, folder):
        folder = Path(folder)
        config = read_config(folder / "config.json", DENSE_CONFIG_CHECKS)
        require_keys(config, folder / "config.json", ("in_features", "out_features"))
        self.in_features, self.out_features = config["in_features"], config["out_features"]
        try:
            self.activation = dense_activation(config.get("activation_function", "torch.nn.modules.activation.Tanh"))
        except ModelLoadError as error:
            raise ModelLoadError(f"{folder / 'config.json'}: {error}") from None
        self.input_name = config.get("module_input_name", "sentence_embedding")
        self.output_name = config.get("module_output_name") or self.input_name
        self.use_residual = config.get("use_residual", False)
        checkpoint = Checkpoint(load_weights(folder))
        self.weight = np.ascontiguousarray(checkpoint.take("linear.weight", (self.out_features, self.in_features)).T)
        self.bias = checkpoint.take("linear.bias", (self.out_features,)) if config.get("bias", True) else 0
        # With a residual connection and a change of size, the input is projected by a bias-free linear layer.
        self.residual = None
        if self.use_residual and self.in_features != self.out_features:
            self.residual = np.ascontiguousarray(
                checkpoint.take("residual.weight", (self.out_features, self.in_features)).T
            )
        checkpoint.check(f"Dense module in {folder}")
        self.sentence_embedding_dimension = self.out_features

    @classmethod
    def from_folder(cls, folder):
        return cls(folder)

    def __call__(self, features):
        x = features[self.input_name]  # (..., in_features)
        out = self.activation(x @ self.weight + self.bias)  # (..., out_features)
        if self.use_residual:
            out = out + (x if self.residual is None else x @ self.residual)
        features[self.output_name] = out
        return features


def dense_activation(class_path):
    """sentence-transformers loads only torch's own activation classes unless trust_remote_code; others
    fall back to Tanh (with a warning), as here."""
    if not class_path.startswith("torch."):
        logger.warning("Dense activation %r is not a torch class: using Tanh as sentence-transformers does", class_path)
        return np.tanh
    name = class_path.rsplit(".", 1)[-1]
    if name not in DENSE_ACTIVATIONS:
        raise ModelLoadError(f"unsupported Dense activation {class_path!r}; supported: {sorted(DENSE_ACTIVATIONS)}")
    return DENSE_ACTIVATIONS[name]


class Normalize:
    """features["sentence_embedding"] (or another module_input_name) scaled to unit L2 norm."""

    def __init__(self, module_input_name="sentence_embedding", module_output_name=None):
        self.input_name = module_input_name
        self.output_name = module_output_name or module_input_name

    @classmethod
    def from_folder(cls, folder):
        checks = {"module_input_name": TEXT, "module_output_name": TEXT}
        config = read_config(Path(folder) / "config.json", checks, required=False) or {}
        return cls(config.get("module_input_name", "sentence_embedding"), config.get("module_output_name"))

    def __call__(self, features):
        x = features.get(self.input_name)  # (..., dim)
        if x is not None:
            features[self.output_name] = normalize_rows(x.reshape(-1, x.shape[-1])).reshape(x.shape)
        return features


# modules.json names a module by its class path; old and new sentence-transformers spell it differently.
MODULE_TYPES = {"Transformer": Transformer, "Pooling": Pooling, "Dense": Dense, "Normalize": Normalize}


def load_modules(folder):
    """The chain of modules of a sentence-transformers folder; a bare transformers folder gets mean pooling."""
    folder = Path(folder)
    path = folder / "modules.json"
    module_list = read_json(path, required=False)
    if module_list is None:
        if not (folder / "config.json").is_file():
            raise ModelLoadError(f"{folder} is not a model folder: it has neither modules.json nor config.json")
        transformer = Transformer(folder)
        return [transformer, Pooling(transformer.config["hidden_size"])]
    if not isinstance(module_list, list):
        found = type(module_list).__name__
        raise ConfigError(f"corrupt model file {path}: expected a list of modules, found a {found}")
    modules = []
    for number, entry in enumerate(module_list):
        if not (isinstance(entry, dict) and isinstance(entry.get("type"), str)):
            raise ConfigError(f"corrupt model file {path}: module {number} must be an object with a 'type' string")
        module_path = entry.get("path", "")
        if not isinstance(module_path, str) or Path(module_path).is_absolute() or ".." in Path(module_path).parts:
            raise ConfigError(
                f"corrupt model file {path}: module {number} has the path {module_path!r:.80}, not a folder inside "
                "the model"
            )
        class_name = entry["type"].rsplit(".", 1)[-1]
        if class_name not in MODULE_TYPES:
            raise ModelLoadError(
                f"unsupported module {entry['type']!r} in modules.json; supported: {sorted(MODULE_TYPES)}"
            )
        modules.append(MODULE_TYPES[class_name].from_folder(folder / module_path))
    return modules

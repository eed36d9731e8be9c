"""Turns a checkpoint's flat ``name -> tensor`` dict into the parameters a forward pass reads.

Architectures name the tensors they need; this module finds them (with or without a prefix such as
``bert.``), checks their shapes and reports every missing or wrongly shaped tensor by name. BERT and its
descendants name theirs in one table each (``EncoderTensorNames``), read by one loader, ``load_encoder``, and
written back by training/checkpoint.py.
"""

import math
from dataclasses import dataclass

import numpy as np

from minisbert.files.loading import ConfigError


class CheckpointError(ValueError):
    """A model's weights lack a tensor the architecture needs, or hold one of the wrong shape."""


MAX_PROBLEMS = 40  # problems listed at most
# Old checkpoints (converted from TensorFlow) name LayerNorm's parameters gamma and beta; transformers
# renames them on load, and so does Checkpoint.
LEGACY_NAMES = {"LayerNorm.gamma": "LayerNorm.weight", "LayerNorm.beta": "LayerNorm.bias"}


def current_name(name):
    for legacy, current in LEGACY_NAMES.items():
        name = name.replace(legacy, current)
    return name


class Checkpoint:
    def __init__(self, tensors, prefixes=()):
        self.tensors = {current_name(name): tensor for name, tensor in tensors.items()}
        self.prefix = self._find_prefix(prefixes)
        self.problems = []
        self.total_elements = sum(tensor.size for tensor in self.tensors.values())

    def _find_prefix(self, prefixes):
        for prefix in prefixes:
            if any(name.startswith(prefix) for name in self.tensors):
                return prefix
        return ""

    def take(self, name, shape):
        """The float32 tensor ``name`` of ``shape``; a problem is recorded (and zeros returned) if not."""
        full_name = self.prefix + name
        tensor = self.tensors.get(full_name)
        if tensor is None:
            self.problems.append(f"missing tensor {full_name!r} (expected shape {tuple(shape)})")
        elif tuple(tensor.shape) != tuple(shape):
            self.problems.append(f"tensor {full_name!r} has shape {tuple(tensor.shape)}, expected {tuple(shape)}")
        else:
            return np.asarray(tensor, dtype=np.float32)
        # a placeholder no larger than the weights, and no more than a page of problems: a config claiming
        # absurd sizes or layer counts is refused here, before allocating or looping on what it claims
        if math.prod(shape) > self.total_elements or len(self.problems) > MAX_PROBLEMS:
            stopped = f"\n  (stopped there: the config asks for more than the {self.total_elements} weights hold)"
            self.check("config", stopped)
        return np.zeros(shape, dtype=np.float32)

    def linear(self, name, in_features, out_features):
        """A torch Linear as {"weight": (out, in), "bias": (out,)}: the weight as stored, not copied."""
        return {
            "weight": self.take(f"{name}.weight", (out_features, in_features)),
            "bias": self.take(f"{name}.bias", (out_features,)),
        }

    def fused_linear(self, names, in_features, out_features):
        """Several Linear layers reading the same input, stacked along the output: weight (n * out, in)."""
        layers = [self.linear(name, in_features, out_features) for name in names]
        return {
            "weight": np.concatenate([layer["weight"] for layer in layers]),
            "bias": np.concatenate([layer["bias"] for layer in layers]),
        }

    def embeddings(self, config):
        """The word and position tables and the LayerNorm after them, named as BERT and its descendants name them."""
        hidden = config["hidden_size"]
        return {
            "word": self.take(f"{EMBEDDING_NAMES['word']}.weight", (config["vocab_size"], hidden)),
            "position": self.take(
                f"{EMBEDDING_NAMES['position']}.weight", (config["max_position_embeddings"], hidden)
            ),
            "norm": self.norm(EMBEDDING_NAMES["norm"], hidden),
        }

    def norm(self, name, size, weight="weight", bias="bias"):
        return {"weight": self.take(f"{name}.{weight}", (size,)), "bias": self.take(f"{name}.{bias}", (size,))}

    def check(self, model_type, stopped=""):
        if self.problems:
            listed = "\n  ".join(self.problems[:MAX_PROBLEMS])
            raise CheckpointError(f"the weights do not fit the {model_type} config:\n  {listed}{stopped}")


# --- BERT and its descendants: one table of tensor names per architecture, one loader ---------------------

# key of the parameter dict's "embeddings" -> the module holding it, the same in every BERT-style checkpoint
EMBEDDING_NAMES = {
    "word": "embeddings.word_embeddings",
    "position": "embeddings.position_embeddings",
    "token_type": "embeddings.token_type_embeddings",
    "norm": "embeddings.LayerNorm",
}


@dataclass(frozen=True)
class EncoderTensorNames:
    """Where an architecture built on layers.encoder keeps its parameters in a transformers checkpoint. Names are
    torch modules': a Linear's or LayerNorm's ``.weight`` and ``.bias`` follow."""

    prefixes: tuple  # the encoder's prefix in a task model's checkpoint ("bert." in BertForMaskedLM), tried in order
    layer: str  # layer i's module, "{}" standing for i
    layer_parts: dict  # key of a layer's parameter dict -> its module within the layer; "qkv": (query, key, value)
    token_types: bool = True  # whether the embeddings have a token type table
    relative_attention_bias: str = None  # the (buckets, heads) position bias table's module, if any (MPNet)
    embeddings_project: str = None  # the embeddings -> hidden linear layer, present when their widths differ (ELECTRA)


def check_heads_divide_hidden(config):
    """For the architectures whose head size is hidden_size / num_attention_heads (T5, Qwen3 and Gemma 3 set
    theirs apart): a ConfigError unless the heads split the hidden size evenly."""
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    if hidden % heads:
        raise ConfigError(f"config.json: hidden_size {hidden} is not divisible by num_attention_heads {heads}")


def load_encoder(tensors, config, names):
    """A checkpoint's tensors -> the parameter dict of an architecture built on layers.encoder: "embeddings"
    ({"word", "position", "norm"} and "token_type"), "relative_attention_bias" and "embeddings_project" where
    the architecture has them, and "layers", each {"qkv" (query, key and value fused), "attention_output",
    "attention_norm", "intermediate", "output", "output_norm"}; every tensor found by ``names``."""
    check_heads_divide_hidden(config)
    checkpoint = Checkpoint(tensors, prefixes=names.prefixes)
    hidden, intermediate = config["hidden_size"], config["intermediate_size"]
    width = config.get("embedding_size", hidden)  # ELECTRA's embeddings may be narrower than its layers
    params = {"embeddings": checkpoint.embeddings({**config, "hidden_size": width})}
    if names.token_types:
        shape = (config["type_vocab_size"], width)
        params["embeddings"]["token_type"] = checkpoint.take(f"{EMBEDDING_NAMES['token_type']}.weight", shape)
    if names.relative_attention_bias:
        params["relative_attention_bias"] = checkpoint.take(
            f"{names.relative_attention_bias}.weight",
            (config["relative_attention_num_buckets"], config["num_attention_heads"]),
        )
    # key of a layer's parameter dict -> (in, out) features
    features = {
        "qkv": (hidden, hidden),
        "attention_output": (hidden, hidden),
        "intermediate": (hidden, intermediate),
        "output": (intermediate, hidden),
    }
    params["layers"] = []
    for i in range(config["num_hidden_layers"]):
        layer = names.layer.format(i)
        parts = {}
        for key, name in names.layer_parts.items():
            if key == "qkv":
                parts[key] = checkpoint.fused_linear([f"{layer}.{part}" for part in name], *features[key])
            elif key in features:
                parts[key] = checkpoint.linear(f"{layer}.{name}", *features[key])
            else:  # attention_norm, output_norm
                parts[key] = checkpoint.norm(f"{layer}.{name}", hidden)
        params["layers"].append(parts)
    if names.embeddings_project and width != hidden:
        params["embeddings_project"] = checkpoint.linear(names.embeddings_project, width, hidden)
    checkpoint.check(config["model_type"])
    return params

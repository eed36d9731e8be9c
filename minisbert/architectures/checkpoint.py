"""Turns a checkpoint's flat ``name -> tensor`` dict into the parameters a forward pass reads.

Architectures name the tensors they need; this module finds them (with or without a prefix such as
``bert.``), checks their shapes and reports every missing or wrongly shaped tensor by name.
"""

import math

import numpy as np


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
            "word": self.take("embeddings.word_embeddings.weight", (config["vocab_size"], hidden)),
            "position": self.take("embeddings.position_embeddings.weight", (config["max_position_embeddings"], hidden)),
            "norm": self.norm("embeddings.LayerNorm", hidden),
        }

    def norm(self, name, size, weight="weight", bias="bias"):
        return {"weight": self.take(f"{name}.{weight}", (size,)), "bias": self.take(f"{name}.{bias}", (size,))}

    def check(self, model_type, stopped=""):
        if self.problems:
            listed = "\n  ".join(self.problems[:MAX_PROBLEMS])
            raise CheckpointError(f"the weights do not fit the {model_type} config:\n  {listed}{stopped}")

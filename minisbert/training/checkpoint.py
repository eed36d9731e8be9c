"""Saving a trained model as a sentence-transformers folder that sentence-transformers and minisbert both load:
the original folder's configs and tokenizer, with each weight file rewritten in safetensors from the trained
parameters (architectures/checkpoint.py read them in; ``checkpoint_tensors`` is the way back, fused query/key/value
split again, names as transformers gives them). ``write_safetensors`` is the format's writer, in NumPy.
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np

from minisbert.files.loading import read_json
from minisbert.architectures.checkpoint import Checkpoint, current_name
from minisbert.modules import Dense, Transformer
from minisbert.files.weights import WEIGHT_FILES, load_weights

# model_type -> the prefixes its load_parameters accepts, and the tensor names of each part of a layer
LAYOUTS = {
    "bert": {
        "prefixes": ("bert.", "model."),
        "layer": "encoder.layer.{}",
        "qkv": ("attention.self.query", "attention.self.key", "attention.self.value"),
        "attention_output": "attention.output.dense",
        "attention_norm": "attention.output.LayerNorm",
        "intermediate": "intermediate.dense",
        "output": "output.dense",
        "output_norm": "output.LayerNorm",
    },
}
LAYOUTS["roberta"] = {**LAYOUTS["bert"], "prefixes": ("roberta.", "model.")}
LAYOUTS["xlm-roberta"] = LAYOUTS["roberta"]
LAYOUTS["mpnet"] = {
    **LAYOUTS["bert"],
    "prefixes": ("mpnet.", "model."),
    "qkv": ("attention.attn.q", "attention.attn.k", "attention.attn.v"),
    "attention_output": "attention.attn.o",
    "attention_norm": "attention.LayerNorm",
}
LAYOUTS["distilbert"] = {
    "prefixes": ("distilbert.", "model."),
    "layer": "transformer.layer.{}",
    "qkv": ("attention.q_lin", "attention.k_lin", "attention.v_lin"),
    "attention_output": "attention.out_lin",
    "attention_norm": "sa_layer_norm",
    "intermediate": "ffn.lin1",
    "output": "ffn.lin2",
    "output_norm": "output_layer_norm",
}
EMBEDDING_NAMES = {"word": "word_embeddings", "position": "position_embeddings", "token_type": "token_type_embeddings"}


def checkpoint_tensors(params, config):
    """A Transformer's parameter dict (or a gradient shaped as one) -> {transformers tensor name (no prefix):
    array}, the inverse of the architecture's load_parameters."""
    layout = LAYOUTS[config["model_type"]]
    tensors = {}
    for key, table in params["embeddings"].items():
        if key == "norm":
            tensors["embeddings.LayerNorm.weight"], tensors["embeddings.LayerNorm.bias"] = table["weight"], table["bias"]
        else:
            tensors[f"embeddings.{EMBEDDING_NAMES[key]}.weight"] = table
    if "relative_attention_bias" in params:
        tensors["encoder.relative_attention_bias.weight"] = params["relative_attention_bias"]
    for index, layer in enumerate(params["layers"]):
        prefix = layout["layer"].format(index)
        for part, value in layer.items():
            if part == "qkv":
                for name, weight, bias in zip(layout["qkv"], np.split(value["weight"], 3), np.split(value["bias"], 3)):
                    tensors[f"{prefix}.{name}.weight"], tensors[f"{prefix}.{name}.bias"] = weight, bias
            else:
                tensors[f"{prefix}.{layout[part]}.weight"], tensors[f"{prefix}.{layout[part]}.bias"] = value["weight"], value["bias"]
    return tensors


def dense_tensors(module):
    """A Dense module's weights as sentence-transformers stores them: linear.weight (out, in), linear.bias."""
    tensors = {"linear.weight": np.ascontiguousarray(module.weight.T)}
    if isinstance(module.bias, np.ndarray):
        tensors["linear.bias"] = module.bias
    return tensors


# NumPy dtype -> safetensors dtype name
SAFETENSORS_NAMES = {"float64": "F64", "float32": "F32", "float16": "F16", "int64": "I64", "int32": "I32",
                     "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}


def write_safetensors(path, tensors, metadata=None):
    """{name: array} -> a .safetensors file: 8-byte little-endian header size, a JSON header (padded with spaces
    to a multiple of 8 bytes) giving each tensor's dtype, shape and byte range, then the tensors' bytes."""
    arrays = {name: np.ascontiguousarray(tensor) for name, tensor in sorted(tensors.items())}
    header, offset = {"__metadata__": metadata or {"format": "pt"}}, 0
    for name, array in arrays.items():
        if array.dtype.name not in SAFETENSORS_NAMES:
            raise ValueError(f"cannot write tensor {name!r} of dtype {array.dtype} to safetensors")
        header[name] = {"dtype": SAFETENSORS_NAMES[array.dtype.name], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)
    # written beside, then renamed over ``path``: a model that memory-maps the old file (the one being trained,
    # saved back to its own folder's checkpoint) keeps reading it, where truncating it in place kills the
    # process with SIGBUS
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as file:
        file.write(len(header_bytes).to_bytes(8, "little"))
        file.write(header_bytes)
        for array in arrays.values():
            file.write(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    os.replace(partial, path)


def module_folders(model):
    """The folder of each of the model's modules, from its modules.json (the order load_modules read them in)."""
    entries = read_json(Path(model.folder) / "modules.json", required=False)
    if not isinstance(entries, list) or len(entries) != len(model.modules):
        raise ValueError(f"{model.folder} has no modules.json listing its {len(model.modules)} modules: "
                         "training saves sentence-transformers folders only")
    return [Path(entry.get("path", "")) for entry in entries]


def save_model(model, output_folder):
    """Writes the model, with its current (trained) parameters, as a sentence-transformers folder."""
    source, output = Path(model.folder), Path(output_folder)
    weight_names = set(WEIGHT_FILES) | {"pytorch_model.bin", "model.safetensors"}
    shutil.copytree(source, output, dirs_exist_ok=True,
                    ignore=lambda folder, names: [n for n in names if n in weight_names or n.endswith((".bin", ".safetensors"))])
    for module, relative in zip(model.modules, module_folders(model)):
        if isinstance(module, Transformer):
            original = {current_name(name): t for name, t in load_weights(source / relative).items()}
            prefix = Checkpoint(original, LAYOUTS[module.config["model_type"]]["prefixes"]).prefix
            trained = {prefix + name: t for name, t in checkpoint_tensors(module.params, module.config).items()}
            write_safetensors(output / relative / "model.safetensors", {**original, **trained})
        elif isinstance(module, Dense):
            write_safetensors(output / relative / "model.safetensors", dense_tensors(module))
    return output

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
from minisbert.architectures import ARCHITECTURES
from minisbert.architectures.checkpoint import EMBEDDING_NAMES, Checkpoint, current_name
from minisbert.modules import Dense, Transformer
from minisbert.files.weights import WEIGHT_FILES, load_weights

def checkpoint_tensors(params, config):
    """A Transformer's parameter dict (or a gradient shaped as one) -> {transformers tensor name (no prefix):
    array}, the inverse of the architecture's load_parameters (by the same table, its TENSOR_NAMES)."""
    names = ARCHITECTURES[config["model_type"]].TENSOR_NAMES
    tensors = {}
    for key, table in params["embeddings"].items():
        name = EMBEDDING_NAMES[key]
        if key == "norm":
            tensors[f"{name}.weight"], tensors[f"{name}.bias"] = table["weight"], table["bias"]
        else:
            tensors[f"{name}.weight"] = table
    if "relative_attention_bias" in params:
        tensors[f"{names.relative_attention_bias}.weight"] = params["relative_attention_bias"]
    for index, layer in enumerate(params["layers"]):
        prefix = names.layer.format(index)
        for part, value in layer.items():
            if part == "qkv":
                weights, biases = np.split(value["weight"], 3), np.split(value["bias"], 3)
                for name, weight, bias in zip(names.layer_parts["qkv"], weights, biases):
                    tensors[f"{prefix}.{name}.weight"], tensors[f"{prefix}.{name}.bias"] = weight, bias
            else:
                name = names.layer_parts[part]
                tensors[f"{prefix}.{name}.weight"], tensors[f"{prefix}.{name}.bias"] = value["weight"], value["bias"]
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
            prefix = Checkpoint(original, ARCHITECTURES[module.config["model_type"]].TENSOR_NAMES.prefixes).prefix
            trained = {prefix + name: t for name, t in checkpoint_tensors(module.params, module.config).items()}
            write_safetensors(output / relative / "model.safetensors", {**original, **trained})
        elif isinstance(module, Dense):
            write_safetensors(output / relative / "model.safetensors", dense_tensors(module))
    return output

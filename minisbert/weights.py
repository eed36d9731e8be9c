"""A model folder's weights as ``{name: array}``, floats widened to float32: ``model.safetensors``, sharded
safetensors (``model.safetensors.index.json``), or ``pytorch_model.bin`` (single or sharded) read without
torch by minisbert.torch_checkpoint. Safetensors is parsed here, since NumPy has no bfloat16.
"""

import json
import math
from pathlib import Path

import numpy as np

from minisbert.loading import ModelLoadError, read_json
from minisbert.torch_checkpoint import bfloat16_to_float32, load_torch_checkpoint

# safetensors dtype -> NumPy dtype of its little-endian bytes (bfloat16 read as uint16 bits).
SAFETENSORS_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "<u2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}
# The weight files minisbert reads, in the order transformers prefers them.
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def read_safetensors(path):
    """One .safetensors file: an 8-byte little-endian header length, a JSON header, then the raw bytes.

    The file is memory-mapped, not read: float32 tensors are read-only views of it, so loading touches each
    weight once (to lay it out for the forward pass) and of the word embedding table only the rows of the
    tokens actually met are ever paged in.
    """
    path = Path(path)
    if path.stat().st_size < 8:
        raise ModelLoadError(f"corrupt weights file {path}: unreadable header (the file is {path.stat().st_size} bytes)")
    data = np.memmap(path, dtype=np.uint8, mode="r")
    header_length = int.from_bytes(bytes(data[:8]), "little")
    try:
        header = json.loads(bytes(data[8 : 8 + header_length]))
    except (ValueError, UnicodeDecodeError) as error:
        raise ModelLoadError(f"corrupt weights file {path}: unreadable header ({error})") from None
    if not isinstance(header, dict):
        raise ModelLoadError(f"corrupt weights file {path}: unreadable header")
    body = data[8 + header_length :]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = np.dtype(SAFETENSORS_DTYPES[entry["dtype"]])
            shape, (start, end) = entry["shape"], entry["data_offsets"]
            if not all(isinstance(n, int) and n >= 0 for n in (*shape, start, end)):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            problem = f"tensor {name!r} has the header {entry!r:.100}"
            raise ModelLoadError(f"corrupt weights file {path}: {problem}") from None
        if not start <= end <= len(body) or end - start != math.prod(shape) * dtype.itemsize:
            raise ModelLoadError(f"corrupt weights file {path}: tensor {name!r} does not fit its bytes")
        values = body[start:end].view(dtype).reshape(shape)
        tensors[name] = bfloat16_to_float32(values) if entry["dtype"] == "BF16" else values
    return tensors


def read_weight_file(path):
    return read_safetensors(path) if path.suffix == ".safetensors" else load_torch_checkpoint(path)


def read_sharded(index_path):
    """Shards listed by an index's weight_map ({tensor name: file name}), merged into one dict."""
    index = read_json(index_path)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise ModelLoadError(f"corrupt {index_path}: no weight_map")
    tensors = {}
    for shard in sorted(set(weight_map.values())):
        shard_path = index_path.parent / shard
        if not shard_path.is_file():
            raise ModelLoadError(f"missing weights shard {shard_path} (listed in {index_path.name})")
        tensors.update(read_weight_file(shard_path))
    return tensors


def load_weights(folder):
    """A model folder's tensors as {name: array}: floating point as float32, integers as they are."""
    folder = Path(folder)
    present = [folder / name for name in WEIGHT_FILES if (folder / name).is_file()]
    if not present:
        raise ModelLoadError(f"no weights in {folder}: expected one of {', '.join(WEIGHT_FILES)}")
    path = present[0]
    tensors = read_sharded(path) if path.suffix == ".json" else read_weight_file(path)
    return {name: t.astype(np.float32, copy=False) if t.dtype.kind == "f" else t for name, t in tensors.items()}

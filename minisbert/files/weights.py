"""A model folder's weights as ``{name: array}``, floats widened to float32: ``model.safetensors``, sharded
safetensors (``model.safetensors.index.json``), or ``pytorch_model.bin`` (single or sharded) read without
torch by minisbert.files.torch_checkpoint. Safetensors is parsed here, since NumPy has no bfloat16.
"""

import collections
import json
import math
from pathlib import Path

import numpy as np

from minisbert.files.loading import ModelLoadError, read_json
from minisbert.files.torch_checkpoint import bfloat16_to_float32, load_torch_checkpoint

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


# The safetensors library's own limit on the JSON header.
MAX_SAFETENSORS_HEADER_BYTES = 100_000_000


def read_safetensors(path):
    """One .safetensors file: an 8-byte little-endian header length, a JSON header, then the raw bytes.

    The file is memory-mapped, not read: float32 tensors are read-only views of it, so loading touches each
    weight once (to lay it out for the forward pass) and of the word embedding table only the rows of the
    tokens actually met are ever paged in. The header is checked as the safetensors format promises
    (safetensors_header_entries) before any tensor is made.
    """
    path = Path(path)
    size = path.stat().st_size
    if size < 8:
        raise ModelLoadError(f"corrupt weights file {path}: unreadable header (the file is {size} bytes)")
    data = np.memmap(path, dtype=np.uint8, mode="r")
    header_length = int.from_bytes(bytes(data[:8]), "little")
    if header_length > min(size - 8, MAX_SAFETENSORS_HEADER_BYTES):
        raise ModelLoadError(
            f"corrupt weights file {path}: its header claims {header_length} bytes; the file has {size}"
        )
    try:
        entries = safetensors_header_entries(bytes(data[8 : 8 + header_length]), size - 8 - header_length)
    except ModelLoadError as error:
        raise ModelLoadError(f"corrupt weights file {path}: {error}") from None
    body = data[8 + header_length :]
    tensors = {}
    for name, dtype_name, shape, start, end in entries:
        values = body[start:end].view(SAFETENSORS_DTYPES[dtype_name]).reshape(shape)
        tensors[name] = bfloat16_to_float32(values) if dtype_name == "BF16" else values
    return tensors


def safetensors_header_entries(header_bytes, body_length):
    """[(name, dtype, shape, start, end)] from a safetensors header: a JSON object of {name: {"dtype", "shape",
    "data_offsets"}} (and an optional "__metadata__" of strings), whose tensors' byte ranges are each
    shape x itemsize long, and together tile the body exactly, in order, without gaps or overlaps."""
    if not header_bytes.lstrip(b" ").startswith(b"{"):
        raise ModelLoadError("unreadable header: not a JSON object")
    try:
        header = json.loads(header_bytes, object_pairs_hook=refuse_duplicate_keys)
    except RecursionError:
        raise ModelLoadError("unreadable header: JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise ModelLoadError(f"unreadable header ({str(error):.200})") from None
    metadata = header.pop("__metadata__", {})
    if not (isinstance(metadata, dict) and all(isinstance(value, str) for value in metadata.values())):
        raise ModelLoadError("__metadata__ must map names to strings")
    entries = []
    for name, entry in header.items():
        problem = f"tensor {name!r:.100} has the header {entry!r:.100}"
        if not (isinstance(entry, dict) and set(entry) == {"dtype", "shape", "data_offsets"}):
            raise ModelLoadError(f"{problem}: expected the keys dtype, shape, data_offsets")
        dtype_name, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not (isinstance(dtype_name, str) and dtype_name in SAFETENSORS_DTYPES):
            raise ModelLoadError(f"{problem}: dtype is not one of {', '.join(SAFETENSORS_DTYPES)}")
        if not (isinstance(shape, list) and isinstance(offsets, list) and len(offsets) == 2):
            raise ModelLoadError(f"{problem}: shape must be a list, data_offsets a list [start, end]")
        if not all(type(n) is int and n >= 0 for n in (*shape, *offsets)):
            raise ModelLoadError(f"{problem}: shape and data_offsets must be whole numbers >= 0")
        if len(shape) > 32 or math.prod(max(1, n) for n in shape) > np.iinfo(np.intp).max // 8:
            raise ModelLoadError(f"{problem}: shape {shape} is larger than any array can be")
        start, end = offsets
        if end - start != math.prod(shape) * np.dtype(SAFETENSORS_DTYPES[dtype_name]).itemsize:
            raise ModelLoadError(f"{problem}: its {end - start} bytes do not hold shape {shape} of {dtype_name}")
        entries.append((name, dtype_name, tuple(shape), start, end))
    position = 0
    for name, _, _, start, end in sorted(entries, key=lambda entry: (entry[3], entry[4])):
        if start != position:
            problem = "overlaps the tensor before it" if start < position else f"leaves bytes {position}-{start} unused"
            raise ModelLoadError(f"tensor {name!r:.100} (bytes {start}-{end}) {problem}")
        if end > body_length:
            raise ModelLoadError(
                f"tensor {name!r:.100} (bytes {start}-{end}) ends past the file's {body_length} bytes of data "
                "(truncated?)"
            )
        position = end
    if position != body_length:
        raise ModelLoadError(f"the tensors cover {position} bytes of data; the file holds {body_length}")
    return entries


def refuse_duplicate_keys(pairs):
    mapping = dict(pairs)
    if len(mapping) != len(pairs):
        twice = next(key for key, count in collections.Counter(key for key, _ in pairs).items() if count > 1)
        raise ModelLoadError(f"the header names {twice!r:.100} twice")
    return mapping


def read_weight_file(path):
    return read_safetensors(path) if path.suffix == ".safetensors" else load_torch_checkpoint(path)


def read_sharded(index_path):
    """Shards listed by an index's weight_map ({tensor name: file name}), merged into one dict."""
    index = read_json(index_path)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise ModelLoadError(f"corrupt {index_path}: no weight_map")
    shards = set(weight_map.values())
    for shard in shards:
        if not isinstance(shard, str) or Path(shard).name != shard or shard in ("", ".", ".."):
            raise ModelLoadError(
                f"corrupt {index_path}: weight_map names the shard {shard!r:.100}, not a file name beside it"
            )
    tensors = {}
    for shard in sorted(shards):
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

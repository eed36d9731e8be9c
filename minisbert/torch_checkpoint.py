"""Reads a PyTorch checkpoint (``pytorch_model.bin``, torch.save's zip format) without torch.

The file is a zip of ``data.pkl`` (a pickle of the state dict) and ``data/<key>`` (raw tensor storages).
A pickle can call any importable function, so it is read by a restricted unpickler that admits only the
few globals a state dict needs (tensor rebuild functions, storage types, OrderedDict) and refuses the rest.
"""

import collections
import pickle
import zipfile

import numpy as np

from minisbert.loading import ModelLoadError

# torch.<Name>Storage -> the NumPy dtype of its raw little-endian bytes (bfloat16 arrives as uint16 bits).
STORAGE_DTYPES = {
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "BFloat16Storage": "<u2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class UnsafeCheckpointError(ModelLoadError):
    """A checkpoint's pickle asks for something other than rebuilding tensors."""


def bfloat16_to_float32(bits):
    """bfloat16 (uint16 bit patterns) -> float32: a bfloat16 is the top half of a float32."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


class StorageType:
    """Stands in for torch.FloatStorage and its kin: only the element type is needed."""

    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(STORAGE_DTYPES[name])


class Storage:
    """One flat storage of a checkpoint; bfloat16 bits are widened to float32 as it is read."""

    def __init__(self, values, is_bfloat16):
        self.values = bfloat16_to_float32(values) if is_bfloat16 else values  # (numel,)


def rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """torch._utils._rebuild_tensor_v2 in NumPy: a strided view into a storage, copied out."""
    if not isinstance(storage, Storage):
        raise UnsafeCheckpointError("a tensor in the checkpoint is built from something other than a storage")
    size, stride = tuple(size), tuple(stride)
    numbers = (storage_offset, *size, *stride)
    if len(size) != len(stride) or not all(isinstance(n, int) and n >= 0 for n in numbers):
        raise ModelLoadError(f"corrupt checkpoint: tensor of size {size}, stride {stride}, offset {storage_offset}")
    values = storage.values
    if 0 not in size:
        last = storage_offset + sum((length - 1) * step for length, step in zip(size, stride))
        if last >= len(values):  # as_strided must never read past the storage
            raise ModelLoadError(f"corrupt checkpoint: tensor of size {size} reads past its storage")
    view = np.lib.stride_tricks.as_strided(
        values[storage_offset:], shape=size, strides=[step * values.itemsize for step in stride], writeable=False
    )
    return np.array(view)


def rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    """torch._utils._rebuild_parameter: an nn.Parameter is its tensor."""
    return data


ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
}


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, archive, prefix):
        super().__init__(file)
        self.archive = archive
        self.prefix = prefix

    def find_class(self, module, name):
        if (module, name) in ALLOWED_GLOBALS:
            return ALLOWED_GLOBALS[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(name)
        raise UnsafeCheckpointError(
            f"refusing to load the checkpoint: its pickle asks for {module}.{name}, which is not a tensor "
            "rebuild function or storage type (it could run arbitrary code); convert the model to safetensors"
        )

    def persistent_load(self, pid):
        # pid = ("storage", storage type, key, device, element count)
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], StorageType)):
            raise UnsafeCheckpointError(f"refusing to load the checkpoint: unexpected persistent id {pid!r:.80}")
        storage_type, key, numel = pid[1], str(pid[2]), pid[4]
        try:
            raw = self.archive.read(f"{self.prefix}data/{key}")
        except KeyError:
            raise ModelLoadError(f"corrupt checkpoint: storage data/{key} is missing from the archive") from None
        values = np.frombuffer(raw, dtype=storage_type.dtype)
        if len(values) < numel:
            raise ModelLoadError(f"corrupt checkpoint: storage data/{key} holds {len(values)} of {numel} elements")
        return Storage(values[:numel], storage_type.name == "BFloat16Storage")


def load_torch_checkpoint(path):
    """pytorch_model.bin -> {name: NumPy array}, without torch and without running code from the file."""
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(
            f"cannot read {path}: not a zip-format torch checkpoint (torch < 1.6 wrote a legacy format that "
            "minisbert does not read); convert it to model.safetensors"
        )
    with zipfile.ZipFile(path) as archive:
        pickles = [name for name in archive.namelist() if name.endswith("data.pkl")]
        if len(pickles) != 1:
            raise ModelLoadError(f"corrupt checkpoint {path}: expected one data.pkl, found {len(pickles)}")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = f"{prefix}byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
            raise ModelLoadError(f"cannot read {path}: it was saved on a big-endian machine")
        with archive.open(pickles[0]) as file:
            try:
                state_dict = RestrictedUnpickler(file, archive, prefix).load()
            except ModelLoadError:
                raise
            except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, IndexError) as error:
                raise ModelLoadError(f"corrupt checkpoint {path}: {type(error).__name__}: {error}") from None
    if not isinstance(state_dict, dict) or not all(isinstance(v, np.ndarray) for v in state_dict.values()):
        raise ModelLoadError(f"{path} is not a state dict (a mapping of names to tensors)")
    return dict(state_dict)

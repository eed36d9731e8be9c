"""Reads a PyTorch checkpoint (``pytorch_model.bin``, torch.save's zip format) without torch.

The file is a zip of ``data.pkl`` (a pickle of the state dict) and ``data/<key>`` (raw tensor storages).
A pickle can call any importable function, so it is read by a restricted unpickler that admits only the
few globals a state dict needs (tensor rebuild functions, storage types, OrderedDict) and refuses the rest.
"""

import collections
import io
import itertools
import math
import operator
import os
import pickle
import struct
import zipfile
import zlib

import numpy as np

from minisbert.files.loading import ModelLoadError

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

    def __setstate__(self, state):
        raise UnsafeCheckpointError("its pickle tries to change a storage type")


class Storage:
    """One flat storage of a checkpoint, read-only; floating point is widened (bfloat16, float16) or narrowed
    (float64) to float32 here, once per storage, as load_weights would do per tensor."""

    def __init__(self, key, values, type_name):
        self.key, self.type_name = key, type_name
        if type_name == "BFloat16Storage":
            values = bfloat16_to_float32(values)
        elif values.dtype.kind == "f":
            values = values.astype(np.float32, copy=False)
        values.flags.writeable = False
        self.values = values  # (numel,)

    def __setstate__(self, state):
        raise UnsafeCheckpointError("its pickle tries to change a storage")


class StridedTensor:
    """What torch._utils._rebuild_tensor_v2 describes: a strided view into a storage. It is checked and copied
    out only once the state dict is complete, so that an error can name the tensor."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __setstate__(self, state):
        raise UnsafeCheckpointError("its pickle tries to change a tensor after building it")

    def layout(self):
        return self.storage.key, self.offset, self.size, self.stride

    def element_count(self):
        return math.prod(self.size)

    def check(self, name):
        """Refuses a view that reads past its storage or claims more elements than the storage holds (a stride
        of 0 repeats elements: a few bytes of file could otherwise ask for terabytes)."""
        described = f"tensor {name!r:.100} (size {self.size!r:.80}, stride {self.stride!r:.80}, "
        described += f"offset {self.offset!r:.80})"
        if not (isinstance(self.size, tuple) and isinstance(self.stride, tuple) and len(self.size) == len(self.stride)):
            raise ModelLoadError(f"{described}: size and stride must be tuples of one length")
        if not all(type(n) is int and n >= 0 for n in (self.offset, *self.size, *self.stride)):
            raise ModelLoadError(f"{described}: size, stride and offset must be whole numbers >= 0")
        length = len(self.storage.values)
        if self.element_count() > length - min(self.offset, length):
            raise ModelLoadError(f"{described} claims more elements than its storage's {length}")
        if self.element_count() and self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) >= length:
            raise ModelLoadError(f"{described} reads past its storage of {length} elements")

    def is_contiguous(self):
        expected = list(itertools.accumulate((1, *self.size[:0:-1]), operator.mul))[::-1]
        return all(n == 1 or s == e for n, s, e in zip(self.size, self.stride, expected))

    def to_array(self):
        """A read-only view of the storage when the tensor is contiguous (as saved tensors are), else a copy."""
        values = self.storage.values
        if self.is_contiguous():
            return values[self.offset : self.offset + self.element_count()].reshape(self.size)
        view = np.lib.stride_tricks.as_strided(
            values[self.offset :], shape=self.size, strides=[s * values.itemsize for s in self.stride], writeable=False
        )
        return np.array(view)


def rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """torch._utils._rebuild_tensor_v2, deferred: a StridedTensor, checked and copied out by name later."""
    if not isinstance(storage, Storage):
        raise UnsafeCheckpointError("a tensor in the checkpoint is built from something other than a storage")
    return StridedTensor(storage, storage_offset, size, stride)


def rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    """torch._utils._rebuild_parameter: an nn.Parameter is its tensor."""
    return data


def tensors_from_state_dict(state_dict):
    """{name: StridedTensor} -> {name: array}, each checked against its storage. Contiguous tensors are views;
    the others are copies, which together may hold no more elements than the storages (a layout saved twice
    counts once), so that nothing built is larger than twice the file."""
    if not isinstance(state_dict, dict):
        raise ModelLoadError(f"the pickle holds a {type(state_dict).__name__}, not a state dict of tensors")
    for name, tensor in state_dict.items():
        if not isinstance(tensor, StridedTensor):
            raise ModelLoadError(f"entry {name!r:.80} of the state dict is a {type(tensor).__name__}, not a tensor")
        tensor.check(name)
    layouts = {tensor.layout(): tensor for tensor in state_dict.values() if not tensor.is_contiguous()}
    storages = {tensor.storage.key: len(tensor.storage.values) for tensor in state_dict.values()}
    claimed = sum(tensor.element_count() for tensor in layouts.values())
    if claimed > sum(storages.values()):
        raise ModelLoadError(
            f"its non-contiguous tensors claim {claimed} elements in all, more than their storages' "
            f"{sum(storages.values())}"
        )
    arrays = {}  # one array per layout: a tensor saved twice is built once
    for tensor in state_dict.values():
        if tensor.layout() not in arrays:
            arrays[tensor.layout()] = tensor.to_array()
    return {name: arrays[tensor.layout()] for name, tensor in state_dict.items()}


ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
}


class RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler (the C one allocates what a length or memo index claims before reading it: a
    few bytes of pickle could ask for gigabytes), admitting only the globals of ALLOWED_GLOBALS and storages
    read once each, whose bytes together may not exceed the checkpoint file's size."""

    def __init__(self, file, archive, prefix, byte_budget):
        super().__init__(file)
        self.archive, self.prefix, self.byte_budget = archive, prefix, byte_budget
        self.storages = {}

    def load_bytearray8(self):
        # pickle's own BYTEARRAY8 allocates the length it claims before reading: read what is there instead
        length = int.from_bytes(self.read(8), "little")
        data = self.read(length)
        if len(data) != length:
            raise pickle.UnpicklingError(f"BYTEARRAY8 claims {length} bytes; the pickle holds {len(data)}")
        self.append(bytearray(data))

    def load_build(self):
        # BUILD sets the state of the object below it: torch pickles an OrderedDict's _metadata this way; on
        # anything else (one of minisbert's own rebuild functions, say) it would change minisbert itself
        if not isinstance(self.stack[-2], collections.OrderedDict):
            raise UnsafeCheckpointError(f"its pickle sets the state of a {type(self.stack[-2]).__name__}")
        super().load_build()

    def check_keys(self, items):
        # before a dict hashes them: hashing a tuple built from shared references visits every element, so a
        # tiny pickle could spend minutes in it; a state dict's keys are strings
        for key in items[::2]:
            if not isinstance(key, str):
                raise ModelLoadError(f"the pickle has a dictionary key of type {type(key).__name__}, not a string")

    def load_setitem(self):
        self.check_keys(self.stack[-2:])
        super().load_setitem()

    def load_setitems(self):  # and DICT: after MARK, self.stack holds the items since the mark
        self.check_keys(self.stack)
        super().load_setitems()

    def load_dict(self):
        self.check_keys(self.stack)
        super().load_dict()

    dispatch = {**pickle._Unpickler.dispatch, pickle.BYTEARRAY8[0]: load_bytearray8, pickle.BUILD[0]: load_build,
                pickle.SETITEM[0]: load_setitem, pickle.SETITEMS[0]: load_setitems, pickle.DICT[0]: load_dict}

    def find_class(self, module, name):
        if (module, name) in ALLOWED_GLOBALS:
            return ALLOWED_GLOBALS[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(name)
        raise UnsafeCheckpointError(
            f"its pickle asks for {module}.{name}, which is not a tensor rebuild function or storage type (it "
            "could run arbitrary code); convert the model to safetensors"
        )

    def persistent_load(self, pid):
        # pid = ("storage", storage type, key, device, element count)
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], StorageType)):
            raise UnsafeCheckpointError(f"unexpected persistent id {pid!r:.80}")
        storage_type, key, numel = pid[1], str(pid[2])[:100], pid[4]
        if type(numel) is not int or numel < 0:
            raise ModelLoadError(f"storage data/{key} has the element count {numel!r:.80}")
        if key not in self.storages:
            self.storages[key] = Storage(key, self.read_storage(key, storage_type), storage_type.name)
        storage = self.storages[key]
        if storage.type_name != storage_type.name or len(storage.values) < numel:
            raise ModelLoadError(
                f"storage data/{key} is read as {storage_type.name} of {numel} elements, which it is not"
            )
        return storage

    def read_storage(self, key, storage_type):
        try:
            info = self.archive.getinfo(f"{self.prefix}data/{key}")
        except KeyError:
            raise ModelLoadError(f"storage data/{key} is missing from the archive") from None
        self.byte_budget -= info.file_size
        if self.byte_budget < 0:
            raise ModelLoadError(f"storage data/{key}: the storages unpack to more bytes than the file holds")
        raw = self.archive.read(info)
        return np.frombuffer(raw, dtype=storage_type.dtype, count=len(raw) // storage_type.dtype.itemsize)


def load_torch_checkpoint(path):
    """pytorch_model.bin -> {name: NumPy array}, without torch and without running code from the file."""
    try:
        return read_checkpoint(path)
    except UnsafeCheckpointError as error:
        raise UnsafeCheckpointError(f"refusing to load the checkpoint {path}: {error}") from None
    except ModelLoadError as error:
        raise ModelLoadError(f"corrupt checkpoint {path}: {error}") from None


def read_checkpoint(path):
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(
            "not a zip-format torch checkpoint (torch < 1.6 wrote a legacy format that minisbert does not read); "
            "convert it to model.safetensors"
        )
    file_size = os.path.getsize(path)
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [name for name in archive.namelist() if name.endswith("data.pkl")]
            if len(pickles) != 1:
                raise ModelLoadError(f"expected one data.pkl, found {len(pickles)}")
            prefix = pickles[0][: -len("data.pkl")]
            byteorder = f"{prefix}byteorder"
            if byteorder in archive.namelist() and archive.read(byteorder)[:16].strip() != b"little":
                raise ModelLoadError("it was saved on a big-endian machine")
            pickle_info = archive.getinfo(pickles[0])
            if pickle_info.file_size > file_size:
                raise ModelLoadError(f"data.pkl unpacks to {pickle_info.file_size} bytes, more than the file holds")
            pickled = io.BytesIO(archive.read(pickle_info))
            state_dict = RestrictedUnpickler(pickled, archive, prefix, file_size - pickle_info.file_size).load()
            return tensors_from_state_dict(state_dict)
    except ModelLoadError:
        raise
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, LookupError, TypeError, ValueError,
            AttributeError, ArithmeticError, RecursionError, struct.error, NotImplementedError, RuntimeError,
            zlib.error, OSError) as error:  # RuntimeError, zlib.error, OSError: encrypted or compressed members
        raise ModelLoadError(f"{type(error).__name__}: {str(error):.200}") from None

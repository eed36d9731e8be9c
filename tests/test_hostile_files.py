"""Hostile or corrupt weight files are refused with minisbert's own error naming the file and the tensor:
nothing in them is executed, nothing is allocated beyond (a small multiple of) the file's size, nothing is
read or written outside the model folder. Rows of REFUSALS go into the README's table (tests/refusals.py).

The .bin files are written without torch, by a pickler that names the same globals torch.save names, so that
each field (size, stride, offset, element count) can be made to lie."""

import collections
import json
import math
import os
import pickle
import struct
import sys
import tracemalloc
import types
import zipfile
from functools import partial

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minisbert.files.loading import ModelLoadError
from minisbert.files.torch_checkpoint import UnsafeCheckpointError, load_torch_checkpoint
from minisbert.files.weights import load_weights, read_safetensors
from refusals import Refusal, check

# ---------------------------------------------------------------------------------------------------------
# Writing torch-format checkpoints without torch

def fake_module(name, *things):
    """A module in sys.modules holding ``things``, made once however often this file is imported (pickle finds
    a global by its module's name and checks it is the very object pickled)."""
    if name not in sys.modules:
        module = types.ModuleType(name)
        for thing in things:
            thing.__module__ = name
            setattr(module, thing.__name__, thing)
        sys.modules[name] = module
    return sys.modules[name]


def _rebuild_tensor_v2(*arguments):  # stands in for torch._utils._rebuild_tensor_v2 in the pickle
    raise AssertionError("only pickled, never called")


class FloatStorage:  # stands in for torch.FloatStorage
    pass


FAKE_TORCH_UTILS = fake_module("fake_torch_utils", _rebuild_tensor_v2)
FAKE_TORCH = fake_module("fake_torch", FloatStorage)


class Storage:
    def __init__(self, key, values, storage_type=FAKE_TORCH.FloatStorage):
        self.key, self.values, self.storage_type = key, np.asarray(values), storage_type


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.arguments = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return FAKE_TORCH_UTILS._rebuild_tensor_v2, self.arguments


class StoragePickler(pickle.Pickler):
    def __init__(self, file, element_counts):
        super().__init__(file, protocol=2)
        self.element_counts = element_counts

    def persistent_id(self, thing):
        if isinstance(thing, Storage):
            count = self.element_counts.get(thing.key, len(thing.values))
            return ("storage", thing.storage_type, thing.key, "cpu", count)
        return None


def torch_pickle(state_dict, element_counts=None):
    """The data.pkl torch.save would write for ``state_dict`` ({name: Tensor}), globals renamed to torch's."""
    import io

    file = io.BytesIO()
    StoragePickler(file, element_counts or {}).dump(state_dict)
    return file.getvalue().replace(b"cfake_torch_utils\n", b"ctorch._utils\n").replace(b"cfake_torch\n", b"ctorch\n")


def write_checkpoint(path, state_dict, element_counts=None, data_pkl=None, compress=False):
    """A zip laid out as torch.save writes one: archive/data.pkl, archive/data/<key>, byteorder, version."""
    storages = {}
    for tensor in state_dict.values() if isinstance(state_dict, dict) else []:
        if isinstance(tensor, Tensor):
            storages[tensor.arguments[0].key] = tensor.arguments[0]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", data_pkl if data_pkl is not None else torch_pickle(state_dict, element_counts))
        archive.writestr("archive/byteorder", "little")
        for key, storage in storages.items():
            archive.writestr(f"archive/data/{key}", storage.values.astype(np.float32).tobytes())
        archive.writestr("archive/version", "3\n")
    return path


def one_tensor(tmp_path, size, stride, offset=0, elements=6, count=None):
    storage = Storage("0", np.arange(elements, dtype=np.float32))
    state = {"encoder.weight": Tensor(storage, offset, size, stride)}
    path = write_checkpoint(tmp_path / "pytorch_model.bin", state, {"0": count} if count is not None else None)
    return partial(load_torch_checkpoint, path)


def test_the_fake_torch_writer_writes_what_torch_reads(tmp_path):
    torch = pytest.importorskip("torch")
    storage = Storage("0", np.arange(6, dtype=np.float32))
    state = {"a": Tensor(storage, 0, (2, 3), (3, 1)), "b": Tensor(storage, 1, (2, 2), (1, 3))}
    path = write_checkpoint(tmp_path / "pytorch_model.bin", state)
    expected = torch.load(path, weights_only=True)
    loaded = load_torch_checkpoint(path)
    for name in state:
        np.testing.assert_array_equal(loaded[name], expected[name].numpy())


class RunsShellCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class WritesFile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def pickled_payload(tmp_path, payload):
    path = write_checkpoint(tmp_path / "pytorch_model.bin", {}, data_pkl=pickle.dumps(payload, protocol=2))
    return partial(load_torch_checkpoint, path)


def raw_pickle(tmp_path, data):
    return partial(load_torch_checkpoint, write_checkpoint(tmp_path / "pytorch_model.bin", {}, data_pkl=data))


def storage_zip_bomb(tmp_path):
    # 20 MB of zeros deflate to ~20 KB: the storage unpacks to far more bytes than the file holds
    storage = Storage("0", np.zeros(5_000_000, dtype=np.float32))
    state = {"bomb": Tensor(storage, 0, (5_000_000,), (1,))}
    return partial(load_torch_checkpoint, write_checkpoint(tmp_path / "pytorch_model.bin", state, compress=True))


def many_copies_of_one_storage(tmp_path):
    # 60 overlapping transposed (non-contiguous) views of one 64 KiB storage: as copies, 1.9 MiB
    storage = Storage("0", np.zeros(16384, dtype=np.float32))
    state = {f"copy{i}": Tensor(storage, i, (64, 128), (1, 128)) for i in range(60)}
    return partial(load_torch_checkpoint, write_checkpoint(tmp_path / "pytorch_model.bin", state))


def legacy_pickle(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(pickle.dumps(RunsShellCommand(tmp_path / "marker")))
    return partial(load_torch_checkpoint, path)


# ---------------------------------------------------------------------------------------------------------
# Writing safetensors files with any header

def safetensors_bytes(header, body=b"", header_length=None):
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text) if header_length is None else header_length) + text + body


def read_header(tmp_path, header, body=b"", header_length=None):
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_bytes(header, body, header_length))
    return partial(read_safetensors, path)


def f32(offsets, shape=(2,)):
    return {"dtype": "F32", "shape": list(shape), "data_offsets": list(offsets)}


def sharded(tmp_path, shard_name):
    (tmp_path / "outside.safetensors").write_bytes(safetensors_bytes({"a": f32((0, 8))}, bytes(8)))
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": shard_name}}))
    return partial(load_weights, folder)


W = "weights (.bin)"
S = "weights (safetensors)"
REFUSALS = [
    Refusal(W, "pickle that would run a shell command", UnsafeCheckpointError, "asks for posix.system",
            lambda p: pickled_payload(p, {"weight": RunsShellCommand(p / "marker")})),
    Refusal(W, "pickle that would open a file", UnsafeCheckpointError, "asks for io.open",
            lambda p: pickled_payload(p, {"weight": WritesFile(p / "marker")})),
    Refusal(W, "legacy (non-zip) pickle file", ModelLoadError, "not a zip-format torch checkpoint", legacy_pickle),
    Refusal(W, "tensor with stride 0 (1 stored element claimed as 2^28)", ModelLoadError,
            "tensor 'encoder.weight' (size (268435456,), stride (0,), offset 0) claims more elements than its storage",
            lambda p: one_tensor(p, (2**28,), (0,))),
    Refusal(W, "tensor whose strides reach past its storage", ModelLoadError,
            "tensor 'encoder.weight' (size (2, 3), stride (4, 1), offset 0) reads past its storage of 6 elements",
            lambda p: one_tensor(p, (2, 3), (4, 1))),
    Refusal(W, "tensor larger than its storage (4 TiB claimed)", ModelLoadError,
            "claims more elements than its storage's 6", lambda p: one_tensor(p, (2**20, 2**20), (2**20, 1))),
    Refusal(W, "tensor offset past its storage", ModelLoadError, "claims more elements than its storage's 6",
            lambda p: one_tensor(p, (3,), (1,), offset=5)),
    Refusal(W, "negative stride", ModelLoadError, "size, stride and offset must be whole numbers >= 0",
            lambda p: one_tensor(p, (3,), (-1,))),
    Refusal(W, "size and stride of different lengths", ModelLoadError, "size and stride must be tuples of one length",
            lambda p: one_tensor(p, (2, 3), (1,))),
    Refusal(W, "size that is not a number", ModelLoadError, "size, stride and offset must be whole numbers >= 0",
            lambda p: one_tensor(p, ("3",), (1,))),
    Refusal(W, "storage holding fewer elements than declared", ModelLoadError,
            "storage data/0 is read as FloatStorage of 100 elements", lambda p: one_tensor(p, (3,), (1,), count=100)),
    Refusal(W, "storage missing from the archive", ModelLoadError, "storage data/9 is missing",
            lambda p: raw_pickle(p, torch_pickle({"w": Tensor(Storage("9", [1.0]), 0, (1,), (1,))}))),
    Refusal(W, "storage that unpacks to more than the file (zip bomb)", ModelLoadError,
            "the storages unpack to more bytes than the file holds", storage_zip_bomb),
    Refusal(W, "many overlapping non-contiguous views of one storage", ModelLoadError,
            "non-contiguous tensors claim 491520 elements in all, more than their storages' 16384",
            many_copies_of_one_storage),
    Refusal(W, "pickle claiming a 1 TiB byte string", ModelLoadError, "corrupt checkpoint",
            lambda p: raw_pickle(p, b"\x80\x04\x8e" + struct.pack("<Q", 2**40) + b"x.")),
    Refusal(W, "pickle storing to memo slot 2^32-1", ModelLoadError, "not a state dict",
            lambda p: raw_pickle(p, b"\x80\x02K\x01r\xff\xff\xff\xff.")),
    Refusal(W, "pickle of something other than a dict", ModelLoadError, "the pickle holds a list, not a state dict",
            lambda p: raw_pickle(p, pickle.dumps([1, 2], protocol=2))),
    Refusal(W, "state dict entry that is not a tensor", ModelLoadError,
            "entry 'w' of the state dict is a int, not a tensor", lambda p: raw_pickle(p, pickle.dumps({"w": 3}, protocol=2))),
    Refusal(W, "state dict key that is not a string (a shared nested tuple)", ModelLoadError,
            "the pickle has a dictionary key of type tuple, not a string",
            lambda p: raw_pickle(p, pickle.dumps({((1, 2),) * 2: 3}, protocol=2))),
    Refusal(W, "pickle of a dict keyed by a tuple of 10^9 shared references (1.2 KB)", ModelLoadError,
            "the pickle has a dictionary key of type tuple, not a string", lambda p: raw_pickle(p, shared_tuple_key_pickle())),
    Refusal(W, "pickle setting the state of minisbert's own rebuild function", UnsafeCheckpointError,
            "its pickle sets the state of a function",
            lambda p: raw_pickle(p, b"\x80\x02ctorch._utils\n_rebuild_parameter\nN}X\x0c\x00\x00\x00__defaults__"
                                    b"K\x07K\x08\x86s\x86b.")),
    Refusal(W, "truncated pickle", ModelLoadError, "corrupt checkpoint",
            lambda p: raw_pickle(p, torch_pickle({"w": Tensor(Storage("0", [1.0]), 0, (1,), (1,))})[:-5])),
    Refusal(W, "two data.pkl in one archive", ModelLoadError, "expected one data.pkl, found 2",
            lambda p: partial(load_torch_checkpoint, two_pickles(p))),
    Refusal(S, "file shorter than the 8-byte header length", ModelLoadError, "unreadable header (the file is 3 bytes)",
            lambda p: (p / "model.safetensors").write_bytes(b"abc") and partial(read_safetensors, p / "model.safetensors")),
    Refusal(S, "header length past the end of the file", ModelLoadError, "its header claims 1000000 bytes",
            lambda p: read_header(p, {}, header_length=1_000_000)),
    Refusal(S, "header that is not JSON", ModelLoadError, "unreadable header", lambda p: read_header(p, b"{not json")),
    Refusal(S, "header that is a JSON list", ModelLoadError, "unreadable header: not a JSON object",
            lambda p: read_header(p, b"[1, 2]")),
    Refusal(S, "header of deeply nested JSON", ModelLoadError, "unreadable header: JSON nested too deeply",
            lambda p: read_header(p, b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")),
    Refusal(S, "header naming a tensor twice", ModelLoadError, "the header names 'a' twice",
            lambda p: read_header(p, b'{"a": 1, "a": 2}')),
    Refusal(S, "tensor entry that is not an object", ModelLoadError, "expected the keys dtype, shape, data_offsets",
            lambda p: read_header(p, {"a": "F32"})),
    Refusal(S, "unknown dtype", ModelLoadError, "dtype is not one of F64, F32",
            lambda p: read_header(p, {"a": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}, bytes(16))),
    Refusal(S, "negative shape", ModelLoadError, "shape and data_offsets must be whole numbers >= 0",
            lambda p: read_header(p, {"a": f32((0, 8), shape=(-2,))}, bytes(8))),
    Refusal(S, "empty tensor of an impossible shape [0, 2^62]", ModelLoadError, "is larger than any array can be",
            lambda p: read_header(p, {"a": f32((0, 0), shape=(0, 2**62))})),
    Refusal(S, "fractional data offset", ModelLoadError, "shape and data_offsets must be whole numbers >= 0",
            lambda p: read_header(p, {"a": f32((0, 7.5))}, bytes(8))),
    Refusal(S, "data_offsets of three numbers", ModelLoadError, "data_offsets a list [start, end]",
            lambda p: read_header(p, {"a": f32((0, 4, 8))}, bytes(8))),
    Refusal(S, "byte range not shape x itemsize", ModelLoadError, "its 12 bytes do not hold shape [2] of F32",
            lambda p: read_header(p, {"a": f32((0, 12))}, bytes(12))),
    Refusal(S, "overlapping tensors", ModelLoadError, "tensor 'b' (bytes 4-12) overlaps the tensor before it",
            lambda p: read_header(p, {"a": f32((0, 8)), "b": f32((4, 12))}, bytes(12))),
    Refusal(S, "gap between tensors", ModelLoadError, "tensor 'b' (bytes 12-20) leaves bytes 8-12 unused",
            lambda p: read_header(p, {"a": f32((0, 8)), "b": f32((12, 20))}, bytes(20))),
    Refusal(S, "tensor past the end of the file (truncated)", ModelLoadError,
            "tensor 'a' (bytes 0-8) ends past the file's 4 bytes of data", lambda p: read_header(p, {"a": f32((0, 8))}, bytes(4))),
    Refusal(S, "bytes after the last tensor", ModelLoadError, "the tensors cover 8 bytes of data; the file holds 16",
            lambda p: read_header(p, {"a": f32((0, 8))}, bytes(16))),
    Refusal(S, "__metadata__ that is not strings", ModelLoadError, "__metadata__ must map names to strings",
            lambda p: read_header(p, {"__metadata__": {"format": 3}})),
    Refusal(S, "shard index naming a file outside the folder", ModelLoadError,
            "names the shard '../outside.safetensors', not a file name beside it",
            lambda p: sharded(p, "../outside.safetensors")),
    Refusal(S, "shard index naming an absolute path", ModelLoadError, "not a file name beside it",
            lambda p: sharded(p, str(p / "outside.safetensors"))),
]


def shared_tuple_key_pickle(depth=9):
    """A dict whose one key is a tuple of 10 references to a tuple of 10 references ... depth levels down: a few
    hundred bytes, but hashing the key visits 10^depth elements."""
    data = bytearray(b"\x80\x02}(K\x01")  # PROTO 2, EMPTY_DICT, MARK, the innermost element 1
    for level in range(depth):
        data += b"q" + bytes([level]) + b"0"  # BINPUT level, POP: memo the element, off the stack
        data += b"(" + (b"h" + bytes([level])) * 10 + b"t"  # MARK, 10 x BINGET, TUPLE
    return bytes(data + b"K\x03u.")  # the value 3, SETITEMS, STOP


def two_pickles(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a/data.pkl", pickle.dumps({}))
        archive.writestr("b/data.pkl", pickle.dumps({}))
    return path


def tree(folder):
    return sorted((str(path.relative_to(folder)), path.stat().st_size) for path in folder.rglob("*"))


@pytest.mark.parametrize("refusal", REFUSALS, ids=str)
def test_hostile_file_is_refused_naming_it_without_running_allocating_or_writing(refusal, tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    read = refusal.trigger(folder)
    before = tree(tmp_path)
    tracemalloc.start()
    try:
        message = check(refusal, read)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    files = [path for path in folder.rglob("*") if path.is_file()]
    assert any(str(path) in message for path in files), message  # names the file
    largest = max(path.stat().st_size for path in files)
    # the reader may hold the file's bytes a few times over (read, widened to float32), never what it claims
    assert peak < 4 * largest + 1_000_000, f"{refusal}: {peak} bytes traced for a file of {largest}"
    assert not (folder / "marker").exists()
    assert tree(tmp_path) == before  # nothing written


def test_a_tensor_saved_twice_and_views_of_one_storage_still_load(tmp_path):
    storage = Storage("0", np.arange(12, dtype=np.float32))
    state = {
        "tied.a": Tensor(storage, 0, (3, 4), (4, 1)),
        "tied.b": Tensor(storage, 0, (3, 4), (4, 1)),
        "transposed": Tensor(storage, 0, (4, 3), (1, 4)),
        "tail": Tensor(storage, 8, (4,), (1,)),
        "empty": Tensor(storage, 12, (0, 5), (5, 1)),
    }
    loaded = load_torch_checkpoint(write_checkpoint(tmp_path / "pytorch_model.bin", state))
    values = np.arange(12, dtype=np.float32)
    np.testing.assert_array_equal(loaded["tied.a"], values.reshape(3, 4))
    np.testing.assert_array_equal(loaded["transposed"], values.reshape(3, 4).T)
    np.testing.assert_array_equal(loaded["tail"], values[8:])
    assert loaded["empty"].shape == (0, 5)
    assert not loaded["tied.a"].flags.writeable


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_give_only_minisbert_format_errors(tmp_path, data):
    for name, reader in (("model.safetensors", read_safetensors), ("pytorch_model.bin", load_torch_checkpoint)):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ModelLoadError, match=name):
            reader(tmp_path / name)


def test_a_bytearray_claiming_more_than_the_pickle_holds_allocates_nothing(tmp_path):
    # BYTEARRAY8 with a length of 2^56: pickle's own loader allocates it before reading (found by the test below)
    load = raw_pickle(tmp_path, b"\x80\x02\x96" + (2**56).to_bytes(8, "little") + b"\x01")
    tracemalloc.start()
    try:
        with pytest.raises(ModelLoadError, match="pytorch_model.bin"):
            load()
        assert tracemalloc.get_traced_memory()[1] < 1 << 20
    finally:
        tracemalloc.stop()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_arbitrary_pickles_in_a_torch_zip_give_only_minisbert_format_errors(tmp_path, data):
    with pytest.raises(ModelLoadError, match="pytorch_model.bin"):
        raw_pickle(tmp_path, b"\x80\x02" + data)()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2**70) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=8,
)
ENTRIES = st.fixed_dictionaries({
    "dtype": st.sampled_from(["F32", "F16", "BF16", "I64", "U8", "BOOL", "F8"]) | JSON_VALUES,
    "shape": st.lists(st.integers(-1, 5), max_size=3) | JSON_VALUES,
    "data_offsets": st.lists(st.integers(-1, 64), min_size=2, max_size=2) | JSON_VALUES,
})


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.dictionaries(st.text(max_size=6), ENTRIES | JSON_VALUES, max_size=4), body=st.integers(0, 64))
def test_arbitrary_safetensors_headers_load_or_give_minisbert_format_errors(tmp_path, header, body):
    try:
        tensors = read_header(tmp_path, header, bytes(body))()
    except ModelLoadError:
        return
    # accepted: then the header was sound, and each tensor has its declared shape
    assert tensors.keys() == header.keys() - {"__metadata__"}
    for name, tensor in tensors.items():
        assert list(tensor.shape) == header[name]["shape"]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    elements=st.integers(0, 40),
    offset=st.integers(0, 45),
    layout=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 12)), max_size=3),
)
def test_arbitrary_tensor_layouts_load_as_torch_would_read_them_or_are_refused(tmp_path, elements, offset, layout):
    size, stride = tuple(n for n, _ in layout), tuple(s for _, s in layout)
    tensor = Tensor(Storage("0", np.arange(elements)), offset, size, stride)
    path = write_checkpoint(tmp_path / "pytorch_model.bin", {"t": tensor})
    count = math.prod(size)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    try:
        loaded = load_torch_checkpoint(path)["t"]
    except ModelLoadError:  # refused exactly when the tensor claims more than its storage holds
        assert count > elements - min(offset, elements) or (count and last >= elements)
        return
    values = np.arange(elements, dtype=np.float32)
    expected = [values[offset + sum(i * s for i, s in zip(index, stride))] for index in np.ndindex(*size)]
    np.testing.assert_array_equal(loaded, np.array(expected, dtype=np.float32).reshape(size))

"""minisbert.files.weights and torch_checkpoint: weights in every format a model folder may hold give the same
numbers (safetensors in float32, float16, bfloat16, sharded; pytorch_model.bin read without torch; the real
all-MiniLM-L6-v2 as pytorch_model.bin); float32 safetensors are memory-mapped (views of the file, not copies);
a broken file gets an error that says what is wrong with it; missing or misshaped tensors are named. Hostile
files (made to crash, allocate or run code) are test_hostile_files.py's."""

import shutil

import numpy as np
import pytest
import torch
from inputs import FEW_HARD_TEXTS, HARD_TEXTS
from safetensors.torch import load_file, save_file

from minisbert import SentenceTransformer
from minisbert.architectures.checkpoint import CheckpointError
from minisbert.files.loading import ModelLoadError
from minisbert.files.torch_checkpoint import load_torch_checkpoint
from minisbert.files.weights import load_weights, read_safetensors


def odd_tensors():
    """Tensors torch.save writes in unusual ways: views with offsets and strides, several dtypes, 0-d, empty."""
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=generator)
    return {
        "float32": base,
        "transposed_view": base.t(),
        "offset_view": base[2:, 1:4],
        "float16": base.half(),
        "bfloat16": base.to(torch.bfloat16),
        "float64": base.double(),
        "int64": torch.arange(7),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
    }


def as_numpy(tensor):
    return (tensor.float() if tensor.dtype in (torch.bfloat16, torch.float16) else tensor).numpy()


def test_torch_checkpoint_reader_matches_torch_load(tmp_path):
    tensors = odd_tensors()
    torch.save(tensors, tmp_path / "pytorch_model.bin")
    loaded = load_torch_checkpoint(tmp_path / "pytorch_model.bin")
    assert loaded.keys() == tensors.keys()
    for name, tensor in tensors.items():
        np.testing.assert_array_equal(loaded[name].astype(as_numpy(tensor).dtype), as_numpy(tensor), err_msg=name)
        assert loaded[name].shape == tuple(tensor.shape), name


def test_safetensors_reader_matches_safetensors_library(tmp_path):
    tensors = {name: t.contiguous() for name, t in odd_tensors().items() if "view" not in name}
    save_file(tensors, tmp_path / "model.safetensors")
    loaded = read_safetensors(tmp_path / "model.safetensors")
    for name, tensor in load_file(tmp_path / "model.safetensors").items():
        np.testing.assert_array_equal(loaded[name].astype(as_numpy(tensor).dtype), as_numpy(tensor), err_msg=name)


def test_load_weights_widens_half_precision_to_float32(tmp_path):
    save_file({"half": torch.ones(2).half(), "brain": torch.ones(2).to(torch.bfloat16), "ids": torch.arange(2)},
              tmp_path / "model.safetensors")
    weights = load_weights(tmp_path)
    assert (weights["half"].dtype, weights["brain"].dtype, weights["ids"].dtype) == (np.float32, np.float32, np.int64)


@pytest.fixture(scope="module")
def dense_model(tiny_model):
    # a Dense module too, so that its own weights file is converted along with the transformer's
    return tiny_model("bert", pooling_mode="cls", dense=[(8, "Tanh", True)], normalize=True)


def copy_with_weights(source, destination, convert):
    """A copy of a model folder whose every model.safetensors is replaced by ``convert(tensors, folder)``."""
    shutil.copytree(source, destination)
    for path in sorted(destination.rglob("model.safetensors")):
        tensors = load_file(path)
        path.unlink()
        convert(tensors, path.parent)
    return destination


def test_pytorch_model_bin_gives_the_same_output_as_safetensors(dense_model, tmp_path):
    folder, model, _ = dense_model
    copy = copy_with_weights(folder, tmp_path / "bin", lambda t, f: torch.save(t, f / "pytorch_model.bin"))
    assert not list(copy.rglob("*.safetensors"))
    np.testing.assert_array_equal(SentenceTransformer(copy).encode(FEW_HARD_TEXTS), model.encode(FEW_HARD_TEXTS))


def test_sharded_safetensors_give_the_same_output(dense_model, tmp_path):
    from transformers import AutoModel

    folder, model, _ = dense_model
    copy = tmp_path / "sharded"
    shutil.copytree(folder, copy)
    (copy / "model.safetensors").unlink()
    AutoModel.from_pretrained(folder).save_pretrained(copy, max_shard_size="300KB")
    assert len(list(copy.glob("model-*-of-*.safetensors"))) > 1
    np.testing.assert_array_equal(SentenceTransformer(copy).encode(FEW_HARD_TEXTS), model.encode(FEW_HARD_TEXTS))


def test_bfloat16_weights_equal_float32_weights_rounded_the_same_way(dense_model, tmp_path):
    folder, _, _ = dense_model

    def to_bfloat16(tensors, where):
        save_file({name: t.to(torch.bfloat16) for name, t in tensors.items()}, where / "model.safetensors")

    def rounded_float32(tensors, where):
        save_file({name: t.to(torch.bfloat16).float() for name, t in tensors.items()}, where / "model.safetensors")

    bfloat16 = copy_with_weights(folder, tmp_path / "bf16", to_bfloat16)
    rounded = copy_with_weights(folder, tmp_path / "rounded", rounded_float32)
    expected = SentenceTransformer(rounded).encode(FEW_HARD_TEXTS)
    np.testing.assert_array_equal(SentenceTransformer(bfloat16).encode(FEW_HARD_TEXTS), expected)


def test_missing_tensor_is_named(dense_model, tmp_path):
    folder, _, _ = dense_model

    def drop_one(tensors, where):
        tensors.pop("encoder.layer.1.attention.self.key.bias", None)
        save_file(tensors, where / "model.safetensors")

    with pytest.raises(CheckpointError, match=r"missing tensor 'encoder\.layer\.1\.attention\.self\.key\.bias'"):
        SentenceTransformer(copy_with_weights(folder, tmp_path / "missing", drop_one))


def test_misshaped_tensor_is_named_with_both_shapes(dense_model, tmp_path):
    folder, _, _ = dense_model

    def reshape_one(tensors, where):
        if "linear.weight" in tensors:
            tensors["linear.weight"] = tensors["linear.weight"][:, :5].contiguous()
        save_file(tensors, where / "model.safetensors")

    with pytest.raises(CheckpointError, match=r"'linear\.weight' has shape \(8, 5\), expected \(8, 32\)"):
        SentenceTransformer(copy_with_weights(folder, tmp_path / "misshaped", reshape_one))


def test_prefixed_checkpoint_loads(dense_model, tmp_path):
    # BertForMaskedLM and friends store the encoder under "bert."
    folder, model, _ = dense_model

    def add_prefix(tensors, where):
        prefix = "" if "linear.weight" in tensors else "bert."
        save_file({prefix + name: t for name, t in tensors.items()}, where / "model.safetensors")

    copy = copy_with_weights(folder, tmp_path / "prefixed", add_prefix)
    np.testing.assert_array_equal(SentenceTransformer(copy).encode(FEW_HARD_TEXTS), model.encode(FEW_HARD_TEXTS))


def test_folder_without_weights_names_the_files_looked_for(tmp_path):
    with pytest.raises(ValueError, match="model.safetensors.*pytorch_model.bin"):
        load_weights(tmp_path)


def test_legacy_layer_norm_names_load(dense_model, tmp_path):
    # TensorFlow-era checkpoints call LayerNorm's weight and bias gamma and beta
    folder, model, _ = dense_model

    def legacy_names(tensors, where):
        renamed = {n.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): t
                   for n, t in tensors.items()}
        save_file(renamed, where / "model.safetensors")

    copy = copy_with_weights(folder, tmp_path / "legacy", legacy_names)
    np.testing.assert_array_equal(SentenceTransformer(copy).encode(FEW_HARD_TEXTS), model.encode(FEW_HARD_TEXTS))


def test_float32_weights_are_read_only_views_of_the_file(default_model_folder):
    word_embeddings = load_weights(default_model_folder)["embeddings.word_embeddings.weight"]
    assert word_embeddings.dtype == np.float32 and not word_embeddings.flags.writeable
    assert isinstance(word_embeddings.base, np.memmap) or isinstance(word_embeddings, np.memmap)


@pytest.mark.parametrize(
    "content, problem",
    [(b"", "unreadable header"), (b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!", "unreadable header")],
)
def test_a_broken_weights_file_is_named(tmp_path, content, problem):
    (tmp_path / "model.safetensors").write_bytes(content)
    with pytest.raises(ModelLoadError, match=problem):
        load_weights(tmp_path)


def test_a_truncated_weights_file_names_the_tensor(tmp_path, default_model_folder):
    (tmp_path / "model.safetensors").write_bytes((default_model_folder / "model.safetensors").read_bytes()[:100_000])
    with pytest.raises(ModelLoadError, match="ends past the file.* bytes of data"):
        load_weights(tmp_path)


def test_the_real_models_pytorch_model_bin_gives_its_safetensors_embeddings(model, default_model_folder, model_copy):
    (model_copy / "model.safetensors").unlink()
    torch.save(load_file(default_model_folder / "model.safetensors"), model_copy / "pytorch_model.bin")
    np.testing.assert_array_equal(SentenceTransformer(model_copy).encode(HARD_TEXTS), model.encode(HARD_TEXTS))


def test_a_shard_index_nested_too_deeply_is_refused(tmp_path):
    from minisbert.files.weights import read_sharded

    index = tmp_path / "model.safetensors.index.json"
    index.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelLoadError, match="model.safetensors.index.json: JSON nested too deeply"):
        read_sharded(index)

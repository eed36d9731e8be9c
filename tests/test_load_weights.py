"""load_weights reads model.safetensors itself (memory-mapped float32, no copy): the same tensors as the
safetensors library reads, bf16/f16 widened as torch widens them, and a clear error for a broken file."""

import numpy as np
import pytest

from minisbert.loading import ModelLoadError, load_weights


def test_weights_equal_what_safetensors_reads(default_model_folder):
    from safetensors.numpy import load_file

    expected = load_file(default_model_folder / "model.safetensors")
    actual = load_weights(default_model_folder)
    assert sorted(actual) == sorted(expected)
    for name, tensor in expected.items():
        assert actual[name].dtype == tensor.dtype and actual[name].shape == tensor.shape
        np.testing.assert_array_equal(actual[name], tensor)


def test_half_precision_weights_are_widened_to_float32_as_torch_does(tmp_path):
    import torch
    from safetensors.torch import save_file

    tensors = {"bf16": torch.randn(3, 5).to(torch.bfloat16), "f16": torch.randn(4).to(torch.float16)}
    tensors["ids"] = torch.arange(6, dtype=torch.int64)
    save_file(tensors, tmp_path / "model.safetensors")
    loaded = load_weights(tmp_path)
    for name in ("bf16", "f16"):
        assert loaded[name].dtype == np.float32
        np.testing.assert_array_equal(loaded[name], tensors[name].float().numpy())
    np.testing.assert_array_equal(loaded["ids"], np.arange(6))


@pytest.mark.parametrize(
    "content, problem",
    [(b"", "bad header size"), (b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!", "unreadable header")],
)
def test_a_broken_weights_file_is_named(tmp_path, content, problem):
    (tmp_path / "model.safetensors").write_bytes(content)
    with pytest.raises(ModelLoadError, match=problem):
        load_weights(tmp_path)


def test_a_truncated_weights_file_names_the_tensor(tmp_path, default_model_folder):
    (tmp_path / "model.safetensors").write_bytes((default_model_folder / "model.safetensors").read_bytes()[:100_000])
    with pytest.raises(ModelLoadError, match="does not fit its bytes"):
        load_weights(tmp_path)

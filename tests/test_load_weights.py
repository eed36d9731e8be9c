"""model.safetensors is memory-mapped (float32 tensors are views of the file, not copies), and a broken
file gets an error that says what is wrong with it."""

import numpy as np
import pytest

from minisbert.files.loading import ModelLoadError
from minisbert.files.weights import load_weights


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

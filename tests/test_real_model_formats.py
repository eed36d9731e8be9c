"""The real all-MiniLM-L6-v2 (bundled) in other formats gives the same embeddings: its weights as
pytorch_model.bin (read without torch) and its tokenizer rebuilt from vocab.txt alone."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from inputs import HARD_TEXTS

from minisbert import SentenceTransformer


@pytest.fixture
def linked_copy(default_model_folder, tmp_path):
    """A copy of the bundled model folder whose files are links to the originals."""
    copy = tmp_path / "model"
    shutil.copytree(default_model_folder, copy, copy_function=lambda source, target: Path(target).symlink_to(source))
    return copy


def test_pytorch_model_bin_matches_safetensors(model, linked_copy):
    import torch
    from safetensors.torch import load_file

    tensors = load_file(linked_copy / "model.safetensors")
    (linked_copy / "model.safetensors").unlink()
    torch.save(tensors, linked_copy / "pytorch_model.bin")
    np.testing.assert_array_equal(SentenceTransformer(linked_copy).encode(HARD_TEXTS), model.encode(HARD_TEXTS))


def test_tokenizer_from_vocab_txt_matches_tokenizer_json(model, linked_copy):
    (linked_copy / "tokenizer.json").unlink()
    rebuilt = SentenceTransformer(linked_copy)
    for text in HARD_TEXTS:
        assert rebuilt.tokenizer.tokens(text) == model.tokenizer.tokens(text), text
    np.testing.assert_array_equal(rebuilt.encode(HARD_TEXTS), model.encode(HARD_TEXTS))

"""What is checked of each entry of minisbert.known_models (the hub cannot be reached here): minisbert has its
model_type, and a tiny random model of that model_type with the entry's module chain (pooling modes, Dense
activations with sizes shrunk, Normalize, prompt names) matches sentence-transformers within 1e-5. The hidden
size, dimension, tokenizer and weights of an entry are not checked, but for the bundled all-MiniLM-L6-v2's."""

import numpy as np
import pytest
from inputs import FEW_HARD_TEXTS
from tiny_models import max_relative_difference

from minisbert.known_models import KNOWN_MODELS
from minisbert.architectures import ARCHITECTURES


# Today's architectures, with their tokenizers' padding side.
MODERN_ARCHITECTURES = {"modernbert": "right", "qwen3": "left", "gemma3_text": "right", "t5": "right"}


@pytest.mark.parametrize("known", KNOWN_MODELS, ids=[known.hub_id for known in KNOWN_MODELS])
def test_tiny_model_with_the_same_chain_matches_reference(tiny_model, tmp_path, known):
    assert known.model_type in ARCHITECTURES
    pooling = known.pooling[0] if len(known.pooling) == 1 else known.pooling
    if known.model_type in MODERN_ARCHITECTURES:
        model, reference = tiny_modern_model(tmp_path, known, pooling)
    else:
        dense = [(16, activation, True) for _, activation in known.dense]
        _, model, reference = tiny_model(known.model_type, pooling_mode=pooling, dense=dense, normalize=known.normalize)
    assert max_relative_difference(model.encode(FEW_HARD_TEXTS), reference.encode(FEW_HARD_TEXTS)) <= 1e-5
    for name in known.prompts:  # prompts are texts: any text will do for the chain
        assert max_relative_difference(
            model.encode(FEW_HARD_TEXTS[:4], prompt_name=name), reference.encode(FEW_HARD_TEXTS[:4], prompt_name=name)
        ) <= 1e-5


def tiny_modern_model(folder, known, pooling):
    from sentence_transformers import SentenceTransformer as ReferenceModel
    from tiny_models import build_sentence_transformer

    from minisbert import SentenceTransformer

    folder, _ = build_sentence_transformer(
        folder / "model",
        known.model_type,
        padding_side=MODERN_ARCHITECTURES[known.model_type],
        pooling_mode=pooling,
        dense=[(16, activation, True) for _, activation in known.dense],
        normalize=known.normalize,
        prompts={name: f"{name}: " for name in known.prompts},
    )
    return SentenceTransformer(folder), ReferenceModel(str(folder), device="cpu")


def test_bundled_model_matches_its_entry(model):
    known = next(k for k in KNOWN_MODELS if k.hub_id == "sentence-transformers/all-MiniLM-L6-v2")
    assert model.transformer.config["model_type"] == known.model_type
    assert model.get_sentence_embedding_dimension() == known.dimension
    assert [type(module).__name__ for module in model.modules] == ["Transformer", "Pooling", "Normalize"]
    assert np.allclose(np.linalg.norm(model.encode(["a", "b c"]), axis=1), 1)


def test_models_command_lists_every_known_model(capsys):
    from minisbert.cli import main

    main(["models"])
    lines = capsys.readouterr().out.split("\n\n")[0].splitlines()  # the bi-encoders' table (rerankers follow)
    assert len(lines) == 1 + len(KNOWN_MODELS)
    assert any("sentence-transformers/LaBSE" in line and "Dense(768, Tanh)" in line for line in lines)

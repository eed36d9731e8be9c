"""Every entry of minisbert.known_models.KNOWN_RERANKERS is kept true: where minisbert has the architecture and
its head, a tiny random cross-encoder of that architecture, labels and saved activation matches
sentence-transformers' CrossEncoder (1e-5 relative) and scores with the listed activation; where it has not,
CrossEncoder says so clearly, and ``minisbert models`` marks the entry."""

import json

import numpy as np
import pytest
import torch
from tiny_models import CROSS_ENCODER_ARCHITECTURES, max_relative_difference

from minisbert import CrossEncoder
from minisbert.known_models import KNOWN_RERANKERS, reranker_is_supported
from minisbert.architectures import UnsupportedArchitectureError
from minisbert.modules.dense import DENSE_ACTIVATIONS

PAIRS = [("how many people live in berlin?", "Berlin had a population of 3,520,031 in 2019."),
         ("how many people live in berlin?", "Berlin is well known for its museums."),
         ("", "an empty query"), ("문서", "日本語の文書 🤗")]
SUPPORTED = [known for known in KNOWN_RERANKERS if reranker_is_supported(known)]
UNSUPPORTED = [known for known in KNOWN_RERANKERS if not reranker_is_supported(known)]


def saved_activation(known):
    # A model saves its activation unless it is the default (sigmoid for one label, identity for several).
    default = "Sigmoid" if known.num_labels == 1 else "Identity"
    return None if known.activation == default else getattr(torch.nn, known.activation)()


@pytest.mark.parametrize("known", SUPPORTED, ids=[known.hub_id for known in SUPPORTED])
def test_tiny_reranker_of_the_same_kind_matches_reference(tiny_cross_encoder, known):
    assert known.model_type in CROSS_ENCODER_ARCHITECTURES, f"tests/tiny_models.py builds no tiny {known.model_type}"
    _, model, reference = tiny_cross_encoder(known.model_type, known.num_labels, saved_activation(known))
    assert model.num_labels == known.num_labels
    assert type(reference.activation_fn).__name__ == known.activation
    logits = model.predict(PAIRS, activation_fn=lambda x: x)
    np.testing.assert_array_equal(model.predict(PAIRS), DENSE_ACTIVATIONS[known.activation](logits))
    assert max_relative_difference(model.predict(PAIRS), reference.predict(PAIRS)) <= 1e-5


@pytest.mark.parametrize("known", UNSUPPORTED, ids=[known.hub_id for known in UNSUPPORTED])
def test_unsupported_reranker_is_a_clear_error_and_marked(known, tmp_path, capsys):
    from minisbert.cli import main

    architecture = "".join(part.capitalize() for part in known.model_type.split("-")) + "ForSequenceClassification"
    (tmp_path / "config.json").write_text(json.dumps({"model_type": known.model_type, "architectures": [architecture]}))
    with pytest.raises((UnsupportedArchitectureError, ValueError), match=known.model_type):
        CrossEncoder(tmp_path)
    main(["models"])
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith(known.hub_id + " ")]
    assert "not yet" in line


def test_models_command_lists_every_known_reranker(capsys):
    from minisbert.cli import main

    main(["models"])
    output = capsys.readouterr().out
    for known in KNOWN_RERANKERS:
        assert any(line.startswith(known.hub_id + " ") and f"{known.activation}(logits)" in line
                   for line in output.splitlines())

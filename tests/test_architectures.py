"""Every architecture's forward pass matches transformers + sentence-transformers on tiny random models:
BERT, RoBERTa, XLM-RoBERTa, MPNet, DistilBERT, each with all six pooling modes concatenated."""

import numpy as np
import pytest
from inputs import FEW_HARD_TEXTS, HARD_TEXT_KINDS
from tiny_models import ARCHITECTURES, max_relative_difference

from minisbert.architectures import UnsupportedArchitectureError, architecture_for

ALL_POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
TOLERANCE = 1e-5  # relative to the largest value of the reference output


@pytest.fixture(params=ARCHITECTURES)
def models(request, tiny_model):
    _, model, reference = tiny_model(request.param, pooling_mode=ALL_POOLING_MODES)
    return model, reference


def test_tokenization_matches_reference(models):
    model, reference = models
    for text in FEW_HARD_TEXTS:
        expected = reference.preprocess([text])["input_ids"][0].tolist()
        assert model.tokenize([text])["input_ids"][0].tolist() == expected, text


def test_sentence_embeddings_match_reference(models):
    model, reference = models
    expected = reference.encode(FEW_HARD_TEXTS, batch_size=4)
    actual = model.encode(FEW_HARD_TEXTS, batch_size=4)
    assert actual.shape == expected.shape == (len(FEW_HARD_TEXTS), 6 * 32)
    assert max_relative_difference(actual, expected) <= TOLERANCE


def test_token_embeddings_match_reference(models):
    model, reference = models
    expected = reference.encode(FEW_HARD_TEXTS, output_value="token_embeddings")
    actual = model.encode(FEW_HARD_TEXTS, output_value="token_embeddings")
    for tokens, expected_tokens in zip(actual, expected):
        assert max_relative_difference(tokens, expected_tokens) <= TOLERANCE


def test_padding_does_not_change_embeddings(models):
    # a short text alone and beside a long one: RoBERTa's and MPNet's position ids must skip the padding
    model, _ = models
    alone = model.encode(["a short text"])
    padded = model.encode(["a short text", HARD_TEXT_KINDS["long"]], batch_size=2)[:1]
    assert max_relative_difference(padded, alone) <= TOLERANCE


def test_roberta_position_ids_match_transformers():
    from transformers.models.roberta.modeling_roberta import RobertaEmbeddings
    import torch

    from minisbert.architectures.roberta import position_ids_skipping_padding

    input_ids = np.array([[0, 5, 6, 2, 1, 1], [0, 7, 2, 1, 1, 1], [0, 1, 9, 9, 2, 1]])
    expected = RobertaEmbeddings.create_position_ids_from_input_ids(torch.tensor(input_ids), padding_idx=1)
    assert position_ids_skipping_padding(input_ids, 1).tolist() == expected.tolist()


def test_mpnet_relative_position_buckets_match_transformers():
    import torch
    from transformers.models.mpnet.modeling_mpnet import MPNetEncoder

    from minisbert.architectures.mpnet import relative_position_bucket

    positions = np.arange(600)
    relative = positions[None, :] - positions[:, None]  # every distance from -599 to 599
    expected = MPNetEncoder.relative_position_bucket(torch.tensor(relative)).numpy()
    assert np.array_equal(relative_position_bucket(relative), expected)


def test_distilbert_config_names_map_onto_shared_ones():
    _, config = architecture_for({"model_type": "distilbert", "dim": 64, "n_heads": 2, "n_layers": 3, "hidden_dim": 99})
    assert (config["hidden_size"], config["num_attention_heads"], config["num_hidden_layers"]) == (64, 2, 3)
    assert (config["intermediate_size"], config["hidden_act"]) == (99, "gelu")


def test_unknown_model_type_error_lists_supported_ones():
    with pytest.raises(UnsupportedArchitectureError, match="'gpt2'.*bert, deberta-v2, distilbert, electra, .*xlm-roberta"):
        architecture_for({"model_type": "gpt2"})


def test_max_seq_length_beyond_the_position_table_is_a_clear_error(tiny_model):
    # RoBERTa's positions start after the padding index: 160 tokens need 162 rows, one more fails
    from minisbert import SentenceTransformer

    folder, _, _ = tiny_model("roberta", pooling_mode=ALL_POOLING_MODES)
    too_long = SentenceTransformer(folder)
    too_long.transformer.tokenizer.backend.enable_truncation(max_length=161)
    with pytest.raises(ValueError, match="position embedding table of 162 rows"):
        too_long.encode(["word " * 300])


def test_token_id_beyond_the_vocabulary_is_a_clear_error(tiny_model):
    _, model, _ = tiny_model("bert", pooling_mode=ALL_POOLING_MODES)
    transformer = model.transformer
    features = model.tokenize(["hello"])
    features["input_ids"][0, 1] = transformer.config["vocab_size"]
    with pytest.raises(ValueError, match="word embedding table of 30522 rows"):
        transformer(features)


def test_electra_sentence_embeddings_match_reference(tiny_model):
    # ELECTRA (added for its reranker head): embeddings of size 16 projected to the layers' 32 by embeddings_project.
    _, model, reference = tiny_model("electra")
    assert model.transformer.config["embedding_size"] != model.transformer.config["hidden_size"]
    expected = reference.encode(FEW_HARD_TEXTS, batch_size=4)
    assert max_relative_difference(model.encode(FEW_HARD_TEXTS, batch_size=4), expected) <= TOLERANCE


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_tensor_names_read_and_written_back_give_the_checkpoint(tiny_model, architecture):
    # one table of tensor names per architecture (TENSOR_NAMES): checkpoint.load_encoder reads the weights by it,
    # training's checkpoint_tensors writes the parameters back by it; every tensor comes back unchanged under its
    # own name, and only the pooler (which sentence embeddings do not use) is left out
    from minisbert.architectures.checkpoint import Checkpoint
    from minisbert.files.weights import load_weights
    from minisbert.training.checkpoint import checkpoint_tensors, module_folders

    folder, model, _ = tiny_model(architecture, pooling_mode=ALL_POOLING_MODES)
    transformer = model.transformer
    tensors = load_weights(folder / module_folders(model)[0])
    prefix = Checkpoint(tensors, transformer.architecture.TENSOR_NAMES.prefixes).prefix
    written = checkpoint_tensors(transformer.params, transformer.config)
    written = {prefix + name: tensor for name, tensor in written.items()}
    assert written.keys() <= tensors.keys()
    assert {name[len(prefix) :].split(".")[0] for name in tensors.keys() - written.keys()} <= {"pooler"}
    for name, tensor in written.items():
        np.testing.assert_array_equal(tensor, tensors[name], err_msg=name)

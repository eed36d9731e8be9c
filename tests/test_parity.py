"""encode() gives sentence-transformers' numbers: same inputs, same options, compared element-wise.

Bounds: 1e-5 on un-normalised outputs, 1e-6 on normalised ones (all-MiniLM-L6-v2 ends with Normalize).
"""

import numpy as np
import pytest

from inputs import FEW_HARD_TEXTS, HARD_TEXTS, corpus_sentences


def max_difference(actual, expected):
    return float(np.abs(np.asarray(actual) - np.asarray(expected)).max())


@pytest.fixture(scope="module")
def reference_embeddings(reference_model):
    return reference_model.encode(HARD_TEXTS, batch_size=32)


def test_hard_inputs_match_reference(model, reference_embeddings):
    assert len(HARD_TEXTS) >= 50
    actual = model.encode(HARD_TEXTS, batch_size=32)
    assert actual.shape == reference_embeddings.shape == (len(HARD_TEXTS), 384)
    assert max_difference(actual, reference_embeddings) <= 1e-6


@pytest.mark.parametrize("batch_size", [1, 3, 7, 64])
def test_batch_size_does_not_change_embeddings(model, reference_embeddings, batch_size):
    actual = model.encode(HARD_TEXTS, batch_size=batch_size)
    assert max_difference(actual, reference_embeddings) <= 1e-6


def test_corpus_sentences_match_reference(model, reference_model):
    sentences = corpus_sentences(200)
    expected = reference_model.encode(sentences, batch_size=32)
    assert max_difference(model.encode(sentences, batch_size=32), expected) <= 1e-6


def test_long_texts_are_truncated_like_reference(model, reference_model):
    long_texts = [" ".join(corpus_sentences(40, start=i * 40)) for i in range(3)]
    assert all(len(model.tokenizer.tokens(text)) == model.max_seq_length for text in long_texts)
    expected = reference_model.encode(long_texts)
    assert max_difference(model.encode(long_texts), expected) <= 1e-6


def test_single_string_gives_a_vector(model, reference_model):
    actual = model.encode("A single sentence.")
    expected = reference_model.encode("A single sentence.")
    assert actual.shape == expected.shape == (384,)
    assert max_difference(actual, expected) <= 1e-6


def test_token_embeddings_match_reference(model, reference_model):
    texts = FEW_HARD_TEXTS
    expected = reference_model.encode(texts, output_value="token_embeddings")
    actual = model.encode(texts, output_value="token_embeddings")
    assert [a.shape for a in actual] == [tuple(e.shape) for e in expected]
    for a, e in zip(actual, expected):
        assert max_difference(a, e.numpy()) <= 1e-5  # un-normalised hidden states


def test_output_value_none_matches_reference(model, reference_model):
    texts = ["first text", "the second, longer text of the batch"]
    expected = reference_model.encode(texts, output_value=None)
    actual = model.encode(texts, output_value=None)
    for a, e in zip(actual, expected):
        for name in ("input_ids", "attention_mask", "token_type_ids"):
            np.testing.assert_array_equal(a[name], e[name].numpy())
        # Rows at padding positions are never used (pooling masks them) and differ between attention
        # implementations; the real tokens' rows must match.
        real = a["attention_mask"] == 1
        assert max_difference(a["token_embeddings"][real], e["token_embeddings"].numpy()[real]) <= 1e-5
        assert max_difference(a["sentence_embedding"], e["sentence_embedding"].numpy()) <= 1e-6


def test_convert_to_numpy_false_gives_a_list_of_vectors(model, reference_model):
    texts = ["one", "two words"]
    expected = reference_model.encode(texts, convert_to_numpy=False)
    actual = model.encode(texts, convert_to_numpy=False)
    assert isinstance(actual, list) and len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert max_difference(a, e.numpy()) <= 1e-6


def test_prompt_matches_reference(model, reference_model):
    texts = ["What is the capital of France?", "Paris"]
    expected = reference_model.encode(texts, prompt="query: ")
    assert max_difference(model.encode(texts, prompt="query: "), expected) <= 1e-6


def test_prompt_name_matches_reference(model, reference_model):
    texts = ["What is the capital of France?"]
    expected = reference_model.encode(texts, prompt_name="query")
    assert max_difference(model.encode(texts, prompt_name="query"), expected) <= 1e-6


def test_normalize_embeddings_matches_reference(model, reference_model):
    texts = ["normalised twice is still unit length", "🙂"]
    expected = reference_model.encode(texts, normalize_embeddings=True)
    assert max_difference(model.encode(texts, normalize_embeddings=True), expected) <= 1e-6


def test_truncate_dim_matches_reference(model, reference_model):
    texts = ["a text", "another text"]
    expected = reference_model.encode(texts, truncate_dim=64)
    actual = model.encode(texts, truncate_dim=64)
    assert actual.shape == (2, 64)
    assert max_difference(actual, expected) <= 1e-6


def test_tokenization_matches_reference(model, reference_model):
    texts = HARD_TEXTS[:30]
    expected = reference_model.tokenize(texts)
    actual = model.tokenize(texts)
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(actual[name], expected[name].numpy())


def test_model_settings_match_reference(model, reference_model):
    assert model.max_seq_length == reference_model.max_seq_length
    assert model.get_sentence_embedding_dimension() == reference_model.get_embedding_dimension()
    assert model.similarity_fn_name == reference_model.similarity_fn_name
    assert model.prompts == reference_model.prompts


def test_plain_transformers_folder_gets_mean_pooling_like_reference(default_model_folder, tmp_path):
    """Without modules.json, sentence-transformers wraps the model in mean pooling (no Normalize), with the
    tokenizer's model_max_length (512 here) as the limit."""
    import shutil

    from sentence_transformers import SentenceTransformer as ReferenceSentenceTransformer

    from minisbert import SentenceTransformer

    folder = tmp_path / "plain"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(default_model_folder / name, folder / name)
    (folder / "model.safetensors").symlink_to(default_model_folder / "model.safetensors")
    texts = ["a plain transformers folder", "Long text: " + "word " * 600]
    reference = ReferenceSentenceTransformer(str(folder), device="cpu")
    model = SentenceTransformer(folder)
    assert model.max_seq_length == reference.max_seq_length == 512
    assert max_difference(model.encode(texts), reference.encode(texts)) <= 1e-5  # not normalised


def test_progress_bar_does_not_change_the_result(model, capsys):
    texts = ["with a progress bar", "and another text"]
    with_bar = model.encode(texts, show_progress_bar=True, batch_size=1)
    assert "Batches" in capsys.readouterr().err
    np.testing.assert_array_equal(with_bar, model.encode(texts, batch_size=1))

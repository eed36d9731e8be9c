"""encode() and the model's options refuse bad input with an error that names the problem."""

import numpy as np
import pytest


@pytest.mark.parametrize(
    "sentences, message",
    [
        (None, "got NoneType"),
        (42, "got int"),
        (b"bytes", "got bytes"),
        ({"text": "a dict"}, "got dict"),
        (["fine", None], "item 1 is NoneType"),
        (["fine", 3.5], "item 1 is float"),
        ([["a", "nested"], ["list"]], "item 0 is a nested list"),
        (["fine", ("a", "pair")], "item 1 is a nested list"),
    ],
)
def test_non_text_input_is_refused(model, sentences, message):
    with pytest.raises(TypeError, match=message):
        model.encode(sentences)


def test_empty_list_gives_an_empty_matrix(model, reference_model):
    embeddings = model.encode([])
    # sentence-transformers returns np.array([]) of shape (0,); minisbert keeps the embedding dimension so
    # that (0, dim) stacks and concatenates with other results. Both hold no embedding:
    assert reference_model.encode([]).size == embeddings.size == 0
    assert embeddings.shape == (0, 384) and embeddings.dtype == np.float32


def test_empty_list_without_numpy_conversion_gives_an_empty_list(model):
    assert model.encode([], convert_to_numpy=False) == []


def test_a_tuple_and_a_numpy_array_of_strings_are_accepted(model):
    texts = ("one", "two")
    np.testing.assert_array_equal(model.encode(texts), model.encode(np.array(texts)))


@pytest.mark.parametrize("batch_size, error", [(0, ValueError), (-3, ValueError), (2.5, TypeError), ("8", TypeError)])
def test_bad_batch_size_is_refused(model, batch_size, error):
    with pytest.raises(error, match="batch_size"):
        model.encode(["text"], batch_size=batch_size)


def test_unknown_output_value_is_refused(model):
    with pytest.raises(ValueError, match="output_value"):
        model.encode(["text"], output_value="cls_embedding")


def test_unknown_prompt_name_is_refused(model):
    with pytest.raises(ValueError, match="prompt name 'passage' not found"):
        model.encode(["text"], prompt_name="passage")


def test_unknown_similarity_function_is_refused(default_model_folder):
    from minisbert import SentenceTransformer

    with pytest.raises(ValueError, match="unknown similarity function 'jaccard'"):
        SentenceTransformer(default_model_folder, similarity_fn_name="jaccard")


def test_similarity_of_embeddings_of_different_models_is_refused(model):
    with pytest.raises(ValueError, match="dimensions differ"):
        model.similarity(np.ones((2, 384), np.float32), np.ones((2, 768), np.float32))


def test_ragged_embeddings_are_refused(model):
    with pytest.raises(ValueError, match="rectangular"):
        model.similarity([[1.0, 2.0], [3.0]], [[1.0, 2.0]])

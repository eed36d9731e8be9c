"""sentence-transformers' quickstart reproduces: the 3x3 cosine matrix of the weather sentences."""

import numpy as np

QUICKSTART = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]


def test_quickstart_embeddings_match_reference(model, reference_model):
    expected = reference_model.encode(QUICKSTART)
    actual = model.encode(QUICKSTART)
    assert actual.shape == expected.shape == (3, 384)
    assert actual.dtype == np.float32
    assert np.abs(actual - expected).max() <= 1e-6  # normalised output


def test_quickstart_similarity_matrix_matches_reference(model, reference_model):
    expected = reference_model.similarity(reference_model.encode(QUICKSTART), reference_model.encode(QUICKSTART))
    embeddings = model.encode(QUICKSTART)
    actual = model.similarity(embeddings, embeddings)
    assert np.abs(actual - expected.numpy()).max() <= 1e-6
    # The numbers sentence-transformers' README prints (rounded to 4 places).
    assert np.round(actual[0, 1], 4) == 0.6660 and np.round(actual[0, 2], 4) == 0.1046

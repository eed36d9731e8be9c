"""MaxSim: minisbert.util.maxsim / maxsim_pairwise (util/multi_vector.py) against sentence_transformers.util on odd
shapes: empty documents and queries, one token, masks (arrays and lists), padded 3D input, a single 2D input,
length_normalize, float64 input; and kernels/maxsim.py's blocks of queries giving the whole product's scores (the
kernels against their NumPy references: tests/test_kernels.py). Scores within 1e-5 relative, or 1e-5 absolute
where a sum cancels near 0 (float32 sums in different orders); empty documents score exactly what
sentence-transformers gives."""

import numpy as np
import pytest

from minisbert import util
from minisbert.kernels import maxsim as kernels
from test_kernels import MAXSIM_SIDES


def ragged(lengths, dim=8, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((length, dim)).astype(dtype) for length in lengths]


def test_blocks_of_queries_give_the_same_scores(monkeypatch):
    queries, documents = ragged([5, 1, 9, 0, 4, 7] * 5, seed=3), ragged([3, 8, 0, 2] * 6, seed=4)
    whole = kernels.maxsim(*kernels.pack(queries), *kernels.pack(documents))
    monkeypatch.setattr(kernels, "SCORE_BLOCK_ELEMENTS", 50)  # a block of one or two queries
    # BLAS may sum a (block, tokens) product in another order than the whole one: equal to float32 rounding
    np.testing.assert_allclose(kernels.maxsim(*kernels.pack(queries), *kernels.pack(documents)), whole, rtol=1e-6,
                               atol=1e-6)


def torch_list(arrays):
    import torch

    return [torch.from_numpy(np.asarray(a, dtype=np.float32)) for a in arrays]


@pytest.mark.parametrize("length_normalize", [False, True])
@pytest.mark.parametrize("lengths", MAXSIM_SIDES)
def test_maxsim_matches_sentence_transformers(lengths, length_normalize):
    from sentence_transformers import util as reference

    queries, documents = ragged(lengths[0], seed=5), ragged(lengths[1], seed=6)
    expected = reference.maxsim(torch_list(queries), torch_list(documents), length_normalize=length_normalize)
    actual = util.maxsim(queries, documents, length_normalize=length_normalize)
    assert actual.dtype == np.float32
    np.testing.assert_allclose(actual, expected.numpy(), rtol=1e-5, atol=1e-5)
    pairs = min(len(queries), len(documents))
    expected = reference.maxsim_pairwise(torch_list(queries[:pairs]), torch_list(documents[:pairs]),
                                         length_normalize=length_normalize)
    actual = util.maxsim_pairwise(queries[:pairs], documents[:pairs], length_normalize=length_normalize)
    np.testing.assert_allclose(actual, expected.numpy(), rtol=1e-5, atol=1e-5)


def test_masks_padded_input_and_single_arrays_match_sentence_transformers():
    import torch
    from sentence_transformers import util as reference

    rng = np.random.default_rng(7)
    a = rng.standard_normal((3, 6, 8)).astype(np.float32)
    b = rng.standard_normal((4, 9, 8)).astype(np.float32)
    a_mask = rng.random((3, 6)) < 0.7
    b_mask = rng.random((4, 9)) < 0.5
    b_mask[2] = False  # a document every token of which is masked
    expected = reference.maxsim(torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(a_mask),
                                torch.from_numpy(b_mask))
    np.testing.assert_allclose(util.maxsim(a, b, a_mask, b_mask), expected.numpy(), rtol=1e-5, atol=1e-5)
    # list masks
    expected = reference.maxsim(torch.from_numpy(a), torch.from_numpy(b), [torch.from_numpy(m) for m in a_mask])
    np.testing.assert_allclose(util.maxsim(a, b, list(a_mask)), expected.numpy(), rtol=1e-5, atol=1e-5)
    # padded 3D input without masks: all-zero rows are padding
    padded = a.copy()
    padded[0, 4:] = 0
    padded[1, :] = 0
    expected = reference.maxsim(torch.from_numpy(padded), torch.from_numpy(b), length_normalize=True)
    np.testing.assert_allclose(util.maxsim(padded, b, length_normalize=True), expected.numpy(), rtol=1e-5, atol=1e-5)
    # one query and one document as bare 2D arrays, float64
    expected = reference.maxsim(torch.from_numpy(a[0]), torch.from_numpy(b[0]))
    np.testing.assert_allclose(util.maxsim(a[0].astype(np.float64), b[0].astype(np.float64)), expected.numpy(),
                               rtol=1e-5, atol=1e-5)
    expected = reference.maxsim_pairwise(torch.from_numpy(a[:3]), torch.from_numpy(b[:3]), torch.from_numpy(a_mask),
                                         torch.from_numpy(b_mask[:3]))
    actual = util.maxsim_pairwise(a[:3], b[:3], a_mask, b_mask[:3])
    np.testing.assert_allclose(actual, expected.numpy(), rtol=1e-5, atol=1e-5)


def test_empty_sides_and_bad_input():
    assert util.maxsim([], ragged([2])).shape == (0, 1)
    assert util.maxsim(ragged([2]), []).shape == (1, 0)
    with pytest.raises(ValueError, match="different dimensions"):
        util.maxsim(ragged([2], dim=8), ragged([2], dim=9))
    with pytest.raises(ValueError, match="got 2 queries and 1 documents"):
        util.maxsim_pairwise(ragged([2, 2]), ragged([2]))
    with pytest.raises(ValueError, match=r"b\[0\] must be a \(tokens, dim\) array"):
        util.maxsim(ragged([2]), [np.zeros(3)])

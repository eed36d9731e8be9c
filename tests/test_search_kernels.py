"""The search kernels' promises beyond agreeing with their references (tests/test_kernels.py checks that): top_k
refuses NaN scores, which have no rank, and the Hamming reference counts differing bits."""

import numpy as np
import pytest

from minisbert.kernels.hamming import hamming_distance_reference
from minisbert.kernels.topk import top_k


def test_top_k_refuses_nan():
    scores = np.array([[0.5, np.nan, 0.1]], dtype=np.float32)
    with pytest.raises(ValueError, match="NaN"):
        top_k(scores, 2)


def test_hamming_reference_counts_differing_bits():
    a = np.array([[0b10110000, 0xFF]], dtype=np.uint8)
    b = np.array([[0b00110001, 0x00], [0b10110000, 0xFF]], dtype=np.uint8)
    np.testing.assert_array_equal(hamming_distance_reference(a, b), [[2 + 8, 0]])

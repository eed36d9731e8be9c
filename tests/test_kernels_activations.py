"""The activation kernels agree with their references and with torch's implementations."""

import numpy as np
import pytest
import torch

from minisbert.kernels import activations

X = np.linspace(-8, 8, 2001, dtype=np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_agrees_with_reference(dtype):
    np.testing.assert_allclose(activations.gelu(X.astype(dtype)), activations.gelu_reference(X.astype(dtype)), atol=1e-7)


def test_gelu_matches_torch():
    expected = torch.nn.functional.gelu(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(activations.gelu(X), expected, atol=1e-6)


def test_gelu_tanh_matches_torch():
    expected = torch.nn.functional.gelu(torch.from_numpy(X), approximate="tanh").numpy()
    np.testing.assert_allclose(activations.gelu_tanh(X), expected, atol=1e-6)
    np.testing.assert_allclose(activations.gelu_tanh_reference(X), expected, atol=1e-6)


def test_gelu_keeps_shape_of_non_contiguous_input():
    x = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2]
    assert activations.gelu(x).shape == (4, 3)

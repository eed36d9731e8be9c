"""Rotary position embeddings (Su et al., 2021) applied to queries or keys as the linear layer gives them,
x (batch, seq, heads, head_dim), written straight into the (batch, heads, seq, head_dim) layout attention
reads: one pass instead of NumPy's split into heads, copy, concatenation of the rotated halves, and three
products. Each pair (x_i, x_{i + head_dim/2}) is turned by its token's angle. Per element: 12 bytes read
(x, cos, sin), 4 written, 3 FLOPs.

``rotary_heads_reference`` is the plain formula, transformers' ``x * cos + rotate_half(x) * sin``.
"""

import numba
import numpy as np


def rotary_heads_reference(x, cos, sin):
    """x (batch, seq, heads, head_dim), cos/sin (seq, head_dim) -> (batch, heads, seq, head_dim) rotated."""
    x = x.transpose(0, 2, 1, 3)
    half = x.shape[-1] // 2
    rotated_half = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated_half * sin


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _rotary_heads(x, cos, sin, out):
    batch, seq, heads, head_dim = x.shape
    half = head_dim // 2
    for b in range(batch):
        for s in range(seq):
            c, n = cos[s], sin[s]
            for h in range(heads):
                source, target = x[b, s, h], out[b, h, s]
                for i in range(half):
                    target[i] = source[i] * c[i] + (-source[i + half]) * n[i]
                for i in range(half, head_dim):
                    target[i] = source[i] * c[i] + source[i - half] * n[i]


def rotary_heads(x, cos, sin):
    """The numba version of ``rotary_heads_reference``, float32, into a new C-contiguous array."""
    if x.ndim != 4 or x.dtype != np.float32 or cos.shape != sin.shape or cos.shape != (x.shape[1], x.shape[3]):
        raise ValueError(f"rotary_heads expects float32 x (batch, seq, heads, head_dim) and cos, sin (seq, head_dim), "
                         f"got {x.dtype} {x.shape}, {cos.shape}, {sin.shape}")
    if x.shape[3] % 2:
        raise ValueError(f"rotary_heads needs an even head_dim, got {x.shape[3]}")
    out = np.empty((x.shape[0], x.shape[2], x.shape[1], x.shape[3]), dtype=np.float32)
    cos, sin = (np.ascontiguousarray(t, dtype=np.float32) for t in (cos, sin))
    _rotary_heads(np.ascontiguousarray(x), cos, sin, out)
    return out

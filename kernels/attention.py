"""Multi-head self-attention over packed sequences: the real tokens of a batch stacked into one
(tokens, 3 * hidden) matrix of queries|keys|values, sequence i holding rows offsets[i]:offsets[i + 1].
Each token attends to the tokens of its own sequence only, so padding costs nothing and needs no mask.
"""

import numba
import numpy as np


def packed_attention_reference(qkv, offsets, num_heads, position_bias=None, positions=None):
    """qkv (tokens, 3 * hidden), offsets (sequences + 1,) -> context (tokens, hidden), as models.layers
    computes it per sequence: softmax(q k^T / sqrt(head_dim) + position_bias) v, heads side by side.
    position_bias (sequences or 1, heads, seq, seq) is indexed by each token's ``positions`` in its sequence."""
    tokens, hidden = qkv.shape[0], qkv.shape[1] // 3
    head_dim = hidden // num_heads
    context = np.zeros((tokens, hidden), dtype=qkv.dtype)
    for sequence in range(len(offsets) - 1):
        rows = slice(offsets[sequence], offsets[sequence + 1])
        if rows.start == rows.stop:
            continue
        # each (length, hidden) -> (heads, length, head_dim)
        query, key, value = (
            part.reshape(-1, num_heads, head_dim).transpose(1, 0, 2) for part in np.split(qkv[rows], 3, axis=1)
        )
        scores = query @ key.transpose(0, 2, 1) / np.sqrt(head_dim).astype(qkv.dtype)  # (heads, length, length)
        if position_bias is not None:
            where = positions[rows]
            scores = scores + position_bias[min(sequence, len(position_bias) - 1)][:, where][:, :, where]
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probabilities = scores / scores.sum(axis=-1, keepdims=True)
        context[rows] = (probabilities @ value).transpose(1, 0, 2).reshape(-1, hidden)
    return context


@numba.njit(inline="always", error_model="numpy")
def _exp_of_nonpositive(x):
    # exp(x) for x <= 0, vectorizable (libm's exp is a scalar call): exp(x) = exp(x / 1024) ** 1024, with
    # exp(x / 1024) by its Taylor series to degree 7 (relative error < 3e-13 on [-104 / 1024, 0]) in float64,
    # then squared ten times (error x 1024 < 1e-9). Below -104, exp(x) is 0 in float32 (and ~1e-45 in float64).
    y = max(x, -104.0) * (1.0 / 1024.0)
    result = 1.0 + y * (
        1.0 + y * (1.0 / 2 + y * (1.0 / 6 + y * (1.0 / 24 + y * (1.0 / 120 + y * (1.0 / 720 + y * (1.0 / 5040))))))
    )
    for _ in range(10):
        result = result * result
    return result


# reassoc lets LLVM vectorize the dot products, and the max and sum over a row of scores (partial sums per SIMD lane);
# error_model="numpy" drops the division-by-zero checks that would stop it vectorizing.
@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _packed_attention(qkv, offsets, num_heads, position_bias, positions, context):
    hidden = qkv.shape[1] // 3
    head_dim = hidden // num_heads
    sqrt_head_dim = np.sqrt(qkv.dtype.type(head_dim))
    has_position_bias = position_bias.shape[0] > 0
    longest = 0
    for sequence in range(len(offsets) - 1):
        longest = max(longest, offsets[sequence + 1] - offsets[sequence])
    # One (sequence, head) at a time, in contiguous scratch. The inner loops run along contiguous rows and
    # (but for the dot products, which reassoc splits across SIMD lanes) update a different element at each
    # step: no chain of dependent adds through memory, so that they vectorize.
    keys = np.empty((longest, head_dim), dtype=qkv.dtype)  # (length, head_dim)
    values = np.empty((longest, head_dim), dtype=qkv.dtype)  # (length, head_dim)
    probabilities = np.empty((longest, longest), dtype=qkv.dtype)  # (queries, keys)
    output = np.empty((longest, head_dim), dtype=qkv.dtype)  # (length, head_dim)
    for sequence in range(len(offsets) - 1):
        start, length = offsets[sequence], offsets[sequence + 1] - offsets[sequence]
        bias_index = min(sequence, position_bias.shape[0] - 1)
        for head in range(num_heads):
            query_column, key_column, value_column = (
                head * head_dim,
                hidden + head * head_dim,
                2 * hidden + head * head_dim,
            )
            for j in range(length):
                for d in range(head_dim):
                    keys[j, d] = qkv[start + j, key_column + d]
                    values[j, d] = qkv[start + j, value_column + d]
            for i in range(length):
                query = qkv[start + i, query_column : query_column + head_dim]
                scores = probabilities[i, :length]  # q_i . k_j / sqrt(head_dim) for every key j
                for j in range(length):
                    score = qkv.dtype.type(0.0)
                    for d in range(head_dim):
                        score += query[d] * keys[j, d]
                    scores[j] = score / sqrt_head_dim
                if has_position_bias:
                    for j in range(length):
                        scores[j] += position_bias[bias_index, head, positions[start + i], positions[start + j]]
                maximum = -np.inf
                for j in range(length):
                    maximum = max(maximum, scores[j])
                total = 0.0
                for j in range(length):
                    scores[j] = _exp_of_nonpositive(scores[j] - maximum)
                    total += scores[j]
                for j in range(length):
                    scores[j] = scores[j] / total
            output[:length] = 0.0  # output_i = sum_j p_ij v_j, accumulated key by key
            for j in range(length):
                for i in range(length):
                    probability = probabilities[i, j]
                    for d in range(head_dim):
                        output[i, d] += probability * values[j, d]
            for i in range(length):
                for d in range(head_dim):
                    context[start + i, query_column + d] = output[i, d]


def packed_attention(qkv, offsets, num_heads, position_bias=None, positions=None):
    """The numba version of ``packed_attention_reference``: same arguments, same result."""
    if qkv.ndim != 2 or qkv.shape[1] % (3 * num_heads) != 0:
        raise ValueError(
            f"packed_attention expects qkv (tokens, 3 * hidden) with hidden divisible by {num_heads} heads, "
            f"got {qkv.shape}"
        )
    offsets = np.asarray(offsets, dtype=np.int64)
    if (
        offsets.ndim != 1
        or len(offsets) == 0
        or offsets[0] != 0
        or offsets[-1] != len(qkv)
        or np.any(np.diff(offsets) < 0)
    ):
        raise ValueError(f"offsets must rise from 0 to the number of tokens ({len(qkv)}), got {offsets}")
    if position_bias is None:
        position_bias, positions = np.zeros((0, 0, 0, 0), dtype=qkv.dtype), np.zeros(0, dtype=np.int64)  # "no bias"
    elif positions is None or len(positions) != len(qkv):
        raise ValueError("packed_attention needs each token's position in its sequence to index position_bias")
    context = np.empty((qkv.shape[0], qkv.shape[1] // 3), dtype=qkv.dtype)
    _packed_attention(
        qkv,
        offsets,
        num_heads,
        position_bias.astype(qkv.dtype, copy=False),
        np.asarray(positions, dtype=np.int64),
        context,
    )
    return context

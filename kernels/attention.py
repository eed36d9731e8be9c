"""Multi-head self-attention over packed sequences: the real tokens of a batch side by side, one per column,
in one (3 * hidden, tokens) matrix of queries|keys|values (the fast encoder's layout), sequence i holding
columns offsets[i]:offsets[i + 1]. Each token attends to the tokens of its own sequence only, so padding costs
nothing and needs no mask. One sequence at a time: k q^T for all its heads in OpenBLAS, a (heads, keys, queries)
block whose columns are the queries' scores; the softmax down each column, a numba kernel; then v p^T in
OpenBLAS, which is the context already in the columns' layout. The scores stay in the core's cache between the
three steps.
"""

import numba
import numpy as np


def packed_attention_reference(qkv, offsets, num_heads, position_bias=None, positions=None):
    """qkv (3 * hidden, tokens), offsets (sequences + 1,) -> context (hidden, tokens), as models.layers computes
    it per sequence: softmax(q k^T / sqrt(head_dim) + position_bias) v, heads stacked along the features.
    position_bias (sequences or 1, heads, seq, seq) is indexed by each token's ``positions`` in its sequence."""
    hidden, tokens = qkv.shape[0] // 3, qkv.shape[1]
    head_dim = hidden // num_heads
    context = np.zeros((hidden, tokens), dtype=qkv.dtype)
    for sequence in range(len(offsets) - 1):
        columns = slice(offsets[sequence], offsets[sequence + 1])
        if columns.start == columns.stop:
            continue
        # (3 * hidden, length) -> query, key, value (heads, length, head_dim)
        query, key, value = qkv[:, columns].reshape(3, num_heads, head_dim, -1).transpose(0, 1, 3, 2)
        scores = query @ key.transpose(0, 2, 1) / np.sqrt(head_dim).astype(qkv.dtype)  # (heads, length, length)
        if position_bias is not None:
            where = positions[columns]
            scores = scores + position_bias[min(sequence, len(position_bias) - 1)][:, where][:, :, where]
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probabilities = scores / scores.sum(axis=-1, keepdims=True)
        context[:, columns] = (probabilities @ value).transpose(0, 2, 1).reshape(hidden, -1)
    return context


def softmax_columns_reference(scores, divisor):
    """scores (heads, keys, queries) -> each column (a query's scores over the keys) replaced by
    softmax(column / divisor)."""
    scaled = scores / divisor
    exponentials = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    return exponentials / exponentials.sum(axis=1, keepdims=True)


_LOG2_E = np.float32(1.4426950408889634)
_LN2_HIGH = np.float32(0.693145751953125)  # ln 2 split in two (Cody-Waite): n * _LN2_HIGH is exact for |n| < 256
_LN2_LOW = np.float32(1.428606765330187e-06)
_EXP_TAYLOR = tuple(np.float32(1.0 / factorial) for factorial in (5040, 720, 120, 24, 6, 2, 1, 1))


@numba.njit(inline="always", error_model="numpy", fastmath={"contract"})
def exp_mantissa(x):
    # x <= 0 -> (m, n) with exp(x) = m * 2^n: n = round(x / ln 2), m = exp(x - n ln 2) by its Taylor series to
    # degree 7 (|x - n ln 2| <= ln 2 / 2: relative error < 6e-9). Below -87, exp(x) is taken as exp(-87) ~ 1.6e-38.
    x = max(x, np.float32(-87.0))
    n = np.floor(x * _LOG2_E + np.float32(0.5))
    r = x - n * _LN2_HIGH - n * _LN2_LOW
    m = _EXP_TAYLOR[0]
    for coefficient in _EXP_TAYLOR[1:]:
        m = m * r + coefficient
    return m, n


# A column's maximum, exponentials and sum are taken a row of keys at a time for every query at once: each loop
# runs along a contiguous row, so LLVM vectorizes it with no reordering of any sum and no horizontal reduction
# (the rows-of-queries layout needed a reduction within each short row: 0.85 against 0.56 ns a score).
# error_model="numpy" drops the division checks that would stop it vectorizing; contract fuses the exp's
# multiply-adds. Serial, as every kernel of encode's path: bench/RESULTS.md, "What the fast path does, and why"
# (Threads), says why.
@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _softmax_columns(scores, scale, maxima, totals, powers_of_two):
    # scores (heads, keys, queries), in place; maxima, totals, powers_of_two: scratch of >= queries values (from
    # softmax_scratch), 2^n built in powers_of_two from its int32 exponent bits
    power_bits = powers_of_two.view(np.int32)
    heads, keys, queries = scores.shape
    for head in range(heads):
        block = scores[head]
        maxima[:queries] = block[0]
        for key in range(1, keys):
            row = block[key]
            for query in range(queries):
                maxima[query] = max(maxima[query], row[query])
        for query in range(queries):  # max(x * s) = max(x) * s: rounding is monotonic
            maxima[query] *= scale
            totals[query] = 0.0
        for key in range(keys):
            row = block[key]
            for query in range(queries):
                mantissa, exponent = exp_mantissa(row[query] * scale - maxima[query])
                row[query] = mantissa
                power_bits[query] = (np.int32(exponent) + 127) << 23  # the float32 2^exponent
            for query in range(queries):
                row[query] *= powers_of_two[query]
                totals[query] += row[query]
        for query in range(queries):
            maxima[query] = np.float32(1.0 / totals[query])  # maxima's place now holds each column's 1 / total
        for key in range(keys):
            row = block[key]
            for query in range(queries):
                row[query] *= maxima[query]


def softmax_scratch(queries):
    """_softmax_columns' scratch vectors for up to ``queries`` queries: maxima, totals (float64: a long
    column's float32 sum, taken in key order, drifted by up to 2e-6), powers of two."""
    return np.empty(queries, np.float32), np.empty(queries, np.float64), np.empty(queries, np.float32)


def softmax_columns(scores, divisor):
    """The numba version of ``softmax_columns_reference``, in place in ``scores`` (float32, C-contiguous), which
    is returned."""
    if scores.dtype != np.float32 or scores.ndim != 3 or not scores.flags.c_contiguous or scores.shape[1] == 0:
        raise ValueError(
            f"softmax_columns expects contiguous float32 scores (heads, keys, queries) with at least one key, got "
            f"{scores.dtype} {scores.shape}"
        )
    _softmax_columns(scores, np.float32(1.0) / np.float32(divisor), *softmax_scratch(scores.shape[2]))
    return scores


def packed_attention(qkv, offsets, num_heads, position_bias=None, positions=None):
    """The fast version of ``packed_attention_reference``: same arguments, same result (to float32 rounding).
    Per sequence: k q^T for all heads, one stacked OpenBLAS matmul; softmax_columns' kernel; v p^T, a second
    matmul written straight into the sequence's context columns."""
    if qkv.dtype != np.float32 or qkv.ndim != 2 or qkv.shape[0] % (3 * num_heads) != 0:
        raise ValueError(
            f"packed_attention expects float32 qkv (3 * hidden, tokens) with hidden divisible by {num_heads} "
            f"heads, got {qkv.dtype} {qkv.shape}"
        )
    offsets = np.asarray(offsets, dtype=np.int64)
    if (
        offsets.ndim != 1
        or len(offsets) == 0
        or offsets[0] != 0
        or offsets[-1] != qkv.shape[1]
        or np.any(np.diff(offsets) < 0)
    ):
        raise ValueError(f"offsets must rise from 0 to the number of tokens ({qkv.shape[1]}), got {offsets}")
    if position_bias is not None and (positions is None or len(positions) != qkv.shape[1]):
        raise ValueError("packed_attention needs each token's position in its sequence to index position_bias")
    hidden, tokens = qkv.shape[0] // 3, qkv.shape[1]
    head_dim = hidden // num_heads
    sqrt_head_dim = np.sqrt(np.float32(head_dim))
    lengths = np.diff(offsets)
    longest = int(lengths.max(initial=0))
    # views, no copies: queries, keys and values (3, heads, head_dim, tokens); context (heads, head_dim, tokens)
    heads = qkv.reshape(3, num_heads, head_dim, tokens)
    context = np.empty((hidden, tokens), dtype=np.float32)
    context_heads = context.reshape(num_heads, head_dim, tokens)
    scores = np.empty(num_heads * longest * longest, dtype=np.float32)  # one sequence's block at a time
    scratch = softmax_scratch(longest)
    scale = np.float32(1.0) / sqrt_head_dim if position_bias is None else np.float32(1.0)
    for i, length in enumerate(lengths):
        if length == 0:
            continue
        columns = slice(offsets[i], offsets[i + 1])
        block = scores[: num_heads * length * length].reshape(num_heads, length, length)  # (heads, keys, queries)
        np.matmul(heads[1, :, :, columns].transpose(0, 2, 1), heads[0, :, :, columns], out=block)  # k q^T
        if position_bias is not None:  # scores / sqrt(head_dim) + bias here, so the softmax scales by 1
            where = positions[columns]
            block /= sqrt_head_dim
            block += position_bias[min(i, len(position_bias) - 1)][:, where][:, :, where].transpose(0, 2, 1)
        _softmax_columns(block, scale, *scratch)
        np.matmul(heads[2, :, :, columns], block, out=context_heads[:, :, columns])  # v p^T: (heads, head_dim, length)
    return context

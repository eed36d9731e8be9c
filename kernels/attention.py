"""Multi-head self-attention over packed sequences: the real tokens of a batch side by side, one per column,
in one (3 * hidden, tokens) matrix of queries|keys|values (the fast encoder's layout), sequence i holding
columns offsets[i]:offsets[i + 1]. Each token attends to the tokens of its own sequence only, so padding costs
nothing and needs no mask. The two products run in OpenBLAS, one sequence at a time; the softmax between them
is one numba kernel.
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


def softmax_blocks_reference(scores, block_starts, block_rows, row_lengths, divisor):
    """scores: a flat buffer of blocks, block b a (block_rows[b], row_lengths[b]) matrix from block_starts[b] ->
    a copy with each row of each block replaced by softmax(row / divisor)."""
    result = scores.copy()
    for start, rows, length in zip(block_starts, block_rows, row_lengths):
        block = scores[start : start + rows * length].reshape(rows, length) / divisor
        exponentials = np.exp(block - block.max(axis=1, keepdims=True))
        result[start : start + rows * length] = (exponentials / exponentials.sum(axis=1, keepdims=True)).ravel()
    return result


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


MAXIMUM_LANES = 16  # a row's maximum is taken in 16 running maxima: LLVM does not vectorize a single one


@numba.njit(inline="always", error_model="numpy", fastmath={"reassoc", "contract"})
def row_maximum(row, lanes):
    lanes[:] = row[0]
    for block in range(0, len(row) - MAXIMUM_LANES + 1, MAXIMUM_LANES):
        for lane in range(MAXIMUM_LANES):
            lanes[lane] = max(lanes[lane], row[block + lane])
    maximum = row[0]
    for lane in range(MAXIMUM_LANES):
        maximum = max(maximum, lanes[lane])
    for j in range(len(row) - len(row) % MAXIMUM_LANES, len(row)):
        maximum = max(maximum, row[j])
    return maximum


_CHUNK = 4096  # floats: the rows of a block are taken in chunks of about this size, which stay in L1 cache


# The exp runs over a chunk of rows at once, not row by row: LLVM's vector loop takes 32 floats a step, so it
# would skip the rows of a short sentence. reassoc lets LLVM vectorize the sums (partial sums per SIMD lane);
# error_model="numpy" drops the division checks that would stop it vectorizing. Serial, as every kernel of
# encode's path: bench/RESULTS.md, "What the fast path does, and why" (Threads), says why.
@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _softmax_blocks(scores, block_starts, block_rows, row_lengths, divisor, powers_of_two):
    # powers_of_two: float32 scratch of max(_CHUNK, longest row) floats, where 2^n is built from its int32
    # exponent bits
    power_bits = powers_of_two.view(np.int32)
    lanes = np.empty(MAXIMUM_LANES, np.float32)
    scale = np.float32(1.0) / divisor
    for b in range(len(block_starts)):
        length = row_lengths[b]
        chunk_rows = max(1, _CHUNK // length)
        for first_row in range(0, block_rows[b], chunk_rows):
            rows = min(chunk_rows, block_rows[b] - first_row)
            chunk = scores[block_starts[b] + first_row * length : block_starts[b] + (first_row + rows) * length]
            for r in range(rows):  # row -> row * scale - its maximum (max(x * s) = max(x) * s: rounding is monotonic)
                row = chunk[r * length : (r + 1) * length]
                maximum = row_maximum(row, lanes) * scale
                for j in range(length):
                    row[j] = row[j] * scale - maximum
            for j in range(len(chunk)):
                mantissa, exponent = exp_mantissa(chunk[j])
                chunk[j] = mantissa
                power_bits[j] = (np.int32(exponent) + 127) << 23  # the float32 2^exponent
            for j in range(len(chunk)):
                chunk[j] = chunk[j] * powers_of_two[j]
            for r in range(rows):
                row = chunk[r * length : (r + 1) * length]
                total = np.float32(0.0)
                for j in range(length):
                    total += row[j]
                inverse_total = np.float32(1.0) / total
                for j in range(length):
                    row[j] = row[j] * inverse_total


def softmax_blocks(scores, block_starts, block_rows, row_lengths, divisor):
    """The numba version of ``softmax_blocks_reference``, in place in ``scores`` (float32), which is returned."""
    if scores.dtype != np.float32 or scores.ndim != 1:
        raise ValueError(f"softmax_blocks expects a flat float32 buffer, got {scores.dtype} {scores.shape}")
    block_starts, block_rows, row_lengths = (
        np.asarray(values, np.int64) for values in (block_starts, block_rows, row_lengths)
    )
    sizes = block_rows * row_lengths
    if len(sizes) and (block_rows.min() < 0 or row_lengths.min() < 1 or (block_starts + sizes).max() > len(scores)):
        raise ValueError("softmax_blocks: every row must be non-empty and every block inside the buffer")
    powers_of_two = np.empty(max(_CHUNK, int(row_lengths.max(initial=0))), np.float32)
    _softmax_blocks(scores, block_starts, block_rows, row_lengths, np.float32(divisor), powers_of_two)
    return scores


def packed_attention(qkv, offsets, num_heads, position_bias=None, positions=None):
    """The fast version of ``packed_attention_reference``: same arguments, same result (to float32 rounding).
    Per sequence, q k^T for all heads is one stacked OpenBLAS matmul into a scores buffer; one softmax_blocks
    call covers every sequence; p v is a second matmul per sequence, written into the context columns."""
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
    # views, no copies: queries, keys and values (3, heads, head_dim, tokens); context (heads, head_dim, tokens)
    heads = qkv.reshape(3, num_heads, head_dim, tokens)
    context = np.empty((hidden, tokens), dtype=np.float32)
    context_heads = context.reshape(num_heads, head_dim, tokens)
    # sequence i's scores: a (heads, length, length) block of one flat buffer, at block_starts[i]
    block_starts = np.concatenate([[0], np.cumsum(num_heads * lengths**2)])
    scores = np.empty(block_starts[-1], dtype=np.float32)
    blocks = [
        scores[block_starts[i] : block_starts[i + 1]].reshape(num_heads, lengths[i], lengths[i])
        for i in range(len(lengths))
    ]
    for i, block in enumerate(blocks):
        columns = slice(offsets[i], offsets[i + 1])
        np.matmul(heads[0, :, :, columns].transpose(0, 2, 1), heads[1, :, :, columns], out=block)  # q k^T
        if position_bias is not None:  # scores / sqrt(head_dim) + bias here, so the softmax divides by 1
            where = positions[columns]
            block /= sqrt_head_dim
            block += position_bias[min(i, len(position_bias) - 1)][:, where][:, :, where]
    real = lengths > 0
    softmax_blocks(
        scores,
        block_starts[:-1][real],
        num_heads * lengths[real],  # block i: (heads * length, length)
        lengths[real],
        sqrt_head_dim if position_bias is None else 1.0,
    )
    # p v, (heads, length, head_dim), then transposed into the context columns: for long sequences this ran
    # faster than writing v^T p^T straight into them (a strided BLAS output)
    scratch = np.empty((num_heads, int(lengths.max(initial=0)), head_dim), dtype=np.float32)
    for i, block in enumerate(blocks):
        columns = slice(offsets[i], offsets[i + 1])
        weighted_values = scratch[:, : lengths[i]]
        np.matmul(block, heads[2, :, :, columns].transpose(0, 2, 1), out=weighted_values)
        context_heads[:, :, columns] = weighted_values.transpose(0, 2, 1)
    return context

"""Grouped-query attention over packed sequences, with the masks today's models use: each token attends to the
tokens of its own sequence only, and of those to the ones before it (causal), within ``window`` positions of
it on either side (sliding window), or both. The real tokens of a batch are side by side along one axis,
sequence i holding tokens offsets[i]:offsets[i + 1], so padding costs nothing. Queries have ``heads`` heads,
keys and values ``kv_heads`` (heads a multiple of it): query head h reads key/value head h // (heads / kv_heads).

``packed_masked_attention_reference`` is the readable version; ``packed_masked_attention`` runs the products in
OpenBLAS (the query heads of one key/value head stacked into one matrix, so keys and values are never
repeated) and the softmax in numba, ``banded_softmax``, one sequence at a time so that its scores stay in cache
between the three steps: each query's contiguous range of keys, the others exactly 0, and probabilities below
float32's smallest normal number 0 too (a denormal makes every product with it far slower; random-weight models
at real size are full of them).
``packed_masked_attention_over_cores`` splits its heads over the cores, for a batch that runs whole (one text:
else each core runs a group of texts already).
"""

import functools

import numba
import numpy as np

from minisbert.kernels.attention import exp_mantissa
from minisbert.runtime.threads import split_rows


@functools.lru_cache(maxsize=64)
def masked_positions(length, causal, window):
    """(rows, columns) of the (query, key) pairs a sequence of ``length`` tokens must not attend, as two int
    arrays (empty when every pair may attend)."""
    positions = np.arange(length)
    distance = positions[None, :] - positions[:, None]  # key - query, (length, length)
    allowed = np.ones((length, length), dtype=bool)
    if causal:
        allowed &= distance <= 0
    if window is not None:
        allowed &= np.abs(distance) <= window
    return np.nonzero(~allowed)


def key_range(query_position, length, causal, window):
    """The keys a query may attend, first and last (inclusive): every mask here leaves a contiguous range."""
    first = 0 if window is None else max(0, query_position - window)
    last = query_position if causal else (length - 1 if window is None else min(length - 1, query_position + window))
    return first, last


def banded_softmax_reference(scores, scaling, causal, window):
    """scores (heads, length, length), one sequence's (query, key) blocks -> a copy with each row replaced by
    softmax(row * scaling) over the keys its query may attend (key_range) and 0 elsewhere."""
    result = scores.copy()
    length = scores.shape[-1]
    for query in range(length):
        first, last = key_range(query, length, causal, window)
        allowed = result[:, query, first : last + 1] * scaling
        exponentials = np.exp(allowed - allowed.max(axis=-1, keepdims=True))
        result[:, query] = 0
        result[:, query, first : last + 1] = exponentials / exponentials.sum(axis=-1, keepdims=True)
    return result


# exp(-87) ~ 1.6e-38 is float32's smallest normal number: below it a probability is taken as 0, as a denormal
# would make every product with it far slower (and weighs nothing beside the row maximum's 1).
_EXP_FLOOR = np.float32(-87.0)
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


# exp as attention.py's softmax takes it (a polynomial times 2^n built from its exponent bits, so that LLVM
# vectorizes it: math.exp is a scalar libm call), over each query's band of keys.
@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _banded_softmax(scores, scaling, causal, window, powers_of_two):
    # scores (heads, length, length); window < 0: no window; powers_of_two: float32 scratch of >= length floats,
    # where 2^n is built from its int32 exponent bits
    power_bits = powers_of_two.view(np.int32)
    lanes = np.empty(MAXIMUM_LANES, np.float32)
    heads, length, _ = scores.shape
    for head in range(heads):
        for query in range(length):
            first = 0 if window < 0 else max(0, query - window)
            last = query if causal else (length - 1 if window < 0 else min(length - 1, query + window))
            row = scores[head, query]
            band = row[first : last + 1]
            maximum = row_maximum(band, lanes) * scaling
            for j in range(len(band)):
                exponent_argument = band[j] * scaling - maximum
                mantissa, exponent = exp_mantissa(exponent_argument)
                band[j] = mantissa if exponent_argument > _EXP_FLOOR else np.float32(0.0)
                power_bits[j] = (np.int32(exponent) + 127) << 23  # the float32 2^exponent
            total = np.float32(0.0)
            for j in range(len(band)):
                band[j] *= powers_of_two[j]
                total += band[j]
            inverse_total = np.float32(1.0) / total
            for j in range(len(band)):
                band[j] *= inverse_total
            row[:first] = 0
            row[last + 1 :] = 0


def banded_softmax(scores, scaling, causal, window):
    """The numba version of ``banded_softmax_reference``, in place in ``scores`` (float32, C-contiguous), returned.
    Masked keys are skipped, not set to -inf: their probabilities are exactly 0, as are those below exp(-87)."""
    if (scores.dtype != np.float32 or scores.ndim != 3 or scores.shape[1] != scores.shape[2] or scores.shape[2] == 0
            or not scores.flags.c_contiguous):
        raise ValueError(f"banded_softmax expects contiguous float32 scores (heads, length, length) with length >= 1, "
                         f"got {scores.dtype} {scores.shape}")
    powers_of_two = np.empty(scores.shape[2], np.float32)
    _banded_softmax(scores, np.float32(scaling), causal, -1 if window is None else window, powers_of_two)
    return scores


def check_arguments(query, key, value, offsets):
    if query.ndim != 3 or key.shape != value.shape or key.ndim != 3 or query.shape[1:] != key.shape[1:]:
        raise ValueError(
            f"packed attention expects query (heads, tokens, head_dim) and key, value (kv_heads, tokens, head_dim), "
            f"got {query.shape}, {key.shape}, {value.shape}"
        )
    if query.shape[0] % key.shape[0] != 0:
        raise ValueError(f"{query.shape[0]} query heads are not a multiple of {key.shape[0]} key/value heads")
    offsets = np.asarray(offsets, dtype=np.int64)
    rising = offsets.ndim == 1 and len(offsets) > 0 and offsets[0] == 0 and np.all(np.diff(offsets) >= 0)
    if not rising or offsets[-1] != query.shape[1]:
        raise ValueError(f"offsets must rise from 0 to the number of tokens ({query.shape[1]}), got {offsets}")
    return offsets


def packed_masked_attention_reference(
    query, key, value, offsets, scaling, causal=False, window=None, position_bias=None
):
    """query (heads, tokens, head_dim), key and value (kv_heads, tokens, head_dim), offsets (sequences + 1,)
    -> context (heads, tokens, head_dim): per sequence, softmax(q k^T * scaling + position_bias, masked) v.
    position_bias (heads, n, n), n at least the longest sequence: [:, i, j] for the query at position i of its
    sequence and the key at position j (T5's relative position bias)."""
    offsets = check_arguments(query, key, value, offsets)
    groups = query.shape[0] // key.shape[0]
    context = np.zeros_like(query)
    for start, stop in zip(offsets[:-1], offsets[1:]):
        if start == stop:
            continue
        q = query[:, start:stop]  # (heads, length, head_dim)
        k, v = (np.repeat(t[:, start:stop], groups, axis=0) for t in (key, value))  # (heads, length, head_dim)
        scores = q @ k.transpose(0, 2, 1) * np.asarray(scaling, query.dtype)  # (heads, length, length)
        if position_bias is not None:
            scores = scores + position_bias[:, : stop - start, : stop - start]
        rows, columns = masked_positions(stop - start, causal, window)
        scores[:, rows, columns] = -np.inf
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        context[:, start:stop] = scores / scores.sum(axis=-1, keepdims=True) @ v
    return context


def packed_masked_attention(query, key, value, offsets, scaling, causal=False, window=None, position_bias=None):
    """The fast version of ``packed_masked_attention_reference``: same arguments, float32, same result to
    float32 rounding."""
    offsets = check_arguments(query, key, value, offsets)
    if position_bias is not None and (
        position_bias.shape[0] != query.shape[0] or min(position_bias.shape[1:]) < np.diff(offsets).max(initial=0)
    ):
        raise ValueError(
            f"position_bias {position_bias.shape} must be (heads, n, n) with {query.shape[0]} heads and n at least "
            f"the longest sequence ({np.diff(offsets).max(initial=0)})"
        )
    if query.dtype != np.float32 or key.dtype != np.float32 or value.dtype != np.float32:
        raise ValueError(f"packed_masked_attention expects float32, got {query.dtype}, {key.dtype}, {value.dtype}")
    # each head's (tokens, head_dim) rows contiguous, so that every per-sequence product runs in OpenBLAS (numpy's
    # own loop takes the strided views a (tokens, heads, head_dim) split gives, far slower)
    query, key, value = (np.ascontiguousarray(t) for t in (query, key, value))
    heads, tokens, head_dim = query.shape
    kv_heads = key.shape[0]
    groups = heads // kv_heads
    lengths = np.diff(offsets)
    longest = int(lengths.max(initial=0))
    scores = np.empty(heads * longest * longest, dtype=np.float32)  # one sequence's block at a time
    powers_of_two = np.empty(max(longest, 1), np.float32)  # the softmax's scratch
    context = np.empty_like(query)
    softmax_scaling = np.float32(scaling if position_bias is None else 1.0)
    window_or_none = -1 if window is None else window  # _banded_softmax's encoding of no window
    # one sequence at a time, its three steps back to back: its scores stay in the core's cache between them
    for start, stop in zip(offsets[:-1], offsets[1:]):
        length = stop - start
        if length == 0:
            continue
        # the query heads of key/value head g, stacked: (kv_heads, groups * length, head_dim)
        stacked = query[:, start:stop].reshape(kv_heads, groups * length, head_dim)
        block = scores[: heads * length * length].reshape(kv_heads, groups * length, length)
        np.matmul(stacked, key[:, start:stop].transpose(0, 2, 1), out=block)  # q k^T
        if position_bias is not None:  # scores * scaling + bias here, so the softmax scales by 1
            square = block.reshape(heads, length, length)
            square *= np.float32(scaling)
            square += position_bias[:, :length, :length]
        _banded_softmax(block.reshape(heads, length, length), softmax_scaling, causal, window_or_none, powers_of_two)
        weighted = np.matmul(block, value[:, start:stop])  # (kv_heads, groups * length, head_dim)
        context[:, start:stop] = weighted.reshape(heads, length, head_dim)
    return context


def packed_masked_attention_over_cores(
    query, key, value, offsets, scaling, causal=False, window=None, position_bias=None
):
    """packed_masked_attention with the heads split over the cores (runtime.threads.split_rows), same arguments
    and result: each part takes whole key/value heads with their query heads, or, with a single key/value head,
    a slice of the query heads. Callers hold numpy's BLAS at one thread (each part runs on its own core)."""
    heads, kv_heads = query.shape[0], key.shape[0]
    groups = heads // max(kv_heads, 1)
    context = np.empty(query.shape, dtype=np.float32)
    work = int((np.diff(np.asarray(offsets)) ** 2).sum()) * query.shape[2]  # one query head's multiply-adds / 2

    def run(part):  # part: a slice of key/value heads, or of query heads when there is one key/value head
        if kv_heads == 1:
            query_heads, kv_part = part, slice(0, 1)
        else:
            query_heads, kv_part = slice(part.start * groups, part.stop * groups), part
        bias = None if position_bias is None else position_bias[query_heads]
        context[query_heads] = packed_masked_attention(
            query[query_heads], key[kv_part], value[kv_part], offsets, scaling, causal, window, bias
        )

    split_rows(heads if kv_heads == 1 else kv_heads, run, work if kv_heads == 1 else work * groups)
    return context

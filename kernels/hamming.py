"""Hamming distance between bit-packed embeddings (np.packbits rows, (n, bytes) uint8): the number of differing
bits, counted 64 bits at a time with a popcount. ``hamming_top_k_update`` fuses distance and top-k selection, so a
binary search over millions of rows never holds a (queries, corpus) matrix.
"""

import numba
import numpy as np

from minisbert.kernels.topk import heap_push, top_k_reference
from minisbert.runtime.threads import split_rows

_M1, _M2, _M4 = np.uint64(0x5555555555555555), np.uint64(0x3333333333333333), np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)
_S1, _S2, _S4, _S56 = np.uint64(1), np.uint64(2), np.uint64(4), np.uint64(56)
CORPUS_BLOCK = 2048  # corpus rows every query scans before the next block (2048 x 48 bytes stays in L2)
QUERY_GROUP = 32  # queries that share one transposed copy of each corpus block


def hamming_distance_reference(a, b):
    """a (n, bytes), b (m, bytes) uint8 -> (n, m) int64 count of differing bits."""
    bits_a, bits_b = np.unpackbits(a, axis=1), np.unpackbits(b, axis=1)  # (n, bits), (m, bits)
    return (bits_a[:, None, :] != bits_b[None, :, :]).sum(axis=-1, dtype=np.int64)


def hamming_top_k_reference(queries, corpus, k):
    """The k corpus rows nearest each query by Hamming distance, as hamming_top_k_update leaves them in a
    RunningTopK: queries (n, bytes), corpus (m, bytes) uint8 -> -distances, indices (n, min(k, m)), nearest first,
    equal distances by smaller index."""
    return top_k_reference(-hamming_distance_reference(queries, corpus), k)


@numba.njit(inline="always")
def _popcount(x):
    """Set bits of a uint64 (the SWAR bit count, which LLVM turns into one popcnt instruction)."""
    x = x - ((x >> _S1) & _M1)
    x = (x & _M2) + ((x >> _S2) & _M2)
    x = (x + (x >> _S4)) & _M4
    return np.int64((x * _H01) >> _S56)


@numba.njit(nogil=True, cache=True)
def _hamming_top_k(query_words, corpus_words, column_offset, heap_values, heap_indices, heap_sizes):
    # query_words (q, words), corpus_words (c, words) uint64; heaps (q, k) of -distance, as in RunningTopK.
    # Corpus rows arrive in increasing index order, so a candidate must beat the worst kept score strictly.
    # Groups of queries, each copying a corpus block transposed, so that the popcount loop over its rows is
    # contiguous and vectorises; the caller splits the queries over threads (no barrier per block: robust on a
    # busy machine).
    k = heap_values.shape[1]
    if k == 0:
        return
    words = corpus_words.shape[1]
    for group in range((query_words.shape[0] + QUERY_GROUP - 1) // QUERY_GROUP):
        first_query, end_query = group * QUERY_GROUP, min((group + 1) * QUERY_GROUP, query_words.shape[0])
        block = np.empty((words, CORPUS_BLOCK), dtype=np.uint64)  # (words, block) transposed corpus rows
        distances = np.empty(CORPUS_BLOCK, dtype=np.int64)  # (block,)
        for block_start in range(0, corpus_words.shape[0], CORPUS_BLOCK):
            width = min(CORPUS_BLOCK, corpus_words.shape[0] - block_start)
            for j in range(width):
                for w in range(words):
                    block[w, j] = corpus_words[block_start + j, w]
            for i in range(first_query, end_query):
                distances[:width] = 0
                for w in range(words):
                    query_word = query_words[i, w]
                    for j in range(width):
                        distances[j] += _popcount(query_word ^ block[w, j])
                size = heap_sizes[i]
                for j in range(width):
                    if size < k or -distances[j] > heap_values[i, 0]:
                        size = heap_push(
                            heap_values, heap_indices, i, size, -distances[j], column_offset + block_start + j
                        )
                heap_sizes[i] = size


def as_words(packed):
    """(n, bytes) packed bits -> (n, ceil(bytes / 8)) uint64, zero-padded (zero bytes never differ)."""
    packed = np.ascontiguousarray(packed).view(np.uint8)
    if packed.shape[1] % 8:
        packed = np.pad(packed, ((0, 0), (0, 8 - packed.shape[1] % 8)))
    return packed.view(np.uint64)


def hamming_top_k_update(running, query_words, corpus_words, column_offset, first_row=0):
    """Offers -(Hamming distance) of queries first_row ... to corpus rows column_offset ... to a RunningTopK of
    int64 scores. Chunks of corpus rows must come in increasing order (ties keep the smaller index)."""
    rows = slice(first_row, first_row + len(query_words))
    values, indices, sizes = running.values[rows], running.indices[rows], running.sizes[rows]
    split_rows(
        len(query_words),
        lambda part: _hamming_top_k(
            query_words[part], corpus_words, column_offset, values[part], indices[part], sizes[part]
        ),
        work_per_row=corpus_words.size,
        multiple=QUERY_GROUP,
    )
    running.columns_seen = max(running.columns_seen, column_offset + len(corpus_words))

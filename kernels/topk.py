"""Top-k selection: the k largest scores of each row and their column indices, kept in one small min-heap per
row and merged chunk after chunk, so a search over millions of corpus rows holds only (rows, k) numbers between
chunks. Order: larger score first, equal scores by smaller index first (a total order: results are deterministic).
"""

import numba
import numpy as np

from minisbert.runtime.threads import split_rows


def top_k_reference(scores, k):
    """The k best of each row, best first: scores (n, m) -> values (n, min(k, m)), indices (n, min(k, m)) int64."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (n, min(k, m))
    return np.take_along_axis(scores, order, axis=1), order


@numba.njit(inline="always")
def _worse(value, index, other_value, other_index):
    """Whether (value, index) ranks below (other_value, other_index)."""
    return value < other_value or (value == other_value and index > other_index)


@numba.njit(inline="always")
def heap_push(heap_values, heap_indices, row, size, value, index):
    """Offers (value, index) to row's min-heap of capacity k holding `size` items; returns the new size.
    The root heap_*[row, 0] is the worst kept item, so most candidates are rejected by one comparison."""
    capacity = heap_values.shape[1]
    if size < capacity:  # not full yet: put the item at the bottom and sift it up
        position = size
        while position > 0:
            parent = (position - 1) // 2
            if not _worse(value, index, heap_values[row, parent], heap_indices[row, parent]):
                break
            heap_values[row, position] = heap_values[row, parent]
            heap_indices[row, position] = heap_indices[row, parent]
            position = parent
        heap_values[row, position] = value
        heap_indices[row, position] = index
        return size + 1
    if capacity == 0 or not _worse(heap_values[row, 0], heap_indices[row, 0], value, index):
        return size
    position = 0  # full: the item replaces the root and sifts down
    while True:
        child = 2 * position + 1
        if child >= size:
            break
        if child + 1 < size and _worse(
            heap_values[row, child + 1], heap_indices[row, child + 1], heap_values[row, child], heap_indices[row, child]
        ):
            child += 1
        if not _worse(heap_values[row, child], heap_indices[row, child], value, index):
            break
        heap_values[row, position] = heap_values[row, child]
        heap_indices[row, position] = heap_indices[row, child]
        position = child
    heap_values[row, position] = value
    heap_indices[row, position] = index
    return size


@numba.njit(nogil=True, cache=True)
def _merge_scores(scores, column_offset, heap_values, heap_indices, heap_sizes, nan_counts):
    # scores (rows, columns); heap_values, heap_indices (rows, k); heap_sizes, nan_counts (rows,). nogil: rows
    # are split over threads by minisbert.runtime.threads.split_rows (not numba's parallel=True: see that module)
    for row in range(scores.shape[0]):
        size = heap_sizes[row]
        for column in range(scores.shape[1]):
            value = scores[row, column]
            if value != value:  # NaN ranks nowhere: counted, so the caller can refuse it
                nan_counts[row] += 1
            else:
                size = heap_push(heap_values, heap_indices, row, size, value, column_offset + column)
        heap_sizes[row] = size


class RunningTopK:
    """The k best (score, column) of each of `rows` rows, updated with one chunk of columns at a time."""

    def __init__(self, rows, k, dtype):
        self.values = np.empty((rows, k), dtype=dtype)  # (rows, k) heaps, root = worst kept
        self.indices = np.empty((rows, k), dtype=np.int64)
        self.sizes = np.zeros(rows, dtype=np.int64)
        self.nan_counts = np.zeros(rows, dtype=np.int64)
        self.columns_seen = 0  # 1 + the largest column index offered so far

    def update(self, scores, column_offset, first_row=0):
        """Offers scores (chunk_rows, columns) of rows first_row ... and columns column_offset ... ."""
        scores = np.asarray(scores, dtype=self.values.dtype)
        rows = slice(first_row, first_row + len(scores))
        if scores.ndim != 2 or len(scores) != len(self.values[rows]):
            raise ValueError(f"expected scores of shape ({len(self.values[rows])}, columns), got {scores.shape}")
        values, indices, sizes, nans = self.values[rows], self.indices[rows], self.sizes[rows], self.nan_counts[rows]
        split_rows(
            len(scores),
            lambda part: _merge_scores(
                scores[part], column_offset, values[part], indices[part], sizes[part], nans[part]
            ),
            work_per_row=scores.shape[1],
        )
        self.columns_seen = max(self.columns_seen, column_offset + scores.shape[1])

    def result(self):
        """values, indices (rows, kept), best first; kept = min(k, columns seen), the same for every row."""
        kept = int(self.sizes.min()) if len(self.sizes) else min(self.values.shape[1], self.columns_seen)
        values, indices = self.values[:, :kept], self.indices[:, :kept]
        order = np.lexsort((indices, -values), axis=-1)  # (rows, kept): score descending, then index
        return np.take_along_axis(values, order, axis=1), np.take_along_axis(indices, order, axis=1)


def top_k(scores, k):
    """The fast twin of top_k_reference: scores (n, m) -> values, indices (n, min(k, m))."""
    scores = np.asarray(scores)
    running = RunningTopK(scores.shape[0], k, scores.dtype)
    running.update(scores, 0)
    if running.nan_counts.any():
        raise ValueError("top_k: the scores hold NaN, which has no rank")
    return running.result()


def merge_top_k(values, indices, k):
    """The k best of each row among candidates gathered from several chunks (each chunk's own top-k, indices
    already global): values, indices (n, candidates) -> (n, min(k, candidates)), best first, in the same order
    as top_k (larger value first, equal values by smaller index)."""
    order = np.lexsort((indices, -values), axis=-1)[:, :k]  # (n, min(k, candidates))
    return np.take_along_axis(values, order, axis=1), np.take_along_axis(indices, order, axis=1)

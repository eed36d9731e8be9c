"""The gradient of an embedding table: each looked-up position's gradient added to its id's row (an id met
several times gets the sum), as torch's embedding backward. The NumPy reference is ``np.add.at``, which adds
one element at a time through a generic ufunc loop; the kernel adds whole rows (vectorized), in the same order.
Bytes: the (tokens, hidden) gradient read once, the touched rows of the table read and written once each.
"""

import numba
import numpy as np


def embedding_gradient_reference(d_out, ids, rows):
    """d_out (tokens, hidden), ids (tokens,) int in [0, rows) -> d_table (rows, hidden)."""
    d_table = np.zeros((rows, d_out.shape[1]), dtype=d_out.dtype)
    np.add.at(d_table, ids, d_out)
    return d_table


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _embedding_gradient(d_out, ids, d_table):
    for token in range(len(ids)):
        row = ids[token]
        for column in range(d_out.shape[1]):
            d_table[row, column] += d_out[token, column]


def embedding_gradient(d_out, ids, rows):
    """The fast twin of embedding_gradient_reference (same arguments and result)."""
    if d_out.ndim != 2 or ids.shape != d_out.shape[:1]:
        raise ValueError(f"embedding_gradient expects d_out (tokens, hidden) and ids (tokens,), got {d_out.shape} "
                         f"and {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= rows):
        bad = ids.max() if ids.max() >= rows else ids.min()
        raise ValueError(f"embedding_gradient: id {bad} outside the table's {rows} rows")
    d_table = np.zeros((rows, d_out.shape[1]), dtype=d_out.dtype)
    _embedding_gradient(np.ascontiguousarray(d_out), ids, d_table)
    return d_table

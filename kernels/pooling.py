"""Pooling kernels: token embeddings (batch, seq, hidden) and an attention mask -> one vector per text.

``mean_pool`` is sentence-transformers' masked mean: the sum of the real tokens' vectors divided by their
count (clamped at 1e-9, so an all-padding row gives zeros rather than NaN); with a weight per token instead
of a 0/1 mask it is also the weighted mean. ``max_pool`` is the masked maximum (-inf for an empty row).
"""

import numba
import numpy as np


def mean_pool_reference(token_embeddings, attention_mask):
    """token_embeddings (batch, seq, hidden), attention_mask (batch, seq) -> (batch, hidden)."""
    mask = attention_mask[:, :, None].astype(token_embeddings.dtype)  # (batch, seq, 1)
    summed = (token_embeddings * mask).sum(axis=1)  # (batch, hidden)
    counts = np.maximum(mask.sum(axis=1), 1e-9)  # (batch, 1)
    return summed / counts


# Serial, as every kernel of encode's path: see kernels/similarity.py _normalize_rows.
@numba.njit(cache=True)
def _mean_pool(token_embeddings, attention_mask, out):
    batch, seq, hidden = token_embeddings.shape
    for b in range(batch):
        count = 0.0
        for h in range(hidden):
            out[b, h] = 0.0
        for s in range(seq):
            if attention_mask[b, s] != 0:
                weight = attention_mask[b, s]
                count += weight
                for h in range(hidden):
                    out[b, h] += token_embeddings[b, s, h] * weight
        count = max(count, 1e-9)
        for h in range(hidden):
            out[b, h] /= count


def mean_pool(token_embeddings, attention_mask):
    """Masked mean over the sequence axis: (batch, seq, hidden), (batch, seq) -> (batch, hidden)."""
    token_embeddings = np.asarray(token_embeddings)
    if token_embeddings.dtype not in (np.float32, np.float64):
        token_embeddings = token_embeddings.astype(np.float32)
    attention_mask = np.asarray(attention_mask).astype(token_embeddings.dtype)
    if token_embeddings.ndim != 3 or attention_mask.shape != token_embeddings.shape[:2]:
        raise ValueError(
            f"mean_pool expects token embeddings (batch, seq, hidden) and a mask (batch, seq); "
            f"got {token_embeddings.shape} and {attention_mask.shape}"
        )
    out = np.empty(token_embeddings.shape[::2], dtype=token_embeddings.dtype)
    _mean_pool(token_embeddings, attention_mask, out)
    return out


def max_pool_reference(token_embeddings, attention_mask):
    """token_embeddings (batch, seq, hidden), attention_mask (batch, seq) -> (batch, hidden): the largest value
    over the real tokens; -inf where a row has none, as sentence-transformers' masked_fill(-inf).max."""
    masked = np.where(attention_mask[:, :, None] != 0, token_embeddings, -np.inf)  # (batch, seq, hidden)
    return masked.max(axis=1, initial=-np.inf).astype(token_embeddings.dtype)


@numba.njit(cache=True)  # serial: it runs between OpenBLAS calls, where numba's thread pool only contends
def _max_pool(token_embeddings, attention_mask, out):
    batch, seq, hidden = token_embeddings.shape
    for b in range(batch):
        for h in range(hidden):
            out[b, h] = -np.inf
        for s in range(seq):
            if attention_mask[b, s] != 0:
                for h in range(hidden):
                    out[b, h] = max(out[b, h], token_embeddings[b, s, h])


def max_pool(token_embeddings, attention_mask):
    """Masked max over the sequence axis: (batch, seq, hidden), (batch, seq) -> (batch, hidden)."""
    token_embeddings = np.asarray(token_embeddings)
    if token_embeddings.dtype not in (np.float32, np.float64):
        token_embeddings = token_embeddings.astype(np.float32)
    attention_mask = np.asarray(attention_mask)
    if token_embeddings.ndim != 3 or attention_mask.shape != token_embeddings.shape[:2]:
        raise ValueError(
            f"max_pool expects token embeddings (batch, seq, hidden) and a mask (batch, seq); "
            f"got {token_embeddings.shape} and {attention_mask.shape}"
        )
    out = np.empty(token_embeddings.shape[::2], dtype=token_embeddings.dtype)
    _max_pool(token_embeddings, attention_mask.astype(np.int64), out)
    return out

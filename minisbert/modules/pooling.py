"""The Pooling module: token embeddings (batch, seq, hidden) -> one sentence embedding per text, by
sentence-transformers' pooling modes (cls, max, mean, mean_sqrt_len_tokens, weightedmean, lasttoken).
"""

from pathlib import Path

import numpy as np

from minisbert.files.loading import FLAG, POSITIVE_SIZE, TEXT_OR_TEXTS, ModelLoadError, read_config
from minisbert.kernels.pooling import max_pool, mean_pool

__all__ = ["POOLING_MODES", "Pooling", "pool"]


# sentence-transformers' pooling modes, in the order a legacy config (below) concatenates the ones it enables.
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
# Pooling configs saved before sentence-transformers 6 switch each mode on with its own key.
LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


POOLING_CONFIG_CHECKS = {
    "embedding_dimension": POSITIVE_SIZE,
    "word_embedding_dimension": POSITIVE_SIZE,
    "pooling_mode": TEXT_OR_TEXTS,
    "include_prompt": FLAG,
    **dict.fromkeys(LEGACY_POOLING_KEYS, FLAG),
}


class Pooling:
    """Token embeddings (batch, seq, hidden) -> features["sentence_embedding"] (batch, modes * hidden): each
    mode's vector, concatenated. Without ``include_prompt`` the prompt's tokens are left out."""

    def __init__(self, embedding_dimension, pooling_mode="mean", include_prompt=True):
        modes = (pooling_mode,) if isinstance(pooling_mode, str) else tuple(pooling_mode)
        invalid = [mode for mode in modes if mode not in POOLING_MODES]
        if invalid or not modes:
            raise ModelLoadError(f"unsupported pooling mode {invalid or modes}; supported: {POOLING_MODES}")
        self.modes = modes
        self.include_prompt = include_prompt
        self.sentence_embedding_dimension = len(modes) * embedding_dimension

    @classmethod
    def from_folder(cls, folder):
        config = read_config(Path(folder) / "config.json", POOLING_CONFIG_CHECKS)
        dimension = config.get("embedding_dimension", config.get("word_embedding_dimension"))
        if dimension is None:
            raise ModelLoadError(f"{Path(folder) / 'config.json'} gives no embedding_dimension")
        mode = config.get("pooling_mode")
        if mode is None:  # legacy keys: the enabled modes in sentence-transformers' order, mean if none
            mode = tuple(name for key, name in LEGACY_POOLING_KEYS.items() if config.get(key)) or "mean"
        try:
            return cls(dimension, mode, config.get("include_prompt", True))
        except ModelLoadError as error:
            raise ModelLoadError(f"{Path(folder) / 'config.json'}: {error}") from None

    def __call__(self, features):
        token_embeddings = features["token_embeddings"]  # (batch, seq, hidden)
        attention_mask = features["attention_mask"]  # (batch, seq)
        pooling_mask = attention_mask
        if not self.include_prompt and features.get("prompt_length"):
            pooling_mask = mask_without_prompt(attention_mask, features["prompt_length"])
        vectors = [pool(mode, token_embeddings, pooling_mask, attention_mask) for mode in self.modes]
        features["sentence_embedding"] = np.concatenate(vectors, axis=-1)  # (batch, modes * hidden)
        return features


def first_token_index(attention_mask):
    # attention_mask (batch, seq) -> (batch,): the first position the mask keeps (0 for a row it keeps none of)
    return attention_mask.argmax(axis=1)


def mask_without_prompt(attention_mask, prompt_length):
    # attention_mask (batch, seq) -> (batch, seq) with the prompt's tokens (after any left padding) zeroed
    positions = np.arange(attention_mask.shape[1])[None, :]  # (1, seq)
    prompt_end = first_token_index(attention_mask)[:, None] + prompt_length  # (batch, 1)
    return np.where(positions < prompt_end, 0, attention_mask)


def pool(mode, token_embeddings, mask, attention_mask):
    # token_embeddings (batch, seq, hidden), mask (batch, seq) of the tokens to pool, attention_mask (batch, seq)
    # the tokenizer's (weightedmean counts positions from its first token) -> (batch, hidden)
    rows = np.arange(len(token_embeddings))
    if mode == "cls":
        return token_embeddings[rows, first_token_index(mask)]
    if mode == "max":
        return max_pool(token_embeddings, mask)
    if mode == "mean":
        return mean_pool(token_embeddings, mask)
    if mode == "mean_sqrt_len_tokens":  # the sum divided by the square root of the token count
        counts = np.maximum(mask.sum(axis=1, keepdims=True), 1e-9).astype(token_embeddings.dtype)  # (batch, 1)
        return mean_pool(token_embeddings, mask) * np.sqrt(counts)
    if mode == "weightedmean":  # token i of a text weighs i (from 1)
        positions = np.arange(1, mask.shape[1] + 1)[None, :] - first_token_index(attention_mask)[:, None]
        return mean_pool(token_embeddings, mask * positions.astype(np.float32))
    if mode == "lasttoken":  # the last token the mask keeps, zeros for a row it keeps none of
        seq = mask.shape[1]
        from_end = np.where(mask.max(axis=1) != 0, mask[:, ::-1].argmax(axis=1), seq - 1)
        last = seq - 1 - from_end  # (batch,)
        return token_embeddings[rows, last] * mask[rows, last][:, None].astype(token_embeddings.dtype)
    raise AssertionError(mode)

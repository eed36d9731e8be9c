"""The MultiVectorMask module: which of a text's token vectors MaxSim scores (features["scoring_mask"])."""

import logging

import numpy as np

from minisbert.files.loading import TEXT_OR_TEXTS, TEXTS, ConfigError

__all__ = ["MultiVectorMask"]

logger = logging.getLogger(__name__)


class MultiVectorMask:
    """features["scoring_mask"] (batch, seq): which tokens MaxSim scores. Real tokens, plus a query's expansion
    positions; the skiplist's tokens (punctuation, for ColBERT) dropped for the skiplist's tasks (documents by
    default); for documents, only keep_only_token_ids if given."""

    CONFIG_CHECKS = {
        "skiplist_words": TEXTS,
        "skiplist_tasks": TEXT_OR_TEXTS,
        "keep_only_token_ids": ("a list of token ids", lambda value: isinstance(value, list)
                                and all(type(v) is int for v in value)),
    }

    def __init__(self, config, tokenizer, source="the MultiVectorMask config"):
        """``source``: the file ``config`` was read from (read_config checked its types), named by errors."""
        vocabulary = tokenizer.backend.get_vocab_size(with_added_tokens=True)
        outside = [v for v in config.get("keep_only_token_ids") or [] if not 0 <= v < vocabulary]
        if outside:
            raise ConfigError(f"corrupt model file {source}: 'keep_only_token_ids' must be token ids from 0 to "
                              f"{vocabulary - 1}, not {outside[0]!r}")
        tasks = config.get("skiplist_tasks") or ["document"]
        self.skiplist_tasks = [tasks] if isinstance(tasks, str) else list(tasks)
        self.keep_only_token_ids = config.get("keep_only_token_ids")
        words = config.get("skiplist_words") or []
        ids = [tokenizer.backend.token_to_id(word) for word in words]
        unknown = [word for word, token_id in zip(words, ids) if token_id is None]
        if unknown:  # sentence-transformers drops them too (rather than skipping every [UNK])
            logger.warning("skiplist words %s are not single tokens of the vocabulary: not skipped", unknown)
        self.skiplist_ids = np.array([token_id for token_id in ids if token_id is not None], dtype=np.int64)

    def __call__(self, features, task=None):
        input_ids = features["input_ids"]
        mask = features["attention_mask"].astype(bool)  # (batch, seq)
        if task == "query" and "query_expansion_positions" in features:
            mask |= features["query_expansion_positions"]
        if (task or "document") in self.skiplist_tasks and len(self.skiplist_ids):
            mask &= ~np.isin(input_ids, self.skiplist_ids)
        if task != "query" and self.keep_only_token_ids:
            mask &= np.isin(input_ids, self.keep_only_token_ids)
        features["scoring_mask"] = mask
        return features

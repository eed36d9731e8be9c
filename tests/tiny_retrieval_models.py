"""Tiny random-weight SparseEncoder (SPLADE, inference-free SPLADE) and MultiVectorEncoder (ColBERT) models, built
with transformers' config classes and saved by sentence-transformers' own classes, for parity tests.

The encoders and tokenizers are tests/tiny_models.py's (hidden size 32, 2 layers); SPLADE models swap in the
architecture's *ForMaskedLM so that the MLM head is saved too.
"""

import json
import string
from pathlib import Path

from tiny_models import random_model, transformers_model_and_tokenizer

# Subtracted from the MLM decoder's bias so that a random model's vectors are sparse (a few % of the vocabulary
# active), as a trained SPLADE model's are.
SPARSITY_BIAS = 1.5


def masked_lm_folder(architecture, hf_folder):
    """A transformers *ForMaskedLM of ``architecture`` with random weights, and its tokenizer, in hf_folder."""
    import torch
    import transformers

    hf_folder.mkdir(parents=True, exist_ok=True)
    transformers_model_and_tokenizer(architecture, hf_folder)
    config = transformers.AutoConfig.from_pretrained(hf_folder)
    torch.manual_seed(0)
    model = random_model(transformers.AutoModelForMaskedLM.from_config(config), seed=2)
    with torch.no_grad():
        model.get_output_embeddings().bias.sub_(SPARSITY_BIAS)
    model.save_pretrained(hf_folder)
    return hf_folder


def build_splade(folder, architecture="bert", pooling_strategy="max", activation_function="relu", legacy=False,
                 inference_free=False, max_active_dims=None):
    """Saves a tiny SPLADE SparseEncoder in folder. legacy: as the older MLMTransformer module lists it.
    inference_free: queries through a SparseStaticEmbedding (random weights), documents through SPLADE."""
    import torch
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules import Router, Transformer
    from sentence_transformers.sparse_encoder.modules import SparseStaticEmbedding, SpladePooling

    folder = Path(folder)
    hf_folder = masked_lm_folder(architecture, folder.parent / f"{folder.name}-transformers")
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
    hf_folder = folder.parent / f"{folder.name}-transformers"
    hf_folder.mkdir(parents=True, exist_ok=True)
    transformers_model_and_tokenizer(architecture, hf_folder)
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
    hf_folder = folder.parent / f"{folder.name}-transformers"
    hf_folder.mkdir(parents=True, exist_ok=True)
    transformers_model_and_tokenizer(architecture, hf_folder)
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
    folder.mkdir(parents=True, exist_ok=True)
    transformers_model_and_tokenizer("bert", folder)
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

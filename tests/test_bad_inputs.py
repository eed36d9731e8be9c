"""Bad input gets minisbert's own clear error naming the problem (the argument and value, the file and key), never
a crash deep inside or a silent wrong answer: encode's arguments, every config file the loader reads, the search
and evaluation functions, the command line. One row of REFUSALS per kind; they make the README's table "What
minisbert refuses" (tests/refusals.py), and a test checks that the README holds it. Hostile weight files have
their own module, test_hostile_files.py; property tests of arbitrary text are at the end."""

import json
from functools import partial

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inputs import REPO

from minisbert import SentenceTransformer, SparseEncoder
from minisbert.families.sparse_encoder import sparse_search
from minisbert.cli import main as cli
from minisbert.evaluation import EmbeddingSimilarityEvaluator, read_pairs
from minisbert.files.loading import ConfigError, ModelLoadError
from minisbert.architectures import UnsupportedArchitectureError
from minisbert.architectures.checkpoint import CheckpointError
from minisbert.architectures.modern_layers import UnsupportedConfigError
from minisbert.util.quantization import quantize_embeddings, semantic_search_binary
from minisbert.util import community_detection, cos_sim, maxsim, multi_vector_search, semantic_search
from refusals import Refusal, check, render


class Context:
    """What a row's trigger may use: the default model, its folder, and a scratch folder."""

    def __init__(self, model, folder, tmp_path, tiny_cross_encoder):
        self.model, self.folder, self.tmp_path = model, folder, tmp_path
        self.tiny_cross_encoder = tiny_cross_encoder

    def cross_encoder(self):
        """A tiny one-label BERT cross-encoder (built on first use)."""
        return self.tiny_cross_encoder("bert")[1]

    def sparse_encoder(self):
        """A tiny SPLADE SparseEncoder, built in the scratch folder."""
        from tiny_models import build_splade

        build_splade(self.tmp_path / "splade")
        return SparseEncoder(self.tmp_path / "splade")

    def model_with(self, relative_path, content):
        """A copy of the default model (large files linked, not copied) with one file's content replaced: a
        JSON value, raw text, or a function of the file's JSON (whose return value is written)."""
        copy = self.tmp_path / "model"
        for source in self.folder.rglob("*"):
            target = copy / source.relative_to(self.folder)
            if source.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(source)
        path = copy / relative_path
        if callable(content):
            content = content(json.loads(path.read_text()) if path.exists() else {})
        if path.exists() or path.is_symlink():
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is not None:
            path.write_text(content if isinstance(content, str) else json.dumps(content))
        return partial(SentenceTransformer, copy)

    def file(self, name, content):
        path = self.tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return str(path)


def edit(**changes):
    """A function of a JSON object returning it with keys changed (a value of ... deletes the key)."""
    return lambda config: {**{k: v for k, v in config.items() if changes.get(k, 0) is not ...},
                           **{k: v for k, v in changes.items() if v is not ...}}


def with_dense(config):
    """modules.json with a Dense module (folder 2_Dense) before Normalize."""
    return config[:2] + [{"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]


def model_with_dense(c, dense_config):
    load = c.model_with("modules.json", with_dense)
    (c.tmp_path / "model" / "2_Dense").mkdir()
    (c.tmp_path / "model" / "2_Dense" / "config.json").write_text(json.dumps(dense_config))
    return load


def encode(**arguments):
    sentences = arguments.pop("sentences", ["text"])
    return lambda c: partial(c.model.encode, sentences, **arguments)


def run_cli(*arguments):
    return partial(cli, list(arguments))


def search_store_with_record(c, change):
    """search --embeddings of a two-line corpus's store whose "minisbert" record is change(record)."""
    corpus = c.file("corpus.txt", "one\ntwo\n")
    store = c.tmp_path / "emb.zarr"
    cli(["encode", "--input", corpus, "--output", str(store)])
    metadata = json.loads((store / "zarr.json").read_text())
    metadata["attributes"]["minisbert"] = change(metadata["attributes"]["minisbert"])
    (store / "zarr.json").write_text(json.dumps(metadata))
    return run_cli("search", "--corpus", corpus, "--embeddings", str(store), "-q", "one")


E = "encode"
C = "config files"
Q = "search, evaluation"
L = "command line"
VECTORS = np.ones((2, 384), np.float32)
REFUSALS = [
    Refusal(E, "None instead of texts", TypeError, "takes a string or a list of strings, got NoneType", encode(sentences=None)),
    Refusal(E, "a number instead of texts", TypeError, "got int", encode(sentences=42)),
    Refusal(E, "bytes instead of text", TypeError, "got bytes", encode(sentences=b"bytes")),
    Refusal(E, "a dict instead of texts", TypeError, "got dict", encode(sentences={"text": "a dict"})),
    Refusal(E, "None among the texts", TypeError, "item 1 is NoneType", encode(sentences=["fine", None])),
    Refusal(E, "a number among the texts", TypeError, "item 1 is float", encode(sentences=["fine", 3.5])),
    Refusal(E, "nested lists of texts", TypeError, "item 0 is a nested list", encode(sentences=[["a", "b"], ["c"]])),
    Refusal(E, "a pair (tuple) among the texts", TypeError, "item 1 is a nested list", encode(sentences=["a", ("b", "c")])),
    Refusal(E, "a lone surrogate in a text", ValueError, "text 1 is not valid Unicode (surrogates not allowed at character 1)",
            encode(sentences=["fine", "a\ud800b"])),
    Refusal(E, "a 0-d NumPy array instead of texts", TypeError, "takes a string or a list of strings, got a 0-d array",
            encode(sentences=np.array("hi"))),
    Refusal(E, "batch_size 0", ValueError, "batch_size must be a positive integer, got 0", encode(batch_size=0)),
    Refusal(E, "negative batch_size", ValueError, "batch_size must be a positive integer, got -3", encode(batch_size=-3)),
    Refusal(E, "fractional batch_size", TypeError, "batch_size must be a positive integer, got 2.5", encode(batch_size=2.5)),
    Refusal(E, "batch_size as a string", TypeError, "batch_size must be a positive integer, got '8'", encode(batch_size="8")),
    Refusal(E, "unknown output_value", ValueError, "output_value must be one of", encode(output_value="cls_embedding")),
    Refusal(E, "unknown prompt_name", ValueError, "prompt name 'passage' not found", encode(prompt_name="passage")),
    Refusal(E, "prompt_name that is a list", TypeError, "prompt_name must be a string, got list", encode(prompt_name=["query"])),
    Refusal(E, "prompt that is not a string", TypeError, "prompt must be a string, got int", encode(prompt=5)),
    Refusal(E, "truncate_dim 0", ValueError, "truncate_dim must be a positive integer or None, got 0", encode(truncate_dim=0)),
    Refusal(E, "negative truncate_dim", ValueError, "truncate_dim must be a positive integer or None, got -1",
            encode(truncate_dim=-1)),
    Refusal(E, "truncate_dim as a string", TypeError, "truncate_dim must be a positive integer or None, got '10'",
            encode(truncate_dim="10")),
    Refusal(E, "negative truncate_dim given to the model", ValueError, "truncate_dim must be a positive integer or None, got -5",
            lambda c: partial(SentenceTransformer, c.folder, truncate_dim=-5)),
    Refusal(E, "unknown precision", ValueError, "precision 'int4' is not supported", encode(precision="int4")),
    Refusal(E, "precision with token embeddings", ValueError, "needs output_value='sentence_embedding'",
            encode(precision="int8", output_value="token_embeddings")),
    Refusal(E, "prompts given to the model that are not strings", TypeError,
            "prompts must be a dict of prompt names to strings, got {'query': 5}",
            lambda c: partial(SentenceTransformer, c.folder, prompts={"query": 5})),
    Refusal(E, "unknown similarity_fn_name", ValueError, "unknown similarity function 'jaccard'",
            lambda c: partial(SentenceTransformer, c.folder, similarity_fn_name="jaccard")),
    Refusal(E, "similarity of embeddings of different widths", ValueError, "embedding dimensions differ: a has 384, b has 768",
            lambda c: partial(c.model.similarity, VECTORS, np.ones((2, 768), np.float32))),
    Refusal(E, "ragged embeddings", ValueError, "must be a rectangular (n, dim) array of numbers",
            lambda c: partial(c.model.similarity, [[1.0, 2.0], [3.0]], [[1.0, 2.0]])),
    Refusal(E, "model name that is a number", TypeError, "model_name_or_path must be a folder path or a hub id string",
            lambda c: partial(SentenceTransformer, 42)),
    Refusal(E, "model path that is a file", ModelLoadError, "is a file; a model is a folder",
            lambda c: partial(SentenceTransformer, c.file("model.txt", "not a model"))),
    Refusal(C, "config.json is a JSON list", ConfigError, "config.json: expected a JSON object, found a list",
            lambda c: c.model_with("config.json", [1, 2])),
    Refusal(C, "config.json is not JSON", ModelLoadError, "config.json: not valid JSON",
            lambda c: c.model_with("config.json", "{'single': 'quotes'}")),
    Refusal(C, "config.json missing", ModelLoadError, "missing model file", lambda c: c.model_with("config.json", None)),
    Refusal(C, "hidden_size as a string", ConfigError, "config.json: 'hidden_size' must be a whole number from 1 to 16777216, not '384'",
            lambda c: c.model_with("config.json", edit(hidden_size="384"))),
    Refusal(C, "num_attention_heads that does not divide hidden_size", ConfigError,
            "config.json: hidden_size 384 is not divisible by num_attention_heads 5",
            lambda c: c.model_with("config.json", edit(num_attention_heads=5))),
    Refusal(L, "search in a corpus that is a device (/dev/zero)", SystemExit, "--corpus /dev/zero is not a regular file",
            lambda c: run_cli("search", "--corpus", "/dev/zero", "-q", "query")),
    Refusal(C, "negative num_hidden_layers", ConfigError, "'num_hidden_layers' must be a whole number from 1",
            lambda c: c.model_with("config.json", edit(num_hidden_layers=-6))),
    Refusal(C, "absurd vocab_size (10^12)", ConfigError, "'vocab_size' must be a whole number from 1 to 16777216, not 1000000000000",
            lambda c: c.model_with("config.json", edit(vocab_size=10**12))),
    Refusal(C, "layer_norm_eps of 0", ConfigError, "'layer_norm_eps' must be a number > 0, not 0",
            lambda c: c.model_with("config.json", edit(layer_norm_eps=0))),
    Refusal(C, "Qwen3 rms_norm_eps below 0", UnsupportedConfigError, "qwen3 config.json has rms_norm_eps = -1; it must be a number > 0",
            lambda c: c.model_with("config.json", edit(model_type="qwen3", rms_norm_eps=-1))),
    Refusal(C, "rotary base rope_theta of 0", UnsupportedConfigError, "qwen3 config.json has rope_theta = 0",
            lambda c: c.model_with("config.json", edit(model_type="qwen3", rope_theta=0))),
    Refusal(C, "Gemma 3 query_pre_attn_scalar of 0", UnsupportedConfigError, "config.json has query_pre_attn_scalar = 0",
            lambda c: c.model_with("config.json", edit(model_type="gemma3_text", query_pre_attn_scalar=0))),
    Refusal(C, "hidden_act that is not a string", ConfigError, "'hidden_act' must be a string",
            lambda c: c.model_with("config.json", edit(hidden_act=["gelu"]))),
    Refusal(C, "unknown model_type", UnsupportedArchitectureError, "config.json has model_type 'gpt2'",
            lambda c: c.model_with("config.json", edit(model_type="gpt2"))),
    Refusal(C, "config.json without intermediate_size", ConfigError, "config.json: missing 'intermediate_size'",
            lambda c: c.model_with("config.json", edit(intermediate_size=...))),
    Refusal(C, "hidden_size that does not fit the weights", CheckpointError,
            "tensor 'embeddings.word_embeddings.weight' has shape (30522, 384), expected (30522, 768)",
            lambda c: c.model_with("config.json", edit(hidden_size=768))),
    Refusal(C, "num_hidden_layers far beyond the weights", CheckpointError, "stopped there: the config asks for more",
            lambda c: c.model_with("config.json", edit(num_hidden_layers=1_000_000))),
    Refusal(C, "modules.json is an object", ConfigError, "modules.json: expected a list of modules, found a dict",
            lambda c: c.model_with("modules.json", {"0": "Transformer"})),
    Refusal(C, "modules.json entry that is a string", ConfigError, "module 0 must be an object with a 'type' string",
            lambda c: c.model_with("modules.json", ["sentence_transformers.models.Transformer"])),
    Refusal(C, "modules.json path leaving the model folder", ConfigError, "module 1 has the path '../..', not a folder inside",
            lambda c: c.model_with("modules.json", lambda m: [m[0], {**m[1], "path": "../.."}])),
    Refusal(C, "modules.json absolute path", ConfigError, "module 1 has the path '/etc', not a folder inside",
            lambda c: c.model_with("modules.json", lambda m: [m[0], {**m[1], "path": "/etc"}])),
    Refusal(C, "unknown module type", ModelLoadError, "unsupported module 'my.Custom'",
            lambda c: c.model_with("modules.json", lambda m: [m[0], {**m[1], "type": "my.Custom"}])),
    Refusal(C, "config.json holding null", ModelLoadError, "config.json: holds null, not a JSON object or list",
            lambda c: c.model_with("config.json", "null")),
    Refusal(C, "config.json nested 100,000 deep", ModelLoadError, "config.json: JSON nested too deeply",
            lambda c: c.model_with("config.json", "[" * 100_000 + "]" * 100_000)),
    Refusal(C, "modules.json nested 100,000 deep", ModelLoadError, "modules.json: JSON nested too deeply",
            lambda c: c.model_with("modules.json", "[" * 100_000 + "]" * 100_000)),
    Refusal(C, "config_sentence_transformers.json nested 100,000 deep", ModelLoadError,
            "config_sentence_transformers.json: JSON nested too deeply",
            lambda c: c.model_with("config_sentence_transformers.json", "[" * 100_000 + "]" * 100_000)),
    Refusal(C, "modules.json listing no modules", ConfigError, "modules must start with its one Transformer (then "
            "Pooling, Dense, Normalize), not []", lambda c: c.model_with("modules.json", [])),
    Refusal(C, "modules.json without the Transformer", ConfigError, "must start with its one Transformer (then Pooling, "
            "Dense, Normalize), not ['Pooling', 'Normalize']", lambda c: c.model_with("modules.json", lambda m: m[1:])),
    Refusal(C, "modules.json with Pooling before the Transformer", ConfigError,
            "not ['Pooling', 'Transformer', 'Normalize']",
            lambda c: c.model_with("modules.json", lambda m: [m[1], m[0], *m[2:]])),
    Refusal(C, "another family's model (model_type CrossEncoder)", ModelLoadError,
            "is a CrossEncoder model (config_sentence_transformers.json, modules.json), not a SentenceTransformer; load "
            "it with minisbert.CrossEncoder",
            lambda c: c.model_with("config_sentence_transformers.json", edit(model_type="CrossEncoder"))),
    Refusal(C, "model_type that is not a string", ConfigError,
            "config_sentence_transformers.json: 'model_type' must be a string, not 5",
            lambda c: c.model_with("config_sentence_transformers.json", edit(model_type=5))),
    Refusal(C, "negative max_seq_length", ConfigError, "sentence_bert_config.json: 'max_seq_length' must be a whole number from 1",
            lambda c: c.model_with("sentence_bert_config.json", edit(max_seq_length=-1))),
    Refusal(C, "max_seq_length as a string", ConfigError, "'max_seq_length' must be a whole number from 1 to 16777216, not '256'",
            lambda c: c.model_with("sentence_bert_config.json", edit(max_seq_length="256"))),
    Refusal(C, "absurd max_seq_length (10^30)", ConfigError, "'max_seq_length' must be a whole number from 1 to 16777216",
            lambda c: c.model_with("sentence_bert_config.json", edit(max_seq_length=10**30))),
    Refusal(C, "do_lower_case that is not true/false", ConfigError, "'do_lower_case' must be true or false, not 'yes'",
            lambda c: c.model_with("sentence_bert_config.json", edit(do_lower_case="yes"))),
    Refusal(C, "sentence_bert_config.json is a list", ConfigError, "sentence_bert_config.json: expected a JSON object",
            lambda c: c.model_with("sentence_bert_config.json", [256])),
    Refusal(C, "Pooling config is a list", ConfigError, "1_Pooling/config.json: expected a JSON object, found a list",
            lambda c: c.model_with("1_Pooling/config.json", ["mean"])),
    Refusal(C, "unknown pooling_mode", ModelLoadError, "1_Pooling/config.json: unsupported pooling mode ['median']",
            lambda c: c.model_with("1_Pooling/config.json", edit(pooling_mode="median"))),
    Refusal(C, "pooling dimension as a string", ConfigError, "'word_embedding_dimension' must be a whole number from 1",
            lambda c: c.model_with("1_Pooling/config.json", edit(word_embedding_dimension="384"))),
    Refusal(C, "pooling flag that is not true/false", ConfigError, "'pooling_mode_mean_tokens' must be true or false",
            lambda c: c.model_with("1_Pooling/config.json", edit(pooling_mode_mean_tokens="true"))),
    Refusal(C, "Dense config without in_features", ConfigError, "2_Dense/config.json: missing 'in_features'",
            lambda c: model_with_dense(c, {"out_features": 8})),
    Refusal(C, "Dense out_features of 0", ConfigError, "'out_features' must be a whole number from 1",
            lambda c: model_with_dense(c, {"in_features": 384, "out_features": 0})),
    Refusal(C, "unknown Dense activation", ModelLoadError, "2_Dense/config.json: unsupported Dense activation 'torch.nn.Mish2'",
            lambda c: model_with_dense(c, {"in_features": 384, "out_features": 8, "activation_function": "torch.nn.Mish2"})),
    Refusal(C, "prompts that are not an object", ConfigError,
            "config_sentence_transformers.json: 'prompts' must be an object of strings (or null), not ['query: ']",
            lambda c: c.model_with("config_sentence_transformers.json", edit(prompts=["query: "]))),
    Refusal(C, "default_prompt_name not among the prompts", ValueError, "default prompt name 'passage' is not one of",
            lambda c: c.model_with("config_sentence_transformers.json", edit(default_prompt_name="passage"))),
    Refusal(C, "PyLate query_prefix that is not a string", ConfigError,
            "config_sentence_transformers.json: 'query_prefix' must be a string, not 5",
            lambda c: c.model_with("config_sentence_transformers.json", edit(query_prefix=5))),
    Refusal(C, "similarity_fn_name that is not a string", ConfigError, "'similarity_fn_name' must be a string, not 3",
            lambda c: c.model_with("config_sentence_transformers.json", edit(similarity_fn_name=3))),
    Refusal(C, "model_max_length as a string", ConfigError, "tokenizer_config.json: 'model_max_length' must be a number",
            lambda c: c.model_with("tokenizer_config.json", edit(model_max_length="512"))),
    Refusal(C, "pad_token that is a number", ConfigError, "'pad_token' must be a token string or an object",
            lambda c: c.model_with("tokenizer_config.json", edit(pad_token=0))),
    Refusal(C, "corrupt tokenizer.json", ModelLoadError, "corrupt tokenizer file",
            lambda c: c.model_with("tokenizer.json", '{"version": "1.0", "model": 3}')),
    Refusal(C, "tokenizer.json WordPiece vocabulary without [UNK]", ModelLoadError,
            "cannot encode text: WordPiece error: Missing [UNK] token from the vocabulary",
            lambda c: c.model_with("tokenizer.json", lambda t: {**t, "model": {**t["model"], "vocab": {
                token: i for token, i in t["model"]["vocab"].items() if token != "[UNK]"}}})),
    Refusal(C, "max_seq_length below the special tokens", ValueError,
            "max_seq_length 1 is less than the 2 special tokens the tokenizer adds to every text",
            lambda c: c.model_with("sentence_bert_config.json", edit(max_seq_length=1))),
    Refusal(C, "no weights file", ModelLoadError, "no weights in",
            lambda c: c.model_with("model.safetensors", None)),
    Refusal(Q, "a cross-encoder activation_fn given as a name", TypeError,
            "activation_fn must be a function of a NumPy array (or None), got 'sigmoid'",
            lambda c: partial(c.cross_encoder().predict, [("a", "b")], activation_fn="sigmoid")),
    Refusal(Q, "a cross-encoder activation_fn giving another shape", TypeError,
            "activation_fn must return an array of the logits' shape (2, 1), got ndarray of shape (1, 1)",
            lambda c: partial(c.cross_encoder().predict, [("a", "b"), ("c", "d")], activation_fn=lambda x: x[:1])),
    Refusal(Q, "query and corpus of different widths", ValueError,
            "query embeddings have 384 dimensions but corpus embeddings have 768",
            lambda c: partial(semantic_search, VECTORS, np.ones((3, 768)))),
    Refusal(Q, "NaN in the corpus", ValueError, "similarity scores are NaN, so they cannot be ranked",
            lambda c: partial(semantic_search, VECTORS, np.full((3, 384), np.nan, np.float32))),
    Refusal(Q, "negative top_k", ValueError, "top_k must be at least 0, got -1",
            lambda c: partial(semantic_search, VECTORS, VECTORS, top_k=-1)),
    Refusal(Q, "top_k as a string", TypeError, "top_k must be an integer, got '5'",
            lambda c: partial(semantic_search, VECTORS, VECTORS, top_k="5")),
    Refusal(Q, "corpus_chunk_size 0", ValueError, "corpus_chunk_size must be at least 1, got 0",
            lambda c: partial(semantic_search, VECTORS, VECTORS, corpus_chunk_size=0)),
    Refusal(Q, "embeddings of three dimensions", ValueError, "must be a vector (dim,) or a matrix (n, dim), got shape (2, 2, 2)",
            lambda c: partial(cos_sim, np.ones((2, 2, 2)), np.ones((2, 2)))),
    Refusal(Q, "embeddings that are strings", TypeError, "must hold numbers, got an array of dtype <U1",
            lambda c: partial(cos_sim, [["a", "b"]], [["c", "d"]])),
    Refusal(Q, "rescore_embeddings of the wrong shape", ValueError, "rescore_embeddings must have one row per corpus row",
            lambda c: partial(semantic_search_binary, VECTORS, quantize_embeddings(VECTORS, "ubinary"),
                              rescore_embeddings=np.ones((5, 384)))),
    Refusal(Q, "unknown quantization precision", ValueError, "precision 'int2' is not supported",
            lambda c: partial(quantize_embeddings, VECTORS, "int2")),
    Refusal(Q, "community_detection min_community_size 0", ValueError, "min_community_size must be at least 1, got 0",
            lambda c: partial(community_detection, VECTORS, min_community_size=0)),
    Refusal(Q, "evaluator lists of different lengths", ValueError, "one length",
            lambda c: partial(EmbeddingSimilarityEvaluator, ["a", "b"], ["c"], [1.0, 2.0])),
    Refusal(Q, "pairs file without the named column", ValueError, "no column ['score'] in the header ['sentence1', 'sentence2', 'gold']",
            lambda c: partial(read_pairs, c.file("pairs.csv", "sentence1,sentence2,gold\na,b,1\n"))),
    Refusal(Q, "pairs file with a score that is not a number", ValueError, "line 2: expected columns",
            lambda c: partial(read_pairs, c.file("pairs.csv", "sentence1,sentence2,score\na,b,high\n"))),
    Refusal(Q, "pairs row with an extra column", ValueError,
            "line 3: 4 columns where the header has 3 ['sentence1', 'sentence2', 'score']",
            lambda c: partial(read_pairs, c.file("pairs.csv", "sentence1,sentence2,score\na,b,1\nc,d,2,5\n"))),
    Refusal(Q, "column position 0", ValueError, "column positions count from 1, got ['0', '1', '2']",
            lambda c: partial(read_pairs, c.file("pairs.tsv", "a\tb\t1\n"), ("0", "1", "2"))),
    Refusal(Q, "pairs file that is not UTF-8", ValueError, "pairs.tsv is not UTF-8 text",
            lambda c: partial(read_pairs, c.file("pairs.tsv", b"\xff\xfe\x00a\tb\t1\n"), ("1", "2", "3"))),
    Refusal(Q, "a pairs file with a NaN score", ValueError, "line 2: expected columns ['sentence1', 'sentence2', 'score'] with a finite",
            lambda c: partial(read_pairs, c.file("pairs.csv", "sentence1,sentence2,score\na,b,nan\n"))),
    Refusal(Q, "evaluator gold score inf", ValueError, "scores must be finite numbers; pair 1 has inf",
            lambda c: partial(EmbeddingSimilarityEvaluator, ["a", "b"], ["c", "d"], [1.0, float("inf")])),
    Refusal(Q, "the evaluator called on a model name", TypeError,
            "EmbeddingSimilarityEvaluator evaluates a model with encode() (a SentenceTransformer), got str",
            lambda c: partial(EmbeddingSimilarityEvaluator(["a", "b"], ["c", "d"], [1.0, 2.0]), "all-MiniLM-L6-v2")),
    Refusal(Q, "maxsim of numbers", TypeError, "a must be token embeddings (an array or a list of (tokens, dim) arrays), got int",
            lambda c: partial(maxsim, 3, 4)),
    Refusal(Q, "maxsim mask of another shape than the padded embeddings", ValueError,
            "a's mask has shape (2, 5); embeddings of shape (2, 3, 4) need a mask of shape (2, 3)",
            lambda c: partial(maxsim, np.ones((2, 3, 4)), np.ones((1, 3, 4)), a_mask=np.ones((2, 5), bool))),
    Refusal(Q, "maxsim of complex numbers", TypeError, "b[0] must hold real numbers, got an array of dtype complex128",
            lambda c: partial(maxsim, [np.ones((2, 4))], [np.ones((3, 4), complex)])),
    Refusal(Q, "multi-vector search in a corpus holding NaN", ValueError,
            "MaxSim scores are NaN, so they cannot be ranked; token embeddings with NaN or inf values: queries [], corpus [1]",
            lambda c: partial(multi_vector_search, [np.ones((2, 4))], [np.ones((3, 4)), np.full((3, 4), np.nan)])),
    Refusal(Q, "sparse search in a corpus holding NaN", ValueError,
            "corpus embeddings hold NaN or inf values, so their scores cannot be ranked: rows [1]",
            lambda c: partial(sparse_search, np.ones((1, 4)), np.array([[1, 0, 0, 0], [0, np.nan, 0, 2]]))),
    Refusal(Q, "sparse embeddings decoded by a model of another vocabulary", ValueError,
            "embeddings of 1000 dimensions cannot be decoded by a model of 30522 (its vocabulary)",
            lambda c: partial(c.sparse_encoder().decode, np.ones((1, 1000), np.float32))),
    Refusal(Q, "a score_function returning another shape", ValueError,
            "score_function must return (queries, corpus) scores, here (2, 2); it returned shape (1, 1)",
            lambda c: partial(semantic_search, VECTORS, VECTORS, score_function=lambda a, b: np.ones((1, 1)))),
    Refusal(Q, "community detection of NaN embeddings", ValueError, "community_detection needs finite embeddings; row 1",
            lambda c: partial(community_detection, np.vstack([VECTORS[:1], np.full((1, 384), np.nan), VECTORS[1:]]))),
    Refusal(Q, "community detection with a NaN threshold", ValueError, "threshold must be a number, got nan",
            lambda c: partial(community_detection, VECTORS, threshold=float("nan"))),
    Refusal(Q, "binary quantization of NaN embeddings", ValueError, "ubinary quantization needs embeddings without NaN; row 1",
            lambda c: partial(quantize_embeddings, np.vstack([VECTORS[:1], np.full((1, 384), np.nan, np.float32)]), "ubinary")),
    Refusal(Q, "score_function given as a name", TypeError, "score_function must be a function such as util.cos_sim",
            lambda c: partial(semantic_search, VECTORS, VECTORS, score_function="cos")),
    Refusal(Q, "int8 quantization of NaN embeddings", ValueError, "int8 quantization needs finite embeddings; row 1",
            lambda c: partial(quantize_embeddings, np.vstack([VECTORS[:1], np.full((1, 384), np.nan, np.float32),
                                                              VECTORS[1:]]), "int8")),
    Refusal(L, "encode --batch-size 0", SystemExit, "minisbert: batch_size must be a positive integer, got 0",
            lambda c: run_cli("encode", "--batch-size", "0", "text")),
    Refusal(L, "encode --input of a missing file", SystemExit, "No such file or directory",
            lambda c: run_cli("encode", "--input", str(c.tmp_path / "missing.txt"))),
    Refusal(L, "encode --input of a file that is not UTF-8", SystemExit, "latin1.txt is not UTF-8 text (invalid continuation byte",
            lambda c: run_cli("encode", "--input", c.file("latin1.txt", b"caf\xe9\n"))),
    Refusal(L, "encode --input of endless text without a line break (/dev/zero)", SystemExit,
            "line 1 of /dev/zero is longer than 16,777,216 characters", lambda c: run_cli("encode", "--input", "/dev/zero")),
    Refusal(L, "an empty --model", SystemExit, "minisbert: model_name_or_path is an empty string",
            lambda c: run_cli("encode", "--model", "", "text")),
    Refusal(L, "encode --input of an empty file", SystemExit, "minisbert: no sentences given",
            lambda c: run_cli("encode", "--input", c.file("empty.txt", ""))),
    Refusal(L, "search in a corpus of blank lines", SystemExit, "has no non-empty line to search",
            lambda c: run_cli("search", "--corpus", c.file("corpus.txt", "\n  \n"), "-q", "query")),
    Refusal(L, "search in a corpus that is not UTF-8", SystemExit, "corpus.txt is not UTF-8 text",
            lambda c: run_cli("search", "--corpus", c.file("corpus.txt", b"caf\xe9\n"), "-q", "query")),
    Refusal(L, "search --top-k -1", SystemExit, "minisbert: top_k must be at least 0, got -1",
            lambda c: run_cli("search", "--corpus", c.file("corpus.txt", "a line\n"), "-q", "query", "-k", "-1")),
    Refusal(L, "search --embeddings of a store whose record is a list", SystemExit,
            "emb.zarr has an unreadable minisbert record (a list, not an object)",
            lambda c: search_store_with_record(c, lambda record: [record])),
    Refusal(L, "search --embeddings of a store whose chunk size is 0", SystemExit,
            "has an unreadable minisbert record (2 lines in chunks of 0 do not make 1 chunks)",
            lambda c: search_store_with_record(c, lambda record: {**record, "input": {**record["input"], "chunk_size": 0}})),
    Refusal(L, "evaluate a file of one pair", SystemExit, "holds 1 pair(s); correlation needs at least 2",
            lambda c: run_cli("evaluate", c.file("pairs.csv", "sentence1,sentence2,score\na,b,1\n"))),
    Refusal(L, "evaluate a pairs row with an extra column", SystemExit, "line 2: 4 columns where the header has 3",
            lambda c: run_cli("evaluate", c.file("pairs.csv", "sentence1,sentence2,score\nsunny, warm,hot,1\nc,d,2\n"))),
    Refusal(L, "train --seed -1", SystemExit, "minisbert: seed must be a whole number >= 0, got -1",
            lambda c: run_cli("train", "--data", c.file("train.csv", "sentence1,sentence2,score\na,b,1\n"), "--columns",
                              "sentence1,sentence2,score", "--loss", "cosent", "--output", str(c.tmp_path / "out"), "--seed", "-1")),
    Refusal(L, "train --checkpoint-steps -1", SystemExit, "checkpoint_steps must be a whole number >= 0, got -1",
            lambda c: run_cli("train", "--data", c.file("train.csv", "sentence1,sentence2,score\na,b,1\n"), "--columns",
                              "sentence1,sentence2,score", "--loss", "cosent", "--output", str(c.tmp_path / "out"),
                              "--checkpoint-steps", "-1")),
    Refusal(L, "evaluate --columns of two names", SystemExit, "columns must name three columns",
            lambda c: run_cli("evaluate", c.file("pairs.csv", "sentence1,sentence2,score\na,b,1\n"), "--columns", "a,b")),
]


@pytest.fixture
def context(model, default_model_folder, tmp_path, tiny_cross_encoder):
    return Context(model, default_model_folder, tmp_path, tiny_cross_encoder)


@pytest.mark.parametrize("refusal", REFUSALS, ids=str)
def test_bad_input_is_refused_with_an_error_naming_the_problem(refusal, context):
    message = check(refusal, refusal.trigger(context))
    assert "Traceback" not in message and len(message.splitlines()) <= 3 or refusal.error is CheckpointError


def test_the_readme_lists_every_refusal_the_tests_check():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert render() in readme, "README.md's table is out of date: regenerate it with .venv/bin/python tests/refusals.py"
    assert len(REFUSALS) + len(__import__("test_hostile_files").REFUSALS) >= 60


# ---------------------------------------------------------------------------------------------------------
# What is accepted and must give the right answer (not refusals)

def test_empty_list_gives_an_empty_matrix_as_wide_as_a_text(model, reference_model):
    embeddings = model.encode([])
    # sentence-transformers returns np.array([]) of shape (0,); minisbert keeps the embedding dimension so
    # that (0, dim) stacks and concatenates with other results. Both hold no embedding:
    assert reference_model.encode([]).size == embeddings.size == 0
    assert embeddings.shape == (0, 384) and embeddings.dtype == np.float32
    for truncate_dim in (10, 384, 10_000):
        assert model.encode([], truncate_dim=truncate_dim).shape[1] == model.encode(["a"], truncate_dim=truncate_dim).shape[1]
    assert model.encode([], precision="ubinary").shape == (0, 48)


def test_empty_list_without_numpy_conversion_gives_an_empty_list(model):
    assert model.encode([], convert_to_numpy=False) == []


def test_a_tuple_and_a_numpy_array_of_strings_are_accepted(model):
    texts = ("one", "two")
    np.testing.assert_array_equal(model.encode(texts), model.encode(np.array(texts)))


def test_many_identical_texts_are_encoded_once(model, monkeypatch):
    forwarded = []
    original = type(model).forward

    def recording_forward(self, texts, **options):
        forwarded.extend(texts)
        return original(self, texts, **options)

    monkeypatch.setattr(type(model), "forward", recording_forward)
    embeddings = model.encode([""] * 10_000 + ["a", ""])
    assert sorted(forwarded) == ["", "a"]
    np.testing.assert_array_equal(embeddings[:10_000], np.broadcast_to(embeddings[-1], (10_000, 384)))
    monkeypatch.undo()
    np.testing.assert_allclose(embeddings[-2:], model.encode(["a", ""]), rtol=0, atol=1e-6)


def test_a_top_k_far_beyond_the_corpus_gives_the_whole_corpus_without_allocating_it():
    corpus = np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32)
    hits = semantic_search(corpus[:2], corpus, top_k=10**12)
    assert [len(row) for row in hits] == [5, 5] and hits[0][0]["corpus_id"] == 0
    binary = semantic_search_binary(corpus[:2], quantize_embeddings(corpus, "ubinary"), top_k=10**12)
    assert [len(row) for row in binary] == [5, 5]
    multi_vector = multi_vector_search([corpus[:2]], [corpus[:3], corpus[3:]], top_k=10**12)
    assert [len(row) for row in multi_vector] == [2]
    assert multi_vector_search([corpus[:2]], [], top_k=10**12) == [[]]


def test_cli_encode_output_writes_exactly_the_file_it_names(tmp_path, capsys):
    cli(["encode", "--output", str(tmp_path / "emb_out"), "one", "two"])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["emb_out"]
    assert np.load(tmp_path / "emb_out").shape == (2, 384)
    assert str(tmp_path / "emb_out") in capsys.readouterr().out


def stale_cache_cases():
    return {
        "wrong width": lambda rows: np.ones((rows, 768), np.float32),
        "wrong length": lambda rows: np.ones((rows + 1, 384), np.float32),
        "wrong dtype": lambda rows: np.ones((rows, 384), np.float64),
    }


@pytest.mark.parametrize("case", sorted(stale_cache_cases()))
def test_a_stale_search_cache_is_detected_and_rebuilt(tmp_path, capsys, case):
    corpus = tmp_path / "docs.txt"
    corpus.write_text("open a file\nclose the door\n")
    cli(["search", "--corpus", str(corpus), "-q", "read a file", "-k", "1"])
    first = capsys.readouterr()
    cache = tmp_path / "docs.txt.minisbert.npy"
    good = np.load(cache)
    np.save(cache, stale_cache_cases()[case](2))  # the key file still matches: only the array is wrong
    cli(["search", "--corpus", str(corpus), "-q", "read a file", "-k", "1"])
    second = capsys.readouterr()
    assert "is stale or unreadable" in second.err and "encoding again" in second.err
    assert second.out == first.out
    np.testing.assert_array_equal(np.load(cache), good)


def test_a_search_cache_of_another_model_is_rebuilt(tmp_path, capsys):
    corpus = tmp_path / "docs.txt"
    corpus.write_text("open a file\nclose the door\n")
    cli(["search", "--corpus", str(corpus), "-q", "read a file"])
    key = tmp_path / "docs.txt.minisbert.json"
    key.write_text(json.dumps({"key": "made by another model", "sentences": 2}))
    cli(["search", "--corpus", str(corpus), "-q", "read a file"])
    assert "made from another corpus, model or minisbert version" in capsys.readouterr().err


def test_a_search_cache_with_reordered_rows_is_rebuilt(tmp_path, capsys):
    corpus = tmp_path / "docs.txt"
    corpus.write_text("open a file\nclose the door\n")
    cli(["search", "--corpus", str(corpus), "-q", "read a file", "-k", "1"])
    first = capsys.readouterr()
    cache = tmp_path / "docs.txt.minisbert.npy"
    np.save(cache, np.load(cache)[::-1])  # the right shape and dtype, the key file untouched
    cli(["search", "--corpus", str(corpus), "-q", "read a file", "-k", "1"])
    second = capsys.readouterr()
    assert "not the ones the key file records" in second.err and second.out == first.out


@pytest.mark.parametrize("linked", ["docs.txt.minisbert.npy", "docs.txt.minisbert.json"])
def test_a_search_cache_file_that_is_a_link_is_neither_read_nor_written_through(tmp_path, capsys, linked):
    corpus = tmp_path / "docs.txt"
    corpus.write_text("open a file\nclose the door\n")
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / linked).symlink_to(victim)
    cli(["search", "--corpus", str(corpus), "-q", "read a file", "-k", "1"])
    assert "is not a regular file" in capsys.readouterr().err
    assert victim.read_text() == "precious" and not (tmp_path / linked).is_symlink()  # the link was replaced


def test_a_search_cache_key_linked_to_an_endless_file_is_refused_at_once(tmp_path, capsys):
    corpus = tmp_path / "docs.txt"
    corpus.write_text("open a file\n")
    (tmp_path / "docs.txt.minisbert.json").symlink_to("/dev/zero")
    cli(["search", "--corpus", str(corpus), "-q", "read a file", "-k", "1"])
    assert "is not a regular file" in capsys.readouterr().err


def test_explain_without_matplotlib_says_how_to_install_it_and_leaves_no_folder(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else find_spec(name, *a))
    with pytest.raises(SystemExit) as raised:
        cli(["explain", "a text", "--out", str(tmp_path / "explain")])
    message = str(raised.value)
    assert len(message.splitlines()) == 1 and "pip install -e '.[plot]'" in message
    assert "pip install -e '.[plot]'" in (REPO / "README.md").read_text(encoding="utf-8")
    assert not (tmp_path / "explain").exists()


# ---------------------------------------------------------------------------------------------------------
# Property tests: arbitrary Unicode never crashes, order is kept, and a text's embedding depends neither on the
# batch size nor on the other texts of the batch.

TEXTS = st.lists(st.text(max_size=40), min_size=1, max_size=6)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=TEXTS, batch_size=st.integers(1, 7))
def test_arbitrary_unicode_texts_keep_their_order_and_their_own_embeddings(model, texts, batch_size):
    embeddings = model.encode(texts, batch_size=batch_size)
    assert embeddings.shape == (len(texts), 384) and np.isfinite(embeddings).all()
    alone = np.stack([model.encode(text) for text in texts])  # each text by itself: order and independence
    np.testing.assert_allclose(embeddings, alone, rtol=0, atol=1e-6)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=TEXTS, others=TEXTS)
def test_a_texts_embedding_does_not_depend_on_the_other_texts(model, texts, others):
    together = model.encode(others + texts + others, batch_size=4)
    np.testing.assert_allclose(together[len(others) : len(others) + len(texts)], model.encode(texts), rtol=0, atol=1e-6)

"""The tests mirror the code: every module of minisbert/ and kernels/ has a test module named for it or a row in
TESTED_BY saying which test modules test it and how; every test module is named for a source module, is named in
TESTED_BY, or checks a promise of PROMISES. So "where is X tested?" has one answer, here.

A test module is named for minisbert/<package>/<module>.py when it is test_<module>.py or
test_<package>_<module>.py, or starts with one of these followed by "_" (test_cli_search.py: the search command of
cli.py); for a package's __init__.py, test_<package>.py. Stale rows (a file that no longer exists) fail too.
"""

from inputs import REPO

TESTS = REPO / "tests"

# source module (not named by a test module, or tested by more than it) -> (test modules, how they test it)
TESTED_BY = {
    "minisbert/__init__.py": (
        ("test_parity_quickstart.py", "test_torch_free.py"),
        "the public names, which every family's tests import; importing minisbert imports no torch",
    ),
    "minisbert/__main__.py": (("test_cli.py", "test_plots.py"), "`python -m minisbert` runs in a subprocess"),
    "minisbert/known_models.py": (
        ("test_known_models.py", "test_known_rerankers.py"),
        "every bi-encoder and reranker entry against a tiny model of its architecture and module chain",
    ),
    "minisbert/architectures/bert.py": (("test_architectures.py",), "parity, parametrized over the architectures"),
    "minisbert/architectures/distilbert.py": (("test_architectures.py",), "as bert.py"),
    "minisbert/architectures/electra.py": (("test_architectures.py",), "as bert.py"),
    "minisbert/architectures/mpnet.py": (("test_architectures.py",), "as bert.py"),
    "minisbert/architectures/roberta.py": (("test_architectures.py",), "as bert.py"),
    "minisbert/architectures/modern_layers.py": (
        ("test_architectures_modern.py", "test_masked_attention.py"),
        "today's architectures' shared layers: parity and traces against transformers; the padded attention "
        "that the masked-attention kernel is checked against",
    ),
    "minisbert/architectures/deberta_v2.py": (
        ("test_architectures_modern.py", "test_cross_encoder.py"),
        "parity as a sentence encoder and as a cross-encoder",
    ),
    "minisbert/architectures/gemma3.py": (("test_architectures_modern.py",), "parity, parametrized over the models"),
    "minisbert/architectures/modernbert.py": (("test_architectures_modern.py",), "as gemma3.py"),
    "minisbert/architectures/qwen3.py": (("test_architectures_modern.py",), "as gemma3.py"),
    "minisbert/architectures/nomic_bert.py": (("test_architectures_modern.py",), "as gemma3.py"),
    "minisbert/architectures/eurobert.py": (("test_architectures_modern.py",), "as gemma3.py"),
    "minisbert/architectures/t5.py": (("test_architectures_modern.py",), "as gemma3.py"),
    "minisbert/architectures/layers.py": (
        ("test_fast_encoder.py", "test_training_backward.py"),
        "the readable encoder the fast encoder is checked against; the layers the backward pass inverts",
    ),
    "minisbert/architectures/fast_encoder.py": (
        ("test_fast_encoder.py", "test_encoder_gemm.py"),
        "against layers.encoder; its linear layers (numba GEMM, OpenBLAS, int8) forced one by one",
    ),
    "minisbert/architectures/checkpoint.py": (
        ("test_weights.py", "test_loading.py"),
        "missing, misshaped, prefixed and legacy-named tensors",
    ),
    "minisbert/modules/__init__.py": (
        ("test_module_chains.py", "test_pooling_modes.py"),
        "Dense, Normalize, prompts and truncate_dim chains; every pooling mode, against sentence-transformers",
    ),
    "minisbert/families/__init__.py": ((), "a docstring and imports only"),
    "minisbert/families/sentence_transformer.py": (
        ("test_parity.py", "test_module_chains.py", "test_trace.py"),
        "encode against sentence-transformers on the real model; module chains on tiny ones; trace",
    ),
    "minisbert/files/__init__.py": ((), "a docstring only"),
    "minisbert/files/torch_checkpoint.py": (
        ("test_weights.py", "test_hostile_files.py"),
        "reads what torch.save writes (views, dtypes, 0-d, empty); refuses hostile pickles",
    ),
    "minisbert/inspection/__init__.py": ((), "a docstring only"),
    "minisbert/distributed/__init__.py": ((), "a docstring only"),
    "minisbert/distributed/embedder.py": (("test_dask.py",), "Embedder is what minisbert.dask runs on each worker"),
    "minisbert/runtime/__init__.py": ((), "a docstring only"),
    "minisbert/runtime/vector_width.py": (
        ("test_encoder_gemm.py",),
        "512-bit vectors on and off give the same numbers; `minisbert info` reports the width",
    ),
    "minisbert/training/__init__.py": ((), "a docstring only"),
    "minisbert/training/checkpoint.py": (
        ("test_training_fit.py", "test_training_parity.py"),
        "the safetensors writer; a saved checkpoint loads in both libraries",
    ),
    "minisbert/training/data.py": (("test_training_fit.py",), "the train command's bad lines and columns"),
    "minisbert/training/losses.py": (
        ("test_training_backward.py", "test_training_parity.py"),
        "each loss's gradients against torch autograd; CoSENT's losses step by step against sentence-transformers",
    ),
    "minisbert/training/model.py": (("test_training_backward.py",), "whole-model gradients against torch's"),
    "minisbert/training/trainer.py": (
        ("test_training_fit.py", "test_training_parity.py"),
        "fit's pieces and errors; 20 steps against SentenceTransformerTrainer",
    ),
    "minisbert/util/__init__.py": (("test_util.py",), "the public names are sentence_transformers.util's, each defined once"),
    "minisbert/util/similarity.py": (("test_similarity.py",), "each similarity function against sentence_transformers.util"),
    "minisbert/util/retrieval.py": (("test_retrieval.py",), "semantic_search, paraphrase mining, community detection"),
    "minisbert/util/multi_vector.py": (("test_maxsim.py",), "maxsim and multi_vector_search against sentence_transformers.util"),
    "minisbert/util/_search.py": (("test_retrieval.py", "test_quantization.py"), "the searches that share its checks"),
    "minisbert/util/corpus_cache.py": (("test_cli_search.py", "test_bad_inputs.py"), "search --corpus; stale, linked caches"),
    "minisbert/architectures/reference_or_fast.py": (
        ("test_fast_encoder.py", "test_architectures_modern.py"), "the switch runs the reference when recording only"
    ),
    "minisbert/families/_encoding.py": (("test_parity.py", "test_modules.py"), "the families' shared encode loop and prompts"),
    "minisbert/modules/transformer.py": (("test_module_chains.py",), "module chains on tiny models"),
    "minisbert/modules/dense.py": (("test_module_chains.py",), "as transformer.py"),
    "minisbert/modules/normalize.py": (("test_module_chains.py",), "as transformer.py"),
    "minisbert/modules/masked_language_model.py": (("test_sparse_encoder.py",), "SPLADE parity"),
    "minisbert/modules/splade_pooling.py": (("test_sparse_encoder.py",), "SPLADE parity"),
    "minisbert/modules/sparse_static_embedding.py": (("test_sparse_encoder.py",), "inference-free SPLADE parity"),
    "minisbert/modules/router.py": (("test_sparse_encoder.py",), "query/document routes"),
    "minisbert/modules/late_interaction_transformer.py": (("test_multi_vector_encoder.py",), "ColBERT parity"),
    "minisbert/modules/multi_vector_mask.py": (("test_multi_vector_encoder.py",), "ColBERT skiplist parity"),
    "kernels/__init__.py": ((), "a docstring only"),
}
for kernel in ("adamw", "attention", "embedding", "gated_activation", "normalization", "rms_norm", "rotary", "pooling",
               "similarity", "hamming", "rescore", "topk", "sparse"):
    TESTED_BY[f"kernels/{kernel}.py"] = (("test_kernels.py",), "against its NumPy reference on odd shapes (one table)")

# test modules of a promise that spans modules -> the promise
PROMISES = {
    "test_bad_inputs.py": "bad input gets a clear error naming the problem (the README's table of refusals)",
    "test_hostile_files.py": "hostile weight files are refused without running, allocating or writing anything",
    "test_torch_free.py": "minisbert imports no torch, transformers or sentence-transformers",
    "test_parity_quickstart.py": "sentence-transformers' quickstart gives the same numbers",
    "test_studies.py": "the studies in studies/ still run",
    "test_walkthrough.py": "docs/walkthrough.md is what its generator writes now",
    "test_test_layout.py": "this table is true",
    "test_layout.py": "imports go the way docs/architecture.md's rule table says; its tree is the code's",
    "test_fast_kernels.py": "the kernels' promises besides their values: errors naming a bad argument, in-place writes, fork",
    "test_search_kernels.py": "the search kernels' promises besides their values: k, ties, threads",
    "test_bench_common.py": "every bench/ script imports, and bench/common.py's helpers work",
}


def source_modules():
    paths = [path for folder in ("minisbert", "kernels") for path in (REPO / folder).rglob("*.py")]
    return sorted(path.relative_to(REPO).as_posix() for path in paths)


def names_of(source):
    """The names a test module may be named for: module, package_module; a package's __init__: package."""
    parts = source.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        return {parts[-2]}
    return {parts[-1], f"{parts[-2]}_{parts[-1]}"} if len(parts) > 2 or parts[0] == "kernels" else {parts[-1]}


def is_named_for(test_module, name):
    stem = test_module.removeprefix("test_").removesuffix(".py")
    return stem == name or stem.startswith(name + "_")


def all_test_modules():
    return sorted(path.name for path in TESTS.glob("test_*.py"))


def test_every_source_module_has_a_test_module_named_for_it_or_a_row():
    tests = all_test_modules()
    missing = [
        source
        for source in source_modules()
        if source not in TESTED_BY and not any(is_named_for(test, name) for test in tests for name in names_of(source))
    ]
    assert not missing, f"no tests/test_<module>.py for {missing}: add one, or a row to TESTED_BY saying where"


def test_every_test_module_is_named_for_a_source_module_or_listed():
    names = set().union(*map(names_of, source_modules()))
    listed = {test for tests, _ in TESTED_BY.values() for test in tests} | set(PROMISES)
    unplaced = [
        test for test in all_test_modules() if test not in listed and not any(is_named_for(test, n) for n in names)
    ]
    assert not unplaced, f"{unplaced} are named for no source module: rename them, or list them in TESTED_BY/PROMISES"


def test_the_tables_name_only_files_that_exist_and_say_why():
    sources, tests = set(source_modules()), set(all_test_modules())
    assert not set(TESTED_BY) - sources, f"TESTED_BY lists modules that no longer exist: {set(TESTED_BY) - sources}"
    named = {test for tested_by, _ in TESTED_BY.values() for test in tested_by} | set(PROMISES)
    assert not named - tests, f"the tables name test modules that do not exist: {named - tests}"
    assert all(reason for _, reason in TESTED_BY.values()) and all(PROMISES.values())


def test_the_naming_rule_places_known_cases():
    # the rule itself can fail: a wrong prefix match or a package's name would slip through silently otherwise
    assert names_of("minisbert/cli.py") == {"cli"}
    assert names_of("minisbert/util/quantization.py") == {"quantization", "util_quantization"}
    assert names_of("kernels/activations.py") == {"activations", "kernels_activations"}
    assert names_of("minisbert/architectures/__init__.py") == {"architectures"}
    assert is_named_for("test_cli_search.py", "cli") and is_named_for("test_training_backward.py", "training_backward")
    assert not is_named_for("test_client.py", "cli") and not is_named_for("test_sparse_kernels.py", "kernels")

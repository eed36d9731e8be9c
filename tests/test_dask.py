"""minisbert.dask and minisbert.Embedder on a real dask.distributed LocalCluster (2 worker processes): embeddings
equal in-process encode (within 1e-6, in input order) for every input kind and output option; the model is
loaded once per worker process; a worker killed mid-job still gives the complete result; semantic_search over a
dask-array corpus gives minisbert.util.semantic_search's hits; the Embedder callable survives pickling."""

import os
import pickle
import re
import signal
import subprocess
import sys
import time

import dask
import dask.array as da
import dask.bag as db
import dask.dataframe as dd
import numpy as np
import pandas as pd
import zarr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin
from inputs import FEW_HARD_TEXTS

import minisbert.dask as minisbert_dask
from minisbert import Embedder, util
from minisbert.kernels.topk import merge_top_k, top_k, top_k_reference

TEXTS = FEW_HARD_TEXTS + [f"sentence {i}: " + "word " * (i % 13) for i in range(37)]  # 47 texts, mixed lengths


class CountModelLoads(WorkerPlugin):
    """On every worker process (restarted ones too): counts the SentenceTransformer objects minisbert.distributed.embedder
    creates, in SentenceTransformer.loads."""

    def setup(self, worker):
        import minisbert.distributed.embedder

        class CountedSentenceTransformer(minisbert.distributed.embedder.SentenceTransformer):
            loads = 0

            def __init__(self, *arguments, **options):
                CountedSentenceTransformer.loads += 1
                super().__init__(*arguments, **options)

        minisbert.distributed.embedder.SentenceTransformer = CountedSentenceTransformer


@pytest.fixture(scope="module")
def client():
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the plugin class travels by value
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            client.register_plugin(CountModelLoads())
            yield client


def model_loads(client):
    """{worker address: how many models minisbert.distributed.embedder has loaded in that worker process}."""
    import minisbert.distributed.embedder

    return client.run(lambda: minisbert.distributed.embedder.SentenceTransformer.loads)


def texts_as(kind, texts, partitions):
    if kind == "list":
        return list(texts)
    if kind == "bag":
        return db.from_sequence(texts, npartitions=partitions)
    return dd.from_pandas(pd.DataFrame({"text": texts}), npartitions=partitions)["text"]


@pytest.mark.parametrize(
    "kind, options",
    [
        ("list", {}),
        ("bag", {}),
        ("series", {}),
        ("bag", {"normalize_embeddings": True, "batch_size": 5}),
        ("series", {"prompt": "query: ", "truncate_dim": 64}),
        ("list", {"precision": "ubinary"}),
    ],
)
def test_encode_equals_in_process_encode(client, model, kind, options):
    embeddings = minisbert_dask.encode(texts_as(kind, TEXTS, partitions=5), **options)
    assert isinstance(embeddings, da.Array)
    assert embeddings.numblocks[0] == (1 if kind == "list" else 5)  # one chunk per partition
    computed = embeddings.compute()
    expected = model.encode(TEXTS, **options)
    assert computed.dtype == expected.dtype == embeddings.dtype
    assert computed.shape == expected.shape
    np.testing.assert_allclose(computed, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_encode_without_a_cluster(model, scheduler):
    embeddings = minisbert_dask.encode(db.from_sequence(TEXTS, npartitions=3), batch_size=8)
    np.testing.assert_allclose(embeddings.compute(scheduler=scheduler), model.encode(TEXTS), rtol=0, atol=1e-6)


def test_two_encodes_of_one_bag_with_other_options_stay_apart(client, model):
    texts = db.from_sequence(TEXTS[:12], npartitions=2)
    plain, normalized = dask.compute(
        minisbert_dask.encode(texts), minisbert_dask.encode(texts, normalize_embeddings=True)
    )
    np.testing.assert_allclose(plain, model.encode(TEXTS[:12]), rtol=0, atol=1e-6)
    np.testing.assert_allclose(normalized, model.encode(TEXTS[:12], normalize_embeddings=True), rtol=0, atol=1e-6)


def test_encode_with_int8_weights(client, default_model_folder):
    from minisbert import SentenceTransformer

    embeddings = minisbert_dask.encode(db.from_sequence(TEXTS, npartitions=3), quantize="int8").compute()
    expected = SentenceTransformer(default_model_folder, quantize="int8").encode(TEXTS)
    np.testing.assert_allclose(embeddings, expected, rtol=0, atol=1e-6)


def test_encode_list_chunks_are_known(client, model, monkeypatch):
    monkeypatch.setattr(minisbert_dask, "LIST_PARTITION_SIZE", 10)
    embeddings = minisbert_dask.encode(iter(TEXTS))  # an iterator is read once, into chunks of 10
    assert embeddings.chunks[0] == (10, 10, 10, 10, 7)
    np.testing.assert_allclose(embeddings.compute(), model.encode(TEXTS), rtol=0, atol=1e-6)


def test_encode_empty_input(client, model):
    assert minisbert_dask.encode([]).compute().shape == (0, 384)
    empty_partitions = db.from_sequence(["only one text"], npartitions=1).filter(lambda text: False)
    assert minisbert_dask.encode(empty_partitions).compute().shape == (0, 384)


def forget_loaded_models():
    import minisbert.distributed.embedder

    minisbert.distributed.embedder._process_models.clear()


def test_model_is_loaded_once_per_worker(client, model):
    client.run(forget_loaded_models)
    before = model_loads(client)
    embeddings = minisbert_dask.encode(db.from_sequence(TEXTS * 2, npartitions=8)).compute()
    np.testing.assert_allclose(embeddings, model.encode(TEXTS * 2), rtol=0, atol=1e-6)
    loads = model_loads(client)
    assert len(loads) == 2  # both workers answered: the next line cannot hold for an empty cluster
    assert {worker: loads[worker] - before[worker] for worker in loads} == {worker: 1 for worker in loads}


def test_the_graph_carries_no_weights(client):
    embeddings = minisbert_dask.encode(["a text", "another"])
    graph_bytes = len(pickle.dumps(dict(embeddings.__dask_graph__())))
    assert graph_bytes < 20_000  # the model's weights are 90 MB


@pytest.mark.parametrize(
    "texts, options, error, match",
    [
        (["a"], {"precision": "int8"}, ValueError, "calibrated on the embeddings themselves"),
        (["a"], {"output_value": "token_embeddings"}, TypeError, "cannot be used batch by batch"),
        (["a"], {"normalise": True}, TypeError, "'normalise' is not an option of encode"),
        ("one string", {}, TypeError, "list of strings"),
        (["a"], {"prompt_name": "nope"}, ValueError, "prompt name 'nope' not found"),
        (["a"], {"quantize": "int4"}, ValueError, "quantize='int4' is not one of (None, 'int8')"),
    ],
)
def test_encode_refuses_bad_arguments(texts, options, error, match):
    with pytest.raises(error, match=re.escape(match)):
        minisbert_dask.encode(texts, **options)


def test_encode_refuses_a_loaded_model_and_a_dataframe(model):
    with pytest.raises(TypeError, match="not a loaded SentenceTransformer"):
        minisbert_dask.encode(["a"], model=model)
    frame = dd.from_pandas(pd.DataFrame({"text": ["a", "b"], "id": [1, 2]}), npartitions=1)
    with pytest.raises(TypeError, match=r"one column of texts, e.g. frame\['text'\]"):
        minisbert_dask.encode(frame)
    with pytest.raises(TypeError, match="column of dtype int64"):
        minisbert_dask.encode(frame["id"])


def test_a_non_string_in_a_partition_is_named(client):
    with pytest.raises(TypeError, match="item 1 is int"):
        minisbert_dask.encode(db.from_sequence(["a", 7], npartitions=1)).compute()


def search_hits_equal(actual, expected, atol=0.0):
    assert [[hit["corpus_id"] for hit in hits] for hits in actual] == [
        [hit["corpus_id"] for hit in hits] for hits in expected
    ]
    np.testing.assert_allclose(
        [hit["score"] for hits in actual for hit in hits], [hit["score"] for hits in expected for hit in hits],
        rtol=0, atol=atol,
    )


@pytest.mark.parametrize("score_function", [util.cos_sim, util.dot_score, util.euclidean_sim])
@pytest.mark.parametrize("rows, chunk, top_k", [(500, 64, 10), (50, 7, 30), (30, 30, 5), (20, 6, 100), (9, 4, 0)])
def test_semantic_search_equals_util(client, score_function, rows, chunk, top_k):
    rng = np.random.default_rng(rows + top_k)
    queries = rng.standard_normal((7, 16)).astype(np.float32)
    corpus = rng.standard_normal((rows, 16)).astype(np.float32)
    corpus[rows // 2 :: 3] = corpus[1]  # ties, across chunk boundaries: ordered by smaller corpus_id
    queries[0] = corpus[1]
    actual = minisbert_dask.semantic_search(
        queries, da.from_array(corpus, chunks=(chunk, 16)), top_k=top_k, score_function=score_function
    )
    # The same chunks: the same hits, bit-identical scores. util's single chunk: BLAS may round a score
    # differently in another block shape, so near-ties may swap; the ranked scores agree within 1e-5.
    same_chunks = util.semantic_search(
        queries, corpus, top_k=top_k, corpus_chunk_size=chunk, score_function=score_function
    )
    search_hits_equal(actual, same_chunks)
    one_chunk = util.semantic_search(queries, corpus, top_k=top_k, score_function=score_function)
    np.testing.assert_allclose(
        [[hit["score"] for hit in hits] for hits in actual], [[hit["score"] for hit in hits] for hits in one_chunk],
        rtol=0, atol=1e-5,
    )


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(st.integers(1, 12), min_size=1, max_size=6),
    k=st.integers(0, 15),
    seed=st.integers(0, 2**32 - 1),
)
def test_merge_top_k_of_chunks_equals_top_k_of_all_scores(chunks, k, seed):
    scores = np.random.default_rng(seed).integers(0, 4, size=(3, sum(chunks))).astype(np.float32)  # many ties
    candidates = [top_k(block, k) for block in np.split(scores, np.cumsum(chunks)[:-1], axis=1)]
    offsets = np.cumsum([0] + chunks[:-1])
    values = np.concatenate([values for values, _ in candidates], axis=1)
    indices = np.concatenate([indices + offset for (_, indices), offset in zip(candidates, offsets)], axis=1)
    merged_values, merged_indices = merge_top_k(values, indices, k)
    expected_values, expected_indices = top_k_reference(scores, k)
    np.testing.assert_array_equal(merged_values, expected_values)
    np.testing.assert_array_equal(merged_indices, expected_indices)


def test_semantic_search_on_dask_embeddings_with_unknown_chunks(client, model):
    corpus = minisbert_dask.encode(db.from_sequence(TEXTS, npartitions=4))  # chunk lengths unknown (NaN)
    queries = model.encode(["what is the weather like", "emoji"])
    expected = util.semantic_search(queries, model.encode(TEXTS), top_k=8)
    search_hits_equal(minisbert_dask.semantic_search(queries, corpus, top_k=8), expected, 1e-6)


def test_semantic_search_refuses_mismatched_dimensions():
    with pytest.raises(ValueError, match=r"must be \(rows, 8\) like the queries, got shape \(5, 4\)"):
        minisbert_dask.semantic_search(np.ones((2, 8)), da.ones((5, 4), chunks=2))


@pytest.mark.parametrize("kind", ["list", "series", "array", "dict", "frame"])
def test_embedder_pickled_maps_each_batch_kind(model, kind):
    embedder = pickle.loads(pickle.dumps(Embedder("all-MiniLM-L6-v2", normalize_embeddings=True, batch_size=4)))
    texts = TEXTS[:12]
    expected = model.encode(texts, normalize_embeddings=True)
    batch = {
        "list": texts,
        "series": pd.Series(texts),
        "array": np.array(texts, dtype=object),
        "dict": {"text": np.array(texts, dtype=object), "id": np.arange(12)},
        "frame": pd.DataFrame({"text": texts, "id": range(12)}),
    }[kind]
    result = embedder(batch)
    if kind == "dict":
        assert list(result) == ["text", "id", "embedding"]
        result = result["embedding"]
    elif kind == "frame":
        assert list(result.columns) == ["text", "id", "embedding"]
        result = np.stack(result["embedding"].tolist())
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-6)


def test_embedder_pickles_small_and_names_a_missing_column(model):
    embedder = Embedder(text_column="sentence")
    embedder(["load the model in this process"])
    assert len(pickle.dumps(embedder)) < 1000  # name and options only, even after the model is loaded
    with pytest.raises(ValueError, match=r"no column 'sentence' \(its columns: \['text'\]\)"):
        embedder({"text": np.array(["a"])})
    with pytest.raises(TypeError, match="wrap a single text in a list"):
        embedder("a single text")


def test_importing_minisbert_imports_no_dask_and_minisbert_dask_no_torch():
    check = (
        "import sys, minisbert; core = sorted({'dask', 'distributed', 'zarr'} & set(sys.modules)); "
        "import minisbert.dask, minisbert.distributed.streaming; "
        "heavy = sorted({'torch', 'transformers', 'sentence_transformers'} & set(sys.modules)); print(core, heavy)"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "[]"]


def test_minisbert_dask_without_dask_names_the_extra():
    check = "import sys; sys.modules['dask'] = None; import minisbert.dask"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "ImportError: minisbert.dask needs dask: pip install 'minisbert[dask]'" in result.stderr


def test_the_cli_encodes_on_a_running_scheduler(client, model, tmp_path, capsys):
    """Near the end of this module: the CLI's own Client to the same scheduler is closed when it is done."""
    from minisbert.cli import main

    (tmp_path / "corpus.txt").write_text("\n".join(text.replace("\n", " ") for text in TEXTS) + "\n")
    store = tmp_path / "emb.zarr"
    address = client.scheduler.address
    main(["encode", "-i", str(tmp_path / "corpus.txt"), "-o", str(store), "--chunk-size", "10", "--scheduler", address])
    assert "(5 chunks encoded now, 0 already written)" in capsys.readouterr().out
    embeddings = zarr.open_group(str(store), mode="r")["embeddings"][:]
    expected = model.encode([text.replace("\n", " ") for text in TEXTS])
    np.testing.assert_allclose(embeddings, expected, rtol=0, atol=1e-6)
    assert len(client.scheduler_info()["workers"]) == 2  # the cluster is still there


def test_a_worker_killed_mid_job_still_gives_the_complete_result(client, model):
    """Last in this module: it kills a worker process (its nanny starts a new one, which the plugin counts)."""
    texts = TEXTS * 3
    future = client.compute(minisbert_dask.encode(db.from_sequence(texts, npartitions=12), batch_size=4))
    deadline = time.monotonic() + 60
    while not any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.01)
    pid = next(iter(client.run(os.getpid).values()))
    assert not future.done()
    os.kill(pid, signal.SIGKILL)
    embeddings = future.result(timeout=120)
    np.testing.assert_allclose(embeddings, model.encode(texts), rtol=0, atol=1e-6)
    client.wait_for_workers(2, timeout=60)
    assert pid not in client.run(os.getpid).values()  # the killed process was replaced

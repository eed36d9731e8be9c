"""encode and the search functions work in a child made by os.fork after the parent used the worker pool and the
split kernels (the parent's numbers, no hang: a timeout fails the test), in a spawned child, and from four threads
at once; numpy's BLAS thread count is what it was after any mix of concurrent calls.

The tests hold numpy's BLAS at two threads (conftest's two_blas_threads) so that the encoder cuts batches into two groups run
on the worker pool, and they check that it did: none of them can pass with the pool unused."""

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as scipy_sparse
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from minisbert import SentenceTransformer
from minisbert.runtime import threads as minisbert_threads
from minisbert.util.quantization import quantize_embeddings, semantic_search_binary
from minisbert.util import euclidean_sim, semantic_search
from inputs import HARD_TEXTS, corpus_sentences

CHILD_TIMEOUT = 240  # seconds: a child that has not answered by then hangs, and the test fails


def blas_counts():
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


@pytest.fixture(scope="module")
def texts():
    # long enough for two groups of >= 128 tokens each: the encoder uses the worker pool
    return corpus_sentences(24) + HARD_TEXTS[:8]


@pytest.fixture(scope="module")
def search_inputs():
    rng = np.random.default_rng(11)
    corpus = rng.standard_normal((6000, 384)).astype(np.float32)
    queries = rng.standard_normal((80, 384)).astype(np.float32)
    return queries, corpus


def run_everything(model, texts, queries, corpus):
    """encode (grouped), semantic_search (split top-k), binary search (split Hamming kernel and rescoring) and
    euclidean_sim (split kernel) as plain arrays."""
    return {"embeddings": model.encode(texts, batch_size=32), **run_everything_but_encode(queries, corpus)}


def child_main(queue, folder, texts, queries, corpus):
    try:
        queue.put(run_everything(SentenceTransformer(folder) if folder else CHILD_MODEL, texts, queries, corpus))
    except BaseException as error:  # reported to the parent, which fails the test with it
        queue.put(repr(error))


CHILD_MODEL = None  # the parent's model, inherited by a forked child


def run_in_child(method, folder, texts, queries, corpus):
    context = multiprocessing.get_context(method)
    queue = context.Queue()
    child = context.Process(target=child_main, args=(queue, folder, texts, queries, corpus))
    child.start()
    result = f"no answer from the {method} child in {CHILD_TIMEOUT} s"
    for _ in range(CHILD_TIMEOUT):  # polled, so that a child that died fails the test at once
        try:
            result = queue.get(timeout=1)
            break
        except Exception:
            if child.exitcode is not None:
                result = f"the {method} child died with exit code {child.exitcode}"
                break
    child.join(10)
    if child.is_alive():
        child.kill()
        child.join()
    assert not isinstance(result, str), result
    return result


def assert_same(actual, expected):
    for key, value in expected.items():
        if key.endswith("ids"):
            np.testing.assert_array_equal(actual[key], value, err_msg=key)
        else:
            np.testing.assert_allclose(actual[key], value, rtol=0, atol=1e-6, err_msg=key)


@pytest.fixture
def pool_used(monkeypatch):
    """Records the work items the encoder hands to the worker pool (fails a test that never used it)."""
    submitted = []
    original = minisbert_threads.worker_pool

    def recording_pool():
        pool = original()

        class Recording:
            def submit(self, function, *arguments):
                submitted.append(function)
                return pool.submit(function, *arguments)

        return Recording()

    monkeypatch.setattr(minisbert_threads, "worker_pool", recording_pool)
    return submitted


def test_the_split_kernels_give_the_numbers_of_one_call(search_inputs, pool_used, monkeypatch):
    # each kernel's rows split over the pool and the caller against the same kernel over all rows at once, on two
    # cores as split_rows sees them (on a one-core machine nothing would be split)
    queries, corpus = search_inputs
    monkeypatch.setattr(minisbert_threads, "core_count", lambda: 2)
    monkeypatch.setattr(minisbert_threads, "MIN_PARALLEL_WORK", 10**18)
    whole = run_everything_but_encode(queries, corpus)
    assert not pool_used
    monkeypatch.setattr(minisbert_threads, "MIN_PARALLEL_WORK", 1)
    split = run_everything_but_encode(queries, corpus)
    assert len(pool_used) >= 4  # top-k, Hamming, rescoring and euclidean each handed rows to the pool
    assert_same(split, whole)


def late_interaction_and_sparse_scores():
    """The MaxSim and sparse-search kernels, split over threads, on fixed random inputs."""
    from minisbert.kernels import maxsim, sparse

    rng = np.random.default_rng(12)
    tokens = rng.standard_normal((60080, 32)).astype(np.float32)  # 80 query tokens, then 3000 documents of 20
    query_offsets, document_offsets = np.arange(0, 81, 5), np.arange(0, 60001, 20)
    weights = np.maximum(rng.standard_normal((2020, 3000)), 1.5).astype(np.float32) - np.float32(1.5)  # ~7% non-zero
    queries, documents = scipy_sparse.csr_array(weights[:20]), scipy_sparse.csc_array(weights[20:])
    sparse_scores, sparse_ids = sparse.sparse_search(
        queries.indptr, queries.indices, queries.data, documents.indptr, documents.indices, documents.data, 2000, 5
    )
    return {
        "maxsim": maxsim.maxsim(tokens[:80], query_offsets, tokens[80:], document_offsets),
        "maxsim_pairwise": maxsim.maxsim_pairwise(tokens[:80], query_offsets, tokens[80:], query_offsets * 4),
        "sparse_scores": sparse_scores,
        "sparse_ids": sparse_ids,
    }


def run_everything_but_encode(queries, corpus):
    hits = semantic_search(queries, corpus, top_k=5)
    binary_hits = semantic_search_binary(queries, quantize_embeddings(corpus, "ubinary"), top_k=5, rescore_multiplier=4)
    return {
        "ids": np.array([[hit["corpus_id"] for hit in row] for row in hits]),
        "scores": np.array([[hit["score"] for hit in row] for row in hits]),
        "binary_ids": np.array([[hit["corpus_id"] for hit in row] for row in binary_hits]),
        "euclidean": euclidean_sim(queries, corpus[:700]),
        **late_interaction_and_sparse_scores(),
    }


def test_a_forked_child_encodes_and_searches_with_the_parents_numbers(
    model, texts, search_inputs, two_blas_threads, pool_used
):
    global CHILD_MODEL
    queries, corpus = search_inputs
    expected = run_everything(model, texts, queries, corpus)  # the parent uses the pool and the split kernels
    assert pool_used, "the parent never used the worker pool: the test would prove nothing"
    CHILD_MODEL = model
    try:
        assert_same(run_in_child("fork", None, texts, queries, corpus), expected)
    finally:
        CHILD_MODEL = None
    assert set(blas_counts()) == {2}


def test_a_spawned_child_gives_the_parents_numbers(model, texts, search_inputs, two_blas_threads):
    queries, corpus = search_inputs[0][:8], search_inputs[1][:500]
    expected = run_everything(model, texts, queries, corpus)
    assert_same(run_in_child("spawn", str(model.folder), texts, queries, corpus), expected)


def test_four_threads_at_once_get_each_its_own_results(model, texts, search_inputs, two_blas_threads, pool_used):
    queries, corpus = search_inputs
    batches = [texts[i:] + texts[:i] for i in range(4)]
    expected = [run_everything(model, batch, queries[i::4], corpus) for i, batch in enumerate(batches)]
    start = threading.Barrier(4)

    def call(i):
        start.wait()
        return run_everything(model, batches[i % 4], queries[i % 4 :: 4], corpus)

    with ThreadPoolExecutor(4) as callers:
        actual = list(callers.map(call, range(8)))
    assert pool_used
    for i, result in enumerate(actual):
        assert_same(result, expected[i % 4])
    assert set(blas_counts()) == {2}


def test_blas_threads_come_back_after_a_mix_of_concurrent_calls(model, texts, two_blas_threads, pool_used):
    # long and short batches, overlapping in every order: each encode enters and leaves the BLAS limit
    batches = [texts, texts[:2], texts[5:], ["a", "b"], texts[::-1]] * 4
    with ThreadPoolExecutor(4) as callers:
        list(callers.map(lambda batch: model.encode(batch, batch_size=16), batches))
    assert pool_used
    assert set(blas_counts()) == {2}


def test_the_blas_limit_is_given_back_by_the_last_caller_to_leave(two_blas_threads):
    # interleaved: A enters, B enters, A leaves (B still inside: one thread), B leaves (two again)
    a, b = minisbert_threads.blas_limited_to_one_thread(), minisbert_threads.blas_limited_to_one_thread()
    a.__enter__()
    assert set(blas_counts()) == {1}
    b.__enter__()
    assert minisbert_threads.blas_thread_count() == 2  # the count outside the limit, for the encoder's groups
    a.__exit__(None, None, None)
    assert set(blas_counts()) == {1}
    b.__exit__(None, None, None)
    assert set(blas_counts()) == {2}


def child_blas_after_encode(queue, texts):
    try:
        inherited = min(blas_counts())
        CHILD_MODEL.encode(texts)
        queue.put({"inherited": inherited, "after": min(blas_counts())})
    except BaseException as error:
        queue.put(repr(error))


def test_a_child_forked_while_another_thread_holds_the_limit_encodes_and_keeps_its_threads(model, texts, two_blas_threads):
    # the parent's limit is held by another thread at fork time: the child starts with the parent's count
    # outside the limit (2), its encode does not wait on the parent's lock or callers, and leaves that count
    global CHILD_MODEL
    holding, release = threading.Event(), threading.Event()

    def hold():
        with minisbert_threads.blas_limited_to_one_thread():
            holding.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(60)
    CHILD_MODEL = model
    try:
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=child_blas_after_encode, args=(queue, texts))
        child.start()
        result = queue.get(timeout=CHILD_TIMEOUT)
        child.join(10)
    finally:
        CHILD_MODEL = None
        release.set()
        holder.join()
    assert isinstance(result, dict), result
    assert result["inherited"] == result["after"] == 2
    assert set(blas_counts()) == {2}


def test_a_user_limit_set_between_calls_is_respected(model, texts, two_blas_threads):
    with threadpool_limits(limits=1, user_api="blas"):
        assert minisbert_threads.blas_thread_count() == 1
        model.encode(texts)
        assert set(blas_counts()) == {1}
    assert set(blas_counts()) == {2}



def test_a_batch_run_in_groups_keeps_one_blas_thread_for_the_modules_after_the_encoder(
    model, texts, two_blas_threads, monkeypatch
):
    # the module after the Transformer (pooling) sees numpy's BLAS at one thread when the batch runs in groups,
    # so that a GEMM there does not wake OpenBLAS's second thread, which would spin on the next batch's core;
    # at two threads when the batch runs whole (a short one)
    seen = []

    def recording(module):
        def run(features):
            seen.append(set(blas_counts()))
            return module(features)

        return run

    transformer, pooling, *others = model.modules
    monkeypatch.setattr(model, "modules", [transformer, recording(pooling), *others])
    model.encode(texts, batch_size=32)
    model.encode(["a", "b"])
    assert seen == [{1}, {2}]
    assert set(blas_counts()) == {2}

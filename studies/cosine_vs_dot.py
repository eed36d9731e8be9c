"""Cosine vs dot product. Part 1 reproduces the central result of Steck, Ekanadham and Kallus (2024), "Is
Cosine-Similarity of Embeddings Really About Similarity?", on a linear matrix-factorisation model of
synthetic user-item data; part 2 asks the same question of all-MiniLM-L6-v2, with and without Normalize.

    python studies/cosine_vs_dot.py                 # a few minutes; prints the claims and the measurements
    python studies/cosine_vs_dot.py --figure out.png --documents 2000 --queries 100

The model (paper, section 2): predicted scores X A B^T of a users x items matrix X, item embeddings the
rows of B, user embeddings the rows of X A. Trained with one of two regularisations:
    scheme 1:  min ||X - X A B^T||^2 + lambda ||A B^T||^2          (only the product is regularised)
    scheme 2:  min ||X - X A B^T||^2 + lambda (||X A||^2 + ||B||^2)  (each factor is)
With X = U S V^T, both have closed forms (paper, eqs. 2 and 3):
    scheme 1:  A = V_k diag(s^2 / (s^2 + lambda)) D,  B = V_k D^-1   for ANY invertible diagonal D
    scheme 2:  A = V_k diag(sqrt((1 - lambda/s)_+ / s)) R,  B = V_k diag(sqrt((1 - lambda/s)_+ s)) R
               for any rotation R (which leaves cosine similarities unchanged).
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy import stats

from minisbert import SentenceTransformer
from minisbert.files.loading import read_json
from minisbert.util.similarity import cos_sim, dot_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))  # the data paths: bench/common.py
from common import CORPUS  # noqa: E402


# ---- part 1: the linear model of the paper ---------------------------------------------------------------


def synthetic_interactions(users, items, clusters, seed):
    """A binary users x items matrix: items fall into clusters and have power-law popularity; each user
    mostly likes one cluster. Returns X (users, items) float64 and each item's cluster (items,)."""
    rng = np.random.default_rng(seed)
    item_cluster = np.sort(rng.integers(clusters, size=items))  # sorted, so heatmaps show blocks
    popularity = 1.0 / (1 + rng.permutation(items)) ** 0.6  # (items,) power law
    user_cluster = rng.integers(clusters, size=users)  # (users,)
    affinity = np.where(user_cluster[:, None] == item_cluster[None, :], 1.0, 0.08)  # (users, items)
    probability = np.minimum(1.0, 0.2 * affinity * popularity[None, :] / popularity.mean())  # (users, items)
    return (rng.random((users, items)) < probability).astype(np.float64), item_cluster


def top_singular(X, k):
    # X (users, items) -> V_k (items, k), s_k (k,)
    _, singular_values, right = np.linalg.svd(X, full_matrices=False)
    return right[:k].T, singular_values[:k]


def scheme1_closed_form(X, k, penalty, diagonal):
    """Scheme 1's solution for the diagonal D (k,): A, B (items, k); every D gives the same A B^T."""
    V, s = top_singular(X, k)
    shrink = s**2 / (s**2 + penalty)  # (k,)
    return V * shrink * diagonal, V / diagonal


def scheme2_closed_form(X, k, penalty, rotation):
    """Scheme 2's solution for the rotation R (k, k): A, B (items, k)."""
    V, s = top_singular(X, k)
    kept = np.maximum(1 - penalty / s, 0)  # (k,)
    return V * np.sqrt(kept / s) @ rotation, V * np.sqrt(kept * s) @ rotation


def loss(X, scheme, penalty, A, B):
    """The scheme's training objective at (A, B)."""
    reconstruction = np.sum((X - X @ A @ B.T) ** 2)
    if scheme == 1:
        return reconstruction + penalty * np.sum((A @ B.T) ** 2)
    return reconstruction + penalty * (np.sum((X @ A) ** 2) + np.sum(B**2))


def train(X, k, scheme, penalty, seed, iterations=3000):
    """Alternating least squares from a random start: each step solves exactly for A given B (the loss is
    quadratic in A), then for B given A, until the loss stops falling. With G = X^T X and M = B^T B:
        scheme 1:  A = (G + lambda I)^-1 G B M^-1,     B = G A (A^T G A + lambda A^T A)^-1
        scheme 2:  A = B (M + lambda I)^-1,           B = G A (A^T G A + lambda I)^-1"""
    rng = np.random.default_rng(seed)
    gram = X.T @ X  # (items, items)
    identity = np.eye(k)
    B = rng.normal(size=(len(gram), k)) * rng.uniform(0.1, 10, size=k)  # columns of very different scales
    shrunk_gram = np.linalg.solve(gram + penalty * np.eye(len(gram)), gram)  # (items, items), scheme 1
    previous = np.inf
    for _ in range(iterations):
        if scheme == 1:
            A = shrunk_gram @ B @ np.linalg.inv(B.T @ B)
            B = gram @ A @ np.linalg.inv(A.T @ gram @ A + penalty * A.T @ A)
        else:
            A = B @ np.linalg.inv(B.T @ B + penalty * identity)
            B = gram @ A @ np.linalg.inv(A.T @ gram @ A + penalty * identity)
        current = loss(X, scheme, penalty, A, B)
        if previous - current <= 1e-13 * current:
            break
        previous = current
    return A, B, current


def upper_triangle(matrix):
    return matrix[np.triu_indices(len(matrix), 1)]


def neighbour_overlap(first, second, top=10):
    """Mean share of the top neighbours (by the similarity matrices first and second) that agree."""
    first, second = first.copy(), second.copy()  # (items, items) each; an item is not its own neighbour
    np.fill_diagonal(first, -np.inf)
    np.fill_diagonal(second, -np.inf)
    top_first = np.argsort(-first, axis=1)[:, :top]
    top_second = np.argsort(-second, axis=1)[:, :top]
    return float(np.mean([len(set(a) & set(b)) / top for a, b in zip(top_first, top_second)]))


def compare(name, first, second):
    """One line: how far two item-item cosine matrices are apart."""
    difference = np.abs(first - second).max()
    rank = stats.spearmanr(upper_triangle(first), upper_triangle(second)).statistic
    overlap = neighbour_overlap(first, second)
    return difference, f"  {name:<52} max |diff| {difference:8.2e}  Spearman {rank:7.4f}  top-10 overlap {overlap:.3f}"


def matrix_factorisation_study(users, items, clusters, k, seed):
    X, item_cluster = synthetic_interactions(users, items, clusters, seed)
    V, s = top_singular(X, k)
    penalty1 = s[k // 2] ** 2  # shrinks s^2/(s^2+lambda) from ~1 to ~0.5 and below across the k components
    penalty2 = 0.5 * s[-1]  # keeps all k components in scheme 2
    rng = np.random.default_rng(seed + 1)
    shrink = s**2 / (s**2 + penalty1)
    diagonals = {
        "D = I": np.ones(k),
        "D = shrink^-1/2 (A = B)": shrink**-0.5,
        "D random, log-uniform in [0.1, 10]": np.exp(rng.uniform(np.log(0.1), np.log(10), k)),
    }
    rotations = {"R = I": np.eye(k), "R random": np.linalg.qr(rng.normal(size=(k, k)))[0]}
    scheme1 = {name: scheme1_closed_form(X, k, penalty1, d) for name, d in diagonals.items()}
    scheme2 = {name: scheme2_closed_form(X, k, penalty2, r) for name, r in rotations.items()}
    trained1 = [train(X, k, 1, penalty1, seed + start) for start in (1, 2)]
    trained2 = [train(X, k, 2, penalty2, seed + start) for start in (1, 2)]

    cosines1 = {name: cos_sim(B, B) for name, (_, B) in scheme1.items()}
    cosines2 = {name: cos_sim(B, B) for name, (_, B) in scheme2.items()}
    trained_cosines1 = [cos_sim(B, B) for _, B, _ in trained1]
    trained_cosines2 = [cos_sim(B, B) for _, B, _ in trained2]
    names1, names2 = list(cosines1), list(cosines2)
    products1 = [A @ B.T for A, B in scheme1.values()]

    lines = [
        "PART 1: Steck, Ekanadham & Kallus (2024), linear matrix factorisation",
        "",
        "The paper claims: with scheme 1 (only A B^T regularised) the learned embeddings are defined only up",
        "to a diagonal rescaling D, which leaves every prediction X A B^T unchanged but changes the cosine",
        "similarities of the embeddings arbitrarily; with scheme 2 (A and B regularised) the solution is",
        "unique up to a rotation, and the cosine similarities are unique.",
        "",
        f"Data: {users} users x {items} items in {clusters} clusters, {int(X.sum())} interactions "
        f"({X.mean():.1%} dense), k = {k}, seed {seed}; lambda1 = {penalty1:.1f} (s_k^2/(s_k^2+lambda1) from "
        f"{shrink[0]:.2f} to {shrink[-1]:.2f}), lambda2 = {penalty2:.2f}.",
        "",
        "Scheme 1, closed form, three choices of D:",
        f"  predictions X A B^T: max |diff| between the D choices "
        f"{max(np.abs(p - products1[0]).max() for p in products1):.1e} (identical)",
    ]
    measured1 = []
    for name in names1[1:]:
        difference, line = compare(f"item cosines, {names1[0]} vs {name}", cosines1[names1[0]], cosines1[name])
        measured1.append(difference)
        lines.append(line)
    lines.append("Scheme 1, trained (alternating least squares) from two random starts:")
    closed_loss1 = loss(X, 1, penalty1, *scheme1[names1[0]])
    lines.append(
        f"  loss / closed-form loss: {trained1[0][2] / closed_loss1:.8f}, {trained1[1][2] / closed_loss1:.8f}; "
        f"predictions max |diff| {np.abs(trained1[0][0] @ trained1[0][1].T - trained1[1][0] @ trained1[1][1].T).max():.1e}"
    )
    difference, line = compare("item cosines, start 1 vs start 2", *trained_cosines1)
    measured1.append(difference)
    lines.append(line)
    lines.append("Scheme 2, closed form, two rotations R, and trained from the same two starts:")
    measured2 = []
    for name, (first, second) in {
        "item cosines, R = I vs R random": (cosines2[names2[0]], cosines2[names2[1]]),
        "item cosines, start 1 vs start 2": tuple(trained_cosines2),
        "item cosines, start 1 vs closed form": (trained_cosines2[0], cosines2[names2[0]]),
    }.items():
        difference, line = compare(name, first, second)
        measured2.append(difference)
        lines.append(line)
    closed_loss2 = loss(X, 2, penalty2, *scheme2[names2[0]])
    lines.append(f"  loss / closed-form loss: {trained2[0][2] / closed_loss2:.8f}, {trained2[1][2] / closed_loss2:.8f}")
    lines += [
        "",
        f"Measured: under scheme 1 the item-item cosine similarities move by up to {max(measured1):.2f} between "
        "equally good",
        f"solutions (same predictions); under scheme 2 by at most {max(measured2):.1e}. "
        + ("The claim is reproduced." if max(measured1) > 0.1 > 100 * max(measured2) else "NOT reproduced."),
    ]
    panels = [(f"scheme 1, {names1[0]}", cosines1[names1[0]]), ("scheme 1, trained (start 1)", trained_cosines1[0]),
              (f"scheme 1, {names1[2]}", cosines1[names1[2]])]
    panels += [("scheme 2, " + names2[0], cosines2[names2[0]]), ("scheme 2, " + names2[1], cosines2[names2[1]]),
               ("scheme 2, trained (start 2)", trained_cosines2[1])]
    return lines, panels, item_cluster


# ---- part 2: the same question on a real model -------------------------------------------------------------


def without_normalize(folder, destination):
    """A model folder like `folder` whose modules.json drops the Normalize module (the files symlinked)."""
    folder, destination = Path(folder), Path(destination)
    for entry in folder.iterdir():
        if entry.name != "modules.json":
            (destination / entry.name).symlink_to(entry.resolve())
    modules = [m for m in read_json(folder / "modules.json") if not m["type"].endswith("Normalize")]
    (destination / "modules.json").write_text(json.dumps(modules, indent=2), encoding="utf-8")
    return destination


def ranking_agreement(queries, documents, top=10):
    """How alike cosine and dot product rank the documents for each query: (mean top-`top` overlap,
    share of queries with the same best document, mean Kendall tau over the full ranking)."""
    cosine, dot = cos_sim(queries, documents), dot_score(queries, documents)  # (queries, documents)
    top_cosine = np.argsort(-cosine, axis=1, kind="stable")[:, :top]
    top_dot = np.argsort(-dot, axis=1, kind="stable")[:, :top]
    overlap = np.mean([len(set(a) & set(b)) / top for a, b in zip(top_cosine, top_dot)])
    same_best = np.mean(top_cosine[:, 0] == top_dot[:, 0])
    tau = np.mean([stats.kendalltau(c, d).statistic for c, d in zip(cosine, dot)])
    return overlap, same_best, tau, top_dot


def real_model_study(model_folder, query_count, document_count, corpus=CORPUS, batch_size=64):
    sentences = Path(corpus).read_text(encoding="utf-8").splitlines()
    queries, documents = sentences[:query_count], sentences[query_count : query_count + document_count]
    normalised = SentenceTransformer(model_folder)
    with tempfile.TemporaryDirectory() as temporary:
        unnormalised = SentenceTransformer(without_normalize(normalised.folder, temporary))
    lines = [
        "PART 2: the same question on all-MiniLM-L6-v2",
        "",
        f"{query_count} queries and {document_count} documents: distinct sentences of {Path(corpus).name}.",
        "The claim: with Normalize (unit vectors) cosine and dot product are the same number, so they rank",
        "identically; without it (the same transformer and mean pooling) the vector norms enter the dot",
        "product, and the rankings differ.",
        "",
    ]
    for name, model in [("with Normalize (as published)", normalised), ("without Normalize", unnormalised)]:
        query_embeddings = model.encode(queries, batch_size=batch_size)
        document_embeddings = model.encode(documents, batch_size=batch_size)
        norms = np.linalg.norm(document_embeddings, axis=1)
        overlap, same_best, tau, top_dot = ranking_agreement(query_embeddings, document_embeddings)
        lines += [
            f"{name}: document norms {norms.min():.3f} .. {np.median(norms):.3f} (median) .. {norms.max():.3f}",
            f"  top-10 overlap {overlap:.3f}, same best document {same_best:.1%} of queries, "
            f"Kendall tau (full ranking) {tau:.4f}",
            f"  mean norm of the dot product's top-10 documents {norms[top_dot].mean():.3f} "
            f"(all documents {norms.mean():.3f})",
        ]
    return lines


# ---- figure and command line --------------------------------------------------------------------------------


def plot(panels, item_cluster, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 8), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.subplots(2, 3)
    boundaries = np.flatnonzero(np.diff(item_cluster)) + 0.5
    for axes, (title, cosines) in zip(grid.flat, panels):
        image = axes.imshow(cosines, cmap="coolwarm", vmin=-1, vmax=1)
        for boundary in boundaries:
            axes.axhline(boundary, color="black", linewidth=0.4)
            axes.axvline(boundary, color="black", linewidth=0.4)
        axes.set_title(title, fontsize=9)
        axes.set_xticks([])
        axes.set_yticks([])
    figure.colorbar(image, ax=grid, shrink=0.6, label="item-item cosine similarity")
    figure.suptitle("Item-item cosine similarities of equally good solutions (items sorted by cluster).\n"
                    "Top: scheme 1, only the diagonal rescaling D differs. Bottom: scheme 2, unique up to rotation.")
    figure.savefig(path, dpi=72, metadata={"Software": None})
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--clusters", type=int, default=5)
    parser.add_argument("--k", type=int, default=5, help="embedding dimension of the linear model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--model", default=None, help="model folder (default: the bundled all-MiniLM-L6-v2)")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="sentences, one a line (default: ../shared's)")
    parser.add_argument("--figure", type=Path, default=Path(__file__).resolve().parent / "figures" / "cosine_vs_dot.png")
    arguments = parser.parse_args(argv)
    lines, panels, item_cluster = matrix_factorisation_study(
        arguments.users, arguments.items, arguments.clusters, arguments.k, arguments.seed
    )
    arguments.figure.parent.mkdir(parents=True, exist_ok=True)
    lines += [f"Figure: {plot(panels, item_cluster, arguments.figure)}", ""]
    lines += real_model_study(arguments.model, arguments.queries, arguments.documents, arguments.corpus)
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    main()

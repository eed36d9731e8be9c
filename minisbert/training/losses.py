"""sentence-transformers' training losses, each a function of the sentence embeddings of a batch that returns
the loss and its gradient with respect to those embeddings (and to the loss's own parameters, for SoftmaxLoss).

Every function takes ``embeddings``, a list with one (batch, dim) array per text column of the data (anchor,
positive, negative...), and ``labels`` (batch,) or None; it returns ``(loss, [d_embeddings per column])``.
The classes (``CoSENTLoss(model)``...) mirror sentence_transformers.losses' names and arguments for
minisbert.training.fit; calling one gives ``(loss, d_embeddings, d_params)``. They compute in float64 (a
batch's embeddings are small) and give float64 gradients, which model_backward carries through Normalize, Dense
and pooling before narrowing them to the model's dtype at the token embeddings.
"""

import numpy as np

from minisbert.training.model import TrainingError
from minisbert.training.model import normalize_forward, normalize_backward


def log_sum_exp(x):
    # x (n,) -> log(sum(exp(x))), softmax(x) (n,): the softmax is the gradient
    top = x.max()
    exponentials = np.exp(x - top)
    total = exponentials.sum()
    return top + np.log(total), exponentials / total


def pairwise_cosine(a, b):
    # a, b (batch, dim) -> cos (batch,), and the gradient function d_cos (batch,) -> (d_a, d_b).
    # cos = <a, b> / (|a| |b|); d cos / d a = (b_hat - cos a_hat) / |a|, and symmetrically for b
    a_hat, a_norms = normalize_forward(a)
    b_hat, b_norms = normalize_forward(b)
    cos = (a_hat * b_hat).sum(axis=-1)

    def backward(d_cos):
        d_cos = d_cos[:, None]
        return d_cos * (b_hat - cos[:, None] * a_hat) / a_norms, d_cos * (a_hat - cos[:, None] * b_hat) / b_norms

    return cos, backward


def cosine_matrix(a, b):
    # a (n, dim), b (m, dim) -> cos (n, m), and the gradient function d_cos (n, m) -> (d_a, d_b)
    a_hat, a_norms = normalize_forward(a)
    b_hat, b_norms = normalize_forward(b)
    cos = a_hat @ b_hat.T

    def backward(d_cos):
        return normalize_backward(d_cos @ b_hat, a_hat, a_norms), normalize_backward(d_cos.T @ a_hat, b_hat, b_norms)

    return cos, backward


def check_columns(name, embeddings, count):
    if len(embeddings) != count:
        raise TrainingError(f"{name} needs {count} text columns per example, got {len(embeddings)}")


def check_labels(name, labels, batch):
    if labels is None:
        raise TrainingError(f"{name} needs a label (score) per example; the data has none")
    labels = np.asarray(labels, dtype=np.float64)
    if labels.shape != (batch,):
        raise TrainingError(f"{name} expects {batch} labels (one per example), got shape {labels.shape}")
    return labels


def cosine_similarity_loss(embeddings, labels):
    """mean over pairs of (cos(u, v) - label)^2 (sentence-transformers' CosineSimilarityLoss)."""
    check_columns("CosineSimilarityLoss", embeddings, 2)
    labels = check_labels("CosineSimilarityLoss", labels, len(embeddings[0]))
    cos, backward = pairwise_cosine(*embeddings)
    difference = cos - labels.astype(cos.dtype)
    return float((difference**2).mean()), list(backward(2 * difference / len(difference)))


def ranking_loss(scores, labels, scale):
    # scores (n,) -> log(1 + sum over pairs with labels[i] > labels[j] of exp(scale (s_j - s_i))), d_scores (n,)
    s = scale * scores
    higher = labels[:, None] > labels[None, :]  # (n, n): pair i ranks above pair j
    rows, cols = np.nonzero(higher)
    terms = np.concatenate([[0.0], s[cols] - s[rows]])  # exp(0) = the 1 inside the log
    loss, weights = log_sum_exp(terms)
    d_s = np.zeros_like(s, dtype=np.float64)
    np.add.at(d_s, cols, weights[1:])
    np.add.at(d_s, rows, -weights[1:])
    return float(loss), (scale * d_s).astype(scores.dtype)


def cosent_loss(embeddings, labels, scale=20.0):
    """log(1 + sum over pairs (i, j), (k, l) with label(i, j) > label(k, l) of exp(scale (cos(k, l) - cos(i, j))))
    (sentence-transformers' CoSENTLoss, Su 2022)."""
    check_columns("CoSENTLoss", embeddings, 2)
    labels = check_labels("CoSENTLoss", labels, len(embeddings[0]))
    cos, backward = pairwise_cosine(*embeddings)
    loss, d_cos = ranking_loss(cos, labels, scale)
    return loss, list(backward(d_cos))


def angle_loss(embeddings, labels, scale=20.0):
    """CoSENT's ranking loss over the angle similarity |cos(u, v) + sin(u, v)| instead of the cosine
    (sentence-transformers' AnglELoss, Li and Li 2023): with u, v L2-normalized and split in halves
    (u1, u2), (v1, v2) (an odd dimension padded with a zero), sin = sum(u2 v1 - u1 v2)."""
    check_columns("AnglELoss", embeddings, 2)
    labels = check_labels("AnglELoss", labels, len(embeddings[0]))
    dim = embeddings[0].shape[1]
    x, y = (np.pad(e, ((0, 0), (0, dim % 2))) for e in embeddings)  # (batch, even dim)
    (x_hat, x_norms), (y_hat, y_norms) = normalize_forward(x), normalize_forward(y)
    x1, x2 = np.split(x_hat, 2, axis=1)
    y1, y2 = np.split(y_hat, 2, axis=1)
    total = (x_hat * y_hat).sum(axis=1) + (x2 * y1 - x1 * y2).sum(axis=1)  # (batch,)
    loss, d_scores = ranking_loss(np.abs(total), labels, scale)
    d_total = (d_scores * np.sign(total))[:, None]  # (batch, 1)
    d_x_hat = d_total * (y_hat + np.concatenate([-y2, y1], axis=1))
    d_y_hat = d_total * (x_hat + np.concatenate([x2, -x1], axis=1))
    d_x, d_y = normalize_backward(d_x_hat, x_hat, x_norms), normalize_backward(d_y_hat, y_hat, y_norms)
    return loss, [d_x[:, :dim], d_y[:, :dim]]


def cross_entropy(logits, targets):
    # logits (n, classes), targets (n,) int -> mean of -log softmax(logits)[target], d_logits (n, classes)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(targets))
    d_logits = np.exp(log_probabilities)
    d_logits[rows, targets] -= 1
    return float(-log_probabilities[rows, targets].mean()), d_logits / len(targets)


def multiple_negatives_ranking_loss(embeddings, labels=None, scale=20.0):
    """mean over anchors i of -log softmax_j(scale cos(a_i, c_j))[i], the candidates c being every positive and
    negative of the batch (sentence-transformers' MultipleNegativesRankingLoss: in-batch negatives, InfoNCE)."""
    if len(embeddings) < 2:
        raise TrainingError(f"MultipleNegativesRankingLoss needs (anchor, positive[, negatives...]) columns, got {len(embeddings)}")
    anchors, candidates = embeddings[0], np.concatenate(embeddings[1:])  # (batch, dim), (columns - 1) batch, dim
    cos, backward = cosine_matrix(anchors, candidates)  # (batch, candidates)
    loss, d_logits = cross_entropy(scale * cos, np.arange(len(anchors)))
    d_anchors, d_candidates = backward(scale * d_logits)
    return loss, [d_anchors, *np.split(d_candidates, len(embeddings) - 1)]


def contrastive_loss(embeddings, labels, margin=0.5):
    """mean of 0.5 (label d^2 + (1 - label) max(margin - d, 0)^2) with the cosine distance d = 1 - cos(u, v)
    (sentence-transformers' ContrastiveLoss, Hadsell et al. 2006)."""
    check_columns("ContrastiveLoss", embeddings, 2)
    labels = check_labels("ContrastiveLoss", labels, len(embeddings[0]))
    cos, backward = pairwise_cosine(*embeddings)
    distance = 1 - cos
    hinge = np.maximum(margin - distance, 0)
    losses = 0.5 * (labels * distance**2 + (1 - labels) * hinge**2)
    d_distance = (labels * distance - (1 - labels) * hinge) / len(cos)
    return float(losses.mean()), list(backward((-d_distance).astype(cos.dtype)))


def triplet_loss(embeddings, labels=None, margin=5.0):
    """mean of max(|a - p| - |a - n| + margin, 0), Euclidean distances (sentence-transformers' TripletLoss)."""
    check_columns("TripletLoss", embeddings, 3)
    anchor, positive, negative = embeddings
    to_positive, to_negative = anchor - positive, anchor - negative  # (batch, dim)
    d_pos = np.sqrt((to_positive**2).sum(axis=1))
    d_neg = np.sqrt((to_negative**2).sum(axis=1))
    losses = np.maximum(d_pos - d_neg + margin, 0)
    active = (losses > 0)[:, None] / len(losses)  # (batch, 1): 1/batch where the hinge is open
    d_to_positive = active * to_positive / np.maximum(d_pos, 1e-30)[:, None]
    d_to_negative = -active * to_negative / np.maximum(d_neg, 1e-30)[:, None]
    return float(losses.mean()), [d_to_positive + d_to_negative, -d_to_positive, -d_to_negative]


def mse_loss(embeddings, labels):
    """mean over columns of mean((student - teacher)^2); labels are the teacher embeddings (batch, dim), the same
    for every column, or (batch, columns, dim) (sentence-transformers' MSELoss, Reimers and Gurevych 2020)."""
    if labels is None:
        raise TrainingError("MSELoss needs the teacher's embeddings as labels; the data has none")
    labels = np.asarray(labels)
    targets = [labels] * len(embeddings) if labels.ndim == 2 else [labels[:, i] for i in range(labels.shape[1])]
    if labels.ndim not in (2, 3) or len(targets) != len(embeddings) or targets[0].shape != embeddings[0].shape:
        raise TrainingError(f"MSELoss expects labels (batch, dim) or (batch, {len(embeddings)}, dim) matching the "
                            f"embeddings {embeddings[0].shape}, got {labels.shape}")
    losses, grads = [], []
    for student, teacher in zip(embeddings, targets):
        difference = student - teacher.astype(student.dtype)
        losses.append((difference**2).mean())
        grads.append(2 * difference / difference.size / len(embeddings))
    return float(np.mean(losses)), grads


def softmax_loss(embeddings, labels, classifier):
    """cross-entropy of a linear classifier over (u, v, |u - v|), the NLI objective of the SBERT paper
    (sentence-transformers' SoftmaxLoss with its defaults): classifier {"weight" (labels, 3 dim), "bias"}.
    Returns (loss, [d_u, d_v], d_classifier)."""
    check_columns("SoftmaxLoss", embeddings, 2)
    if labels is None:
        raise TrainingError("SoftmaxLoss needs a class label per example; the data has none")
    targets = np.asarray(labels)
    if targets.shape != (len(embeddings[0]),) or not np.all(targets == np.round(targets)) or targets.min() < 0 or targets.max() >= len(classifier["weight"]):
        raise TrainingError(f"SoftmaxLoss expects one integer label in [0, {len(classifier['weight'])}) per example, got {targets[:8]}")
    u, v = embeddings
    features = np.concatenate([u, v, np.abs(u - v)], axis=1)  # (batch, 3 dim)
    logits = features @ classifier["weight"].T + classifier["bias"]
    loss, d_logits = cross_entropy(logits, targets.astype(np.int64))
    d_features = d_logits @ classifier["weight"]
    d_u, d_v, d_abs = np.split(d_features, 3, axis=1)
    sign = np.sign(u - v)
    d_classifier = {"weight": d_logits.T @ features, "bias": d_logits.sum(axis=0)}
    return loss, [d_u + sign * d_abs, d_v - sign * d_abs], d_classifier


def matryoshka_loss(embeddings, labels, loss_function, dims, weights=None):
    """sum over d in dims of weight_d * loss(embeddings truncated to their first d dimensions and L2-normalized)
    (sentence-transformers' MatryoshkaLoss, Kusupati et al. 2022); teacher embeddings as labels are truncated
    too. loss_function(embeddings, labels) -> (loss, d_embeddings)."""
    weights = [1] * len(dims) if weights is None else weights
    full = embeddings[0].shape[1]
    if any(d > full for d in dims):
        raise TrainingError(f"Matryoshka dimension {max(dims)} is larger than the embedding dimension {full}")
    total, grads = 0.0, [np.zeros_like(e) for e in embeddings]
    for dim, weight in zip(dims, weights):
        truncated = [normalize_forward(e[:, :dim]) for e in embeddings]  # (y, norms) per column
        dim_labels = labels
        if labels is not None and np.ndim(labels) in (2, 3) and np.shape(labels)[-1] == full:
            dim_labels = np.asarray(labels)[..., :dim]
        loss, d_truncated = loss_function([y for y, _ in truncated], dim_labels)
        total += weight * loss
        for grad, d, (y, norms) in zip(grads, d_truncated, truncated):
            grad[:, :dim] += weight * normalize_backward(d, y, norms)
    return total, grads


# ---------------------------------------------------------------------------------------------- classes


class Loss:
    """A loss for minisbert.training.fit: ``loss(embeddings, labels) -> (loss, d_embeddings, d_params)``,
    ``params`` its trainable parameters (empty but for SoftmaxLoss), ``columns`` the text columns it needs."""

    params = {}
    columns = None  # None: any number
    needs_labels = True

    def __init__(self, model=None, **options):
        self.options = options

    def function(self, embeddings, labels):
        raise NotImplementedError

    def __call__(self, embeddings, labels):
        loss, d_embeddings = self.function(widened(embeddings), labels, **self.options)
        return loss, d_embeddings, {}


def widened(embeddings):
    return [np.asarray(e, dtype=np.float64) for e in embeddings]


def _loss_class(name, function, columns, needs_labels):
    return type(name, (Loss,), {
        "__doc__": function.__doc__, "function": staticmethod(function), "columns": columns, "needs_labels": needs_labels,
    })


CosineSimilarityLoss = _loss_class("CosineSimilarityLoss", cosine_similarity_loss, 2, True)
CoSENTLoss = _loss_class("CoSENTLoss", cosent_loss, 2, True)
AnglELoss = _loss_class("AnglELoss", angle_loss, 2, True)
MultipleNegativesRankingLoss = _loss_class("MultipleNegativesRankingLoss", multiple_negatives_ranking_loss, None, False)
ContrastiveLoss = _loss_class("ContrastiveLoss", contrastive_loss, 2, True)
TripletLoss = _loss_class("TripletLoss", triplet_loss, 3, False)
MSELoss = _loss_class("MSELoss", mse_loss, None, True)


class SoftmaxLoss(Loss):
    __doc__ = softmax_loss.__doc__
    columns = 2

    def __init__(self, model, embedding_dimension, num_labels, seed=0):
        # torch.nn.Linear's initialisation: weight and bias uniform in +-1 / sqrt(in_features)
        rng = np.random.default_rng(seed)
        bound = 1 / np.sqrt(3 * embedding_dimension)
        self.params = {
            "weight": rng.uniform(-bound, bound, (num_labels, 3 * embedding_dimension)).astype(np.float32),
            "bias": rng.uniform(-bound, bound, num_labels).astype(np.float32),
        }

    def __call__(self, embeddings, labels):
        classifier = {name: value.astype(np.float64) for name, value in self.params.items()}
        loss, d_embeddings, d_classifier = softmax_loss(widened(embeddings), labels, classifier)
        d_classifier = {name: value.astype(self.params[name].dtype) for name, value in d_classifier.items()}
        return loss, d_embeddings, d_classifier


class MatryoshkaLoss(Loss):
    __doc__ = matryoshka_loss.__doc__

    def __init__(self, model, loss, matryoshka_dims, matryoshka_weights=None):
        if isinstance(loss, SoftmaxLoss):
            raise TrainingError("MatryoshkaLoss around SoftmaxLoss is not supported (its classifier has a fixed width)")
        self.loss, self.dims = loss, sorted(matryoshka_dims, reverse=True)
        self.weights = matryoshka_weights
        if matryoshka_weights is not None:
            self.weights = [w for _, w in sorted(zip(matryoshka_dims, matryoshka_weights), key=lambda p: -p[0])]
        self.columns, self.needs_labels = loss.columns, loss.needs_labels

    def __call__(self, embeddings, labels):
        def inner(truncated, dim_labels):
            loss, d_embeddings, _ = self.loss(truncated, dim_labels)
            return loss, d_embeddings

        loss, d_embeddings = matryoshka_loss(widened(embeddings), labels, inner, self.dims, self.weights)
        return loss, d_embeddings, {}


# The names the command line accepts.
LOSSES = {
    "cosine": CosineSimilarityLoss,
    "cosent": CoSENTLoss,
    "angle": AnglELoss,
    "mnrl": MultipleNegativesRankingLoss,
    "contrastive": ContrastiveLoss,
    "triplet": TripletLoss,
    "mse": MSELoss,
}

"""The backward pass of minisbert.training against torch autograd on the same inputs (float64: relative error
<= 1e-7) and against central finite differences, one piece at a time; then a whole tiny model's parameter
gradients against sentence-transformers', for every architecture (float64) and for every loss (float32)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from inputs import HARD_TEXT_KINDS
from tiny_models import max_relative_difference

from minisbert.architectures import layers
from minisbert.kernels import activations
from minisbert.training import backward, losses
from minisbert.training.checkpoint import checkpoint_tensors
from minisbert.training.model import (
    dense_backward,
    dense_forward,
    make_trainable,
    model_backward,
    model_forward,
    normalize_backward,
    normalize_forward,
    pooling_backward,
)
from minisbert.modules.pooling import pool

RNG = np.random.default_rng(0)


def tensor(x):
    return torch.tensor(x, dtype=torch.float64, requires_grad=True)


def autograd(function, *inputs, weights):
    """The gradients of sum(function(*inputs) * weights) with respect to each input, by torch."""
    tensors = [tensor(x) for x in inputs]
    (function(*tensors) * torch.tensor(weights)).sum().backward()
    return [t.grad.numpy() for t in tensors]


def finite_difference(function, x, weights, coordinates=6, h=1e-6):
    """Central differences of sum(function(x) * weights) at a few random coordinates of x: (indices, slopes)."""
    indices = [tuple(RNG.integers(n) for n in x.shape) for _ in range(coordinates)]
    slopes = []
    for index in indices:
        up, down = x.copy(), x.copy()
        up[index] += h
        down[index] -= h
        slopes.append(((function(up) * weights).sum() - (function(down) * weights).sum()) / (2 * h))
    return indices, np.array(slopes)


def assert_matches_finite_differences(function, x, weights, gradient, bound=1e-6):
    indices, slopes = finite_difference(function, x, weights)
    assert max_relative_difference(np.array([gradient[i] for i in indices]), slopes) <= bound


def random(*shape):
    return RNG.standard_normal(shape)


def test_linear():
    x, layer = random(3, 5, 7), {"weight": random(4, 7), "bias": random(4)}
    weights = random(3, 5, 4)
    d_x, grads = backward.linear_backward(weights, x, layer)
    expected = autograd(F.linear, x, layer["weight"], layer["bias"], weights=weights)
    for ours, theirs in zip((d_x, grads["weight"], grads["bias"]), expected):
        assert max_relative_difference(ours, theirs) <= 1e-7
    assert_matches_finite_differences(lambda v: layers.linear(v, layer), x, weights, d_x)


@pytest.mark.parametrize("eps", [1e-12, 1e-5])
def test_layer_norm(eps):
    x, layer = random(2, 6, 8) * 3 + 1, {"weight": random(8), "bias": random(8)}
    weights = random(2, 6, 8)
    d_x, grads = backward.layer_norm_backward(weights, x, layer, eps)
    expected = autograd(lambda v, w, b: F.layer_norm(v, (8,), w, b, eps), x, layer["weight"], layer["bias"], weights=weights)
    for ours, theirs in zip((d_x, grads["weight"], grads["bias"]), expected):
        assert max_relative_difference(ours, theirs) <= 1e-7
    assert_matches_finite_differences(lambda v: layers.layer_norm(v, layer, eps), x, weights, d_x)


ACTIVATIONS = {
    "gelu": lambda t: F.gelu(t),
    "gelu_new": lambda t: F.gelu(t, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
    "tanh": torch.tanh,
}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation(name):
    x = np.concatenate([random(50) * 3, [0.0, -8.0, 8.0, 1e-3]])  # far tails and zero included
    weights = random(len(x))
    d_x = weights * backward.ACTIVATION_DERIVATIVES[name](x)
    (expected,) = autograd(ACTIVATIONS[name], x, weights=weights)
    # the forward GELUs of architectures/layers.py use float32-accurate constants (sqrt(1/2) to 1.7e-8 relative), which
    # the finite differences see; torch and the derivative use exact ones
    assert max_relative_difference(d_x, expected) <= 1e-7
    if name != "relu":  # not differentiable at 0
        assert_matches_finite_differences(layers.activation(name), x, weights, d_x, bound=1e-6)


def test_gelu_derivative_kernel_matches_its_reference():
    x = np.concatenate([random(1000) * 4, [0.0, -10.0, 10.0]])
    # float32: the kernel rounds once from float64, the reference computes in float32: 2 ulp of values up to 1.13
    for dtype, bound in ((np.float64, 1e-15), (np.float32, 2.5e-7)):
        values = x.astype(dtype)
        result = backward.gelu_derivative(values)
        assert result.dtype == dtype
        assert np.abs(result - backward.gelu_derivative_reference(values)).max() <= bound


def test_float32_gelu_layer_takes_the_fused_kernel_and_agrees_with_the_exact_float64_one():
    x = random(10, 8) * 3
    layer = {"weight": random(16, 8), "bias": random(16)}
    layer32 = {name: value.astype(np.float32) for name, value in layer.items()}
    activated, derivative = backward.linear_activation_forward(x, layer, "gelu")
    activated32, derivative32 = backward.linear_activation_forward(x.astype(np.float32), layer32, "gelu")
    assert activated32.dtype == derivative32.dtype == np.float32 and activated32.shape == (10, 16)
    pre = layers.linear(x, layer)
    # float64: the exact ufuncs
    assert np.array_equal(activated, layers.activation("gelu")(pre)) and np.array_equal(derivative, backward.gelu_derivative(pre))
    # float32: float32 products of inputs up to ~30, then erf and exp accurate to float32
    assert np.abs(activated32 - activated).max() <= 2e-5 and np.abs(derivative32 - derivative).max() <= 2e-6
    with pytest.raises(ValueError, match="float32"):
        activations.bias_gelu_with_derivative(pre, layer["bias"])


def test_softmax():
    x, weights = random(3, 4, 9), random(3, 4, 9)
    d_x = backward.softmax_backward(weights, layers.softmax(x))
    (expected,) = autograd(lambda t: torch.softmax(t, -1), x, weights=weights)
    assert max_relative_difference(d_x, expected) <= 1e-7
    assert_matches_finite_differences(layers.softmax, x, weights, d_x)


def test_dropout_mask_is_seeded_and_its_gradient_is_the_mask():
    x, weights = random(4, 50), random(4, 50)
    y, keep = backward.dropout(x, 0.25, np.random.default_rng(3))
    y_again, keep_again = backward.dropout(x, 0.25, np.random.default_rng(3))
    assert np.array_equal(keep, keep_again) and np.array_equal(y, y_again)
    assert 0.15 < 1 - keep.mean() < 0.35
    d_x = backward.dropout_backward(weights, keep, 0.25)
    (expected,) = autograd(lambda t: t * torch.tensor(keep) / 0.75, x, weights=weights)
    assert max_relative_difference(d_x, expected) <= 1e-7
    assert backward.dropout(x, 0.25, None)[1] is None  # no rng: evaluation, nothing dropped


def test_embedding_gradient_sums_repeated_ids():
    table, ids = random(10, 6), np.array([[1, 3, 3, 0], [3, 9, 1, 1]])
    weights = random(2, 4, 6)
    d_table = backward.embedding_backward(weights, ids, len(table))
    (expected,) = autograd(lambda t: F.embedding(torch.tensor(ids), t), table, weights=weights)
    assert max_relative_difference(d_table, expected) <= 1e-7
    assert np.allclose(d_table[3], weights[0, 1] + weights[0, 2] + weights[1, 0])
    assert not d_table[[2, 4, 5, 6, 7, 8]].any()


def test_embedding_gradient_kernel_refuses_ids_outside_the_table():
    # the kernel writes rows by id without bounds checks: an id outside the table must stop before it
    from minisbert.kernels.embedding import embedding_gradient

    for bad in (-1, 4):
        with pytest.raises(ValueError, match=f"id {bad} outside the table's 4 rows"):
            embedding_gradient(random(3, 2), np.array([0, bad, 1]), 4)


def reference_attention(x, qkv_weight, qkv_bias, out_weight, out_bias, bias, mask, heads):
    batch, seq, hidden = x.shape
    q, k, v = F.linear(x, qkv_weight, qkv_bias).split(hidden, -1)
    q, k, v = (t.reshape(batch, seq, heads, -1).transpose(1, 2) for t in (q, k, v))
    scores = q @ k.transpose(-1, -2) / (hidden // heads) ** 0.5 + bias + torch.tensor(mask)
    context = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(batch, seq, hidden)
    return F.linear(context, out_weight, out_bias)


def test_attention_with_padding_mask_and_position_bias():
    # ours holds the real tokens only, packed as rows: torch's padded positions get no gradient from outside
    # (zero weights), so that their gradient is zero and ours, over the real tokens, must match torch's there
    batch, seq, hidden, heads = 3, 5, 8, 2
    x = random(batch, seq, hidden)
    layer = {"qkv": {"weight": random(3 * hidden, hidden) * 0.5, "bias": random(3 * hidden)},
             "attention_output": {"weight": random(hidden, hidden), "bias": random(hidden)}}
    bias = random(1, heads, seq, seq)
    attention_mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    real = backward.real_tokens(attention_mask)
    mask = layers.additive_attention_mask(attention_mask, np.float64)
    weights = random(batch, seq, hidden) * attention_mask[:, :, None]

    def attention(packed):
        return backward.attention_forward(packed, layer, real, mask, heads, bias, 0.0, None)[0]

    out, cache = backward.attention_forward(x[real], layer, real, mask, heads, bias, 0.0, None)
    d_x, grads, d_bias = backward.attention_backward(weights[real], layer, cache)
    expected = autograd(
        lambda *t: reference_attention(*t, mask=mask, heads=heads),
        x, layer["qkv"]["weight"], layer["qkv"]["bias"], layer["attention_output"]["weight"],
        layer["attention_output"]["bias"], bias, weights=weights,
    )
    assert not expected[0][attention_mask == 0].any()
    ours = (backward.unpack(d_x, real, (batch, seq)), grads["qkv"]["weight"], grads["qkv"]["bias"],
            grads["attention_output"]["weight"], grads["attention_output"]["bias"], d_bias[None])
    for name, mine, theirs in zip(("x", "qkv.weight", "qkv.bias", "out.weight", "out.bias", "bias"), ours, expected):
        if name == "qkv.bias":  # the keys' third is exactly zero (the softmax ignores a shift), compared absolutely
            assert np.abs(mine - theirs).max() <= 1e-12
        else:
            assert max_relative_difference(mine, theirs) <= 1e-7, name
    assert np.allclose(layers.self_attention(x, layer, mask, heads, bias)[0][real], out)
    assert_matches_finite_differences(attention, x[real], weights[real], d_x)


POOLING_MODES = ("cls", "mean", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_pooling(mode):
    from sentence_transformers.sentence_transformer.modules import Pooling

    tokens = random(3, 5, 4)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    weights = random(3, 4)
    d_tokens = pooling_backward(mode, weights, tokens, mask)
    reference = Pooling(4, pooling_mode=mode)
    (expected,) = autograd(
        lambda t: reference({"token_embeddings": t, "attention_mask": torch.tensor(mask)})["sentence_embedding"],
        tokens, weights=weights,
    )
    assert max_relative_difference(d_tokens, expected) <= 1e-7
    assert_matches_finite_differences(lambda t: pool(mode, t, mask, mask), tokens, weights, d_tokens)


@pytest.mark.parametrize("activation", ["Tanh", "Identity", "ReLU", "GELU", "SiLU", "Sigmoid"])
def test_dense(activation):
    from minisbert.modules.dense import DENSE_ACTIVATIONS

    class Module:  # a Dense module's attributes, as minisbert.modules.Dense has them
        weight, bias, activation = random(6, 4), random(4), None

    Module.activation = staticmethod(DENSE_ACTIVATIONS[activation])
    x, weights = random(5, 6), random(5, 4)
    _, cache = dense_forward(Module, x)
    d_x, grads = dense_backward(Module, cache, weights)
    torch_activation = getattr(torch.nn, activation)()
    expected = autograd(lambda v, w, b: torch_activation(v @ w + b), x, Module.weight, Module.bias, weights=weights)
    for ours, theirs in zip((d_x, grads["weight"], grads["bias"]), expected):
        assert max_relative_difference(ours, theirs) <= 1e-7
    assert_matches_finite_differences(lambda v: dense_forward(Module, v)[0], x, weights, d_x)


def test_normalize():
    x, weights = random(4, 7), random(4, 7)
    y, norms = normalize_forward(x)
    d_x = normalize_backward(weights, y, norms)
    (expected,) = autograd(lambda t: F.normalize(t, dim=-1), x, weights=weights)
    assert max_relative_difference(d_x, expected) <= 1e-7
    assert_matches_finite_differences(lambda v: normalize_forward(v)[0], x, weights, d_x)


# ------------------------------------------------------------------------------------------ whole models

# The padding token written in a text (<pad> in RoBERTa's and MPNet's vocabularies) is embedded like any other
# token, but torch never updates its row (nn.Embedding's padding_idx): the gradients must agree on that too.
COLUMNS = [
    ["The weather is lovely today.", "", "emoji 🤗🚀 and symbols", HARD_TEXT_KINDS["long"]],
    ["It's so sunny outside! <pad>", "오늘 날씨가 정말 좋네요.", "a [PAD]", "Das Wetter ist heute schön."],
    ["He drove to the stadium.", "literal [CLS] <pad> <s> tokens", "Ünïcödé façade", "   "],
]


def reference_gradients(reference, loss, columns, labels, dtype):
    reference.zero_grad()
    features = [reference.tokenize(texts) for texts in columns]
    label_tensor = None if labels is None else torch.tensor(labels, dtype=dtype)
    value = loss(features, label_tensor)
    value.backward()
    return value.item(), {
        without_model_attribute(name): p.grad.numpy() for name, p in reference.named_parameters() if p.grad is not None
    }


def without_model_attribute(name):
    # "0.model.encoder..." (the Transformer module's transformers model) -> "0.encoder...", as our_gradients names it
    index, attribute, rest = (name.split(".", 2) + [""])[:3]
    return f"{index}.{rest}" if attribute in ("model", "auto_model") else name


def our_gradients(model, loss, columns, labels):
    embeddings, caches = [], []
    for texts in columns:
        embedding, cache = model_forward(model, model.tokenize(texts), None)
        embeddings.append(embedding)
        caches.append(cache)
    value, d_embeddings, d_loss = loss(embeddings, labels)
    grads = {}
    for cache, d in zip(caches, d_embeddings):
        for index, tree in model_backward(model, cache, d).items():
            module = model.modules[int(index)]
            named = (checkpoint_tensors(tree, module.config) if hasattr(module, "config")
                     else {"linear.weight": tree["weight"].T, "linear.bias": tree.get("bias")})
            for name, array in named.items():
                key = f"{index}.{name}"
                grads[key] = grads[key] + array if key in grads else array
    return value, grads, d_loss


def is_zero_in_exact_arithmetic(gradient, scale, bound):
    # the attention keys' biases (the softmax ignores a shift of all scores) and, with Euclidean distances, a
    # bias added to every embedding alike: both sides hold rounding noise only
    return np.abs(gradient).max() <= 100 * bound * scale


def assert_gradients_match(ours, theirs, bound, tensor_bound):
    """Every parameter's gradient within bound of the model's largest gradient; each tensor's within tensor_bound
    of its own largest value, unless it is zero in exact arithmetic."""
    scale = max(np.abs(g).max() for g in theirs.values())
    assert set(theirs) <= set(ours)
    for name, expected in theirs.items():
        assert np.abs(ours[name] - expected).max() <= bound * scale, name
        if not is_zero_in_exact_arithmetic(expected, scale, bound):
            assert max_relative_difference(ours[name], expected) <= tensor_bound, name


@pytest.mark.parametrize("architecture", ["bert", "roberta", "xlm-roberta", "mpnet", "distilbert"])
def test_whole_model_gradients_in_float64(tiny_model, architecture):
    from sentence_transformers import SentenceTransformer as ReferenceModel
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss

    folder, _, _ = tiny_model(architecture, normalize=True, dense=[(24, "Tanh", True)])
    from minisbert import SentenceTransformer

    model = make_trainable(SentenceTransformer(folder), np.float64)
    reference = ReferenceModel(str(folder), device="cpu").double().eval()
    labels = np.array([0.9, 0.1, 0.5, 0.3])
    expected_value, expected = reference_gradients(reference, CoSENTLoss(reference), COLUMNS[:2], labels, torch.float64)
    value, grads, _ = our_gradients(model, losses.CoSENTLoss(model), COLUMNS[:2], labels)
    # the loss to 1e-7, not closer: the forward pass's GELU (architectures/layers.py) has float32-accurate constants
    assert abs(value - expected_value) <= 1e-7 * abs(expected_value)
    assert_gradients_match(grads, expected, 1e-7, 1e-7)


def reference_loss(name, reference, classifier=None):
    from sentence_transformers.sentence_transformer import losses as st

    if name == "softmax":
        loss = st.SoftmaxLoss(reference, 32, num_labels=3)
        with torch.no_grad():
            loss.classifier.weight.copy_(torch.tensor(classifier["weight"]))
            loss.classifier.bias.copy_(torch.tensor(classifier["bias"]))
        return loss
    if name == "matryoshka":
        return st.MatryoshkaLoss(reference, st.CoSENTLoss(reference), [32, 16, 8], [1, 0.5, 2])
    return {
        "cosine": st.CosineSimilarityLoss, "cosent": st.CoSENTLoss, "angle": st.AnglELoss,
        "mnrl": st.MultipleNegativesRankingLoss, "contrastive": st.ContrastiveLoss, "triplet": st.TripletLoss,
        "mse": st.MSELoss,
    }[name](reference)


LOSS_CASES = {  # name: (our loss, text columns, labels)
    "cosine": (lambda m: losses.CosineSimilarityLoss(m), 2, np.array([0.9, 0.1, 0.5, 0.3])),
    "cosent": (lambda m: losses.CoSENTLoss(m), 2, np.array([0.9, 0.1, 0.5, 0.5])),
    "angle": (lambda m: losses.AnglELoss(m), 2, np.array([0.9, 0.1, 0.5, 0.3])),
    "mnrl": (lambda m: losses.MultipleNegativesRankingLoss(m), 3, None),
    "contrastive": (lambda m: losses.ContrastiveLoss(m), 2, np.array([1.0, 0.0, 1.0, 0.0])),
    "triplet": (lambda m: losses.TripletLoss(m), 3, None),
    "mse": (lambda m: losses.MSELoss(m), 2, RNG.standard_normal((4, 32)) * 0.2),
    "softmax": (lambda m: losses.SoftmaxLoss(m, 32, 3), 2, np.array([0, 2, 1, 2])),
    "matryoshka": (lambda m: losses.MatryoshkaLoss(m, losses.CoSENTLoss(m), [32, 16, 8], [1, 0.5, 2]), 2,
                   np.array([0.9, 0.1, 0.5, 0.3])),
}


@pytest.mark.parametrize("name", LOSS_CASES)
def test_whole_model_gradients_for_each_loss(tiny_model, name):
    """float32 as training runs: every gradient within 1e-5 of the largest gradient of torch's float32 one. Each
    tensor, relative to its own largest value, is compared with the float64 truth (torch in float64): within
    1e-5, or within 3 times torch's own float32 error where that is larger: a gradient summed over every token
    that nearly cancels (the last LayerNorm's bias) has errors of 1e-5 in torch's float32 too."""
    from sentence_transformers import SentenceTransformer as ReferenceModel

    from minisbert import SentenceTransformer

    make_loss, column_count, labels = LOSS_CASES[name]
    folder, _, _ = tiny_model("bert", normalize=name != "triplet")
    model = make_trainable(SentenceTransformer(folder))
    loss = make_loss(model)
    reference = ReferenceModel(str(folder), device="cpu").eval()
    expected_loss = reference_loss(name, reference, loss.params)
    dtype = torch.long if name == "softmax" else torch.float32
    expected_value, expected = reference_gradients(reference, expected_loss, COLUMNS[:column_count], labels, dtype)
    value, grads, d_loss = our_gradients(model, loss, COLUMNS[:column_count], labels)
    assert abs(value - expected_value) <= 1e-5 * max(abs(expected_value), 1e-3)
    scale = max(np.abs(g).max() for g in expected.values())
    for parameter, torch_float32 in expected.items():
        assert np.abs(grads[parameter] - torch_float32).max() <= 1e-5 * scale, parameter
    reference.double()
    truth_loss = reference_loss(name, reference, loss.params).double()
    label_dtype = torch.long if name == "softmax" else torch.float64
    _, truth = reference_gradients(reference, truth_loss, COLUMNS[:column_count], labels, label_dtype)
    for parameter, exact in truth.items():
        if not is_zero_in_exact_arithmetic(exact, scale, 1e-5):
            torch_error = max_relative_difference(expected[parameter], exact)
            assert max_relative_difference(grads[parameter], exact) <= max(1e-5, 3 * torch_error), parameter
    if name == "softmax":
        assert max_relative_difference(d_loss["weight"], expected_loss.classifier.weight.grad) <= 1e-5
        assert max_relative_difference(d_loss["bias"], expected_loss.classifier.bias.grad) <= 1e-5

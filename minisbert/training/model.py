"""A sentence-transformers model's training forward and backward pass, module by module: Transformer (the
encoder of training/backward.py behind each architecture's embeddings), Pooling, Dense, Normalize.

``model_forward(model, features, rng)`` embeds tokenized texts (the trainer's: every column of a batch) and keeps a cache;
``model_backward(model, cache, d_embedding)`` turns the gradient with respect to the sentence embeddings into
the gradients of every parameter, in a tree shaped as ``trainable_parameters(model)``:
``{"<module index>": parameters}``, a Transformer's being its ``params`` dict, a Dense module's
``{"weight" (in, out), "bias" (out,)}`` as minisbert stores them.
"""

import numpy as np

from minisbert.architectures import ARCHITECTURES, bert, distilbert, mpnet, roberta
from minisbert.architectures.fast_encoder import DERIVED_WEIGHT_KEYS
from minisbert.architectures.layers import embedding_lookup, layer_norm
from minisbert.modules import Dense, Normalize, Pooling, Transformer
from minisbert.modules.dense import DENSE_ACTIVATIONS
from minisbert.modules.pooling import POOLING_MODES, pool
from minisbert.training.backward import (
    embedding_backward,
    dropout,
    dropout_backward,
    encoder_backward,
    encoder_forward,
    gelu_derivative,
    layer_norm_backward,
    real_tokens,
    sigmoid,
    unpack,
)


# the model types whose forward pass training mirrors (embeddings, then layers.encoder), in ARCHITECTURES' order
TRAINABLE_ARCHITECTURES = tuple(
    model_type for model_type, module in ARCHITECTURES.items() if module in (bert, distilbert, mpnet, roberta)
)


class TrainingError(ValueError):
    """A model, loss or data that training cannot use, or a training run that went wrong."""


def dropout_rates(config):
    """config with hidden_dropout_prob and attention_probs_dropout_prob (DistilBERT names them dropout and
    attention_dropout), transformers' default 0.1 where the config says nothing."""
    hidden = config.get("hidden_dropout_prob", config.get("dropout", 0.1))
    attention = config.get("attention_probs_dropout_prob", config.get("attention_dropout", 0.1))
    return {**config, "hidden_dropout_prob": hidden, "attention_probs_dropout_prob": attention}


def check_trainable(model):
    """A TrainingError naming the first module or setting training does not support."""
    for index, module in enumerate(model.modules):
        if isinstance(module, Transformer):
            model_type = module.config.get("model_type")
            if model_type not in TRAINABLE_ARCHITECTURES:
                raise TrainingError(f"training supports {TRAINABLE_ARCHITECTURES}, not model_type {model_type!r}")
        elif isinstance(module, Pooling):
            unsupported = [mode for mode in module.modes if mode not in POOLING_MODES]
            if unsupported or not module.include_prompt:
                raise TrainingError(f"module {index}: training does not support pooling {unsupported or 'without the prompt'}")
        elif isinstance(module, Dense):
            if module.use_residual or module.input_name != "sentence_embedding" or module.output_name != "sentence_embedding":
                raise TrainingError(f"module {index}: training supports Dense on sentence_embedding without residual")
        elif isinstance(module, Normalize):
            if module.input_name != "sentence_embedding" or module.output_name != "sentence_embedding":
                raise TrainingError(f"module {index}: training supports Normalize on sentence_embedding only")


def trainable_parameters(model):
    """{"<module index>": parameter tree} of the modules with weights (Transformer, Dense)."""
    tree = {}
    for index, module in enumerate(model.modules):
        if isinstance(module, Transformer):
            tree[str(index)] = module.params
        elif isinstance(module, Dense):
            tree[str(index)] = {"weight": module.weight, **({"bias": module.bias} if isinstance(module.bias, np.ndarray) else {})}
    return tree


def leaves(tree, prefix=""):
    """(dotted name, array) for every array in a tree of dicts and lists, in a fixed order."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    for key, value in items:
        name = f"{prefix}{key}"
        if isinstance(value, np.ndarray):
            yield name, value
        else:
            yield from leaves(value, name + ".")


def map_tree(function, tree):
    if isinstance(tree, np.ndarray):
        return function(tree)
    if isinstance(tree, dict):
        return {key: map_tree(function, value) for key, value in tree.items() if key not in DERIVED_WEIGHT_KEYS}
    return [map_tree(function, value) for value in tree]


def make_trainable(model, dtype=np.float32):
    """Gives the model's Transformer and Dense modules writable parameter arrays of dtype (loaded weights are
    read-only views of the file), so that training can update them in place."""
    for index, module in enumerate(model.modules):
        if isinstance(module, Transformer):
            module.params = map_tree(lambda a: np.array(a, dtype=dtype), module.params)
        elif isinstance(module, Dense):
            module.weight = np.array(module.weight, dtype=dtype)
            if isinstance(module.bias, np.ndarray):
                module.bias = np.array(module.bias, dtype=dtype)
    return model


# ---------------------------------------------------------------------------------------------- transformer


def padding_rows(config):
    # {table: row} that torch's nn.Embedding(padding_idx=...) never updates, as transformers builds each
    # architecture: the word table's padding id and, where position ids count from it (RoBERTa, MPNet), the
    # position table's. A literal "<pad>" in a text still gets no gradient.
    model_type = config["model_type"]
    if model_type == "mpnet":
        return {"word": mpnet.PADDING_IDX, "position": mpnet.PADDING_IDX}
    pad = config.get("pad_token_id")
    if pad is None:
        return {}
    return {"word": pad, "position": pad} if model_type in ("roberta", "xlm-roberta") else {"word": pad}


def transformer_forward(params, config, features, rng):
    # features["input_ids"], ["attention_mask"] (batch, seq) -> token embeddings (batch, seq, hidden), zeros at
    # padding, cache. Inside, the real tokens only, packed as rows (training/backward.py's encoder).
    config = dropout_rates(config)
    input_ids, attention_mask = features["input_ids"], features["attention_mask"]
    architecture = ARCHITECTURES[config["model_type"]]
    position_ids, token_type_ids = architecture.embedding_ids(config, input_ids, features.get("token_type_ids"))
    real = real_tokens(attention_mask)  # 2 x (tokens,)
    ids = {"word": input_ids[real], "position": np.broadcast_to(position_ids, input_ids.shape)[real]}  # (tokens,)
    if token_type_ids is not None:
        ids["token_type"] = token_type_ids[real]
    tables = params["embeddings"]
    summed = sum(embedding_lookup(tables[table], table_ids, f"{table.replace('_', ' ')} embedding")
                 for table, table_ids in ids.items())  # (tokens, hidden)
    x, keep = dropout(layer_norm(summed, tables["norm"], config["layer_norm_eps"]), config["hidden_dropout_prob"], rng)
    bias = None
    if config["model_type"] == "mpnet":
        bias = mpnet.position_bias(params["relative_attention_bias"], input_ids.shape[1])  # (1, heads, seq, seq)
    x, layer_caches = encoder_forward(x, params["layers"], attention_mask, real, config, bias, rng)
    cache = dict(config=config, ids=ids, real=real, summed=summed, keep=keep, layers=layer_caches)
    return unpack(x, real, input_ids.shape), cache


def transformer_backward(params, cache, d_out):
    # d_out (batch, seq, hidden) -> gradients shaped as params
    config = cache["config"]
    d_x, layer_grads, d_position_bias = encoder_backward(d_out[cache["real"]], params["layers"], config, cache["layers"])
    d_x = dropout_backward(d_x, cache["keep"], config["hidden_dropout_prob"])
    tables = params["embeddings"]
    d_summed, d_norm = layer_norm_backward(d_x, cache["summed"], tables["norm"], config["layer_norm_eps"])
    d_embeddings = {table: embedding_backward(d_summed, ids, len(tables[table])) for table, ids in cache["ids"].items()}
    d_embeddings["norm"] = d_norm
    for table, row in padding_rows(config).items():
        d_embeddings[table][row] = 0
    grads = {"embeddings": d_embeddings, "layers": layer_grads}
    if "relative_attention_bias" in params:
        grads["relative_attention_bias"] = relative_position_bias_backward(
            d_position_bias, len(params["relative_attention_bias"])
        )
    return grads


def relative_position_bias_backward(d_bias, buckets):
    # d_bias (heads, seq, seq) summed over batch and layers -> d_table (buckets, heads), as mpnet.position_bias
    # looks the table up: each (query, key) position adds its gradient to its bucket's row
    seq = d_bias.shape[-1]
    positions = np.arange(seq)
    bucket_ids = mpnet.relative_position_bucket(positions[None, :] - positions[:, None])  # (seq, seq)
    d_table = np.zeros((buckets, d_bias.shape[0]), dtype=d_bias.dtype)
    np.add.at(d_table, bucket_ids, d_bias.transpose(1, 2, 0))
    return d_table


# ---------------------------------------------------------------------------------------------- pooling


def pooling_backward(mode, d_out, token_embeddings, mask):
    # d_out (batch, hidden), token_embeddings (batch, seq, hidden), mask (batch, seq) -> d (batch, seq, hidden)
    batch, seq, hidden = token_embeddings.shape
    rows = np.arange(batch)
    dtype = token_embeddings.dtype
    d_tokens = np.zeros_like(token_embeddings)
    counts = np.maximum(mask.sum(axis=1, keepdims=True), 1e-9).astype(dtype)  # (batch, 1)
    if mode == "cls":
        d_tokens[rows, mask.argmax(axis=1)] = d_out
    elif mode == "lasttoken":
        last = seq - 1 - np.where(mask.max(axis=1) != 0, mask[:, ::-1].argmax(axis=1), seq - 1)
        d_tokens[rows, last] = d_out * mask[rows, last][:, None].astype(dtype)
    elif mode == "max":  # the gradient goes to the position each maximum came from
        masked = np.where(mask[:, :, None] != 0, token_embeddings, -np.inf)
        positions = masked.argmax(axis=1)  # (batch, hidden)
        np.put_along_axis(d_tokens, positions[:, None, :], d_out[:, None, :], axis=1)
    else:  # a weighted sum of the tokens: weights (batch, seq)
        if mode == "mean":
            weights = mask / counts
        elif mode == "mean_sqrt_len_tokens":
            weights = mask / np.sqrt(counts)
        else:  # weightedmean: token i weighs i (from 1) over the total weight
            positions = np.arange(1, seq + 1)[None, :] - mask.argmax(axis=1)[:, None]
            weighted = mask * positions
            weights = weighted / np.maximum(weighted.sum(axis=1, keepdims=True), 1e-9)
        d_tokens = weights[:, :, None].astype(dtype) * d_out[:, None, :]
    return d_tokens


# ---------------------------------------------------------------------------------------------- Dense, Normalize

DENSE_DERIVATIVES = {
    "Tanh": lambda pre, out: 1 - out * out,
    "Identity": lambda pre, out: np.ones_like(pre),
    "ReLU": lambda pre, out: (pre > 0).astype(pre.dtype),
    "GELU": lambda pre, out: gelu_derivative(pre),
    "SiLU": lambda pre, out: sigmoid(pre) * (1 + pre * (1 - sigmoid(pre))),
    "Sigmoid": lambda pre, out: out * (1 - out),
}


def dense_activation_name(module):
    names = [name for name, function in DENSE_ACTIVATIONS.items() if function is module.activation]
    return names[0] if names else "Tanh"  # dense_activation's fallback for non-torch classes is np.tanh


def dense_forward(module, x):
    # x (batch, in) -> (batch, out), cache; module.weight (in, out) as minisbert stores it
    pre = x @ module.weight + module.bias
    out = module.activation(pre)
    return out, dict(x=x, pre=pre, out=out)


def dense_backward(module, cache, d_out):
    # d_out (batch, out) -> d_x (batch, in), {"weight" (in, out), "bias" (out,)}
    d_pre = d_out * DENSE_DERIVATIVES[dense_activation_name(module)](cache["pre"], cache["out"])
    grads = {"weight": cache["x"].T @ d_pre}
    if isinstance(module.bias, np.ndarray):
        grads["bias"] = d_pre.sum(axis=0)
    return d_pre @ module.weight.T, grads


def normalize_forward(x):
    # x (batch, dim) -> x / max(|x|, 1e-12), as torch.nn.functional.normalize; cache: the norms
    norms = np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), x.dtype.type(1e-12))  # (batch, 1)
    return x / norms, norms


def normalize_backward(d_out, y, norms):
    # d_out, y (batch, dim) -> d_x = (d_out - y * sum(d_out * y)) / |x|
    return (d_out - y * (d_out * y).sum(axis=-1, keepdims=True)) / norms


# ---------------------------------------------------------------------------------------------- whole model


def model_forward(model, features, rng):
    """features (tokenized texts) -> sentence embeddings (batch, dim), cache: every module in order."""
    caches = []
    x = None
    for module in model.modules:
        if isinstance(module, Transformer):
            x, cache = transformer_forward(module.params, module.config, features, rng)
            features = {**features, "token_embeddings": x}
        elif isinstance(module, Pooling):
            mask = features["attention_mask"]
            x = np.concatenate([pool(mode, features["token_embeddings"], mask, mask) for mode in module.modes], axis=-1)
            cache = features
        elif isinstance(module, Dense):
            x, cache = dense_forward(module, x)
        else:
            x, norms = normalize_forward(x)
            cache = dict(y=x, norms=norms)
        caches.append(cache)
    return x, caches


def model_backward(model, caches, d_embedding):
    """d_embedding (batch, dim), the gradient of the loss with respect to model_forward's output -> gradients
    shaped as trainable_parameters(model). A float64 d_embedding stays float64 through Normalize, Dense and
    pooling (a few (batch, dim) arrays): the LayerNorm biases' gradients below sum it over every token, and
    nearly cancel, so rounding it to float32 first costs them several digits."""
    grads = {}
    d = d_embedding
    for index in reversed(range(len(model.modules))):
        module, cache = model.modules[index], caches[index]
        if isinstance(module, Transformer):
            grads[str(index)] = transformer_backward(module.params, cache, d)
        elif isinstance(module, Pooling):
            hidden = cache["token_embeddings"].shape[-1]
            d = d.astype(cache["token_embeddings"].dtype)
            d = sum(
                pooling_backward(mode, d[:, i * hidden : (i + 1) * hidden], cache["token_embeddings"], cache["attention_mask"])
                for i, mode in enumerate(module.modes)
            )
        elif isinstance(module, Dense):
            d, dense_grads = dense_backward(module, cache, d)
            grads[str(index)] = {name: grad.astype(module.weight.dtype) for name, grad in dense_grads.items()}
        else:
            d = normalize_backward(d, cache["y"], cache["norms"])
    return grads

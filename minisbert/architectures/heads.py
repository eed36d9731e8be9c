"""Sequence classification heads: what transformers' ``*ForSequenceClassification`` models put on top of the
encoder, and so what a cross-encoder turns token embeddings into scores with.

Every head here has the same shape: one vector per text, the first token's ([CLS] or <s>) or, for ModernBERT
when its config says so, the mean of the tokens; one dense layer of hidden size and an activation, and for
ModernBERT a LayerNorm (the "pooled" vector the classifier reads); then a linear layer to the labels' logits.
They differ in tensor names, activation, pooling and biases, one table each (HEADS); dropout is off at
inference. A head is usable once minisbert also has its architecture's forward pass
(minisbert.architectures.ARCHITECTURES).
"""

from dataclasses import dataclass

import numpy as np

from minisbert.architectures import UnsupportedArchitectureError
from minisbert.architectures.checkpoint import Checkpoint
from minisbert.architectures.layers import activation, layer_norm, linear


@dataclass(frozen=True)
class Head:
    dense: str  # tensor name prefix of the dense layer (hidden -> hidden) that reads the pooled token vector
    activation: str  # its activation's name (layers.ACTIVATIONS)
    classifier: str  # tensor name prefix of the output layer (hidden -> num_labels)
    activation_key: str = None  # the config key that names the activation instead, if the model has one
    norm: str = None  # tensor name prefix of a LayerNorm after the activation (ModernBERT's head), if any
    pooling_key: str = None  # the config key naming the pooling ("cls" or "mean"), if not always the first token
    dense_bias_key: str = None  # the config key saying whether the dense layer has a bias, if not always


# config.json's model_type -> transformers' classification head for it.
HEADS = {
    # BertForSequenceClassification: BertModel's pooler (dense + tanh on [CLS]), then `classifier`.
    "bert": Head(dense="bert.pooler.dense", activation="tanh", classifier="classifier"),
    # RobertaClassificationHead (XLM-R too): `classifier.dense` + tanh on <s>, then `classifier.out_proj`.
    "roberta": Head(dense="classifier.dense", activation="tanh", classifier="classifier.out_proj"),
    "xlm-roberta": Head(dense="classifier.dense", activation="tanh", classifier="classifier.out_proj"),
    # DistilBertForSequenceClassification: `pre_classifier` + ReLU on [CLS], then `classifier`.
    "distilbert": Head(dense="pre_classifier", activation="relu", classifier="classifier"),
    # MPNetClassificationHead: as RoBERTa's.
    "mpnet": Head(dense="classifier.dense", activation="tanh", classifier="classifier.out_proj"),
    # ElectraClassificationHead: as RoBERTa's but with (exact) GELU, "although BERT uses tanh here".
    "electra": Head(dense="classifier.dense", activation="gelu", classifier="classifier.out_proj"),
    # ModernBertForSequenceClassification: classifier_pooling ("cls" or "mean"), then ModernBertPredictionHead
    # (`head.dense`, biased if classifier_bias, classifier_activation, `head.norm` a LayerNorm without bias), then
    # `classifier`.
    "modernbert": Head(
        dense="head.dense", activation="gelu", classifier="classifier", activation_key="classifier_activation",
        norm="head.norm", pooling_key="classifier_pooling", dense_bias_key="classifier_bias",
    ),
    # DeBERTa(-v2/-v3)'s ContextPooler (`pooler.dense` + config.pooler_hidden_act on [CLS]), then `classifier`.
    "deberta-v2": Head(
        dense="pooler.dense", activation="gelu", classifier="classifier", activation_key="pooler_hidden_act"
    ),
}


def num_labels(config):
    """The number of labels a transformers config gives its classifier: id2label's size, else num_labels,
    else transformers' default of 2."""
    if config.get("id2label"):
        return len(config["id2label"])
    return config.get("num_labels", 2)


def head_for(model_type):
    if model_type not in HEADS:
        raise UnsupportedArchitectureError(
            f"minisbert has no sequence classification head for model_type {model_type!r}; "
            f"it has heads for {', '.join(sorted(HEADS))}"
        )
    return HEADS[model_type]


def pooling(config):
    """How the head pools the token vectors: "cls" (the first token) or "mean" (ModernBERT's classifier_pooling)."""
    head = head_for(config["model_type"])
    mode = config.get(head.pooling_key, "cls") if head.pooling_key else "cls"
    if mode not in ("cls", "mean"):
        raise UnsupportedArchitectureError(
            f"unsupported classification head: config.json has {head.pooling_key} = {mode!r}; minisbert implements "
            "'cls' and 'mean'"
        )
    return mode


def load_head(tensors, config):
    """The classification head's parameters for config's model_type, from the full checkpoint's tensors."""
    model_type = config["model_type"]
    head = head_for(model_type)
    hidden, labels = config["hidden_size"], num_labels(config)
    checkpoint = Checkpoint(tensors)
    activation_name = config.get(head.activation_key, head.activation) if head.activation_key else head.activation
    dense_bias = config.get(head.dense_bias_key, False) if head.dense_bias_key else True
    params = {
        "pooling": pooling(config),
        "dense": {
            "weight": checkpoint.take(f"{head.dense}.weight", (hidden, hidden)),
            "bias": checkpoint.take(f"{head.dense}.bias", (hidden,)) if dense_bias else np.zeros(hidden, np.float32),
        },
        "activation": activation(activation_name),  # the function; an unsupported name is an error naming it
        "classifier": checkpoint.linear(head.classifier, hidden, labels),
    }
    if head.norm:  # eps and bias as the architecture's own norms (ModernBERT: norm_eps, no bias)
        params["norm"] = {"weight": checkpoint.take(f"{head.norm}.weight", (hidden,)), "bias": np.zeros(hidden, np.float32)}
        params["norm_eps"] = config["norm_eps"]
    checkpoint.check(f"{model_type} sequence classification head")
    return params


def classification_head(params, token_embeddings, attention_mask):
    # token_embeddings (batch, seq, hidden) (or (batch, 1, hidden), the first token only, when the head pools
    # "cls"), attention_mask (batch, seq) -> pooled (batch, hidden), the vector the classifier reads, and logits
    # (batch, num_labels)
    if params["pooling"] == "cls":
        vector = token_embeddings[:, 0]  # (batch, hidden): [CLS] / <s>, the first column, as transformers reads it
    else:  # the mean of the real tokens, summed in float32 as torch sums them
        mask = attention_mask[:, :, None].astype(np.float32)
        vector = (token_embeddings * mask).sum(axis=1) / mask.sum(axis=1)
    pooled = params["activation"](linear(vector, params["dense"]))  # (batch, hidden)
    if "norm" in params:
        pooled = layer_norm(pooled, params["norm"], params["norm_eps"])
    logits = linear(pooled, params["classifier"])  # (batch, num_labels)
    return pooled.astype(np.float32, copy=False), logits.astype(np.float32, copy=False)

"""Sequence classification heads: what transformers' ``*ForSequenceClassification`` models put on top of the
encoder, and so what a cross-encoder turns token embeddings into scores with.

Every head here has the same shape: the first token's vector ([CLS] or <s>), one dense layer of hidden size
and an activation (the "pooled" vector the classifier reads), then a linear layer to the labels' logits. They
differ in tensor names and activation, one table each (HEADS); dropout is off at inference. A head is usable
once minisbert also has its architecture's forward pass (minisbert.architectures.ARCHITECTURES).
"""

from dataclasses import dataclass

import numpy as np

from minisbert.architectures import UnsupportedArchitectureError
from minisbert.architectures.checkpoint import Checkpoint
from minisbert.architectures.layers import activation, linear


@dataclass(frozen=True)
class Head:
    dense: str  # tensor name prefix of the dense layer (hidden -> hidden) that reads the first token
    activation: str  # its activation's name (layers.ACTIVATIONS)
    classifier: str  # tensor name prefix of the output layer (hidden -> num_labels)
    activation_key: str = None  # the config key that names the activation instead, if the model has one


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


def load_head(tensors, config):
    """The classification head's parameters for config's model_type, from the full checkpoint's tensors."""
    model_type = config["model_type"]
    head = head_for(model_type)
    hidden, labels = config["hidden_size"], num_labels(config)
    checkpoint = Checkpoint(tensors)
    activation_name = config.get(head.activation_key, head.activation) if head.activation_key else head.activation
    params = {
        "dense": checkpoint.linear(head.dense, hidden, hidden),
        "activation": activation(activation_name),  # the function; an unsupported name is an error naming it
        "classifier": checkpoint.linear(head.classifier, hidden, labels),
    }
    checkpoint.check(f"{model_type} sequence classification head")
    return params


def classification_head(params, token_embeddings):
    # token_embeddings (batch, seq, hidden) -> pooled (batch, hidden), the vector the classifier reads,
    # and logits (batch, num_labels)
    first_token = token_embeddings[:, 0]  # (batch, hidden): [CLS] / <s>, always a real token (right padding)
    pooled = params["activation"](linear(first_token, params["dense"]))  # (batch, hidden)
    logits = linear(pooled, params["classifier"])  # (batch, num_labels)
    return pooled.astype(np.float32, copy=False), logits.astype(np.float32, copy=False)

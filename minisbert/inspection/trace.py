"""``trace``: every intermediate value of one text's trip through a model, from word pieces to sentence
embedding, taken from the same forward pass ``encode`` runs (its ``record`` dict) rather than a second copy.
"""

from dataclasses import dataclass

import numpy as np

from minisbert.modules import Pooling
from minisbert.util.similarity import pairwise_cos_sim


@dataclass(frozen=True)
class Trace:
    text: str
    tokens: list  # the word pieces the model sees, special tokens included (seq,)
    input_ids: np.ndarray  # (seq,) int64
    hidden_states: np.ndarray  # (num_layers + 1, seq, hidden): [0] the embeddings output, [i] layer i's output
    attentions: np.ndarray  # (num_layers, heads, seq, seq): softmax probabilities, row = query, column = key
    layer_embeddings: np.ndarray  # (num_layers + 1, hidden): each of hidden_states pooled by the model's pooling
    sentence_embedding: np.ndarray  # (dim,): what encode returns, after every module (Normalize, ...)

    @property
    def pooled_embedding(self):
        """(hidden,): the Pooling module's output, before any later module such as Normalize."""
        return self.layer_embeddings[-1]

    @property
    def num_layers(self):
        return len(self.attentions)


def trace(model, text):
    """One text through ``model`` (a minisbert SentenceTransformer), keeping every intermediate array."""
    if not isinstance(text, str):
        raise TypeError(f"trace() takes one string, got {type(text).__name__}")
    record = {}
    features = model.forward([text], record=record)
    hidden_states = np.stack(record["hidden_states"])[:, 0]  # (num_layers + 1, seq, hidden)
    return Trace(
        text=text,
        tokens=model.tokenizer.tokens(text),
        input_ids=features["input_ids"][0],
        hidden_states=hidden_states,
        attentions=np.stack(record["attentions"])[:, 0],
        layer_embeddings=pool_each_layer(model, hidden_states),
        sentence_embedding=features["sentence_embedding"][0],
    )


def pool_each_layer(model, hidden_states):
    # hidden_states (layers, seq, hidden) -> (layers, hidden): each layer as if it were the last, through the
    # model's own Pooling module (a single text has no padding: every token is attended)
    pooling = next(module for module in model.modules if isinstance(module, Pooling))
    features = {
        "token_embeddings": hidden_states,
        "attention_mask": np.ones(hidden_states.shape[:2], dtype=np.int64),
    }
    return pooling(features)["sentence_embedding"]


def layer_similarities(trace_a, trace_b):
    """Cosine similarity of two texts after the embeddings and after each layer, each pooled as the model
    pools its last layer: (num_layers + 1,)."""
    return pairwise_cos_sim(trace_a.layer_embeddings, trace_b.layer_embeddings)

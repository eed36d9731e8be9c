"""``trace``: every intermediate value of one text's trip through a model, from word pieces to sentence
embedding, taken from the same forward pass ``encode`` runs (its ``record`` dict) rather than a second copy;
``format_trace_summary`` puts a Trace in a few lines of text (what ``minisbert explain`` prints).
"""

from dataclasses import dataclass

import numpy as np

from minisbert.modules import Pooling
from minisbert.util.similarity import cos_sim, pairwise_cos_sim


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


def format_trace_summary(trace, others=()):
    """What a Trace holds, in a few lines: tokens, shapes, and per layer the token norms, how close the
    pooled vector already is to the final one, the share of attention going to the special tokens and the
    word piece attended most (and the similarity to other traces' texts after each layer)."""
    num_layers, heads, seq, _ = trace.attentions.shape
    lines = [
        f"text: {trace.text!r}",
        f"tokens ({seq}): {' '.join(trace.tokens)}",
        f"input_ids: {' '.join(str(i) for i in trace.input_ids)}",
        f"hidden_states: {trace.hidden_states.shape} = embeddings output + {num_layers} layers, {seq} tokens",
        f"attentions: {trace.attentions.shape} = {num_layers} layers x {heads} heads x {seq} queries x {seq} keys",
        "",
        "step         mean token norm  cos(pooled, final pooled)  attention to first+last  most attended piece",
    ]
    token_norms = np.linalg.norm(trace.hidden_states, axis=-1).mean(axis=1)  # (num_layers + 1,)
    to_final = cos_sim(trace.layer_embeddings, trace.pooled_embedding[None])[:, 0]  # (num_layers + 1,)
    attention_received = trace.attentions.mean(axis=(1, 2))  # (num_layers, seq): mean over heads and queries
    for step in range(num_layers + 1):
        name = "embeddings" if step == 0 else f"layer {step}"
        line = f"{name:<13}{token_norms[step]:>15.4f}{to_final[step]:>27.4f}"
        if step > 0 and seq > 2:
            received = attention_received[step - 1]
            piece = trace.tokens[1 + int(received[1:-1].argmax())]
            line += f"{received[0] + received[-1]:>25.4f}  {piece}"
        lines.append(line)
    lines.append("")
    for other in others:
        similarities = " ".join(f"{s:.4f}" for s in layer_similarities(trace, other))
        lines += [f"cosine similarity to {other.text!r} after embeddings, layer 1, 2, ...: {similarities}"]
    embedding = trace.sentence_embedding
    lines += [
        f"pooled embedding (Pooling output): {trace.pooled_embedding.shape}, "
        f"norm {np.linalg.norm(trace.pooled_embedding):.4f}",
        f"sentence embedding (what encode returns): {embedding.shape}, norm {np.linalg.norm(embedding):.4f}, "
        f"first values {' '.join(f'{x:.4f}' for x in embedding[:6])}",
    ]
    return "\n".join(lines)

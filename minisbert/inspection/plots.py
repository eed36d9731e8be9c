"""Pictures of a Trace (minisbert.inspection.trace): attention heatmaps by layer and head, token-embedding norms, the
similarity of two texts layer by layer, and a similarity matrix of sentences. matplotlib (the ``plot``
extra) is imported only here, inside each function, and drawn off-screen (Agg): no display needed.
"""

import numpy as np

from minisbert.inspection.trace import layer_similarities

PLOT_INSTALL_COMMAND = "pip install 'minisbert[plot]'  (in a clone of the repository: pip install -e '.[plot]')"


def new_figure(width, height):
    """A matplotlib Figure drawn by the Agg canvas (no pyplot, so no global state and no window)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(f"plots need matplotlib: {PLOT_INSTALL_COMMAND}") from None
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure, path):
    figure.savefig(path, dpi=110, metadata={"Software": None})
    return path


MAX_LABELS = 48  # tick labels along one axis of a panel; longer texts get every k-th token labelled


def label_size(count):
    # font size for `count` tick labels along one axis of a panel: readable, shrinking for long texts
    return float(np.clip(160 / max(count, 1), 5, 9))


def token_ticks(tokens):
    # (positions, labels) of the tokens to label along an axis: all of them, or every k-th of a long text
    step = -(-len(tokens) // MAX_LABELS)
    positions = np.arange(0, len(tokens), step)
    return positions, [tokens[i] for i in positions]


def label_tokens(axes, tokens, rows=True, columns=True):
    positions, labels = token_ticks(tokens)
    size = label_size(len(labels))
    axes.set_xticks(positions, labels if columns else [], rotation=90, fontsize=size)
    axes.set_yticks(positions, labels if rows else [], fontsize=size)


def plot_attention_heads(trace, layer, path):
    """Every head of one layer (0-based) as a heatmap: row = the token attending, column = attended."""
    attentions = trace.attentions[layer]  # (heads, seq, seq)
    heads = len(attentions)
    columns = min(heads, 4)
    rows = -(-heads // columns)
    side = min(2.2 + 0.09 * len(trace.tokens), 6.5)  # inches per panel
    figure = new_figure(columns * side, rows * side + 0.4)
    grid = figure.subplots(rows, columns, squeeze=False)
    for head, axes in enumerate(grid.flat):
        if head >= heads:
            axes.set_axis_off()
            continue
        image = axes.imshow(attentions[head], cmap="viridis", vmin=0, vmax=1)
        axes.set_title(f"head {head}", fontsize=9)
        label_tokens(axes, trace.tokens, rows=head % columns == 0, columns=head // columns == rows - 1)
    figure.colorbar(image, ax=grid, shrink=0.6, label="attention probability")
    figure.suptitle(f"layer {layer + 1} of {trace.num_layers}: attention of each head (row attends to column)")
    return save(figure, path)


def plot_attention_layers(trace, path):
    """The whole model at a glance: a grid of heatmaps, one row per layer and one column per head."""
    layers, heads = trace.attentions.shape[:2]
    figure = new_figure(1.1 * heads + 0.8, 1.1 * layers + 0.6)
    grid = figure.subplots(layers, heads, squeeze=False)
    for (layer, head), axes in np.ndenumerate(grid):
        axes.imshow(trace.attentions[layer, head], cmap="viridis", vmin=0, vmax=1)
        axes.set_xticks([])
        axes.set_yticks([])
        if layer == 0:
            axes.set_title(f"head {head}", fontsize=7)
        if head == 0:
            axes.set_ylabel(f"layer {layer + 1}", fontsize=7)
    figure.suptitle(f"attention probabilities by layer and head ({len(trace.tokens)} tokens)", fontsize=10)
    return save(figure, path)


def plot_token_norms(trace, path):
    """The L2 norm of each token's vector after the embeddings and after each layer."""
    norms = np.linalg.norm(trace.hidden_states, axis=-1)  # (num_layers + 1, seq)
    figure = new_figure(min(2.5 + 0.3 * len(trace.tokens), 16), 1.2 + 0.45 * len(norms))
    axes = figure.subplots()
    image = axes.imshow(norms, cmap="magma", aspect="auto")
    if len(trace.tokens) <= 40:
        for (layer, token), norm in np.ndenumerate(norms):
            color = "black" if norm > norms.min() + 0.6 * np.ptp(norms) else "white"
            axes.text(token, layer, f"{norm:.1f}", ha="center", va="center", fontsize=6, color=color)
    positions, labels = token_ticks(trace.tokens)
    axes.set_xticks(positions, labels, rotation=90, fontsize=label_size(len(labels)))
    axes.set_yticks(np.arange(len(norms)), ["embeddings"] + [f"layer {i}" for i in range(1, len(norms))])
    figure.colorbar(image, ax=axes, label="L2 norm")
    axes.set_title("token vector norms, layer by layer")
    return save(figure, path)


def plot_layer_similarity(trace, others, path):
    """How the cosine similarity of a text to each of others evolves from the embeddings to the last layer,
    every step's token vectors pooled as the model pools its last layer."""
    figure = new_figure(6.8, 3.8)
    axes = figure.subplots()
    steps = np.arange(trace.num_layers + 1)
    lowest = 0.0
    for other in others:
        similarities = layer_similarities(trace, other)  # (num_layers + 1,)
        lowest = min(lowest, similarities.min())
        axes.plot(steps, similarities, marker="o", label=shorten(other.text, 50))
        for step, similarity in zip(steps, similarities):
            axes.annotate(f"{similarity:.2f}", (step, similarity), textcoords="offset points", xytext=(0, 6),
                          ha="center", fontsize=7)
    axes.set_xticks(steps, ["emb"] + [str(i) for i in steps[1:]])
    axes.set_xlabel("after layer")
    axes.set_ylabel("cosine similarity (pooled)")
    axes.set_ylim(lowest - 0.05, 1.05)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower left")
    axes.set_title(f"similarity to: {shorten(trace.text)}", fontsize=9, loc="left")
    return save(figure, path)


def plot_similarity_matrix(sentences, scores, path, function_name="cosine"):
    """scores (n, n) between sentences, as a heatmap with the values written in."""
    scores = np.asarray(scores)
    size = len(sentences)
    figure = new_figure(3.5 + 0.9 * size, 1.5 + 0.6 * size)
    axes = figure.subplots()
    image = axes.imshow(scores, cmap="coolwarm", vmin=-1 if function_name == "cosine" else None,
                        vmax=1 if function_name == "cosine" else None)
    for (i, j), score in np.ndenumerate(scores):
        axes.text(j, i, f"{score:.2f}", ha="center", va="center", fontsize=8)
    axes.set_xticks(np.arange(size), [f"[{i}]" for i in range(size)])
    axes.set_yticks(np.arange(size), [f"[{i}] {shorten(s, 40)}" for i, s in enumerate(sentences)], fontsize=8)
    figure.colorbar(image, ax=axes, label=f"{function_name} similarity")
    axes.set_title(f"{function_name} similarity of {size} sentences")
    return save(figure, path)


def shorten(text, width=70):
    return text if len(text) <= width else text[: width - 1] + "…"


def save_explanation(model, texts, folder):
    """The plots of ``minisbert explain``: of texts[0] (attention per layer and overview, token norms) and,
    given two or more texts, their similarity matrix and the layer-by-layer similarity of texts[0] to each
    other text. Returns (the traces of the texts, {name: path})."""
    traces = [model.trace(text) for text in texts]
    trace = traces[0]
    paths = {"attention_layers": plot_attention_layers(trace, folder / "attention_layers.png")}
    for layer in range(trace.num_layers):
        name = f"attention_layer{layer + 1}"
        paths[name] = plot_attention_heads(trace, layer, folder / f"{name}.png")
    paths["token_norms"] = plot_token_norms(trace, folder / "token_norms.png")
    if len(texts) > 1:
        embeddings = model.encode(texts)
        scores = model.similarity(embeddings, embeddings)
        paths["similarity_matrix"] = plot_similarity_matrix(
            texts, scores, folder / "similarity_matrix.png", model.similarity_fn_name
        )
        paths["layer_similarity"] = plot_layer_similarity(trace, traces[1:], folder / "layer_similarity.png")
    return traces, paths


def plot_splade_trace(trace, path):
    """A SpladeTrace (SparseEncoder.trace): the text's tokens (rows) x the heaviest vocabulary entries of its
    vector (columns), each cell what that token gives that entry; the entry's weight above its column (with max
    pooling, the largest cell of the column)."""
    weights = trace.token_weights  # (seq, top_k)
    figure = new_figure(2.5 + 0.32 * len(trace.vocabulary), 1.8 + 0.22 * len(trace.tokens))
    axes = figure.subplots()
    image = axes.imshow(weights, cmap="magma_r", aspect="auto", vmin=0)
    axes.set_xticks(np.arange(len(trace.vocabulary)),
                    [f"{entry} {weight:.2f}" for entry, weight in zip(trace.vocabulary, trace.weights)],
                    rotation=90, fontsize=label_size(len(trace.vocabulary)))
    positions, labels = token_ticks(trace.tokens)
    axes.set_yticks(positions, labels, fontsize=label_size(len(labels)))
    axes.set_xlabel("vocabulary entry (weight in the vector)")
    axes.set_ylabel("input token")
    figure.colorbar(image, ax=axes, label="log(1 + relu(logit))")
    axes.set_title(f"SPLADE: what lights up  {shorten(trace.text, 50)}", fontsize=9, loc="left")
    return save(figure, path)


def plot_maxsim_trace(trace, path):
    """A MaxSimTrace (MultiVectorEncoder.trace): query tokens (rows) x document tokens (columns), each cell their
    dot product; a ring marks each query token's best match, whose sum is the MaxSim score."""
    similarities = trace.similarities  # (s, t)
    figure = new_figure(2.8 + 0.22 * len(trace.document_tokens), 1.8 + 0.22 * len(trace.query_tokens))
    axes = figure.subplots()
    image = axes.imshow(similarities, cmap="viridis", aspect="auto")
    if trace.document_tokens:
        best = similarities.argmax(axis=1)
        axes.scatter(best, np.arange(len(best)), s=40, facecolors="none", edgecolors="red", linewidths=1.2)
    positions, labels = token_ticks(trace.document_tokens)
    axes.set_xticks(positions, labels, rotation=90, fontsize=label_size(len(labels)))
    positions, labels = token_ticks(trace.query_tokens)
    axes.set_yticks(positions, labels, fontsize=label_size(len(labels)))
    axes.set_xlabel("document token")
    axes.set_ylabel("query token")
    figure.colorbar(image, ax=axes, label="dot product")
    axes.set_title(f"MaxSim {trace.score:.3f}: each query token's best document token (ringed)", fontsize=9,
                   loc="left")
    return save(figure, path)


def plot_cross_encoder_trace(trace, path):
    """What a cross-encoder's classification head sees (a minisbert.families.cross_encoder.CrossEncoderTrace): how the
    first token, the only one the head reads, attends to the query's and the document's tokens layer by layer;
    the pooled vector the classifier multiplies; and the logits and scores that come out."""
    attention = trace.first_token_attention  # (num_layers, seq)
    figure = new_figure(min(4 + 0.28 * len(trace.tokens), 18), 2.2 + 0.35 * trace.num_layers + 2.6)
    top, bottom = figure.subfigures(2, 1, height_ratios=[1.2 + 0.35 * trace.num_layers, 2.6])
    axes = top.subplots()
    image = axes.imshow(attention, cmap="viridis", aspect="auto", vmin=0)
    document = np.flatnonzero(trace.segments == 1)
    if len(document):
        axes.axvline(document[0] - 0.5, color="white", linewidth=1.5)  # query | document
    positions, labels = token_ticks(trace.tokens)
    axes.set_xticks(positions, labels, rotation=90, fontsize=label_size(len(labels)))
    axes.set_yticks(np.arange(trace.num_layers), [f"layer {i}" for i in range(1, trace.num_layers + 1)])
    top.colorbar(image, ax=axes, label="attention (mean of heads)")
    axes.set_title(f"{trace.tokens[0]}'s attention to each token (query | document): "
                   f"{shorten(trace.query, 40)!r} | {shorten(trace.document, 40)!r}", fontsize=9, loc="left")

    pooled_axes, logits_axes = bottom.subplots(1, 2, width_ratios=[3, 1])
    pooled_axes.bar(np.arange(len(trace.pooled)), trace.pooled, width=1.0, color="tab:blue")
    pooled_axes.set_xlabel("dimension")
    pooled_axes.set_title("pooled vector: the head's dense layer + activation on the first token", fontsize=9)
    labels = np.arange(len(trace.logits))
    logits_axes.bar(labels - 0.2, trace.logits, width=0.4, label="logit")
    logits_axes.bar(labels + 0.2, trace.scores, width=0.4, label="score")
    for label, logit, score in zip(labels, trace.logits, trace.scores):
        logits_axes.annotate(f"{score:.3f}", (label + 0.2, score), ha="center", va="bottom", fontsize=7)
    logits_axes.set_xticks(labels, [f"label {label}" for label in labels], fontsize=8)
    logits_axes.axhline(0, color="gray", linewidth=0.5)
    logits_axes.legend(fontsize=7)
    logits_axes.set_title("classifier output", fontsize=9)
    return save(figure, path)

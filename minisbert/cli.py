"""The ``minisbert`` command: ``encode`` prints embeddings (JSON lines, or an .npy file) and ``similarity``
prints the similarity matrix of a few sentences. Sentences come as arguments, or one a line from a file
or standard input. ``models`` lists the hub models known to work. ``search`` finds the lines of a file closest
to a query (embeddings cached beside the file); ``evaluate`` reports the correlation of similarities with gold
scores on a CSV/TSV of sentence pairs; ``explain`` draws what happens inside the model for a text.
"""

import argparse
import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np


def read_sentences(arguments):
    if arguments.sentences:
        return arguments.sentences
    source = sys.stdin if arguments.input in (None, "-") else open(arguments.input, encoding="utf-8")
    with source:
        sentences = [line.rstrip("\r\n") for line in source]
    if not sentences:
        raise SystemExit("minisbert: no sentences given (as arguments, with --input FILE, or on standard input)")
    return sentences


def load_model(arguments):
    from minisbert import SentenceTransformer

    return SentenceTransformer(arguments.model)


def encode_command(arguments):
    sentences = read_sentences(arguments)
    model = load_model(arguments)
    embeddings = model.encode(sentences, batch_size=arguments.batch_size, normalize_embeddings=arguments.normalize)
    if arguments.output:
        with open(arguments.output, "wb") as file:  # np.save(name) would add ".npy" to a name without it
            np.save(file, embeddings)
        print(f"wrote {embeddings.shape[0]} x {embeddings.shape[1]} float32 embeddings to {arguments.output}")
        return
    for sentence, embedding in zip(sentences, embeddings):
        print(json.dumps({"sentence": sentence, "embedding": [round(float(x), 7) for x in embedding]}))


def similarity_command(arguments):
    sentences = read_sentences(arguments)
    model = load_model(arguments)
    embeddings = model.encode(sentences, batch_size=arguments.batch_size, normalize_embeddings=arguments.normalize)
    print(f"embeddings: {embeddings.shape} {embeddings.dtype}")
    for sentence, embedding in zip(sentences, embeddings):
        print(f"  {np.array2string(embedding[:6], precision=4, separator=', ')[:-1]}, ...]  {sentence}")
    print(format_similarity_matrix(sentences, model.similarity(embeddings, embeddings), model.similarity_fn_name))


def models_command(arguments):
    from minisbert.known_models import KNOWN_MODELS

    print(f"{'hub id':60} {'architecture':12} {'dim':>5}  modules")
    for known in KNOWN_MODELS:
        modules = [f"Pooling({'+'.join(known.pooling)})"]
        modules += [f"Dense({out}, {activation})" for out, activation in known.dense]
        modules += ["Normalize"] if known.normalize else []
        print(f"{known.hub_id:60} {known.model_type:12} {known.dimension:5}  {' -> '.join(modules)}")


def format_similarity_matrix(sentences, scores, function_name):
    """A table of scores with numbered rows and columns and a legend of the sentences."""
    size = len(sentences)
    lines = [f"{function_name} similarity of {size} sentences"]
    lines += [f"  [{i}] {sentence}" for i, sentence in enumerate(sentences)]
    lines.append("       " + "".join(f"{f'[{j}]':>9}" for j in range(size)))
    for i in range(size):
        lines.append(f"{f'[{i}]':>7}" + "".join(f"{scores[i, j]:9.4f}" for j in range(size)))
    return "\n".join(lines)


def explain_command(arguments):
    from minisbert.plots import PLOT_INSTALL_COMMAND, save_explanation

    if importlib.util.find_spec("matplotlib") is None:  # before any folder is made
        raise SystemExit(f"minisbert: explain draws with matplotlib, which is not installed: {PLOT_INSTALL_COMMAND}")
    model = load_model(arguments)
    folder = Path(arguments.out)
    folder.mkdir(parents=True, exist_ok=True)
    traces, paths = save_explanation(model, arguments.texts, folder)
    summary = format_trace_summary(traces[0], traces[1:])
    (folder / "summary.txt").write_text(summary + "\n", encoding="utf-8")
    print(summary)
    print(f"wrote summary.txt and {len(paths)} plots to {folder}: {', '.join(path.name for path in paths.values())}")


def format_trace_summary(trace, others=()):
    """What a Trace holds, in a few lines: tokens, shapes, and per layer the token norms, how close the
    pooled vector already is to the final one, the share of attention going to the special tokens and the
    word piece attended most (and the similarity to other traces' texts after each layer)."""
    from minisbert.similarity import cos_sim
    from minisbert.trace import layer_similarities

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


def corpus_cache_key(model, corpus_bytes):
    """Changes when the corpus file's content, the model folder or any file in it (size, mtime) changes."""
    from minisbert import __version__

    digest = hashlib.sha256(corpus_bytes)
    digest.update(f"{model.folder.resolve()}|{model.truncate_dim}|minisbert {__version__}".encode())
    for path in sorted(model.folder.rglob("*")):
        if path.is_file():
            status = path.stat()
            digest.update(f"|{path.relative_to(model.folder)}:{status.st_size}:{status.st_mtime_ns}".encode())
    return digest.hexdigest()


def cached_corpus_embeddings(model, corpus_path, sentences, corpus_bytes, batch_size):
    """The corpus embeddings from FILE.minisbert.npy if its FILE.minisbert.json key still matches, else encoded
    and written there (a read-only folder just means no cache)."""
    embeddings_path = corpus_path.with_name(corpus_path.name + ".minisbert.npy")
    key_path = corpus_path.with_name(corpus_path.name + ".minisbert.json")
    key = corpus_cache_key(model, corpus_bytes)
    expected_shape = (len(sentences), model.get_sentence_embedding_dimension())
    try:
        if json.loads(key_path.read_text(encoding="utf-8")).get("key") != key:
            raise ValueError("it was made from another corpus, model or minisbert version")
        embeddings = np.load(embeddings_path, allow_pickle=False)
        if embeddings.shape != expected_shape or embeddings.dtype != np.float32:
            raise ValueError(f"it holds {embeddings.dtype} {embeddings.shape}, not float32 {expected_shape}")
        print(f"minisbert: using cached embeddings {embeddings_path}", file=sys.stderr)
        return embeddings
    except FileNotFoundError:
        pass  # no cache yet
    except (OSError, ValueError, AttributeError) as error:
        print(f"minisbert: the cache {embeddings_path} is stale or unreadable ({error}): encoding again",
              file=sys.stderr)
    embeddings = model.encode(sentences, batch_size=batch_size)
    try:
        np.save(embeddings_path, embeddings)
        key_path.write_text(json.dumps({"key": key, "sentences": len(sentences)}), encoding="utf-8")
        print(f"minisbert: embedded {len(sentences)} lines, cached in {embeddings_path}", file=sys.stderr)
    except OSError as error:
        print(f"minisbert: could not cache the embeddings ({error})", file=sys.stderr)
    return embeddings


def search_command(arguments):
    from minisbert.similarity import SIMILARITY_FUNCTIONS
    from minisbert.util import semantic_search

    corpus_path = Path(arguments.corpus)
    corpus_bytes = corpus_path.read_bytes()
    try:
        text = corpus_bytes.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SystemExit(f"minisbert: the corpus {corpus_path} is not UTF-8 text ({error})") from None
    lines = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise SystemExit(f"minisbert: the corpus {corpus_path} has no non-empty line to search")
    model = load_model(arguments)
    sentences = [line for _, line in lines]
    embeddings = cached_corpus_embeddings(model, corpus_path, sentences, corpus_bytes, arguments.batch_size)
    query_embeddings = model.encode(arguments.query, batch_size=arguments.batch_size)
    score_function = SIMILARITY_FUNCTIONS[model.similarity_fn_name][0]
    results = semantic_search(query_embeddings, embeddings, top_k=arguments.top_k, score_function=score_function)
    for query, hits in zip(arguments.query, results):
        print(f"query: {query}")
        for rank, hit in enumerate(hits, 1):
            number, line = lines[hit["corpus_id"]]
            print(f"{rank:4d}. {hit['score']:.4f}  line {number}: {line}")


def evaluate_command(arguments):
    from minisbert.evaluation import EmbeddingSimilarityEvaluator, read_pairs

    sentences1, sentences2, scores = read_pairs(arguments.pairs, arguments.columns.split(","))
    if len(scores) < 2:
        raise SystemExit(f"minisbert: {arguments.pairs} holds {len(scores)} pair(s); correlation needs at least 2")
    names = arguments.similarity.split(",") if arguments.similarity else None
    evaluator = EmbeddingSimilarityEvaluator(
        sentences1, sentences2, scores, batch_size=arguments.batch_size, similarity_fn_names=names,
        precision=arguments.precision,
    )
    metrics = evaluator(load_model(arguments))
    print(f"{len(scores)} pairs from {arguments.pairs}")
    print(f"{'similarity':<12}{'pearson':>10}{'spearman':>10}")
    for name in evaluator.similarity_fn_names:
        print(f"{name:<12}{metrics[f'pearson_{name}']:>10.5f}{metrics[f'spearman_{name}']:>10.5f}")


def add_search_commands(commands):
    search = commands.add_parser("search", help="find the lines of a file closest to a query")
    search.add_argument("--corpus", required=True, help="text file, one document a line (embeddings cached beside it)")
    search.add_argument("--query", "-q", required=True, action="append", help="query text (repeat for several)")
    search.add_argument("--top-k", "-k", type=int, default=5)
    search.set_defaults(function=search_command)
    evaluate = commands.add_parser("evaluate", help="Pearson/Spearman of similarities with gold scores (STS)")
    evaluate.add_argument("pairs", help="CSV or TSV file of sentence pairs with a score")
    evaluate.add_argument(
        "--columns", default="sentence1,sentence2,score",
        help="the two sentence columns and the score column: header names, or 1-based positions for a file "
        "without header (STS-B: 6,7,5); default %(default)s",
    )
    evaluate.add_argument("--similarity", help="comma-separated: cosine,dot,euclidean,manhattan (default: the model's)")
    evaluate.add_argument("--precision", help="quantize the embeddings first: int8, uint8, binary or ubinary")
    evaluate.set_defaults(function=evaluate_command)
    for command in (search, evaluate):
        command.add_argument("--model", "-m", default=None, help="model folder or hub id (default all-MiniLM-L6-v2)")
        command.add_argument("--batch-size", type=int, default=32)


def build_parser():
    parser = argparse.ArgumentParser(prog="minisbert", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, function, help_text in [
        ("encode", encode_command, "print sentence embeddings"),
        ("similarity", similarity_command, "print the similarity matrix of sentences"),
    ]:
        command = commands.add_parser(name, help=help_text)
        command.add_argument("sentences", nargs="*", help="sentences (default: one a line from --input or stdin)")
        command.add_argument("--input", "-i", help="file with one sentence a line ('-' for standard input)")
        command.add_argument("--model", "-m", default=None, help="model folder or hub id (default all-MiniLM-L6-v2)")
        command.add_argument("--batch-size", type=int, default=32)
        command.add_argument("--normalize", action="store_true", help="scale embeddings to unit length")
        command.set_defaults(function=function)
    commands.choices["encode"].add_argument("--output", "-o", help="write the embeddings to this .npy file")
    explain = commands.add_parser("explain", help="plot attention, token norms and similarities of texts")
    explain.add_argument("texts", nargs="+", help="the text to explain (more texts: also compared with it)")
    explain.add_argument("--out", "-o", required=True, help="folder to write the PNGs and summary.txt into")
    explain.add_argument("--model", "-m", default=None, help="model folder or hub id (default all-MiniLM-L6-v2)")
    explain.set_defaults(function=explain_command)
    commands.add_parser("models", help="list the hub models known to work").set_defaults(function=models_command)
    add_search_commands(commands)
    return parser


def main(argv=None):
    arguments = build_parser().parse_args(argv)
    try:
        arguments.function(arguments)
    except (ValueError, TypeError, OSError) as error:
        raise SystemExit(f"minisbert: {error}") from None


if __name__ == "__main__":
    main()

"""The ``minisbert`` command: ``encode`` prints embeddings (JSON lines, or an .npy file) and ``similarity``
prints the similarity matrix of a few sentences. Sentences come as arguments, or one a line from a file
or standard input. ``models`` lists the hub models known to work. ``search`` finds the lines of a file closest
to a query (embeddings cached beside the file); ``evaluate`` reports the correlation of similarities with gold
scores on a CSV/TSV of sentence pairs; ``explain`` draws what happens inside the model for a text. ``rerank``
orders candidate lines by a cross-encoder's score with a query, and ``search --rerank`` reorders search's hits so.
``train`` fine-tunes a model on a CSV/TSV of examples (minisbert.training) and saves it. ``info`` prints the
CPU, BLAS, threads and vector width in force.

The top of the house: may import any part of minisbert; nothing in minisbert imports it (``__main__`` runs it).
Each command is a ``*_command(arguments)`` function; ``build_parser`` declares every command's options, those
several commands share once (argparse parents). A user's mistake surfaces as minisbert's own errors (all
ValueError subclasses, or plain ValueError) or as an OSError from a file: ``main`` prints those as one line; any
other exception is a bug and keeps its traceback. A ^C is one line too.
"""

import argparse
import importlib.util
import itertools
import json
import sys
from pathlib import Path

import numpy as np

# search --rerank: the bi-encoder retrieves this many candidates per hit asked for, the cross-encoder orders them.
RERANK_CANDIDATES_PER_HIT = 4


# -- inputs and models ------------------------------------------------------------------------------------------


# a longer line is refused rather than read on for ever (--input /dev/zero has no line break): a model reads
# at most a few thousand tokens of a text, and a book of a million words is ~6 million characters
MAX_LINE_CHARACTERS = 2**24


def lines_of_bounded_length(source, name):
    """The lines of a text stream, each up to MAX_LINE_CHARACTERS; a longer one is an error naming its number."""
    for number in itertools.count(1):
        line = source.readline(MAX_LINE_CHARACTERS + 1)
        if not line:
            return
        if len(line) > MAX_LINE_CHARACTERS and not line.endswith("\n"):
            raise ValueError(f"line {number} of {name or 'standard input'} is longer than {MAX_LINE_CHARACTERS:,} "
                             "characters (is it a text file, one text a line?)")
        yield line


def read_sentences(arguments):
    if arguments.sentences:
        return arguments.sentences
    source = sys.stdin if arguments.input in (None, "-") else open(arguments.input, encoding="utf-8")
    try:
        with source:
            sentences = [line.rstrip("\r\n") for line in lines_of_bounded_length(source, arguments.input)]
    except UnicodeDecodeError as error:  # its message names no file
        raise ValueError(f"{arguments.input or 'standard input'} is not UTF-8 text ({error.reason} at byte "
                         f"{error.start} of a block)") from None
    if not sentences:
        raise SystemExit("minisbert: no sentences given (as arguments, with --input FILE, or on standard input)")
    return sentences


def load_model(arguments):
    from minisbert import SentenceTransformer

    return SentenceTransformer(arguments.model, quantize=getattr(arguments, "quantize", None))


def load_cross_encoder(name):
    from minisbert import CrossEncoder

    return CrossEncoder(name)


def output_options(arguments):
    """encode()'s options from the command line: those given, by their encode() names."""
    options = {
        "prompt": arguments.prompt, "prompt_name": arguments.prompt_name, "truncate_dim": arguments.truncate_dim,
        "precision": arguments.precision,
    }
    return {name: value for name, value in options.items() if value is not None}


# -- encode, similarity, models ---------------------------------------------------------------------------------


def encode_command(arguments):
    if arguments.sparse:
        return sparse_encode_command(arguments)
    if streaming_requested(arguments):
        return encode_to_store_command(arguments)
    sentences = read_sentences(arguments)
    model = load_model(arguments)
    embeddings = model.encode(
        sentences, batch_size=arguments.batch_size, normalize_embeddings=arguments.normalize,
        **output_options(arguments),
    )
    if arguments.output:
        with open(arguments.output, "wb") as file:  # np.save(name) would add ".npy" to a name without it
            np.save(file, embeddings)
        rows, dimension = embeddings.shape
        print(f"wrote {rows} x {dimension} {embeddings.dtype} embeddings to {arguments.output}")
        return
    for sentence, embedding in zip(sentences, embeddings):
        print(json.dumps({"sentence": sentence, "embedding": [round(float(x), 7) for x in embedding]}))


def sparse_encode_command(arguments):
    """JSON lines {"sentence", "tokens": [[token, weight], ...]} (top-k, heaviest first); --output FILE.npz saves
    the whole csr_array with scipy.sparse.save_npz."""
    from minisbert import SparseEncoder
    from minisbert.families.sparse_encoder import scipy_sparse

    sentences = read_sentences(arguments)
    model = SparseEncoder(arguments.model)
    encode = model.encode_query if arguments.query else model.encode_document
    embeddings = encode(sentences, batch_size=arguments.batch_size)
    if arguments.output:
        scipy_sparse().save_npz(arguments.output, embeddings)
        print(f"wrote {embeddings.shape[0]} x {embeddings.shape[1]} sparse embeddings ({embeddings.nnz} non-zeros) "
              f"to {arguments.output}")
        return
    for sentence, tokens in zip(sentences, model.decode(embeddings, top_k=arguments.top_k)):
        print(json.dumps({"sentence": sentence, "tokens": [[token, round(weight, 5)] for token, weight in tokens]},
                         ensure_ascii=False))


def streaming_requested(arguments):
    zarr_output = (arguments.output or "").rstrip("/\\").endswith(".zarr")
    return zarr_output or arguments.workers is not None or arguments.scheduler or arguments.chunk_size is not None


def encode_to_store_command(arguments):
    from minisbert.distributed import streaming

    output = (arguments.output or "").rstrip("/\\")
    if not output.endswith(".zarr"):
        raise SystemExit(
            "minisbert: --workers, --scheduler and --chunk-size write a zarr store: pass --output NAME.zarr"
        )
    if arguments.sentences or arguments.input in (None, "-"):
        raise SystemExit(
            "minisbert: --output NAME.zarr streams a file and can resume from it: pass --input FILE "
            "(not sentences as arguments or standard input)"
        )
    options = {"batch_size": arguments.batch_size, "normalize_embeddings": arguments.normalize}
    try:
        encoded, written, embeddings = streaming.encode_file_to_store(
            arguments.input, output, arguments.model, {**options, **output_options(arguments)},
            arguments.chunk_size, arguments.workers, arguments.scheduler, arguments.quantize,
        )
    except ImportError as error:
        raise SystemExit(f"minisbert: {error}") from None
    except KeyboardInterrupt:
        raise SystemExit(f"minisbert: interrupted; run the same command again to resume {output}") from None
    rows, dimension = embeddings.shape
    print(f"wrote {rows} x {dimension} {embeddings.dtype} embeddings to {output} "
          f"({encoded} chunks encoded now, {written} already written)")


def similarity_command(arguments):
    sentences = read_sentences(arguments)
    model = load_model(arguments)
    embeddings = model.encode(sentences, batch_size=arguments.batch_size, normalize_embeddings=arguments.normalize)
    print(f"embeddings: {embeddings.shape} {embeddings.dtype}")
    for sentence, embedding in zip(sentences, embeddings):
        print(f"  {np.array2string(embedding[:6], precision=4, separator=', ')[:-1]}, ...]  {sentence}")
    print(format_similarity_matrix(sentences, model.similarity(embeddings, embeddings), model.similarity_fn_name))


def format_similarity_matrix(sentences, scores, function_name):
    """A table of scores with numbered rows and columns and a legend of the sentences."""
    size = len(sentences)
    lines = [f"{function_name} similarity of {size} sentences"]
    lines += [f"  [{i}] {sentence}" for i, sentence in enumerate(sentences)]
    lines.append("       " + "".join(f"{f'[{j}]':>9}" for j in range(size)))
    for i in range(size):
        lines.append(f"{f'[{i}]':>7}" + "".join(f"{scores[i, j]:9.4f}" for j in range(size)))
    return "\n".join(lines)


def models_command(arguments):
    from minisbert.known_models import KNOWN_MODELS, KNOWN_RERANKERS, reranker_is_supported

    print(f"{'hub id':60} {'architecture':12} {'dim':>5}  modules")
    for known in KNOWN_MODELS:
        modules = [f"Pooling({'+'.join(known.pooling)})"]
        modules += [f"Dense({out}, {activation})" for out, activation in known.dense]
        modules += ["Normalize"] if known.normalize else []
        prompts = f"  prompts: {', '.join(known.prompts)}" if known.prompts else ""
        print(f"{known.hub_id:60} {known.model_type:12} {known.dimension:5}  {' -> '.join(modules)}{prompts}")
    print(f"\n{'cross-encoder (minisbert.CrossEncoder, minisbert rerank)':60} {'architecture':12} {'labels':>6}  scores")
    for known in KNOWN_RERANKERS:
        note = "" if reranker_is_supported(known) else f"  (not yet: no {known.model_type} forward pass and head)"
        print(f"{known.hub_id:60} {known.model_type:12} {known.num_labels:6}  {known.activation}(logits){note}")


# -- explain, info ----------------------------------------------------------------------------------------------


def explain_command(arguments):
    from minisbert.inspection.plots import PLOT_INSTALL_COMMAND, save_explanation
    from minisbert.inspection.trace import format_trace_summary

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


def info_lines():
    """What minisbert runs with here: CPU, BLAS and its threads, numba's threading layer, the vector width numba
    compiles for (and the instructions the GEMM kernels compiled to), numba's cache folder. (Here, not in
    minisbert.runtime: it reports the kernels and the fast encoder, which the runtime may not import.)"""
    import platform

    import llvmlite.binding
    import numba
    from threadpoolctl import threadpool_info

    from minisbert import __version__
    from minisbert.architectures import fast_encoder
    from minisbert.kernels import matmul
    from minisbert.runtime import vector_width

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), None)
    lines = [
        f"minisbert {__version__}, python {platform.python_version()}, numpy {np.__version__}, "
        f"numba {numba.__version__}",
        f"cpu: {cpu or platform.processor()}, {matmul.available_cores()} cores available (LLVM: "
        f"{llvmlite.binding.get_host_cpu_name()}, LLVM {'.'.join(map(str, llvmlite.binding.llvm_version_info))})",
    ]
    for pool in threadpool_info():
        if pool["user_api"] == "blas":
            lines.append(
                f"BLAS: {pool['internal_api']} {pool['version']} ({pool.get('architecture')} kernel), "
                f"{pool['num_threads']} threads, {pool['filepath']}"
            )
    layer = numba.config.THREADING_LAYER
    lines.append(f"numba threading layer: {layer} requested ({numba.config.NUMBA_NUM_THREADS} threads); "
                 "the encoder's kernels are serial, threaded by Python thread pools")
    lines.append(f"vector width: {vector_width.WIDE_VECTORS}")
    for kernel, report in matmul.compiled_instructions().items():
        counts = ", ".join(f"{name} {count}" for name, count in report.items() if name != "registers")
        lines.append(f"  {kernel}: {report['registers']} registers; {counts}")
    lines.append(
        f"fast encoder: packed numba GEMM up to {fast_encoder.PACKED_GEMM_MAX_TOKENS} tokens a call, OpenBLAS above"
    )
    example = Path(matmul.__file__).parent / "__pycache__"
    cache = numba.config.CACHE_DIR or f"__pycache__ beside each module, e.g. {example}"
    lines.append(f"numba cache: {cache}")
    return lines


def info_command(arguments):
    print("\n".join(info_lines()))


# -- search, rerank, evaluate -----------------------------------------------------------------------------------


def search_command(arguments):
    if arguments.embeddings:
        return search_store_command(arguments)
    from minisbert.util import semantic_search
    from minisbert.util.corpus_cache import cached_corpus_embeddings
    from minisbert.util.similarity import SIMILARITY_FUNCTIONS

    corpus_path = Path(arguments.corpus)
    if not corpus_path.is_file():  # a device or pipe (/dev/zero) would be read without end
        raise SystemExit(f"minisbert: --corpus {corpus_path} is not a regular file")
    corpus_bytes = corpus_path.read_bytes()
    try:
        text = corpus_bytes.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SystemExit(f"minisbert: the corpus {corpus_path} is not UTF-8 text ({error})") from None
    lines = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise SystemExit(f"minisbert: the corpus {corpus_path} has no non-empty line to search")
    model = load_model(arguments)
    cross_encoder = load_cross_encoder(arguments.rerank) if arguments.rerank else None
    sentences = [line for _, line in lines]
    embeddings = cached_corpus_embeddings(model, corpus_path, sentences, corpus_bytes, arguments.batch_size)
    query_embeddings = model.encode(arguments.query, batch_size=arguments.batch_size)
    score_function = SIMILARITY_FUNCTIONS[model.similarity_fn_name][0]
    retrieved = arguments.top_k * RERANK_CANDIDATES_PER_HIT if cross_encoder else arguments.top_k
    results = semantic_search(query_embeddings, embeddings, top_k=retrieved, score_function=score_function)
    for query, hits in zip(arguments.query, results):
        if cross_encoder:
            hits = rerank_hits(cross_encoder, query, hits, sentences, arguments.top_k, arguments.batch_size)
        print_hits(query, [(hit["score"], *lines[hit["corpus_id"]]) for hit in hits])


def search_store_command(arguments):
    from minisbert.distributed import streaming

    cross_encoder = load_cross_encoder(arguments.rerank) if arguments.rerank else None
    retrieved = arguments.top_k * RERANK_CANDIDATES_PER_HIT if cross_encoder else arguments.top_k
    try:
        results = streaming.search_store(
            arguments.embeddings, arguments.corpus, arguments.query, arguments.model, retrieved, arguments.batch_size
        )
    except ImportError as error:
        raise SystemExit(f"minisbert: {error}") from None
    for query, hits in zip(arguments.query, results):
        if cross_encoder:
            lines = {number: line for _, number, line in hits}
            candidates = [{"corpus_id": number, "score": score} for score, number, _ in hits]
            reranked = rerank_hits(cross_encoder, query, candidates, lines, arguments.top_k, arguments.batch_size)
            hits = [(hit["score"], hit["corpus_id"], lines[hit["corpus_id"]]) for hit in reranked]
        print_hits(query, hits)


def print_hits(query, hits):
    """What search and rerank print: the query, then a line per (score, line number, line) hit, best first."""
    print(f"query: {query}")
    for rank, (score, number, line) in enumerate(hits, 1):
        print(f"{rank:4d}. {score:.4f}  line {number}: {line}")


def rerank_hits(cross_encoder, query, hits, sentences, top_k, batch_size=32):
    """search's hits [{"corpus_id", "score"}] reordered by the cross-encoder's score with the query, the top_k
    best kept; the scores become the cross-encoder's. (The glue between search's two sources of hits, a cached
    corpus and a zarr store, and CrossEncoder.rank.)"""
    ranked = cross_encoder.rank(query, [sentences[hit["corpus_id"]] for hit in hits], top_k=top_k, batch_size=batch_size)
    return [{"corpus_id": hits[result["corpus_id"]]["corpus_id"], "score": result["score"]} for result in ranked]


def rerank_command(arguments):
    candidates = [(number, line) for number, line in enumerate(read_sentences(arguments), 1) if line.strip()]
    if not candidates:
        raise SystemExit("minisbert: no non-empty candidate to rerank")
    model = load_cross_encoder(arguments.model)
    results = model.rank(
        arguments.query, [line for _, line in candidates], top_k=arguments.top_k, batch_size=arguments.batch_size
    )
    print_hits(arguments.query, [(result["score"], *candidates[result["corpus_id"]]) for result in results])


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


# -- train ------------------------------------------------------------------------------------------------------


def train_command(arguments):
    from minisbert.evaluation import EmbeddingSimilarityEvaluator, read_pairs
    from minisbert.training import losses
    from minisbert.training.data import read_examples
    from minisbert.training.model import TrainingError
    from minisbert.training.trainer import fit

    loss_class = losses.LOSSES[arguments.loss]
    columns = arguments.columns.split(",")
    texts = len(columns) - loss_class.needs_labels
    if loss_class.columns is not None and texts != loss_class.columns or texts < 1:
        expected = f"{loss_class.columns or 'at least 1'} text column(s)" + (" and a label column" if loss_class.needs_labels else "")
        raise TrainingError(f"--loss {arguments.loss} needs {expected}; --columns gives {len(columns)}: {arguments.columns}")
    examples = read_examples(arguments.data, columns, loss_class.needs_labels)
    model = load_model(arguments)
    loss = loss_class(model)
    evaluator = None
    if arguments.evaluate:
        evaluator = EmbeddingSimilarityEvaluator(*read_pairs(arguments.evaluate, arguments.evaluate_columns.split(",")))
    history = fit(
        model, examples, loss, epochs=arguments.epochs, batch_size=arguments.batch_size,
        learning_rate=arguments.learning_rate, warmup_ratio=arguments.warmup_ratio, weight_decay=arguments.weight_decay,
        seed=arguments.seed, evaluator=evaluator, evaluation_steps=arguments.evaluation_steps,
        output_path=arguments.output, checkpoint_steps=arguments.checkpoint_steps, overwrite=arguments.overwrite,
    )
    last = history[-1]
    metrics = "".join(f", {name} {value:.5f}" for name, value in last.items() if name not in ("step", "epoch", "loss", "learning_rate"))
    print(f"trained {last['step']} steps on {len(examples)} examples: last loss {last['loss']:.5f}{metrics}")
    print(f"saved in {arguments.output}")


# -- the parser -------------------------------------------------------------------------------------------------


def options(*declarations):
    """A parent parser (argparse ``parents=``) holding options several commands share: (flags, settings) pairs."""
    parent = argparse.ArgumentParser(add_help=False)
    for flags, settings in declarations:
        parent.add_argument(*flags, **settings)
    return parent


def batch_size_option(default=32):
    return options((["--batch-size"], {"type": int, "default": default}))


def build_parser():
    model = options((["--model", "-m"], {"default": None, "help": "model folder or hub id (default all-MiniLM-L6-v2)"}))
    batch = batch_size_option()
    sentences = options(
        (["sentences"], {"nargs": "*", "help": "sentences (default: one a line from --input or stdin)"}),
        (["--input", "-i"], {"help": "file with one sentence a line ('-' for standard input)"}),
    )
    normalize = options((["--normalize"], {"action": "store_true", "help": "scale embeddings to unit length"}))

    parser = argparse.ArgumentParser(prog="minisbert", description=(__doc__ or "").split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    encode = commands.add_parser("encode", parents=[sentences, model, batch, normalize], help="print sentence embeddings")
    encode.add_argument("--output", "-o", help="write the embeddings to this .npy file")
    encode.add_argument(
        "--quantize", choices=["int8"], default=None,
        help="int8 weights and activations, slightly less exact (README, \"Own matmul, int8 and wide vectors\")",
    )
    encode.add_argument("--prompt", help="text put before every sentence")
    encode.add_argument("--prompt-name", help="the model's prompt of that name (e.g. query, document)")
    encode.add_argument("--truncate-dim", type=int, help="keep the first N dimensions")
    encode.add_argument("--precision", choices=["float32", "int8", "uint8", "binary", "ubinary"])
    encode.add_argument("--sparse", action="store_true",
                        help="a SparseEncoder (SPLADE) model: print each text's top weighted vocabulary entries")
    encode.add_argument("--top-k", "-k", type=int, default=10, help="with --sparse: entries shown per text")
    encode.add_argument("--query", action="store_true", help="with --sparse: encode as queries (encode_query)")
    # Streaming into a resumable .zarr store on this machine or a Dask cluster (minisbert.distributed.streaming).
    encode.add_argument(
        "--chunk-size", type=int,
        help="with --output NAME.zarr: lines read, encoded and written at a time (default: the store's, else 10000)",
    )
    cluster = encode.add_mutually_exclusive_group()
    cluster.add_argument("--workers", type=int, help="with --output NAME.zarr: on a local Dask cluster of N processes")
    cluster.add_argument(
        "--scheduler", help="with --output NAME.zarr: on the running Dask cluster at ADDRESS (tcp://host:8786)"
    )
    encode.set_defaults(function=encode_command)

    similarity = commands.add_parser(
        "similarity", parents=[sentences, model, batch, normalize], help="print the similarity matrix of sentences"
    )
    similarity.set_defaults(function=similarity_command)

    explain = commands.add_parser("explain", parents=[model], help="plot attention, token norms and similarities of texts")
    explain.add_argument("texts", nargs="+", help="the text to explain (more texts: also compared with it)")
    explain.add_argument("--out", "-o", required=True, help="folder to write the PNGs and summary.txt into")
    explain.set_defaults(function=explain_command)

    commands.add_parser("models", help="list the hub models known to work").set_defaults(function=models_command)

    search = commands.add_parser("search", parents=[model, batch], help="find the lines of a file closest to a query")
    search.add_argument("--corpus", required=True, help="text file, one document a line (embeddings cached beside it)")
    search.add_argument("--query", "-q", required=True, action="append", help="query text (repeat for several)")
    search.add_argument("--top-k", "-k", type=int, default=5)
    search.add_argument(
        "--rerank", metavar="CROSS_ENCODER",
        help=f"retrieve top-k x {RERANK_CANDIDATES_PER_HIT} lines, then order them by this cross-encoder (folder or hub id)",
    )
    search.add_argument(
        "--embeddings", help="a .zarr store made from --corpus by minisbert encode --output: searched chunk by chunk"
    )
    search.set_defaults(function=search_command)

    evaluate = commands.add_parser(
        "evaluate", parents=[model, batch], help="Pearson/Spearman of similarities with gold scores (STS)"
    )
    evaluate.add_argument("pairs", help="CSV or TSV file of sentence pairs with a score")
    evaluate.add_argument(
        "--columns", default="sentence1,sentence2,score",
        help="the two sentence columns and the score column: header names, or 1-based positions for a file "
        "without header (STS-B: 6,7,5); default %(default)s",
    )
    evaluate.add_argument("--similarity", help="comma-separated: cosine,dot,euclidean,manhattan (default: the model's)")
    evaluate.add_argument("--precision", help="quantize the embeddings first: int8, uint8, binary or ubinary")
    evaluate.set_defaults(function=evaluate_command)

    rerank = commands.add_parser(
        "rerank", parents=[batch], help="order candidate texts by a cross-encoder's score with a query"
    )
    rerank.add_argument("sentences", nargs="*", metavar="candidate", help="candidates (default: one a line from --input or stdin)")
    rerank.add_argument("--input", "-i", help="file with one candidate a line ('-' for standard input); empty lines skipped")
    rerank.add_argument("--model", "-m", required=True, help="cross-encoder folder or hub id")
    rerank.add_argument("--query", "-q", required=True, help="the query text")
    rerank.add_argument("--top-k", "-k", type=int, default=None, help="print only the k best (default: all)")
    rerank.set_defaults(function=rerank_command)

    train = commands.add_parser(
        "train", parents=[model, batch_size_option(default=8)],  # 8: sentence-transformers' trainer's default
        help="fine-tune a model on a CSV/TSV of examples (no torch)",
    )
    train.add_argument("--data", required=True, help="CSV or TSV file of training examples")
    train.add_argument(
        "--columns", required=True,
        help="the text columns, then the label column if the loss needs one: header names or 1-based positions "
        "(STS-B with cosent: 6,7,5)",
    )
    train.add_argument("--loss", default="cosent", choices=["cosine", "cosent", "angle", "mnrl", "contrastive", "triplet"])
    train.add_argument("--output", "-o", required=True, help="folder to save the trained model in")
    train.add_argument("--overwrite", action="store_true", help="replace the output folder if it exists")
    train.add_argument("--epochs", type=int, default=1)
    train.add_argument("--learning-rate", "--lr", type=float, default=5e-5)
    train.add_argument("--warmup-ratio", type=float, default=0.0)
    train.add_argument("--weight-decay", type=float, default=0.0)
    train.add_argument("--seed", type=int, default=42)
    train.add_argument("--evaluate", help="CSV/TSV of scored pairs to evaluate on (EmbeddingSimilarityEvaluator)")
    train.add_argument("--evaluate-columns", default="sentence1,sentence2,score", help="as evaluate's --columns")
    train.add_argument("--evaluation-steps", type=int, default=0, help="also evaluate every N steps")
    train.add_argument("--checkpoint-steps", type=int, default=0, help="save OUTPUT/checkpoint-N every N steps")
    train.set_defaults(function=train_command)

    info = commands.add_parser("info", help="CPU, BLAS, threads, vector width and numba cache in force")
    info.set_defaults(function=info_command)
    return parser


def main(argv=None):
    arguments = build_parser().parse_args(argv)
    try:
        arguments.function(arguments)
    except (ValueError, OSError) as error:  # a user's mistake (see the module docstring); anything else is a bug
        raise SystemExit(f"minisbert: {error}") from None
    except KeyboardInterrupt:  # ^C: the user stopped it, nothing went wrong
        raise SystemExit("minisbert: interrupted") from None


if __name__ == "__main__":
    main()

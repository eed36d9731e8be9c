"""The ``minisbert`` command: ``encode`` prints embeddings (JSON lines, or an .npy file) and ``similarity``
prints the similarity matrix of a few sentences. Sentences come as arguments, or one a line from a file
or standard input. ``models`` lists the hub models known to work.
"""

import argparse
import json
import sys

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
        np.save(arguments.output, embeddings)
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
    commands.add_parser("models", help="list the hub models known to work").set_defaults(function=models_command)
    return parser


def main(argv=None):
    arguments = build_parser().parse_args(argv)
    try:
        arguments.function(arguments)
    except (ValueError, TypeError, OSError) as error:
        raise SystemExit(f"minisbert: {error}") from None


if __name__ == "__main__":
    main()

"""A corpus file's embeddings cached beside it, for searching the same text file again without encoding it again
(``minisbert search --corpus FILE``, bench/search.py): FILE.minisbert.npy holds the embeddings and
FILE.minisbert.json the key they were made under. Takes a loaded model; imports no other part of minisbert than
its version.
"""

import hashlib
import io
import json
import math
import os
import sys

import numpy as np

__all__ = ["cached_corpus_embeddings"]


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


KEY_FILE_LIMIT = 4096  # bytes: the key file is one short JSON object; a larger one is not ours
NPY_HEADER_LIMIT = 4096  # bytes: np.save's header before the float32 values (128 for a 2-D array)


def read_cache(embeddings_path, key_path, key, expected_shape):
    """The cached embeddings if both files are regular files (not links), the key matches and the embeddings'
    bytes are the ones the key file records; FileNotFoundError if there is no cache; ValueError or OSError if it
    is unusable."""
    for path in (embeddings_path, key_path):
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise ValueError(f"{path} is not a regular file")
    with open(key_path, "rb") as file:
        key_bytes = file.read(KEY_FILE_LIMIT + 1)
    if len(key_bytes) > KEY_FILE_LIMIT:
        raise ValueError(f"its key file is larger than {KEY_FILE_LIMIT} bytes")
    recorded = json.loads(key_bytes.decode("utf-8"))
    if not isinstance(recorded, dict) or recorded.get("key") != key:
        raise ValueError("it was made from another corpus, model or minisbert version")
    if embeddings_path.stat().st_size > 4 * math.prod(expected_shape) + NPY_HEADER_LIMIT:
        raise ValueError(f"it holds more bytes than {expected_shape} float32 embeddings")
    data = embeddings_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != recorded.get("embeddings_sha256"):
        raise ValueError("its embeddings are not the ones the key file records")
    embeddings = np.load(io.BytesIO(data), allow_pickle=False)
    if embeddings.shape != expected_shape or embeddings.dtype != np.float32:
        raise ValueError(f"it holds {embeddings.dtype} {embeddings.shape}, not float32 {expected_shape}")
    return embeddings


def write_replacing(path, data):
    """data written beside ``path`` then renamed over it (a link at ``path`` is replaced, never followed)."""
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    with open(partial, "xb") as file:
        file.write(data)
    os.replace(partial, path)


def cached_corpus_embeddings(model, corpus_path, sentences, corpus_bytes, batch_size):
    """The corpus embeddings from FILE.minisbert.npy if its FILE.minisbert.json key still matches, else encoded
    and written there (a read-only folder just means no cache)."""
    embeddings_path = corpus_path.with_name(corpus_path.name + ".minisbert.npy")
    key_path = corpus_path.with_name(corpus_path.name + ".minisbert.json")
    key = corpus_cache_key(model, corpus_bytes)
    expected_shape = (len(sentences), model.get_sentence_embedding_dimension())
    try:
        embeddings = read_cache(embeddings_path, key_path, key, expected_shape)
        print(f"minisbert: using cached embeddings {embeddings_path}", file=sys.stderr)
        return embeddings
    except FileNotFoundError:
        pass  # no cache yet
    except (OSError, ValueError) as error:
        print(f"minisbert: the cache {embeddings_path} is stale or unreadable ({error}): encoding again",
              file=sys.stderr)
    embeddings = model.encode(sentences, batch_size=batch_size)
    try:
        buffer = io.BytesIO()
        np.save(buffer, embeddings)
        data = buffer.getvalue()
        write_replacing(embeddings_path, data)
        record = {"key": key, "sentences": len(sentences), "embeddings_sha256": hashlib.sha256(data).hexdigest()}
        write_replacing(key_path, json.dumps(record).encode("utf-8"))
        print(f"minisbert: embedded {len(sentences)} lines, cached in {embeddings_path}", file=sys.stderr)
    except OSError as error:
        print(f"minisbert: could not cache the embeddings ({error})", file=sys.stderr)
    return embeddings

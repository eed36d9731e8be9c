"""A corpus file's embeddings cached beside it, for searching the same text file again without encoding it again
(``minisbert search --corpus FILE``, bench/search.py): FILE.minisbert.npy holds the embeddings and
FILE.minisbert.json the key they were made under. Takes a loaded model; imports no other part of minisbert than
its version.
"""

import hashlib
import json
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

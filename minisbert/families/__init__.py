"""The four model families, each the public class of sentence-transformers of the same name:
SentenceTransformer (embeddings), CrossEncoder (scores of text pairs), SparseEncoder (sparse vocabulary vectors),
MultiVectorEncoder (one vector per token, late interaction). Each loads a folder's modules and runs the data path
text -> tokenizer -> forward pass -> modules. May import the data path (tokenization, architectures, modules),
reading files (minisbert.files), search (minisbert.util), kernels and runtime; never the side rooms or the CLI."""

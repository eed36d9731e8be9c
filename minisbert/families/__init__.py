"""The four model families, each the public class of sentence-transformers of the same name, in its own file:
SentenceTransformer (embeddings), CrossEncoder (scores of text pairs), SparseEncoder (sparse vocabulary vectors),
MultiVectorEncoder (one vector per token, late interaction). Each loads a folder's modules (minisbert.modules) and
runs the data path text -> tokenizer -> forward pass -> modules; what they share (the base class Encoder: prompts,
input checks, the batching loop) is in the private _encoding.py. May import the data path (tokenization,
architectures, modules), reading files (minisbert.files), search (minisbert.util), kernels, runtime and
minisbert.inspection.trace (SentenceTransformer.trace); never the other side rooms or the CLI."""

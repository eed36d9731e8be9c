"""Hub models known to load in minisbert, with their architecture, embedding dimension and module chain.

The facts are copied by hand from each model's published files (config.json, modules.json,
1_Pooling/config.json, 2_Dense/config.json). minisbert's tests cannot download them (no hub access where they
run), so tests/test_known_models.py checks less than the entry says: that minisbert has the entry's
model_type, and that a tiny random-weight model of it with the entry's module chain (Dense widths shrunk)
matches sentence-transformers. The hidden size, dimension, tokenizer and weights are not checked, but for
all-MiniLM-L6-v2, which is also checked with its real files. The command line's ``models`` prints these
tables; nothing on the data path imports this module (it imports the architectures, to say what is supported).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class KnownModel:
    hub_id: str
    model_type: str  # config.json's model_type: the forward pass minisbert runs
    hidden_size: int
    pooling: tuple  # the pooling modes, concatenated in this order
    dense: tuple = ()  # (out_features, activation class name) of each Dense module after the pooling
    normalize: bool = False  # a Normalize module ends the chain
    prompts: tuple = ()  # the names of the prompts in its config_sentence_transformers.json (encode(prompt_name=...))

    @property
    def dimension(self):
        """The length of the embeddings encode returns."""
        return self.dense[-1][0] if self.dense else len(self.pooling) * self.hidden_size


KNOWN_MODELS = [
    KnownModel("sentence-transformers/all-MiniLM-L6-v2", "bert", 384, ("mean",), normalize=True),
    KnownModel("sentence-transformers/all-MiniLM-L12-v2", "bert", 384, ("mean",), normalize=True),
    KnownModel("sentence-transformers/all-mpnet-base-v2", "mpnet", 768, ("mean",), normalize=True),
    KnownModel("sentence-transformers/all-distilroberta-v1", "roberta", 768, ("mean",), normalize=True),
    KnownModel("sentence-transformers/multi-qa-MiniLM-L6-cos-v1", "bert", 384, ("mean",), normalize=True),
    KnownModel("sentence-transformers/multi-qa-mpnet-base-dot-v1", "mpnet", 768, ("cls",)),
    KnownModel("sentence-transformers/paraphrase-MiniLM-L6-v2", "bert", 384, ("mean",)),
    KnownModel("sentence-transformers/paraphrase-mpnet-base-v2", "mpnet", 768, ("mean",)),
    KnownModel("sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2", "bert", 384, ("mean",)),
    KnownModel("sentence-transformers/paraphrase-multilingual-mpnet-base-v2", "xlm-roberta", 768, ("mean",)),
    KnownModel("sentence-transformers/msmarco-distilbert-base-v4", "distilbert", 768, ("mean",)),
    KnownModel("sentence-transformers/msmarco-distilbert-base-tas-b", "distilbert", 768, ("cls",)),
    KnownModel(
        "sentence-transformers/distiluse-base-multilingual-cased-v2", "distilbert", 768, ("mean",), ((512, "Tanh"),)
    ),
    KnownModel("sentence-transformers/LaBSE", "bert", 768, ("cls",), ((768, "Tanh"),), normalize=True),
    KnownModel("intfloat/e5-small-v2", "bert", 384, ("mean",), normalize=True),
    KnownModel("intfloat/multilingual-e5-small", "bert", 384, ("mean",), normalize=True),
    KnownModel("intfloat/multilingual-e5-base", "xlm-roberta", 768, ("mean",), normalize=True),
    KnownModel("BAAI/bge-small-en-v1.5", "bert", 384, ("cls",), normalize=True),
    KnownModel("BAAI/bge-base-en-v1.5", "bert", 768, ("cls",), normalize=True),
    KnownModel("BAAI/bge-m3", "xlm-roberta", 1024, ("cls",), normalize=True),
    KnownModel("jhgan/ko-sbert-nli", "bert", 768, ("mean",)),
    KnownModel("jhgan/ko-sroberta-multitask", "roberta", 768, ("mean",)),
    KnownModel("snunlp/KR-SBERT-V40K-klueNLI-augSTS", "bert", 768, ("mean",)),
    KnownModel("Alibaba-NLP/gte-modernbert-base", "modernbert", 768, ("cls",), normalize=True),
    KnownModel(
        "nomic-ai/modernbert-embed-base", "modernbert", 768, ("mean",), normalize=True, prompts=("query", "document")
    ),
    KnownModel(
        "nomic-ai/nomic-embed-text-v1.5", "nomic_bert", 768, ("mean",), normalize=True, prompts=("query", "document")
    ),
    KnownModel("Qwen/Qwen3-Embedding-0.6B", "qwen3", 1024, ("lasttoken",), normalize=True, prompts=("query", "document")),
    KnownModel("Qwen/Qwen3-Embedding-4B", "qwen3", 2560, ("lasttoken",), normalize=True, prompts=("query", "document")),
    KnownModel("Qwen/Qwen3-Embedding-8B", "qwen3", 4096, ("lasttoken",), normalize=True, prompts=("query", "document")),
    KnownModel(
        "google/embeddinggemma-300m",
        "gemma3_text",
        768,
        ("mean",),
        ((3072, "Identity"), (768, "Identity")),
        normalize=True,
        prompts=("query", "document", "Retrieval-query", "Retrieval-document", "Classification", "Clustering", "STS"),
    ),
    KnownModel("sentence-transformers/sentence-t5-base", "t5", 768, ("mean",), ((768, "Identity"),), normalize=True),
    KnownModel("sentence-transformers/sentence-t5-large", "t5", 1024, ("mean",), ((768, "Identity"),), normalize=True),
    KnownModel("sentence-transformers/gtr-t5-base", "t5", 768, ("mean",), ((768, "Identity"),), normalize=True),
    KnownModel("sentence-transformers/gtr-t5-large", "t5", 1024, ("mean",), ((768, "Identity"),), normalize=True),
]


@dataclass(frozen=True)
class KnownReranker:
    """A hub cross-encoder (minisbert.CrossEncoder): its config.json model_type and hidden size, its labels,
    and the activation predict applies (as saved, else sigmoid for one label)."""

    hub_id: str
    model_type: str
    hidden_size: int
    num_labels: int = 1
    activation: str = "Sigmoid"  # a torch.nn class name, as the model saves it


KNOWN_RERANKERS = [
    KnownReranker("cross-encoder/ms-marco-MiniLM-L6-v2", "bert", 384, activation="Identity"),
    KnownReranker("cross-encoder/ms-marco-MiniLM-L12-v2", "bert", 384, activation="Identity"),
    KnownReranker("cross-encoder/stsb-distilroberta-base", "roberta", 768),
    KnownReranker("cross-encoder/nli-distilroberta-base", "roberta", 768, num_labels=3, activation="Identity"),
    KnownReranker("BAAI/bge-reranker-base", "xlm-roberta", 768),
    KnownReranker("BAAI/bge-reranker-large", "xlm-roberta", 1024),
    KnownReranker("BAAI/bge-reranker-v2-m3", "xlm-roberta", 1024),
    KnownReranker("mixedbread-ai/mxbai-rerank-xsmall-v1", "deberta-v2", 384),
    KnownReranker("mixedbread-ai/mxbai-rerank-base-v1", "deberta-v2", 768),
    KnownReranker("Alibaba-NLP/gte-reranker-modernbert-base", "modernbert", 768),
]


def reranker_is_supported(known):
    """Whether minisbert has both the forward pass and the classification head of a reranker's architecture."""
    from minisbert.architectures import ARCHITECTURES
    from minisbert.architectures.heads import HEADS

    return known.model_type in ARCHITECTURES and known.model_type in HEADS

"""The fill-mask Transformer of a SparseEncoder (sentence-transformers' MLMTransformer, or its Transformer with
transformer_task "fill-mask"): the encoder as the Transformer module runs it, plus transformers' masked-language-model
head, hidden states -> a logit per vocabulary entry, read from the checkpoint by one tensor-name table per
architecture (MLM_HEADS).
"""

from pathlib import Path

from minisbert.architectures.checkpoint import Checkpoint
from minisbert.architectures.layers import activation, layer_norm, linear
from minisbert.files.loading import TEXT, ModelLoadError, read_config
from minisbert.files.weights import load_weights
from minisbert.modules.transformer import Transformer

__all__ = ["MaskedLanguageModel", "fill_mask_transformer"]


# model_type -> where transformers' *ForMaskedLM keeps the head: dense, activation, LayerNorm, decoder (tied to the
# word embeddings unless saved) and its bias. "activation" None: the config's hidden_act.
MLM_HEADS = {
    "bert": {
        "dense": "cls.predictions.transform.dense",
        "norm": "cls.predictions.transform.LayerNorm",
        "decoder": "cls.predictions.decoder",
        "bias": "cls.predictions.bias",
        "activation": None,
    },
    "distilbert": {
        "dense": "vocab_transform",
        "norm": "vocab_layer_norm",
        "decoder": "vocab_projector",
        "bias": "vocab_projector.bias",
        "activation": None,
    },
    # RobertaLMHead and MPNetLMHead call the exact GELU whatever the config says.
    "roberta": {
        "dense": "lm_head.dense",
        "norm": "lm_head.layer_norm",
        "decoder": "lm_head.decoder",
        "bias": "lm_head.bias",
        "activation": "gelu",
    },
}
MLM_HEADS["xlm-roberta"] = MLM_HEADS["mpnet"] = MLM_HEADS["roberta"]


def load_mlm_head(tensors, config, word_embeddings):
    """The head's parameters: {"dense", "norm", "decoder": {"weight" (vocab, hidden), "bias" (vocab,)},
    "activation", "eps"}; the decoder weight is the word embedding table when the checkpoint ties them."""
    model_type = config["model_type"]
    if model_type not in MLM_HEADS:
        raise ModelLoadError(f"no masked-language-model head known for model_type {model_type!r}; "
                             f"supported: {sorted(MLM_HEADS)}")
    names = MLM_HEADS[model_type]
    hidden, vocab = config["hidden_size"], config["vocab_size"]
    checkpoint = Checkpoint(tensors)
    decoder_weight = f"{names['decoder']}.weight"
    bias = names["bias"] if names["bias"] in checkpoint.tensors else f"{names['decoder']}.bias"
    head = {
        "dense": checkpoint.linear(names["dense"], hidden, hidden),
        "norm": checkpoint.norm(names["norm"], hidden),
        "decoder": {
            "weight": (
                checkpoint.take(decoder_weight, (vocab, hidden))
                if decoder_weight in checkpoint.tensors or not config.get("tie_word_embeddings", True)
                else word_embeddings
            ),
            "bias": checkpoint.take(bias, (vocab,)),
        },
        "activation": names["activation"] or config["hidden_act"],
        "eps": config["layer_norm_eps"],
    }
    checkpoint.check(f"{model_type} masked-language-model head")
    return head


def mlm_logits(head, hidden):
    # hidden (tokens, hidden) -> logits (tokens, vocab): dense, activation, LayerNorm, decoder
    x = activation(head["activation"])(linear(hidden, head["dense"]))
    x = layer_norm(x, head["norm"], head["eps"])
    return linear(x, head["decoder"])


class MaskedLanguageModel(Transformer):
    """A fill-mask Transformer: the encoder as a bi-encoder's Transformer runs it, plus the MLM head.

    A batch's logits (batch, seq, vocab) would take 625 MB at 32 x 160 x 30522, so this module does not make
    them: it leaves the hidden states in features["token_embeddings"] and the head in features["mlm_logits"],
    and SpladePooling applies the head to one text's tokens at a time.
    """

    def __init__(self, folder):
        super().__init__(folder)
        self.head = load_mlm_head(load_weights(Path(folder)), self.config, self.params["embeddings"]["word"])
        self.sentence_embedding_dimension = self.config["vocab_size"]

    def __call__(self, features, record=None):
        features = super().__call__(features, record=record)
        features["mlm_logits"] = self.logits
        return features

    def logits(self, hidden):
        return mlm_logits(self.head, hidden)


def fill_mask_transformer(folder):
    """A Transformer entry of a SparseEncoder: the fill-mask one (sentence_bert_config.json says so)."""
    config = read_config(Path(folder) / "sentence_bert_config.json", {"transformer_task": TEXT}, required=False)
    task = (config or {}).get("transformer_task")
    if task not in (None, "fill-mask"):
        raise ModelLoadError(f"{folder}: a SparseEncoder needs a fill-mask Transformer, this one is {task!r}")
    return MaskedLanguageModel(folder)

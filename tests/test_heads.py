"""Each classification head of minisbert.architectures.heads against transformers' *ForSequenceClassification on
transformers' own last hidden states (so the head is checked apart from minisbert's encoders, also for an
architecture whose forward pass minisbert may not have yet): the logits within 1e-5 relative, one and three
labels, a padded row included (which a head pooling the mean must leave out)."""

import pytest
import torch
import transformers
from tiny_models import max_relative_difference, random_model

from minisbert.architectures import ARCHITECTURES, architecture_for
from minisbert.architectures.heads import HEADS, classification_head, load_head

SIZES = dict(vocab_size=100, max_position_embeddings=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=37)
MODERNBERT_IDS = dict(pad_token_id=0, bos_token_id=1, cls_token_id=1, eos_token_id=2, sep_token_id=2)  # < vocab_size
CONFIGS = {
    "bert": lambda: transformers.BertConfig(**SIZES),
    "roberta": lambda: transformers.RobertaConfig(**SIZES),
    "xlm-roberta": lambda: transformers.XLMRobertaConfig(**SIZES),
    "distilbert": lambda: transformers.DistilBertConfig(vocab_size=100, max_position_embeddings=64, dim=32, n_layers=2,
                                                        n_heads=4, hidden_dim=37),
    "mpnet": lambda: transformers.MPNetConfig(**SIZES),
    "electra": lambda: transformers.ElectraConfig(embedding_size=16, **SIZES),
    "deberta-v2": lambda: transformers.DebertaV2Config(**SIZES),
    "deberta-v2 (tanh pooler)": lambda: transformers.DebertaV2Config(pooler_hidden_act="tanh", **SIZES),
    "modernbert": lambda: transformers.ModernBertConfig(**MODERNBERT_IDS, **SIZES),
    "modernbert (mean pooling, biased dense, SiLU)": lambda: transformers.ModernBertConfig(
        classifier_pooling="mean", classifier_bias=True, classifier_activation="silu", **MODERNBERT_IDS, **SIZES
    ),
}


def test_every_head_is_tested():
    assert set(HEADS) == {name.split(" ")[0] for name in CONFIGS}


def minisbert_config(config):
    """config.json as minisbert reads it (with the architecture's key aliases where minisbert has it)."""
    saved = config.to_dict()
    return architecture_for(saved)[1] if saved["model_type"] in ARCHITECTURES else saved


@pytest.mark.parametrize("num_labels", [1, 3])
@pytest.mark.parametrize("name", CONFIGS)
def test_head_matches_transformers(name, num_labels):
    config = CONFIGS[name]()
    config.num_labels = num_labels
    torch.manual_seed(0)
    model = random_model(transformers.AutoModelForSequenceClassification.from_config(config))
    input_ids = torch.randint(5, 100, (3, 9), generator=torch.Generator().manual_seed(1))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[2, 6:] = 0  # a padded row
    with torch.no_grad():
        hidden_states = model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        expected = model(input_ids=input_ids, attention_mask=attention_mask).logits
    tensors = {key: value.numpy() for key, value in model.state_dict().items()}
    head = load_head(tensors, minisbert_config(config))
    _, logits = classification_head(head, hidden_states.numpy(), attention_mask.numpy())
    assert logits.shape == (3, num_labels)
    assert max_relative_difference(logits, expected) <= 1e-5


def test_unsupported_pooler_activation_is_named():
    config = transformers.DebertaV2Config(pooler_hidden_act="gelu_fast", **SIZES)
    model = transformers.AutoModelForSequenceClassification.from_config(config)
    tensors = {key: value.numpy() for key, value in model.state_dict().items()}
    with pytest.raises(ValueError, match="unsupported activation 'gelu_fast'"):
        load_head(tensors, config.to_dict())


def test_missing_head_tensors_are_named():
    model = transformers.AutoModel.from_config(transformers.BertConfig(**SIZES))  # no classification head
    tensors = {f"bert.{key}": value.numpy() for key, value in model.state_dict().items()}
    with pytest.raises(ValueError, match="missing tensor 'classifier.weight'"):
        load_head(tensors, {**transformers.BertConfig(**SIZES).to_dict(), "num_labels": 1})

"""CrossEncoder.trace: each layer's hidden states and attention probabilities equal transformers'
(``output_hidden_states``, ``output_attentions``, eager attention) for the pair's ids, the pooled vector equals
what the classifier layer of transformers' model receives, the logits and scores equal predict's; and the plot of
what the head sees renders. Bounds as tests/test_trace.py: 2e-5 on hidden states, 1e-5 on attention
probabilities, 1e-5 relative on the pooled vector and logits."""

import numpy as np
import pytest
from test_plots import assert_is_a_drawn_png
from tiny_models import max_relative_difference

from minisbert.architectures.heads import HEADS

PAIRS = {
    "short": ("What is the capital of France?", "Paris is the capital of France."),
    "long": ("a query " * 50, "a long document " * 80),  # both truncated
    "empty_query": ("", "emoji 🤗 and 한국어"),
}


def reference_outputs(folder, architecture, trace):
    """transformers' eager model on the trace's ids: hidden states, attentions, the classifier's input, logits."""
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(folder), attn_implementation="eager").eval()
    classifier_inputs = []
    classifier = model.get_submodule(HEADS[architecture].classifier)
    classifier.register_forward_hook(lambda module, inputs, output: classifier_inputs.append(inputs[0]))
    features = {"input_ids": torch.tensor(trace.input_ids[None])}
    if architecture in ("bert", "electra"):
        features["token_type_ids"] = torch.tensor(trace.token_type_ids[None])
    with torch.no_grad():
        outputs = model(**features, output_hidden_states=True, output_attentions=True)
    return (
        np.stack([h[0].numpy() for h in outputs.hidden_states]),
        np.stack([a[0].numpy() for a in outputs.attentions]),
        classifier_inputs[0][0].numpy(),
        outputs.logits[0].numpy(),
    )


@pytest.mark.parametrize("name", PAIRS)
@pytest.mark.parametrize("architecture", ["bert", "roberta", "distilbert", "electra"])
def test_trace_matches_transformers_and_predict(tiny_cross_encoder, architecture, name):
    folder, model, _ = tiny_cross_encoder(architecture, 3)
    query, document = PAIRS[name]
    trace = model.trace(query, document)
    hidden_states, attentions, pooled, logits = reference_outputs(folder, architecture, trace)
    seq = len(trace.tokens)
    assert trace.hidden_states.shape == hidden_states.shape == (3, seq, 32)
    assert trace.attentions.shape == attentions.shape == (2, 4, seq, seq)
    assert np.abs(trace.hidden_states - hidden_states).max() <= 2e-5
    assert np.abs(trace.attentions - attentions).max() <= 1e-5
    assert max_relative_difference(trace.pooled, pooled) <= 1e-5
    assert max_relative_difference(trace.logits, logits) <= 1e-5
    assert max_relative_difference(trace.scores, model.predict((query, document))) <= 1e-5
    np.testing.assert_array_equal(trace.first_token, trace.hidden_states[-1, 0])


def test_trace_marks_query_and_document_tokens(tiny_cross_encoder):
    _, model, _ = tiny_cross_encoder("bert", 1)
    trace = model.trace("the query", "a document")
    assert trace.tokens == ["[CLS]", "the", "query", "[SEP]", "a", "document", "[SEP]"]
    assert trace.segments.tolist() == [-1, 0, 0, -1, 1, 1, -1]
    assert trace.token_type_ids.tolist() == [0, 0, 0, 0, 1, 1, 1]
    np.testing.assert_allclose(trace.first_token_attention.sum(axis=1), 1, rtol=1e-5)
    assert trace.first_token_attention.shape == (2, 7)


def test_trace_takes_one_pair(tiny_cross_encoder):
    _, model, _ = tiny_cross_encoder("bert", 1)
    with pytest.raises(TypeError, match="not a \\(text, text\\) pair"):
        model.trace("a query", ["a", "list"])


@pytest.mark.parametrize("name", PAIRS)
def test_plot_of_what_the_head_sees(tiny_cross_encoder, tmp_path, name):
    from minisbert.inspection import plots

    _, model, _ = tiny_cross_encoder("roberta", 3)
    trace = model.trace(*PAIRS[name])
    assert_is_a_drawn_png(plots.plot_cross_encoder_trace(trace, tmp_path / "head.png"))

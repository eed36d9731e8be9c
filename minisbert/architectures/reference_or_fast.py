"""The one place that chooses between the two paths of a forward pass.

Each architecture has a readable reference path and a fast path that computes the same numbers (tests compare
them: tests/test_fast_encoder.py, tests/test_architectures_modern.py):

- BERT and its descendants: layers.encoder, against fast_encoder.fast_encoder (real tokens packed side by side,
  fused kernels, one group of sequences per core);
- ModernBERT, Qwen3, Gemma 3, T5: the same layer code run on modern_layers.PaddedBatch (the batch as the
  tokenizer padded it, masks as additive biases) or on modern_layers.PackedBatch (real tokens only, attention
  per sequence in kernels.masked_attention), in one group of sequences per core as fast_encoder's;
- DeBERTa-v2 has the reference path only.

The fast path keeps no intermediate states, so a forward pass asked to ``record`` them (a dict) runs the
reference path; every other call runs the fast path.
"""

from minisbert.architectures.fast_encoder import fast_encoder, run_in_groups
from minisbert.architectures.layers import encoder
from minisbert.architectures.modern_layers import PackedBatch, PaddedBatch


def run_encoder(x, layers, attention_mask, config, position_bias=None, record=None):
    """layers.encoder's output, (batch, seq, hidden), from the path ``record`` asks for."""
    if record is None:
        return fast_encoder(x, layers, attention_mask, config, position_bias)
    return encoder(x, layers, attention_mask, config, position_bias, record)


def run_layout(run, input_ids, attention_mask, record):
    """run(batch layout, record) -> token embeddings (batch, seq, hidden), from the path ``record`` asks for.
    Packed, the groups of sequences each run in their own thread with one OpenBLAS thread: the many small
    per-sequence attention products run several times slower with OpenBLAS threads competing for busy cores
    (bench/RESULTS.md, "Today's architectures (bench/modern_architectures.py)"). A batch too small to split
    runs whole, its attention heads split over the cores instead."""
    if record is not None:
        return run(PaddedBatch(input_ids, attention_mask), record)
    return run_in_groups(
        attention_mask,
        lambda group: run(PackedBatch(input_ids[group], attention_mask[group], heads_over_cores=False), None),
        lambda: run(PackedBatch(input_ids, attention_mask, heads_over_cores=True), None),
    )

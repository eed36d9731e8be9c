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
reference path; every other call runs the fast path. A forward pass asked for the first token only (a
classification head's input, ``first_token_only``) returns (batch, 1, hidden); BERT's fast path then computes
the last layer for that token alone. Both fast paths skip padding, so when the first column of a row is padding
(a left-padded tokenizer: transformers' heads read that padding token's vector), the reference path runs.
"""

from minisbert.architectures.fast_encoder import fast_encoder, run_in_groups
from minisbert.architectures.layers import encoder
from minisbert.architectures.modern_layers import PackedBatch, PaddedBatch


def fast_path_serves(attention_mask, record, first_token_only):
    """Whether the fast path computes what the caller asks for (see the module docstring)."""
    return record is None and not (first_token_only and not attention_mask[:, 0].all())


def run_encoder(x, layers, attention_mask, config, position_bias=None, record=None, first_token_only=False):
    """layers.encoder's output, (batch, seq, hidden), or (batch, 1, hidden) for the first token only, from the
    path ``record`` and the padding ask for."""
    if fast_path_serves(attention_mask, record, first_token_only):
        return fast_encoder(x, layers, attention_mask, config, position_bias, first_token_only)
    output = encoder(x, layers, attention_mask, config, position_bias, record)
    return output[:, :1] if first_token_only else output


def run_layout(run, input_ids, attention_mask, record, first_token_only=False):
    """run(batch layout, record) -> token embeddings (batch, seq, hidden), or (batch, 1, hidden) for the first
    token only, from the path ``record`` and the padding ask for.
    Packed, the groups of sequences each run in their own thread with one OpenBLAS thread: the many small
    per-sequence attention products run several times slower with OpenBLAS threads competing for busy cores
    (bench/RESULTS.md, "Today's architectures (bench/modern_architectures.py)"). A batch too small to split
    runs whole, its attention heads split over the cores instead."""
    if fast_path_serves(attention_mask, record, first_token_only):
        output = run_in_groups(
            attention_mask,
            lambda group: run(PackedBatch(input_ids[group], attention_mask[group], heads_over_cores=False), None),
            lambda: run(PackedBatch(input_ids, attention_mask, heads_over_cores=True), None),
        )
    else:
        output = run(PaddedBatch(input_ids, attention_mask), record)
    return output[:, :1] if first_token_only else output

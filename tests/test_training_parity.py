"""minisbert.training.fit against sentence-transformers' SentenceTransformerTrainer: from the same tiny-model
weights, with dropout off and the same batches (sentence-transformers gets the examples in the order minisbert
visits them, through a sequential batch sampler), 20 optimizer steps give the same loss at every step and the
same weights; the saved checkpoint loads in both libraries and embeds as the trained model does."""

import json

import numpy as np
import pytest
from inputs import FEW_HARD_TEXTS
from tiny_models import TRAINING_SENTENCES, build_sentence_transformer, max_relative_difference

from minisbert import SentenceTransformer
from minisbert.training import losses
from minisbert.training.checkpoint import checkpoint_tensors
from minisbert.training.trainer import InputExample, epoch_order, fit

STEPS, BATCH_SIZE, SEED = 20, 4, 7
SETTINGS = dict(learning_rate=5e-4, warmup_ratio=0.1, weight_decay=0.01)


def no_dropout_model(tmp_path_factory, architecture, **options):
    folder = tmp_path_factory.mktemp("parity") / architecture
    build_sentence_transformer(folder, architecture, **options)
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def pairs(count):
    rng = np.random.default_rng(0)
    texts = TRAINING_SENTENCES + FEW_HARD_TEXTS
    return [
        InputExample([texts[rng.integers(len(texts))], texts[rng.integers(len(texts))]], float(rng.random()))
        for _ in range(count)
    ]


def train_reference(folder, examples, output_dir):
    """SentenceTransformerTrainer on the examples in minisbert's order; the loss of each step, the model."""
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer as ReferenceModel
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import DefaultBatchSampler
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss

    def sequential_batches(dataset, batch_size, drop_last, **ignored):
        return DefaultBatchSampler(torch.utils.data.SequentialSampler(dataset), batch_size=batch_size, drop_last=drop_last)

    order = epoch_order(len(examples), SEED, 0)
    ordered = [examples[i] for i in order]
    dataset = Dataset.from_dict(
        {
            "sentence1": [e.texts[0] for e in ordered],
            "sentence2": [e.texts[1] for e in ordered],
            "score": [e.label for e in ordered],
        }
    )
    model = ReferenceModel(str(folder), device="cpu")
    loss = CoSENTLoss(model)
    step_losses = []
    loss.register_forward_hook(lambda module, inputs, output: step_losses.append(output.item()))
    args = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=BATCH_SIZE,
        num_train_epochs=1,
        learning_rate=SETTINGS["learning_rate"],
        warmup_steps=SETTINGS["warmup_ratio"],
        weight_decay=SETTINGS["weight_decay"],
        batch_sampler=sequential_batches,
        seed=SEED,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
    )
    SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss).train()
    return step_losses, model


@pytest.fixture(scope="module", params=["bert", "mpnet"])
def trained(tmp_path_factory, request):
    folder = no_dropout_model(tmp_path_factory, request.param, normalize=True)
    examples = pairs(STEPS * BATCH_SIZE)
    reference_losses, reference = train_reference(folder, examples, tmp_path_factory.mktemp("reference-run"))
    model = SentenceTransformer(folder)
    output = tmp_path_factory.mktemp("minisbert-run") / "trained"
    history = fit(
        model, examples, losses.CoSENTLoss(model), batch_size=BATCH_SIZE, seed=SEED, output_path=output,
        show_progress_bar=False, **SETTINGS,
    )
    return dict(model=model, history=history, reference=reference, reference_losses=reference_losses, output=output)


def test_the_loss_of_every_step_matches_sentence_transformers(trained):
    ours = np.array([record["loss"] for record in trained["history"]])
    assert len(ours) == len(trained["reference_losses"]) == STEPS
    assert max_relative_difference(ours, trained["reference_losses"]) <= 1e-4
    assert abs(ours[-1] - ours[0]) > 1e-3  # the weights did move


def test_the_trained_weights_match_sentence_transformers(trained):
    """Every weight within 1e-4 (relative to its largest value). The attention keys' biases are left out: their
    gradient is exactly zero (a bias on the keys adds the same score to every key of a query, which the softmax
    ignores), so both optimizers only see rounding noise there, which Adam scales up to steps of size lr; they
    change no output, which the embeddings' comparison below shows."""
    tensors = checkpoint_tensors(trained["model"].transformer.params, trained["model"].transformer.config)
    compared = 0
    for name, parameter in trained["reference"].named_parameters():
        name = name.split(".", 2)[2]  # "0.auto_model.<transformers name>"
        if name.startswith("pooler.") or name.endswith(("attention.self.key.bias", "attention.attn.k.bias")):
            continue
        assert max_relative_difference(tensors[name], parameter) <= 1e-4, name
        compared += 1
    assert compared == len(tensors) - 2  # both layers' key biases


def test_the_trained_models_embed_alike(trained):
    ours = trained["model"].encode(FEW_HARD_TEXTS)
    reference = trained["reference"].encode(FEW_HARD_TEXTS)
    assert np.abs(ours - reference).max() <= 1e-4


def test_the_checkpoint_loads_in_both_libraries(trained):
    from sentence_transformers import SentenceTransformer as ReferenceModel

    expected = trained["model"].encode(FEW_HARD_TEXTS)
    assert np.abs(SentenceTransformer(trained["output"]).encode(FEW_HARD_TEXTS) - expected).max() <= 1e-6
    assert np.abs(ReferenceModel(str(trained["output"]), device="cpu").encode(FEW_HARD_TEXTS) - expected).max() <= 1e-5

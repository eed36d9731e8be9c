"""minisbert.training.fit's pieces against their torch / transformers counterparts (AdamW, the linear schedule,
gradient clipping, the safetensors writer), its bad-input errors, checkpoints, evaluation, seeds, and the
``minisbert train`` command."""

import json
import shutil

import numpy as np
import pytest
import torch
from tiny_models import TRAINING_SENTENCES, max_relative_difference

from minisbert import SentenceTransformer
from minisbert.cli import main
from minisbert.evaluation import EmbeddingSimilarityEvaluator
from minisbert.training import losses
from minisbert.training.checkpoint import checkpoint_tensors, write_safetensors
from minisbert.training.model import TrainingError
from minisbert.training.trainer import (
    InputExample, adamw_moments, adamw_step, clipping_scale, decays, fit, linear_schedule,
)

RNG = np.random.default_rng(1)


@pytest.mark.parametrize("warmup, total", [(0, 10), (3, 10), (10, 10), (4, 25)])
def test_linear_schedule_matches_transformers(warmup, total):
    from transformers import get_linear_schedule_with_warmup

    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
    for step in range(total):
        assert linear_schedule(step, warmup, total) == pytest.approx(optimizer.param_groups[0]["lr"], abs=1e-15)
        optimizer.step()
        scheduler.step()


@pytest.mark.parametrize("max_norm", [1.0, 100.0])
def test_clipping_matches_torch(max_norm):
    grads = [RNG.standard_normal((3, 4)), RNG.standard_normal(5)]
    tensors = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for tensor, grad in zip(tensors, grads):
        tensor.grad = torch.tensor(grad)
    expected_norm = torch.nn.utils.clip_grad_norm_(tensors, max_norm).item()
    norm, scale = clipping_scale(grads, max_norm)
    assert norm == pytest.approx(expected_norm, rel=1e-12)
    for grad, tensor in zip(grads, tensors):
        assert max_relative_difference(grad * scale, tensor.grad) <= 1e-12


def test_adamw_matches_torch_with_weight_decay_only_where_it_applies():
    names = ["layers.0.qkv.weight", "layers.0.qkv.bias", "embeddings.norm.weight", "relative_attention_bias"]
    assert [decays(name) for name in names] == [True, False, False, False]
    params = [RNG.standard_normal((4, 3)), RNG.standard_normal(4), RNG.standard_normal(3), RNG.standard_normal((2, 2))]
    tensors = [torch.tensor(p, requires_grad=True) for p in params]
    optimizer = torch.optim.AdamW(
        [{"params": tensors[:1], "weight_decay": 0.1}, {"params": tensors[1:], "weight_decay": 0.0}], lr=1e-2
    )
    moments = adamw_moments(names, params)
    for step in range(1, 6):
        grads = [RNG.standard_normal(p.shape) for p in params]
        for tensor, grad in zip(tensors, grads):
            tensor.grad = torch.tensor(grad)
        optimizer.step()
        adamw_step(params, grads, moments, step, 1e-2, 0.1)
    for mine, tensor in zip(params, tensors):
        assert max_relative_difference(mine, tensor.detach()) <= 1e-12


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adamw_matches_torch_on_tables_whose_rows_get_their_first_gradient_late(weight_decay):
    # a word embedding table: rows 1 and 4 get no gradient until step 3, row 2 none at all; the update skips rows
    # that never had one when nothing decays. Gradients clipped: torch scales them in place, adamw_step as it
    # reads them
    names = ["embeddings.word_embeddings.weight", "encoder.bias"]
    params = [RNG.standard_normal((5, 3)), RNG.standard_normal(3)]
    tensors = [torch.tensor(p, requires_grad=True) for p in params]
    optimizer = torch.optim.AdamW(
        [{"params": tensors[:1], "weight_decay": weight_decay}, {"params": tensors[1:], "weight_decay": 0.0}], lr=1e-2
    )
    moments = adamw_moments(names, params)
    for step in range(1, 6):
        grads = [RNG.standard_normal(p.shape) for p in params]
        grads[0][[1, 2, 4] if step < 3 else [2]] = 0
        for tensor, grad in zip(tensors, grads):
            tensor.grad = torch.tensor(grad)
        torch.nn.utils.clip_grad_norm_(tensors, 1.0)  # the norm of 18 standard normal values is about 4
        optimizer.step()
        adamw_step(params, grads, moments, step, 1e-2, weight_decay, clipping_scale(grads, 1.0)[1])
        assert moments["rows_seen"][0].tolist() == [True, step >= 3, False, True, step >= 3]
    for mine, tensor in zip(params, tensors):
        assert max_relative_difference(mine, tensor.detach()) <= 1e-12


def test_safetensors_writer_is_read_by_the_safetensors_package(tmp_path):
    from safetensors.numpy import load_file

    tensors = {"b.weight": RNG.standard_normal((3, 5)).astype(np.float32), "a": np.arange(7, dtype=np.int64),
               "empty": np.zeros((0, 4), dtype=np.float32), "odd": np.ones(3, dtype=np.float16)}
    write_safetensors(tmp_path / "model.safetensors", tensors)
    loaded = load_file(tmp_path / "model.safetensors")
    assert set(loaded) == set(tensors)
    for name, array in tensors.items():
        assert loaded[name].dtype == array.dtype and np.array_equal(loaded[name], array)
    header_size = int.from_bytes((tmp_path / "model.safetensors").read_bytes()[:8], "little")
    assert header_size % 8 == 0  # the tensors start 8-byte aligned


def scored_pairs(count, seed=0):
    rng = np.random.default_rng(seed)
    return [
        InputExample([TRAINING_SENTENCES[rng.integers(9)], TRAINING_SENTENCES[rng.integers(9)]], float(rng.random()))
        for _ in range(count)
    ]


@pytest.fixture
def tiny(tiny_model):
    folder, _, _ = tiny_model("bert", normalize=True)
    return folder


def weights_of(model):
    return checkpoint_tensors(model.transformer.params, model.transformer.config)


def test_missing_labels_are_refused(tiny):
    model = SentenceTransformer(tiny)
    examples = [InputExample(["a", "b"]), InputExample(["c", "d"])]
    with pytest.raises(TrainingError, match="example 0 has no label; CoSENTLoss needs one"):
        fit(model, examples, losses.CoSENTLoss(model), show_progress_bar=False)


def test_a_wrong_number_of_texts_is_refused(tiny):
    model = SentenceTransformer(tiny)
    with pytest.raises(TrainingError, match="example 0 has 2 texts; TripletLoss needs 3"):
        fit(model, scored_pairs(4), losses.TripletLoss(model), show_progress_bar=False)
    ragged = scored_pairs(3) + [InputExample(["a", "b", "c"], 0.5)]
    with pytest.raises(TrainingError, match="example 3 has 3 texts"):
        fit(model, ragged, losses.MultipleNegativesRankingLoss(model), show_progress_bar=False)


def test_non_numeric_labels_are_refused(tiny):
    model = SentenceTransformer(tiny)
    with pytest.raises(TrainingError, match="labels must be numbers"):
        fit(model, [InputExample(["a", "b"], "high")], losses.CoSENTLoss(model), show_progress_bar=False)


def test_an_existing_output_folder_is_kept_unless_overwrite(tiny, tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    (output / "keep.txt").write_text("precious")
    model = SentenceTransformer(tiny)
    before = weights_of(model)["encoder.layer.0.output.dense.weight"].copy()
    with pytest.raises(TrainingError, match="exists and is not empty; pass overwrite=True"):
        fit(model, scored_pairs(8), losses.CoSENTLoss(model), output_path=output, show_progress_bar=False)
    assert (output / "keep.txt").read_text() == "precious"
    assert np.array_equal(weights_of(model)["encoder.layer.0.output.dense.weight"], before)  # nothing trained
    fit(model, scored_pairs(8), losses.CoSENTLoss(model), output_path=output, overwrite=True, show_progress_bar=False)
    assert not (output / "keep.txt").exists() and (output / "model.safetensors").is_file()
    with pytest.raises(TrainingError, match="the model's own folder"):
        fit(model, scored_pairs(8), losses.CoSENTLoss(model), output_path=tiny, overwrite=True, show_progress_bar=False)


def test_an_output_folder_holding_the_model_is_refused_and_left_alone(tiny_model, tmp_path):
    folder, _, _ = tiny_model("bert", normalize=True)
    parent = tmp_path / "parent"
    shutil.copytree(folder, parent / "model")
    (parent / "other.txt").write_text("precious")
    model = SentenceTransformer(parent / "model")
    with pytest.raises(TrainingError, match="is or holds the model's own folder"):
        fit(model, scored_pairs(8), losses.CoSENTLoss(model), output_path=parent, overwrite=True, show_progress_bar=False)
    assert (parent / "other.txt").read_text() == "precious" and (parent / "model" / "modules.json").is_file()


@pytest.mark.parametrize("setting, value", [
    ("learning_rate", float("nan")), ("learning_rate", float("inf")), ("learning_rate", -1e-5), ("epochs", 0),
    ("batch_size", 0), ("batch_size", 2.5), ("warmup_ratio", 1.5), ("weight_decay", float("nan")),
    ("max_grad_norm", -1.0),
])
def test_settings_out_of_range_are_refused_before_training(tiny, setting, value):
    model = SentenceTransformer(tiny)
    before = weights_of(model)["encoder.layer.0.output.dense.weight"].copy()
    with pytest.raises(TrainingError, match=f"{setting} must be"):
        fit(model, scored_pairs(8), losses.CoSENTLoss(model), show_progress_bar=False, **{setting: value})
    assert np.array_equal(weights_of(model)["encoder.layer.0.output.dense.weight"], before)


def test_saving_over_a_memory_mapped_checkpoint_keeps_the_loaded_model_readable(tiny, tmp_path):
    # the loaded model reads its float32 weights from a memory map of model.safetensors; the checkpoint written
    # over that file goes through a rename, so the old mapping stays valid (truncating it in place: SIGBUS)
    folder = tmp_path / "model"
    shutil.copytree(tiny, folder)
    model = SentenceTransformer(folder)
    expected = model.encode(["a sentence to encode"])
    write_safetensors(folder / "model.safetensors", {"x": np.zeros(1, np.float32)})
    assert np.array_equal(model.encode(["a sentence to encode"]), expected)
    assert not list(folder.glob("*.partial"))


class NaNAtStep(losses.Loss):
    """CoSENT, until the loss of step ``step`` comes out NaN."""

    columns, needs_labels = 2, True

    def __init__(self, step):
        self.calls, self.step, self.inner = 0, step, losses.CoSENTLoss()

    def __call__(self, embeddings, labels):
        self.calls += 1
        loss, d_embeddings, d_params = self.inner(embeddings, labels)
        return (float("nan") if self.calls == self.step else loss), d_embeddings, d_params


@pytest.mark.parametrize("checkpoint_steps, saved", [(1, ["checkpoint-1", "checkpoint-2"]), (0, ["checkpoint-2"])])
def test_a_non_finite_loss_stops_with_its_step_and_keeps_the_last_good_checkpoint(tiny, tmp_path, checkpoint_steps, saved):
    model = SentenceTransformer(tiny)
    with pytest.raises(TrainingError, match=r"the loss is nan at step 3 \(epoch 1\).*weights of step 2.*checkpoint-2"):
        fit(model, scored_pairs(20), NaNAtStep(3), batch_size=4, output_path=tmp_path / "out",
            checkpoint_steps=checkpoint_steps, learning_rate=1e-3, show_progress_bar=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == saved
    saved = weights_of(SentenceTransformer(tmp_path / "out" / "checkpoint-2"))
    for name, array in weights_of(model).items():
        assert np.array_equal(saved[name], array), name


class NaNGradient(losses.Loss):
    """CoSENT with a NaN in the gradient of the first example."""

    columns, needs_labels = 2, True

    def __call__(self, embeddings, labels):
        loss, d_embeddings, d_params = losses.CoSENTLoss()(embeddings, labels)
        d_embeddings[0][0, 0] = np.nan
        return loss, d_embeddings, d_params


def test_a_non_finite_gradient_stops_before_touching_the_weights(tiny):
    model = SentenceTransformer(tiny)
    before = weights_of(model)["embeddings.word_embeddings.weight"].copy()
    with pytest.raises(TrainingError, match=r"the gradient norm is nan at step 1 \(epoch 1\)"):
        fit(model, scored_pairs(8), NaNGradient(), batch_size=4, show_progress_bar=False)
    assert np.array_equal(weights_of(model)["embeddings.word_embeddings.weight"], before)


def test_evaluation_runs_every_n_steps_and_at_the_end(tiny):
    model = SentenceTransformer(tiny)
    evaluator = EmbeddingSimilarityEvaluator(TRAINING_SENTENCES[:5], TRAINING_SENTENCES[4:9], [0.1, 0.9, 0.3, 0.5, 0.2])
    history = fit(model, scored_pairs(18), losses.CoSENTLoss(model), batch_size=4, evaluator=evaluator,
                  evaluation_steps=2, show_progress_bar=False)
    assert [r["step"] for r in history if "spearman_cosine" in r] == [2, 4, 5]
    assert history[-1]["spearman_cosine"] == pytest.approx(evaluator(model)["spearman_cosine"], abs=1e-12)
    assert history[-1]["epoch"] == pytest.approx(1.0)


def test_the_seed_fixes_data_order_and_dropout(tiny):
    def run(seed, dropout_config=None):
        model = SentenceTransformer(tiny)
        history = fit(model, scored_pairs(12), losses.CoSENTLoss(model), batch_size=4, seed=seed,
                      learning_rate=1e-3, show_progress_bar=False)
        return [r["loss"] for r in history], weights_of(model)["encoder.layer.1.output.dense.weight"]

    first, again, other = run(1), run(1), run(2)
    assert first[0] == again[0] and np.array_equal(first[1], again[1])
    assert first[0] != other[0]


def test_softmax_loss_trains_its_classifier_too(tiny):
    model = SentenceTransformer(tiny)
    loss = losses.SoftmaxLoss(model, 32, 3)
    before = loss.params["weight"].copy()
    rng = np.random.default_rng(0)
    examples = [InputExample(e.texts, int(rng.integers(3))) for e in scored_pairs(8)]
    fit(model, examples, loss, batch_size=4, learning_rate=1e-3, show_progress_bar=False)
    assert np.abs(loss.params["weight"] - before).max() > 1e-4
    with pytest.raises(TrainingError, match=r"one integer label in \[0, 3\)"):
        fit(model, [InputExample(["a", "b"], 3.0)], loss, show_progress_bar=False)


def test_a_model_with_dense_saves_and_loads_in_both_libraries(tiny_model, tmp_path):
    from sentence_transformers import SentenceTransformer as ReferenceModel

    folder, _, _ = tiny_model("mpnet", dense=[(16, "Tanh", True)], normalize=True)
    model = SentenceTransformer(folder)
    fit(model, scored_pairs(8), losses.CoSENTLoss(model), batch_size=4, learning_rate=1e-3,
        output_path=tmp_path / "out", show_progress_bar=False)
    expected = model.encode(TRAINING_SENTENCES)
    assert np.abs(expected - SentenceTransformer(folder).encode(TRAINING_SENTENCES)).max() > 1e-4  # it trained
    assert np.abs(SentenceTransformer(tmp_path / "out").encode(TRAINING_SENTENCES) - expected).max() <= 1e-6
    reference = ReferenceModel(str(tmp_path / "out"), device="cpu").encode(TRAINING_SENTENCES)
    assert np.abs(reference - expected).max() <= 1e-5


def write_tsv(path, examples, header):
    lines = ["\t".join(header)] + ["\t".join([*e.texts, str(e.label)]) for e in examples]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_train_command(tiny, tmp_path, capsys):
    data = tmp_path / "pairs.tsv"
    write_tsv(data, scored_pairs(10), ["sentence1", "sentence2", "score"])
    output = tmp_path / "trained"
    arguments = ["train", "--model", str(tiny), "--data", str(data), "--columns", "sentence1,sentence2,score",
                 "--loss", "cosent", "--batch-size", "4", "--output", str(output), "--evaluate", str(data)]
    main(arguments)
    printed = capsys.readouterr().out
    assert "trained 3 steps on 10 examples" in printed and "spearman_cosine" in printed
    assert SentenceTransformer(output).encode(["a"]).shape == (1, 32)
    with pytest.raises(SystemExit, match="exists and is not empty; pass overwrite=True \\(--overwrite\\)"):
        main(arguments)
    main(arguments + ["--overwrite"])


@pytest.mark.parametrize("columns, loss, message", [
    ("sentence1,sentence2", "cosent", "--loss cosent needs 2 text column\\(s\\) and a label column; --columns gives 2"),
    ("sentence1,sentence2", "triplet", "--loss triplet needs 3 text column\\(s\\); --columns gives 2"),
    ("sentence1,sentence2,label", "cosent", "no column \\['label'\\] in the header"),
])
def test_train_command_refuses_columns_that_do_not_fit_the_loss(tiny, tmp_path, columns, loss, message):
    data = tmp_path / "pairs.tsv"
    write_tsv(data, scored_pairs(4), ["sentence1", "sentence2", "score"])
    with pytest.raises(SystemExit, match=message):
        main(["train", "--model", str(tiny), "--data", str(data), "--columns", columns, "--loss", loss,
              "--output", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_train_command_names_a_bad_line(tiny, tmp_path):
    data = tmp_path / "pairs.tsv"
    data.write_text("sentence1\tsentence2\tscore\na\tb\t0.5\nc\td\tnot-a-number\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="pairs.tsv, line 3: expected columns"):
        main(["train", "--model", str(tiny), "--data", str(data), "--columns", "sentence1,sentence2,score",
              "--output", str(tmp_path / "out")])


def test_train_command_refuses_position_zero_and_non_utf8(tiny, tmp_path):
    # training data is read by evaluation.read_columns, as evaluate reads pairs: the same refusals
    data = tmp_path / "pairs.tsv"
    write_tsv(data, scored_pairs(4), ["sentence1", "sentence2", "score"])
    with pytest.raises(SystemExit, match="column positions count from 1, got \\['0', '2', '3'\\]"):
        main(["train", "--model", str(tiny), "--data", str(data), "--columns", "0,2,3",
              "--output", str(tmp_path / "out")])
    data.write_bytes(b"sentence1\tsentence2\tscore\n\xff\xfe\tb\t0.5\n")
    with pytest.raises(SystemExit, match="is not UTF-8 text"):
        main(["train", "--model", str(tiny), "--data", str(data), "--columns", "sentence1,sentence2,score",
              "--output", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_adamw_kernel_refuses_arrays_that_do_not_fit():
    from minisbert.kernels.adamw import adamw_update

    param = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match="grad must be C-contiguous"):
        adamw_update(param, param.T.copy()[:, :2], param.copy(), param.copy(), 1.0, 0.9, 0.999, 1e-3, 1.0, 1e-8)

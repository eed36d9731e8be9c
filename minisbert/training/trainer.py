"""``fit``: fine-tunes a minisbert SentenceTransformer as sentence-transformers' SentenceTransformerTrainer does,
with its defaults: AdamW (betas 0.9, 0.999, eps 1e-8, weight decay 0, never on biases and LayerNorms), a linear
learning-rate warmup then decay to 0, gradient clipping to norm 1.0, batches of examples in a seeded random
order, dropout as the model's config says (seeded too). Checkpoints are sentence-transformers folders.
"""

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from minisbert.files.loading import is_integer
from minisbert.kernels.adamw import adamw_update, rows_with_gradient
from minisbert.training.checkpoint import module_folders, save_model
from minisbert.training.model import (
    TrainingError,
    check_trainable,
    leaves,
    make_trainable,
    model_backward,
    model_forward,
    trainable_parameters,
)


@dataclass
class InputExample:
    """One training example: its texts (one a column: a pair, a triplet...) and its label (a score, a class, a
    teacher embedding) or None."""

    texts: list
    label: object = None
    guid: str = field(default="")


def epoch_order(count, seed, epoch):
    """The order (a permutation of range(count)) the examples are visited in during ``epoch``."""
    return np.random.default_rng([seed, epoch]).permutation(count)


def linear_schedule(step, warmup_steps, total_steps):
    """The learning rate factor of optimizer step ``step`` (from 0): rising linearly from 0 over warmup_steps,
    then falling linearly to 0 at total_steps (transformers' get_linear_schedule_with_warmup)."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def clipping_scale(grads, max_norm):
    """(global L2 norm of the gradients, the factor that brings it to at most max_norm): as
    torch.nn.utils.clip_grad_norm_, max_norm / (norm + 1e-6) when that is below 1, else 1. torch multiplies the
    gradients by it in place; adamw_step multiplies them as it reads them (the same float products)."""
    norm = math.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in grads))
    return norm, min(1.0, max_norm / (norm + 1e-6))


def decays(name):
    """Whether weight decay applies to the parameter ``name``: not to biases nor LayerNorms, as transformers'
    Trainer (its patterns "bias" and "norm": the MPNet relative attention bias is excluded too)."""
    return "bias" not in name and "norm" not in name


def adamw_moments(names, params):
    """AdamW's state for the parameters ``params`` named ``names``: m and v (zeros), whether each decays, and for
    each table (2-d) the rows that have had a gradient so far (none yet)."""
    return {"m": [np.zeros_like(p) for p in params], "v": [np.zeros_like(p) for p in params],
            "decays": [decays(name) for name in names],
            "rows_seen": [np.zeros(len(p), dtype=bool) if p.ndim == 2 else None for p in params]}


def adamw_step(params, grads, moments, step, learning_rate, weight_decay, grad_scale=1.0, betas=(0.9, 0.999),
               eps=1e-8):
    """One AdamW update, in place (torch.optim.AdamW): params, grads (times grad_scale, clipping_scale's factor)
    and the lists of moments (adamw_moments) in one order; step counts from 1. Each array is updated by
    kernels/adamw.py in one pass; without weight decay, over the rows that have had a gradient only (the others
    it would leave as they are: the word embedding table's rows of tokens no batch has held yet, most of
    MiniLM's parameters)."""
    beta1, beta2 = betas
    step_size = learning_rate / (1 - beta1**step)
    correction2_sqrt = math.sqrt(1 - beta2**step)
    for param, grad, m, v, decay, rows_seen in zip(
        params, grads, moments["m"], moments["v"], moments["decays"], moments["rows_seen"]
    ):
        decay_factor = 1 - learning_rate * weight_decay if decay and weight_decay else 1
        grad = np.ascontiguousarray(grad, dtype=param.dtype)
        rows = None
        if rows_seen is not None:
            rows_with_gradient(grad, rows_seen)
            rows = np.flatnonzero(rows_seen) if decay_factor == 1 else None
        adamw_update(param, grad, m, v, decay_factor, beta1, beta2, step_size, correction2_sqrt, eps, rows,
                     grad_scale)


def check_examples(examples, loss):
    """The examples as (columns of texts, labels array or None), or a TrainingError naming the first that does
    not fit the loss (wrong number of texts, a missing label)."""
    if not examples:
        raise TrainingError("no training examples")
    columns = len(examples[0].texts)
    for index, example in enumerate(examples):
        if len(example.texts) != columns or (loss.columns is not None and len(example.texts) != loss.columns):
            expected = loss.columns if loss.columns is not None else columns
            raise TrainingError(f"example {index} has {len(example.texts)} texts; {type(loss).__name__} needs {expected}")
        if not all(isinstance(text, str) for text in example.texts):
            raise TrainingError(f"example {index}: texts must be strings, got {example.texts!r:.80}")
        if loss.needs_labels and example.label is None:
            raise TrainingError(f"example {index} has no label; {type(loss).__name__} needs one per example")
    labels = None
    if loss.needs_labels:
        try:
            labels = np.asarray([example.label for example in examples], dtype=np.float64)
        except (TypeError, ValueError):
            shapes = {np.shape(example.label) for example in examples}
            raise TrainingError(f"the labels must be numbers (or vectors of one length), got shapes {sorted(shapes)[:4]}") from None
        if not np.isfinite(labels).all():
            raise TrainingError(f"example {int(np.argwhere(~np.isfinite(labels))[0][0])} has a non-finite label")
    return [[example.texts[c] for example in examples] for c in range(columns)], labels


def check_settings(epochs, batch_size, learning_rate, warmup_ratio, weight_decay, max_grad_norm, **counts_from_0):
    """A TrainingError naming the first setting out of its range (a NaN learning rate would train to NaN weights)."""
    for name, value, low in (("epochs", epochs, 1), ("batch_size", batch_size, 1),
                             *((name, value, 0) for name, value in counts_from_0.items())):
        if not is_integer(value) or value < low:
            raise TrainingError(f"{name} must be a whole number >= {low}, got {value!r}")
    for name, value, low, high in (("learning_rate", learning_rate, 0, math.inf), ("warmup_ratio", warmup_ratio, 0, 1),
                                   ("weight_decay", weight_decay, 0, math.inf),
                                   ("max_grad_norm", max_grad_norm, 0, math.inf)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not (
            math.isfinite(value) and low <= value <= high
        ):
            raise TrainingError(f"{name} must be a finite number in [{low}, {high}], got {value!r}")


def prepare_output(output_path, model, overwrite):
    if output_path is None:
        return None
    output, model_folder = Path(output_path), Path(model.folder).resolve()
    if output.resolve() == model_folder or output.resolve() in model_folder.parents:
        raise TrainingError(f"output folder {output} is or holds the model's own folder ({model_folder}); choose another")
    if output.exists() and any(output.iterdir()):
        if not overwrite:
            raise TrainingError(f"output folder {output} exists and is not empty; pass overwrite=True (--overwrite) to replace it")
        shutil.rmtree(output)
    return output


def fit(
    model,
    train_examples,
    loss,
    epochs=1,
    batch_size=8,
    learning_rate=5e-5,
    warmup_ratio=0.0,
    weight_decay=0.0,
    max_grad_norm=1.0,
    seed=42,
    evaluator=None,
    evaluation_steps=0,
    output_path=None,
    checkpoint_steps=0,
    overwrite=False,
    show_progress_bar=True,
):
    """Fine-tunes ``model`` (a minisbert SentenceTransformer, updated in place) on ``train_examples`` (a list of
    InputExample) with ``loss`` (a minisbert.training.losses class instance). Every ``evaluation_steps`` steps
    and at the end, ``evaluator(model)`` (e.g. EmbeddingSimilarityEvaluator) is run; every ``checkpoint_steps``
    steps the model is saved in output_path/checkpoint-<step>, and at the end in output_path. A non-finite loss
    or gradient stops training with a TrainingError naming the step, before any update from it; the last good
    weights are then in output_path/checkpoint-<last good step> (and in ``model``).
    Returns the history: one dict per step (step, epoch, loss, learning_rate, and the evaluator's metrics)."""
    check_trainable(model)
    check_settings(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, warmup_ratio=warmup_ratio,
                   weight_decay=weight_decay, max_grad_norm=max_grad_norm, seed=seed, evaluation_steps=evaluation_steps,
                   checkpoint_steps=checkpoint_steps)
    columns, labels = check_examples(list(train_examples), loss)
    output = prepare_output(output_path, model, overwrite)
    if output is not None:
        module_folders(model)  # a folder that cannot be saved fails now, not after training
    make_trainable(model)
    tree = {"model": trainable_parameters(model), "loss": loss.params}
    names, params = zip(*leaves(tree))
    moments = adamw_moments(names, params)
    count = len(columns[0])
    steps_per_epoch = math.ceil(count / batch_size)
    total_steps = epochs * steps_per_epoch
    warmup_steps = math.ceil(total_steps * warmup_ratio)
    dropout_rng = np.random.default_rng([seed, 2**31])
    history, step = [], 0
    progress = progress_bar(total_steps, show_progress_bar)
    started = time.perf_counter()
    for epoch in range(epochs):
        order = epoch_order(count, seed, epoch)
        for start in range(0, count, batch_size):
            indices = order[start : start + batch_size]
            batch_labels = None if labels is None else labels[indices]
            # every column's texts in one forward and one backward pass: each parameter's gradient comes out
            # summed over the columns, as the loss's columns all embed with the same model
            texts = [column[i] for column in columns for i in indices]
            embedding, cache = model_forward(model, model.tokenize(texts), dropout_rng)  # (columns x batch, dim)
            value, d_embeddings, d_loss_params = loss(np.split(embedding, len(columns)), batch_labels)
            if not np.isfinite(value):
                stop_on_non_finite(f"the loss is {value}", model, step, epoch, output, checkpoint_steps)
            grads = gradients_by_name(model, cache, np.concatenate(d_embeddings), d_loss_params)
            grads = [grads[name] for name in names]
            norm, grad_scale = clipping_scale(grads, max_grad_norm)
            if not math.isfinite(norm):
                stop_on_non_finite(f"the gradient norm is {norm}", model, step, epoch, output, checkpoint_steps)
            rate = learning_rate * linear_schedule(step, warmup_steps, total_steps)
            step += 1
            adamw_step(params, grads, moments, step, rate, weight_decay, grad_scale)
            record = {"step": step, "epoch": epoch + (start + len(indices)) / count, "loss": value, "learning_rate": rate}
            if evaluator is not None and (step == total_steps or evaluation_steps and step % evaluation_steps == 0):
                record.update(evaluator(model))
            if output is not None and checkpoint_steps and step % checkpoint_steps == 0:
                save_model(model, output / f"checkpoint-{step}")
            history.append(record)
            if progress is not None:
                pairs_per_second = step * batch_size / (time.perf_counter() - started)
                progress.set_postfix(loss=f"{value:.4f}", pairs_per_s=f"{pairs_per_second:.1f}")
                progress.update(1)
    if progress is not None:
        progress.close()
    if output is not None:
        save_model(model, output)
    return history


def stop_on_non_finite(problem, model, step, epoch, output, checkpoint_steps):
    """Raises the TrainingError of a non-finite loss or gradient at step + 1, the model still holding the weights
    of step ``step``, which are saved in output/checkpoint-<step> unless they already are (or are the start's)."""
    message = f"{problem} at step {step + 1} (epoch {epoch + 1}): training stopped before applying it"
    if output is not None and step > 0:
        checkpoint = output / f"checkpoint-{step}"
        if not (checkpoint_steps and step % checkpoint_steps == 0):
            save_model(model, checkpoint)
        message += f"; the weights of step {step}, the last good one, are in {checkpoint}"
    raise TrainingError(message)


def gradients_by_name(model, cache, d_embedding, d_loss_params):
    """{parameter name (as leaves names them): gradient} for the model and the loss."""
    grads = {f"loss.{name}": value for name, value in d_loss_params.items()}
    grads.update(leaves({"model": model_backward(model, cache, d_embedding)}))
    return grads


def progress_bar(total, show):
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="Training")

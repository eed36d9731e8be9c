"""Fine-tuning without torch: the backward pass (backward.py, model.py), sentence-transformers' losses
(losses.py), and a trainer (trainer.py) whose checkpoints sentence-transformers and minisbert both load.
Nothing on the inference path imports this package."""

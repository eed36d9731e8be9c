"""Reading files, a room of its own: model folders and the hub cache, config files checked field by field
(loading.py), safetensors (weights.py) and PyTorch ``.bin`` checkpoints read without unpickling (torch_checkpoint.py).
Turns bytes on disk into dicts of NumPy arrays and checked configs. May import minisbert.runtime only."""

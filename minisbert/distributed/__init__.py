"""Encoding corpora bigger than one process, a side room: the picklable model handle each worker loads once
(embedder.py) and the streamed, resumable zarr output of ``minisbert encode --output`` (streaming.py). The Dask
API built on them is ``minisbert.dask`` (the name users import). Uses the families; nothing on the data path
imports it."""

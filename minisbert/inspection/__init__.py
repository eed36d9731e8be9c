"""Tracing and plots, a side room: what each layer does to a sentence (trace.py) and the figures drawn from it
(plots.py, matplotlib from the ``plot`` extra). Uses the data path; nothing on the data path imports it."""

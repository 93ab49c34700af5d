"""Multi-task datasets: labelled samples with user, item and row features and behaviour
sequences (see :mod:`recsys.data.multitask.tensors` for the layout)."""

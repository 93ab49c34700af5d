"""Baselines from other libraries, run on our splits and evaluated by our evaluator.

Nothing here imports a foreign library at import time: RecBole (:mod:`recsys.baselines.recbole_run`)
runs in a subprocess (:mod:`recsys.baselines.recbole_worker`) and its top-K lists come back as
an ordinary run directory.
"""

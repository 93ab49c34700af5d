"""The RecBole models the adapter supports, and the RecBole config that mirrors one experiment.

Supported (RecBole 1.2.1 class names; lookup is case-insensitive):

* ``BPR``: matrix factorisation, BPR loss, one uniform negative per positive.
* ``LightGCN``: linear graph propagation, BPR loss + ``reg_weight`` L2 on the ego embeddings.
* ``NGCF``: non-linear graph propagation with dropout, BPR loss + ``reg_weight`` L2.
* ``ENMF``: non-sampling: a weighted squared loss over ALL items (``negative_weight`` for the
  unobserved ones); RecBole requires ``train_neg_sample_args: None`` for it, set here.

Hyperparameters are RecBole's own names (its ``properties/model/<Model>.yaml`` keys); unknown
names are refused. Everything else comes from the experiment, mapped by :func:`recbole_config`:

=======================  ======================================================================
ours                     RecBole
=======================  ======================================================================
``train.epochs``         ``epochs`` (or the ``epochs`` argument)
``train.batch_size``     ``train_batch_size``
``train.optimizer``      ``learner`` (adam, adamw, sgd)
``train.lr``             ``learning_rate``
``train.weight_decay``   ``weight_decay``
``train.eval_every``     ``eval_step``
``train.monitor``        ``valid_metric`` (``ndcg@20`` → ``NDCG@20``)
``train.patience``       ``stopping_step = patience - 1``: RecBole stops once MORE than
                         ``stopping_step`` validations in a row did not improve, we once
                         ``patience`` did; 0 (never stop) → ``stopping_step = epochs``
``train.restore_best``   test with the best validation checkpoint (``load_best_model``)
``seed``                 ``seed`` (``reproducibility: True``)
``eval.metrics``/``ks``  ``metrics`` (Recall, NDCG, Precision, Hit, MRR, MAP) and ``topk``
                         = ``ks`` plus the list length ``K = max(max(ks), export_topk)``
=======================  ======================================================================

RecBole counts a validation equal to the best as an improvement (``>=``) where we need a strict
one, and rounds its metrics to ``metric_decimal_place`` digits: set to 15 here so its numbers
can be compared with ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from recsys.errors import ConfigError
from recsys.eval.config import EvalConfig
from recsys.train.config import TrainConfig

SAMPLED = {
    "distribution": "uniform",
    "sample_num": 1,
    "alpha": 1.0,
    "dynamic": False,
    "candidate_num": 0,
}
"""RecBole's ``train_neg_sample_args`` for the sampling models: one uniform negative."""

METRIC_NAMES = {
    "recall": "Recall",
    "ndcg": "NDCG",
    "precision": "Precision",
    "hit": "Hit",
    "mrr": "MRR",
    "map": "MAP",
}
"""Our metric names → RecBole's (its results use the lower-case form, as ours)."""


@dataclass(frozen=True)
class RecBoleModel:
    """One supported RecBole model.

    Attributes:
        name: RecBole's class name (``get_model(name)``).
        params: its hyperparameters (RecBole config keys) that may be set.
        negative_sampling: trained on sampled negatives (else ``train_neg_sample_args: None``).
        loss: what it optimises, for run configs and reports.
    """

    name: str
    params: tuple[str, ...]
    negative_sampling: bool
    loss: str


RECBOLE_MODELS: dict[str, RecBoleModel] = {
    m.name: m
    for m in (
        RecBoleModel("BPR", ("embedding_size",), True, "bpr"),
        RecBoleModel("LightGCN", ("embedding_size", "n_layers", "reg_weight"), True, "bpr + l2"),
        RecBoleModel(
            "NGCF",
            ("embedding_size", "hidden_size_list", "node_dropout", "message_dropout", "reg_weight"),
            True,
            "bpr + l2",
        ),
        RecBoleModel(
            "ENMF",
            ("embedding_size", "dropout_prob", "reg_weight", "negative_weight"),
            False,
            "whole-data weighted squared loss (non-sampling)",
        ),
    )
}


def supported_models() -> tuple[str, ...]:
    """The RecBole model names the adapter runs."""
    return tuple(RECBOLE_MODELS)


def resolve_model(name: str) -> RecBoleModel:
    """The supported model called ``name`` (case-insensitive).

    Raises:
        ConfigError: an unsupported name, listing the supported ones.
    """
    for key, model in RECBOLE_MODELS.items():
        if key.lower() == name.strip().lower():
            return model
    raise ConfigError(
        f"RecBole model {name!r} is not supported; supported: {', '.join(RECBOLE_MODELS)}"
    )


def check_params(model: RecBoleModel, params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate hyperparameter names against the model's.

    Raises:
        ConfigError: an unknown name, listing the model's.
    """
    unknown = [k for k in params if k not in model.params]
    if unknown:
        raise ConfigError(
            f"RecBole {model.name}: unknown parameter {unknown[0]!r}; its parameters: "
            f"{', '.join(model.params)}"
        )
    return dict(params)


def list_length(eval_cfg: EvalConfig) -> int:
    """``K`` of the imported lists: the largest metric cut-off or the exported list length."""
    return max(max(eval_cfg.ks), eval_cfg.export_topk)


def recbole_config(
    model: RecBoleModel,
    params: Mapping[str, Any],
    *,
    train: TrainConfig,
    eval_cfg: EvalConfig,
    seed: int,
    epochs: int,
    device: str = "cpu",
    eval_users_per_batch: int = 256,
    n_items: int | None = None,
) -> dict[str, Any]:
    """The ``config_dict`` for ``recbole.config.Config`` mirroring one experiment.

    Paths (``data_path``, ``checkpoint_dir``) are added by the worker.

    Args:
        model: the RecBole model.
        params: its hyperparameters (checked by :func:`check_params`).
        train: our training settings (see the module table).
        eval_cfg: our evaluation settings (metrics, ks, list length).
        seed: RecBole's seed.
        epochs: maximum epochs.
        device: ``cpu`` or ``cuda[:N]``.
        eval_users_per_batch: users scored together in RecBole's full-sort evaluation. RecBole's
            ``eval_batch_size`` counts user × item scores, so it is set to
            ``eval_users_per_batch * (n_items + 1)`` (``[PAD]`` is an item) when ``n_items`` is
            given; RecBole's default 4096 would score two ml-100k users per batch.
        n_items: catalogue size of the exported data.

    Raises:
        ConfigError: ``eval.test_mask = "train"``: RecBole always masks train + valid items at
            test time, so its lists cannot be evaluated under train-only masking.
    """
    if eval_cfg.test_mask != "train_valid":
        raise ConfigError(
            f"eval.test_mask = {eval_cfg.test_mask!r}: RecBole masks train and valid items at "
            "test time, so its lists can only be evaluated with test_mask = 'train_valid'"
        )
    monitor, _, k = train.monitor.partition("@")
    gpu = device.startswith("cuda")
    config: dict[str, Any] = {
        "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id"]},
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "train_neg_sample_args": dict(SAMPLED) if model.negative_sampling else None,
        "epochs": epochs,
        "train_batch_size": train.batch_size,
        "learner": train.optimizer,
        "learning_rate": train.lr,
        "weight_decay": train.weight_decay,
        "eval_step": train.eval_every,
        "stopping_step": train.patience - 1 if train.patience > 0 else max(epochs, 1),
        "valid_metric": f"{METRIC_NAMES[monitor]}@{k}",
        "valid_metric_bigger": True,
        "metrics": [METRIC_NAMES[m] for m in eval_cfg.metrics],
        "topk": sorted({*eval_cfg.ks, list_length(eval_cfg)}),
        "metric_decimal_place": 15,
        "eval_batch_size": 4096 if n_items is None else eval_users_per_batch * (n_items + 1),
        "seed": seed,
        "reproducibility": True,
        "use_gpu": gpu,
        "gpu_id": (device.partition(":")[2] or "0") if gpu else "",
        "worker": 0,
        "show_progress": False,
        "save_dataset": False,
        "save_dataloaders": False,
        "log_wandb": False,
        **check_params(model, params),
    }
    return config

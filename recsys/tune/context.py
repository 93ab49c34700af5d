"""Everything a tuning worker needs, loaded and checked once: the tune config, the raw
experiment the trials vary, and where runs and the study live."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsys.config import apply_overrides, dump
from recsys.errors import ConfigError
from recsys.experiment import Experiment, read_experiment, task_names
from recsys.hashing import hash_obj
from recsys.tune.config import TuneConfig, load_tune_config
from recsys.tune.space import check_space


@dataclass(frozen=True)
class TuneContext:
    """A loaded study definition.

    Attributes:
        cfg: the tune config.
        path: the tune config file.
        sets: the ``--set`` overrides it was loaded with (passed on to worker processes).
        raw: the raw experiment (data inlined, ``cfg.set`` applied) that trials vary.
        source: the experiment file (for messages).
        exp_base_dir: directory the experiment's data paths resolve against.
        base: the untuned experiment.
        runs_dir: where trial runs are written.
    """

    cfg: TuneConfig
    path: Path
    sets: tuple[str, ...]
    raw: dict[str, Any]
    source: str
    exp_base_dir: Path
    base: Experiment
    runs_dir: Path

    @property
    def pruning(self) -> bool:
        return self.cfg.pruner_name != "none"

    def fingerprint(self) -> str:
        """Hash of what defines the search (space, objective, sampler, pruner, experiment):
        a stored study made from another definition is refused instead of mixed with it."""
        keep = {k: v for k, v in dump(self.cfg).items() if k not in {"n_trials", "retrain"}}
        return hash_obj({"tune": keep, "experiment": self.raw})


def load_context(
    path: str | Path, sets: tuple[str, ...] | list[str] = (), runs_dir: str | Path = "runs"
) -> TuneContext:
    """Load and check a tune config: every parameter against the experiment, the metric
    against its eval config.

    Raises:
        ConfigError: naming the file and key.
    """
    path = Path(path)
    cfg, tune_dir = load_tune_config(path, sets)
    exp_path = tune_dir / cfg.experiment
    if not exp_path.is_file():
        raise ConfigError(f"{path}: key 'experiment': no such file {exp_path}")
    data = tune_dir / cfg.data if cfg.data else None
    if data is not None and not data.is_file():
        raise ConfigError(f"{path}: key 'data': no such file {data}")
    raw, source, exp_base = read_experiment(exp_path, data)
    raw = apply_overrides(raw, cfg.set)
    base = check_space(cfg.params, raw, source, exp_base)
    _check_metric(cfg.metric, base, path)
    return TuneContext(cfg, path, tuple(sets), raw, source, exp_base, base, Path(runs_dir))


def _check_metric(key: str, base: Experiment, path: Path) -> None:
    """The metric must be one the experiment's validation reports."""
    tasks = task_names(base.cfg.data)
    if "/" in key:
        task, _, name = key.partition("/")
        allowed = (*tasks, "mean") if tasks else ()
        if (
            task not in allowed
            or name not in ("auc", "gauc", "logloss")
            or (task == "mean" and name == "logloss")
        ):
            raise ConfigError(
                f"{path}: key 'metric' = {key!r}: expected TASK/auc, TASK/gauc or TASK/logloss "
                f"with TASK one of {list(tasks)}, or mean/auc, mean/gauc"
                + ("" if tasks else " (the experiment's data has no [multitask] table)")
            )
        return
    metric, _, k = key.partition("@")
    ev = base.cfg.eval
    if metric not in ev.metrics or int(k) not in ev.ks:
        raise ConfigError(
            f"{path}: key 'metric' = {key!r}: the experiment evaluates metrics "
            f"{list(ev.metrics)} at K in {list(ev.ks)}"
        )

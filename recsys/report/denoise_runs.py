"""Runs of a denoising benchmark: what each run is (dataset, noise ratio, model, method, seed)
and the checks that make a group of runs comparable.

Labels come from the run's resolved config (``config.json``):

* dataset: ``data.name``, plus the natural-noise rule when ``data.noise.natural`` is not
  ``"none"`` (e.g. ``ml-100k (natural: rating < 4)``);
* noise ratio ρ: ``data.noise.ratio`` (injected noise);
* model: ``model.name``;
* method: ``PLD`` when ``sampler.name == "pld"``; else ``T-CE`` / ``R-CE`` when a loss is
  ``tce`` / ``rce`` (``T-CE (BPR)`` / ``R-CE (BPR)`` when that loss's ``base`` is ``"bpr"``);
  else ``BCE`` when a loss is ``bce``; else ``BPR``.

A *cell* is one (dataset, model, method, ρ): its runs are pooled as seeds. A *group* is one
(dataset, model, ρ): its cells are compared with each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from recsys.errors import RecsysError
from recsys.report.runs_loader import PROTOCOL_KEYS, RunRecord, first_difference, seed_config

METHOD_ORDER = ("BPR", "BCE", "T-CE", "T-CE (BPR)", "R-CE", "R-CE (BPR)", "PLD")
"""Display order of the known methods (others follow alphabetically)."""

_TRUNCATED = {"tce": "T-CE", "rce": "R-CE"}

CELL_CONFIG_KEYS = ("model", "losses", "sampler", "train", "eval")
"""Config sections that must agree across the seeds of one cell (``train.device`` excepted)."""


@dataclass(frozen=True)
class DenoiseRun:
    """One finished run with its benchmark coordinates."""

    record: RunRecord
    dataset: str
    noise: float
    model: str
    method: str
    seed: int
    data_seeds: tuple[int | None, int | None]
    """(``data.split.seed``, ``data.noise.seed``): the only data settings a group may vary."""
    data_hash: str

    @property
    def group(self) -> tuple[str, str, float]:
        return (self.dataset, self.model, self.noise)

    @property
    def cell(self) -> tuple[str, str, str, float]:
        return (self.dataset, self.model, self.method, self.noise)

    @property
    def name(self) -> str:
        return self.record.dir.name


def method_label(config: Mapping[str, Any]) -> str:
    """The method of a run from its resolved config (see the module docstring)."""
    if str(config.get("sampler", {}).get("name")) == "pld":
        return "PLD"
    losses = [loss for loss in config.get("losses", []) if isinstance(loss, Mapping)]
    for loss in losses:
        label = _TRUNCATED.get(str(loss.get("name")))
        if label is not None:
            return f"{label} (BPR)" if loss.get("base") == "bpr" else label
    if any(loss.get("name") == "bce" for loss in losses):
        return "BCE"
    return "BPR"


def dataset_label(config: Mapping[str, Any]) -> str:
    """``data.name``, with the natural-noise rule appended when there is one."""
    data = config.get("data", {})
    name = str(data.get("name", "?"))
    noise = data.get("noise", {})
    natural = noise.get("natural", "none")
    if natural == "rating":
        return f"{name} (natural: rating < {noise.get('clean_min_rating', 4.0):g})"
    if natural not in (None, "none"):
        return f"{name} (natural: {natural})"
    return name


def method_order(methods: set[str] | list[str], baseline: str) -> list[str]:
    """``baseline`` first, then the known methods in :data:`METHOD_ORDER`, then the rest."""
    known = [m for m in METHOD_ORDER if m in methods and m != baseline]
    rest = sorted(m for m in methods if m not in METHOD_ORDER and m != baseline)
    return ([baseline] if baseline in methods else []) + known + rest


def classify(records: list[RunRecord]) -> list[DenoiseRun]:
    """Label every run and check that the runs can be pooled and compared.

    Raises:
        RecsysError: see :func:`check_comparable`.
    """
    runs = []
    for rec in records:
        cfg = rec.config
        data = cfg.get("data", {})
        data_hash = rec.manifest.get("data_hash") or rec.results.get("data", {}).get("hash")
        if not data_hash:
            raise RecsysError(f"{rec.dir}: no data hash in manifest.json or results.json")
        runs.append(
            DenoiseRun(
                record=rec,
                dataset=dataset_label(cfg),
                noise=float(data.get("noise", {}).get("ratio", 0.0)),
                model=str(cfg.get("model", {}).get("name", "?")),
                method=method_label(cfg),
                seed=int(cfg.get("seed", 0)),
                data_seeds=(data.get("split", {}).get("seed"), data.get("noise", {}).get("seed")),
                data_hash=str(data_hash),
            )
        )
    check_comparable(runs)
    return runs


def check_comparable(runs: list[DenoiseRun]) -> None:
    """Refuse runs that a denoising report would compare or pool wrongly.

    * Evaluation conventions (``eval.ks/idcg/average/test_mask``) agree across all runs.
    * Within a group (dataset, model, ρ), runs with the same data seeds have the same data
      hash: methods are compared on the same data, differing at most by the seeds.
    * Within a cell, runs differ only by seeds: the same model, losses, sampler, training
      (except the device) and evaluation settings, and no seed twice.

    Raises:
        RecsysError: naming the two runs and what differs.
    """
    first = runs[0]
    ref_eval = first.record.config.get("eval", {})
    for run in runs[1:]:
        ev = run.record.config.get("eval", {})
        for key in PROTOCOL_KEYS:
            if ev.get(key) != ref_eval.get(key):
                raise RecsysError(
                    f"runs cannot be compared: eval.{key} differs: {first.name} has "
                    f"{ref_eval.get(key)!r}, {run.name} has {ev.get(key)!r}"
                )
    hashes: dict[tuple[Any, ...], DenoiseRun] = {}
    cells: dict[tuple[Any, ...], DenoiseRun] = {}
    seeds: dict[tuple[Any, ...], DenoiseRun] = {}
    for run in runs:
        ref = hashes.setdefault((*run.group, run.data_seeds), run)
        if ref.data_hash != run.data_hash:
            raise RecsysError(
                f"runs cannot be compared: data hash differs within {_group_text(run)}: "
                f"{ref.name} ({ref.method}) has {ref.data_hash[:12]}, {run.name} ({run.method}) "
                f"has {run.data_hash[:12]} (same dataset label, noise ratio and data seeds)"
            )
        cell_ref = cells.setdefault(run.cell, run)
        diff = first_difference(
            seed_config(cell_ref.record, CELL_CONFIG_KEYS),
            seed_config(run.record, CELL_CONFIG_KEYS),
        )
        if diff is not None:
            raise RecsysError(
                f"runs cannot be pooled as seeds of {run.method} in {_group_text(run)}: "
                f"{diff} differs between {cell_ref.name} and {run.name}"
            )
        twin = seeds.setdefault((*run.cell, run.seed, run.data_seeds), run)
        if twin is not run:
            raise RecsysError(
                f"two runs of {run.method} in {_group_text(run)} with seed {run.seed}: "
                f"{twin.name} and {run.name} (report one of them)"
            )


def _group_text(run: DenoiseRun) -> str:
    return f"dataset {run.dataset!r}, model {run.model!r}, ρ={run.noise:g}"

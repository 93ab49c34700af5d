"""The numbers of the standard report, computed from finished runs grouped into methods.

* **Results.** For each method (runs sharing an experiment name: model seeds) and metric: the
  mean over seeds of the run's test value and its two-sided 95% t interval
  (``mean ± t_{0.975, n-1} · sd / √n``; none for one seed).
* **Paired tests** of every method against the baseline method, for every metric: each user's
  per-user value is averaged over the method's seeds (likewise the baseline's), the users both
  evaluated are paired, and the differences get a paired t-test, a Wilcoxon signed-rank test
  and a sign-flip permutation test (:mod:`recsys.report.significance`). Holm's correction runs
  over **all** comparisons of the report (every method × metric), separately per test.
* **Cohorts.** Users by train-activity quartile (among the evaluated users), per-cohort means of
  the seed-averaged per-user metrics; items split into head (the 20% most popular in train) and
  tail, with recall@K on each group's test items; and statistics of the recommended lists
  (coverage, novelty, average popularity, head share, Gini of exposure), averaged over seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from recsys.errors import RecsysError
from recsys.report.cohorts import (
    activity_cohorts,
    cohort_table,
    item_group_recall,
    list_stats,
    popularity_groups,
)
from recsys.report.compare import Method
from recsys.report.denoise_stats import seed_mean_per_user
from recsys.report.runs_loader import per_user_metrics
from recsys.report.significance import holm_table, mean_ci, paired_tests
from recsys.spec import DataSpec

TESTS = ("t", "wilcoxon", "perm")


def results_frame(methods: list[Method], metrics: Sequence[str]) -> pl.DataFrame:
    """One row per (method, metric): ``mean, ci_low, ci_high, std, n, seeds``."""
    rows = []
    for m in methods:
        for metric in metrics:
            values = [float(r.results["test"][metric]) for r in m.runs]
            mean, lo, hi = mean_ci(values)
            rows.append(
                {
                    "method": m.name,
                    "metric": metric,
                    "mean": mean,
                    "ci_low": lo,
                    "ci_high": hi,
                    "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                    "n": len(values),
                    "seeds": ",".join(str(s) for s in m.seeds),
                }
            )
    return pl.DataFrame(rows, schema_overrides={"std": pl.Float64})


def seed_averaged(methods: list[Method], metrics: Sequence[str]) -> dict[str, pl.DataFrame]:
    """Per method: ``user_idx`` and each metric averaged over the method's seeds."""
    out = {}
    for m in methods:
        frames = [per_user_metrics(r, tuple(metrics)) for r in m.runs]
        per_metric = [seed_mean_per_user(frames, metric) for metric in metrics]
        joined = per_metric[0]
        for extra in per_metric[1:]:
            joined = joined.join(extra, on="user_idx", how="full", coalesce=True)
        out[m.name] = joined.sort("user_idx")
    return out


def tests_frame(
    per_user: dict[str, pl.DataFrame], baseline: str, metrics: Sequence[str], seed: int = 0
) -> pl.DataFrame:
    """One row per (method ≠ baseline, metric): ``delta, d_z, users`` and for each test
    ``p_<test>`` and its Holm-adjusted ``p_<test>_holm`` (over every row of the frame)."""
    rows = []
    base = per_user[baseline]
    for name, frame in per_user.items():
        if name == baseline:
            continue
        for metric in metrics:
            joined = frame.select("user_idx", metric).join(
                base.select("user_idx", pl.col(metric).alias("_base")), on="user_idx"
            )
            joined = joined.drop_nulls()
            res = paired_tests(
                joined[metric].to_numpy().astype(np.float64),
                joined["_base"].to_numpy().astype(np.float64),
                seed=seed,
            )
            rows.append(
                {
                    "method": name,
                    "metric": metric,
                    "delta": res.delta,
                    "d_z": res.d_z,
                    "users": res.n,
                    "p_t": res.p_t,
                    "p_wilcoxon": res.p_wilcoxon,
                    "p_perm": res.p_perm,
                }
            )
    schema = {
        "method": pl.String,
        "metric": pl.String,
        "delta": pl.Float64,
        "d_z": pl.Float64,
        "users": pl.Int64,
        **{f"p_{t}": pl.Float64 for t in TESTS},
    }
    frame = pl.DataFrame(rows, schema=schema)
    for t in TESTS:
        adjusted = holm_table(frame[f"p_{t}"].to_list()) if frame.height else []
        frame = frame.with_columns(pl.Series(f"p_{t}_holm", adjusted, dtype=pl.Float64))
    return frame


@dataclass(frozen=True)
class Cohorts:
    """Cohort and list statistics of every method."""

    users: pl.DataFrame
    """``method, cohort, users, <metrics>``: per activity quartile."""
    items: pl.DataFrame
    """``method, head_recall, tail_recall, coverage, novelty, arp, head_share, gini`` (means
    over seeds) at K = ``k``."""
    k: int
    head_items: int
    n_items: int


def cohorts(
    methods: list[Method],
    per_user: dict[str, pl.DataFrame],
    spec: DataSpec,
    metrics: Sequence[str],
) -> Cohorts:
    """Cohort tables from the dataset's train counts and each run's test top-K lists."""
    train_users = spec.train.users.numpy()
    user_counts = np.bincount(train_users, minlength=spec.n_users)
    item_counts = np.bincount(spec.train.items.numpy(), minlength=spec.n_items)
    head = popularity_groups(item_counts)
    n_train_users = int((user_counts > 0).sum())
    user_rows = []
    item_rows = []
    ks: set[int] = set()
    lookup = _IdLookup.of(spec)
    for m in methods:
        frame = per_user[m.name]
        labels = activity_cohorts(user_counts, frame["user_idx"].to_numpy().astype(np.int64))
        table = cohort_table(frame, labels, list(metrics))
        user_rows.append(table.with_columns(pl.lit(m.name).alias("method")))
        per_seed = []
        for run in m.runs:
            users, topk = lookup.topk(run.dir)
            k = topk.shape[1]
            ks.add(k)
            csr = lookup.test_csr(users)
            rec = item_group_recall(topk, csr, head, k)
            stats = list_stats(topk, item_counts, n_train_users, head)
            per_seed.append({"head_recall": rec["head"], "tail_recall": rec["tail"], **stats})
        item_rows.append(
            {
                "method": m.name,
                **{key: float(np.mean([s[key] for s in per_seed])) for key in per_seed[0]},
            }
        )
    if len(ks) > 1:
        raise RecsysError(f"runs wrote top-K lists of different lengths {sorted(ks)}")
    users_frame = pl.concat(user_rows).select("method", "cohort", "users", *metrics)
    return Cohorts(users_frame, pl.DataFrame(item_rows), ks.pop(), int(head.sum()), spec.n_items)


@dataclass(frozen=True)
class _IdLookup:
    """The dataset's id tables and its test pairs sorted by user, built once per report."""

    users: pl.DataFrame
    items: pl.DataFrame
    test_users: np.ndarray
    test_items: np.ndarray

    @classmethod
    def of(cls, spec: DataSpec) -> _IdLookup:
        tu, ti = spec.test.users.numpy(), spec.test.items.numpy()
        order = np.argsort(tu, kind="stable")
        return cls(
            pl.DataFrame({"user_id": spec.user_ids.astype(str)}).with_row_index("u"),
            pl.DataFrame({"item_id": spec.item_ids.astype(str)}).with_row_index("i"),
            tu[order],
            ti[order],
        )

    def topk(self, run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
        """(user indices, users × K item indices) from ``topk_test.parquet`` (original ids);
        users with fewer than K candidate items (shorter lists) are left out."""
        path = run_dir / "topk_test.parquet"
        if not path.is_file():
            raise RecsysError(f"{run_dir}: no topk_test.parquet (the run did not save its lists)")
        top = (
            pl.read_parquet(path)
            .with_columns(pl.col("user_id").cast(pl.String), pl.col("item_id").cast(pl.String))
            .join(self.users, on="user_id", how="left")
            .join(self.items, on="item_id", how="left")
        )
        if top["u"].null_count() or top["i"].null_count():
            raise RecsysError(f"{path}: ids that are not in the run's dataset")
        k = int(top["rank"].max())  # type: ignore[arg-type]
        full = top.group_by("u").len().filter(pl.col("len") == k).select("u")
        top = top.join(full, on="u", how="semi").sort("u", "rank")
        u = top["u"].to_numpy().astype(np.int64).reshape(-1, k)[:, 0]
        return u, top["i"].to_numpy().astype(np.int64).reshape(-1, k)

    def test_csr(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """CSR (indptr, indices) of the test items of ``users`` (rows in that order)."""
        starts = np.searchsorted(self.test_users, users, side="left")
        lengths = np.searchsorted(self.test_users, users, side="right") - starts
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        idx = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        return indptr.astype(np.int64), self.test_items[idx].astype(np.int64)

"""Tuning LightGCN on ml-100k: what pruning saves, and whether the tuned configuration beats
the default one on test.

For each study seed, the same search (``conf/tune/ml100k-lightgcn.toml``: layers 1-4, L2
1e-6..1e-2 log, lr 1e-4..5e-2 log, TPE, up to 100 epochs with early stopping on validation
NDCG@20) runs twice, with the median pruner and without pruning, ``--trials`` finished trials
each. Reported per search: epochs trained over all trials (the cost pruning cuts; the two
searches diverge after the first pruned trial, hence several seeds), wall time, best
validation NDCG@20. Then the best trial of the pruned search with study seed 0 is retrained
with model seeds 0, 1, 2 beside the default experiment (conf/exp/ml100k-lightgcn.toml) and the
paired per-user test on test NDCG@20 is read from the study report.

Usage::

    python benchmarks/tune_pruning.py --out docs/benchmarks/tune_lightgcn.md \\
        --work /tmp/tune-bench --trials 30 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # `python benchmarks/...` puts only benchmarks/ on the path

from optuna.trial import TrialState  # noqa: E402

from recsys.tune.context import load_context  # noqa: E402
from recsys.tune.report import write_tune_report  # noqa: E402
from recsys.tune.retrain import choose_trial, retrain  # noqa: E402
from recsys.tune.storage import default_url  # noqa: E402
from recsys.tune.study import run_search  # noqa: E402

CONF = REPO / "conf" / "tune" / "ml100k-lightgcn.toml"


def search(work: Path, seed: int, pruner: str, trials: int, extra: list[str]) -> dict[str, object]:
    name = f"lgcn-s{seed}-{pruner}"
    sets = [*extra, f"name={name}", f"sampler.seed={seed}", f"n_trials={trials}"]
    sets.append(f"pruner.name={pruner}")
    ctx = load_context(CONF, sets, work / "runs")
    url = default_url(ctx.runs_dir, name)
    study = run_search(ctx, url)  # a finished study is reused as it is
    done = study.get_trials(deepcopy=False)
    ends = [t.datetime_complete for t in done if t.datetime_complete is not None]
    seconds = (max(ends) - min(t.datetime_start for t in done)).total_seconds()
    return {
        "name": name,
        "seed": seed,
        "pruner": pruner,
        "complete": sum(t.state == TrialState.COMPLETE for t in done),
        "pruned": sum(t.state == TrialState.PRUNED for t in done),
        "failed": sum(t.state == TrialState.FAIL for t in done),
        "epochs": sum(int(t.user_attrs.get("epochs_run", 0)) for t in done),
        "seconds": seconds,
        "best": study.best_value,
        "best_params": study.best_params,
        "ctx": ctx,
        "study": study,
        "url": url,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("/tmp/tune-bench"))
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--set", action="append", default=[], help="tune-config override")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for seed in args.seeds:
        for pruner in ("median", "none"):
            row = search(args.work, seed, pruner, args.trials, args.set)
            rows.append(row)
            print(
                f"seed {seed} {pruner:6s}: {row['complete']} complete, {row['pruned']} pruned, "
                f"{row['epochs']} epochs, {row['seconds']:.0f} s, best valid "
                f"NDCG@20 {row['best']:.4f}",
                flush=True,
            )
    first = next(r for r in rows if r["pruner"] == "median")
    ctx, study = first["ctx"], first["study"]
    comparisons = []
    for baseline in ("experiment", "defaults"):
        ctx_b = load_context(
            CONF,
            [*ctx.sets, f"retrain.baseline={baseline}"],
            args.work / "runs",  # type: ignore[attr-defined]
        )
        done = retrain(ctx_b, choose_trial(study))  # type: ignore[arg-type]
        report = write_tune_report(
            ctx_b,
            study,
            str(first["url"]),
            done,
            args.work / f"report-{baseline}",  # type: ignore[arg-type]
        )
        comparisons.append((baseline, done, report))
    lines = [
        "# Tuning LightGCN on ml-100k: pruning's saving and the tuned model on test",
        "",
        f"Command: `python benchmarks/tune_pruning.py --out {args.out} --trials {args.trials} "
        f"--seeds {' '.join(map(str, args.seeds))} --threads {args.threads}"
        + "".join(f" --set {x!r}" for x in args.set)
        + "` "
        f"({args.threads} torch thread(s) per search; wall times below are from the trials' own "
        "start and end times, so a rerun that reuses the stored studies reports the original "
        "ones).",
        "",
        "Search: `conf/tune/ml100k-lightgcn.toml` (layers 1-4, L2 1e-6..1e-2 log, lr "
        "1e-4..5e-2 log; TPE, 10 random startup trials, multivariate; up to 100 epochs, early "
        "stopping on validation NDCG@20 with patience 10). The same search with the median "
        "pruner (5 startup trials, 10 warm-up epochs) and without pruning; the searches diverge "
        "after the first pruned trial, so each study seed gives one paired comparison.",
        "",
        "## Epochs trained per search",
        "",
        "| study seed | pruner | complete | pruned | failed | epochs trained | wall s | best valid NDCG@20 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['seed']} | {r['pruner']} | {r['complete']} | {r['pruned']} | {r['failed']} | "
            f"{r['epochs']} | {r['seconds']:.0f} | {r['best']:.4f} |"
        )
    lines += [
        "",
        "| study seed | epochs without / with pruning | wall time without / with |",
        "|---|---|---|",
    ]
    for seed in args.seeds:
        a = next(r for r in rows if r["seed"] == seed and r["pruner"] == "median")
        b = next(r for r in rows if r["seed"] == seed and r["pruner"] == "none")
        lines.append(
            f"| {seed} | {b['epochs'] / a['epochs']:.2f}x ({b['epochs']} / {a['epochs']}) | "
            f"{b['seconds'] / a['seconds']:.2f}x |"
        )
    for baseline, done, report in comparisons:
        tests = {r["metric"]: r for r in report.tests["rows"]}
        means = {(r["method"], r["metric"]): r for r in report.table.to_dicts()}
        what = (
            "`conf/exp/ml100k-lightgcn.toml` as written (3 layers, L2 1e-3, lr 1e-2: the best "
            "point of the 6-point grid in `ml100k_quality.md`)"
            if baseline == "experiment"
            else "the experiment with the tuned keys at their defaults (3 layers, BPR L2 1e-4, "
            "lr 1e-3)"
        )
        lines += [
            "",
            f"## Test: best trial of the pruned search (seed {first['seed']}) vs {done.baseline_method}, "
            f"model seeds {ctx.cfg.retrain.seeds}",  # type: ignore[attr-defined]
            "",
            f"Best parameters: `{json.dumps(first['best_params'])}`; baseline: {what}.",
            "",
            "| metric | tuned mean ± sd | baseline mean ± sd | Δ per user | d_z | paired t p | Wilcoxon p | users |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for m in ("ndcg@20", "recall@20", "ndcg@10", "recall@10"):
            t = tests.get(m)
            a, b = means.get((done.method, m)), means.get((done.baseline_method, m))
            if t is None or a is None or b is None:
                continue
            lines.append(
                f"| {m} | {a['mean']:.4f} ± {a['std']:.4f} | {b['mean']:.4f} ± {b['std']:.4f} | "
                f"{t['delta']:+.4f} | {t['d_z']:+.3f} | {t['p_t']:.2g} | {t['p_wilcoxon']:.2g} | "
                f"{t['users']} |"
            )
    lines += [
        "",
        "Full study reports: `report-experiment/` and `report-defaults/` under `--work` "
        "(regenerated by the command above; finished studies and runs there are reused).",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

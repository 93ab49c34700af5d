"""Small tune configs on ml-100k (MF, a few epochs) written into a test's directory."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MF_EXP = ROOT / "conf" / "exp" / "ml100k-mf.toml"


def write_tune(
    path: Path,
    *,
    name: str = "t-mf",
    n_trials: int = 4,
    epochs: int = 2,
    extra: str = "",
    pruner: str = 'name = "none"',
    params: str | None = None,
) -> Path:
    """A tune file tuning MF's learning rate (random sampler, seeded)."""
    params = params or (
        '[params."train.lr"]\ntype = "float"\nlow = 1e-3\nhigh = 1e-2\nlog = true\n'
    )
    path.write_text(
        f'name = "{name}"\nexperiment = "{MF_EXP}"\nn_trials = {n_trials}\n'
        f'metric = "ndcg@20"\nheartbeat_seconds = 1\n'
        f'set = ["train.epochs={epochs}", "model.dim=8", "train.patience=0"]\n{extra}\n'
        f'[sampler]\nname = "random"\nseed = 0\n\n[pruner]\n{pruner}\n\n{params}'
    )
    return path

"""Multi-task models on CUDA: the same weights give the same task probabilities and ranking
scores as on CPU, and training steps run on the GPU (skipped without CUDA)."""

from __future__ import annotations

import pytest
import torch

from recsys.data.multitask.tensors import take_batch
from recsys.losses import LOSSES
from recsys.models import build_model
from recsys.samplers import SAMPLERS
from recsys.spec import DataSpec
from recsys.train.config import TrainConfig
from recsys.train.loop import fit

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@pytest.mark.parametrize("name", ["mmoe", "ple", "dtrn", "shared-bottom", "single-task"])
def test_cuda_matches_cpu_and_trains(name: str, ml100k_mt: DataSpec) -> None:
    mt = ml100k_mt.multitask
    assert mt is not None
    cpu = build_model(name, None, ml100k_mt, seed=0)
    gpu = build_model(name, None, ml100k_mt, seed=0).cuda()
    gpu.load_state_dict(cpu.state_dict())
    cpu.eval(), gpu.eval()
    batch = take_batch(mt, mt.rows["test"], torch.arange(4096))
    with torch.no_grad():
        a = torch.sigmoid(cpu(batch).logits)
        b = torch.sigmoid(gpu(batch.to("cuda")).logits).cpu()
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
        users = ml100k_mt.eval_users_test[:64]
        sa = cpu.scorer_for("test")(users)
        sb = gpu.scorer_for("test")(users.cuda()).cpu()
        torch.testing.assert_close(sa, sb, atol=1e-4, rtol=1e-4)
    loss = LOSSES["task-bce"]()
    loss.bind(ml100k_mt)
    cfg = TrainConfig(epochs=1, batch_size=8192, monitor="mean/auc")
    result = fit(gpu, [loss], SAMPLERS["task-rows"](), ml100k_mt, cfg, seed=0)
    assert result.epochs_run == 1 and torch.isfinite(torch.tensor(result.history[0]["loss"]))

"""Zoo speed: training throughput (tokens/s) per architecture on the CPU, and recording 1,000
stimuli. Run with ``pytest benchmarks/test_bench_zoo.py --benchmark-enable``."""

from __future__ import annotations

import pytest
import torch

from simbench.systems.torch import TorchSystem
from simbench.tasks import MultiObject
from simbench.zoo.models import ModelConfig, build_model
from simbench.zoo.training import default_train_config, response_loss


@pytest.mark.parametrize("arch", ["gru", "lstm", "transformer"])
def test_training_throughput(benchmark, arch):
    """One optimisation step at the default batch size; tokens/s goes into extra_info."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch))
    cfg = default_train_config(arch)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    stim = MultiObject().sample(cfg.batch_size, 0)
    tok, mask = torch.as_tensor(stim.tokens), torch.as_tensor(stim.response_mask)

    def step() -> None:
        loss = response_loss(model(tok), tok, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()

    benchmark.pedantic(step, rounds=10, warmup_rounds=2)
    tokens = int(stim.lengths.sum())
    benchmark.extra_info["tokens_per_step"] = tokens
    benchmark.extra_info["tokens_per_s"] = tokens / benchmark.stats.stats.mean
    benchmark.extra_info["threads"] = torch.get_num_threads()


@pytest.mark.parametrize("zid", ["gru_multi_s1", "lstm_multi_s1", "tf_multi_s1"])
def test_record_1000_stimuli(benchmark, zid):
    system = TorchSystem.from_zoo(zid)
    stim = MultiObject().sample(1000, 0, counts="all")
    rec = benchmark.pedantic(lambda: system.record(stim), rounds=3, warmup_rounds=1)
    assert rec.site("hidden")["activity"].shape[0] == 1000

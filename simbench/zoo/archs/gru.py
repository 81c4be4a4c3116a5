"""The zoo's one-layer GRU (width 128): site ``hidden`` is h_t."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from simbench.zoo.archs import Arch, register
from simbench.zoo.models import ModelConfig, RecurrentModel, reparametrize_recurrent


class GRUModel(RecurrentModel):
    """One-layer GRU, width 128; site ``hidden`` is h_t."""

    arch = "gru"
    gates = 3

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        d = config.d_model
        self.rnn = nn.GRU(d, d, batch_first=True)
        self.readout = nn.Linear(d, config.vocab_size)

    def init_state(self, batch: int, device: torch.device | None = None) -> Tensor:
        return torch.zeros(1, batch, self.config.d_model, device=device)

    def recur(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.rnn(x, state)

    def site_to_state(self, v: Tensor) -> Tensor:
        return v[None].contiguous()

    def head(self, site_seq: Tensor) -> Tensor:
        return self.readout(site_seq)


ARCH = register(Arch("gru", GRUModel, site_order=("embedding", "hidden"),
                     reparametrize=reparametrize_recurrent))

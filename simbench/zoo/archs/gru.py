"""The zoo's one-layer GRU (width 128): site ``hidden`` is h_t."""

from __future__ import annotations

from torch import nn

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


ARCH = register(Arch("gru", GRUModel, site_order=("embedding", "hidden"),
                     reparametrize=reparametrize_recurrent))

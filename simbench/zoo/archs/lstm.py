"""The zoo's one-layer LSTM (64 units): site ``hidden`` is concat(h_t, c_t), 128 wide."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from simbench.zoo.archs import Arch, register
from simbench.zoo.models import ModelConfig, RecurrentModel, reparametrize_recurrent


class LSTMModel(RecurrentModel):
    """One-layer LSTM with 64 units; site ``hidden`` is concat(h_t, c_t) (128 wide).

    nn.LSTM returns only h per step; the cell states c_t are recomputed from the gates (which
    depend only on x_t and h_{t-1}, both known) with an elementwise scan, so recording both
    costs one extra matmul and no per-step matmuls.
    """

    arch = "lstm"
    gates = 4

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.units = config.d_model // 2
        self.rnn = nn.LSTM(config.d_model, self.units, batch_first=True)
        self.readout = nn.Linear(self.units, config.vocab_size)

    def init_state(self, batch: int, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
        z = torch.zeros(1, batch, self.units, device=device)
        return (z, z.clone())

    def recur(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
              ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if state is None:
            state = self.init_state(x.shape[0], x.device)
        hs, (h_n, c_n) = self.rnn(x, state)
        if x.shape[1] == 1:
            return torch.cat([hs, c_n.transpose(0, 1)], -1), (h_n, c_n)
        h_prev = torch.cat([state[0].transpose(0, 1), hs[:, :-1]], 1)
        gates = (x @ self.rnn.weight_ih_l0.T + h_prev @ self.rnn.weight_hh_l0.T
                 + self.rnn.bias_ih_l0 + self.rnn.bias_hh_l0)
        i, f, g, _ = gates.chunk(4, -1)
        ig = torch.sigmoid(i) * torch.tanh(g)
        f = torch.sigmoid(f)
        c = state[1][0]
        cs = []
        for t in range(x.shape[1]):
            c = f[:, t] * c + ig[:, t]
            cs.append(c)
        cseq = torch.stack(cs, 1)
        return torch.cat([hs, cseq], -1), (h_n, c_n)

    def site_to_state(self, v: Tensor) -> tuple[Tensor, Tensor]:
        return (v[None, :, : self.units].contiguous(), v[None, :, self.units:].contiguous())

    def head(self, site_seq: Tensor) -> Tensor:
        return self.readout(site_seq[..., : self.units])

    def forward(self, tokens: Tensor) -> Tensor:
        """Teacher-forced logits without the c_t scan (what training uses)."""
        hs, _ = self.rnn(self.embed(tokens))
        return self.readout(hs)


ARCH = register(Arch("lstm", LSTMModel, site_order=("embedding", "hidden"),
                     reparametrize=reparametrize_recurrent))

"""The intervention engine with counterfactual-latent terms (CLMAS and the latent stitch).

:class:`CLEngine` trains a map with ``(1 - eps) L_MAS + eps L_CL``: the behaviour loss on
directions into accessible systems and the CL loss (:mod:`~simbench.interventions.cl_loss`)
on directions into recording-only ones, whose counterfactual latents come from
:mod:`~simbench.interventions.states`. CLMAS and the latent stitch are this engine with
different maps and directions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn.utils import parametrize

from simbench.devices import to_device
from simbench.errors import ParameterError
from simbench.interventions.cl_loss import cl_fit, cl_loss
from simbench.interventions.engine import SPLITS, Engine, EngineConfig, Party, Rows
from simbench.interventions.maps import InterventionMap
from simbench.interventions.runners import Runner
from simbench.interventions.states import Match, StateIndex, counterfactual_states
from simbench.seeds import rng as seeded_rng


class CLEngine(Engine):
    """The engine with counterfactual-latent terms: ``(1 - eps) L_MAS + eps L_CL``.

    ``behaviour`` lists directions trained on the target's behaviour (an accessible target),
    ``latent`` those trained with the CL loss (the target may be recording-only). Without one
    kind the loss is the other alone. Early stopping watches the mean of the behavioural
    directions' validation IIA and the latent ones' validation R^2.
    """

    def __init__(self, parties: Sequence[Party], imap: InterventionMap,
                 directions: Sequence[tuple[int, int]], config: EngineConfig, *,
                 eps: float, behaviour: Sequence[tuple[int, int]],
                 latent: Sequence[tuple[int, int]]) -> None:
        if not 0.0 <= eps < 1.0:
            raise ParameterError(f"eps = {eps} is outside [0, 1)", field="eps",
                                 fix="eps is the convex weight of the CL loss: "
                                 "L = (1 - eps) L_MAS + eps L_CL")
        for s, t in behaviour:
            if not parties[t].accessible:
                raise ParameterError(f"direction {s}->{t} is behavioural but "
                                     f"'{parties[t].system_id}' cannot be run", field="eps")
        if latent and config.stepwise:
            raise ParameterError("stepwise interventions need to run the target; the CL loss "
                                 "patches one step of recorded latents", field="stepwise",
                                 fix="drop --stepwise")
        self.eps = float(eps)
        self.behaviour = list(behaviour)
        self.latent = list(latent)  # matched and reported (cl_fit) even when eps = 0
        # eps = 0: the CL directions carry no weight, so they are not trained (plain MAS)
        self.latent_trained = self.latent if (eps > 0 or not behaviour) else []
        self.matches: dict[str, dict[tuple[int, int], Match]] = {}
        super().__init__(parties, imap, directions, config,
                         trained=[*self.behaviour, *self.latent_trained])

    def _prepare(self) -> None:
        for party in self.parties:  # recorded latents arrive on the CPU
            for split, lat in party.latents.items():
                party.latents[split] = to_device(lat, self.cfg.device)
        super()._prepare()
        rng = seeded_rng(self.cfg.seed, 0xC0FF)
        for split in SPLITS:
            self.matches[split] = {}
            index: dict[int, StateIndex] = {}
            for s, t in self.latent:
                if t not in index:
                    index[t] = StateIndex(self.parties[t].pools[split],
                                          f"{split} ({self.parties[t].system_id})")
                iv = self.data[split][(s, t)].iv
                carry = self.cfg.carry
                states = counterfactual_states(self.parties[s].pools[split],
                                               self.parties[t].pools[split], iv.src_idx,
                                               iv.spos, iv.tgt_idx, iv.tpos, carry)
                idx, pos = index[t].match(states, rng)
                dev = self.cfg.device
                self.matches[split][(s, t)] = Match(to_device(idx, dev), to_device(pos, dev))

    # ---- latents ---------------------------------------------------------------------------
    def intervened_latents(self, split: str, direction: tuple[int, int],
                           rows: Rows) -> tuple[Tensor, Tensor, Tensor]:
        """(patched target latent h', counterfactual latent c, unpatched h_t) for ``rows``."""
        (rows,) = self.device_rows([rows])
        s, t = direction
        d = self.data[split][direction]
        m = self.matches[split][direction]
        lat_t = self.parties[t].latents[split]
        h_t = lat_t[d.tgt_idx[rows], d.tpos[rows]]
        h_s = self.parties[s].latents[split][d.src_idx[rows], d.spos[rows]]
        h_new = self.imap.apply(t, h_t, self.imap.code(s, t, h_s))
        return h_new, lat_t[m.idx[rows], m.pos[rows]], h_t

    def step_loss(self, batches: dict[tuple[int, int], Rows]) -> Tensor:
        """Convex mix of the behaviour loss (directions into accessible systems) and L_CL."""
        beh = {d: r for d, r in batches.items() if d in self.behaviour}
        lat = [(d, r) for d, r in batches.items() if d in self.latent_trained]
        l_mas = super().step_loss(beh) if beh else None
        l_cl = None
        if lat:
            l_cl = torch.stack([cl_loss(*self.intervened_latents("train", d, r)[:2])
                                for d, r in lat]).mean()
        if l_mas is None:
            assert l_cl is not None
            return l_cl
        if l_cl is None:
            return l_mas
        return (1 - self.eps) * l_mas + self.eps * l_cl

    @torch.no_grad()
    def cl_fit(self, split: str = "test", directions: Sequence[tuple[int, int]] | None = None,
               chunk: int = 4096) -> dict[tuple[int, int], dict]:
        """Fit of patched latents to counterfactual latents per latent direction.

        Alongside: ``r2_unpatched``, the fit of the *unpatched* target latent, so a reader can
        see what the intervention added.
        """
        out = {}
        with parametrize.cached():
            for direction in self.latent if directions is None else directions:
                n = len(self.data[split][direction].iv)
                parts = [self.intervened_latents(split, direction,
                                                 torch.arange(i, min(i + chunk, n),
                                                              device=self.cfg.device))
                         for i in range(0, n, chunk)]
                h, c, h0 = (torch.cat([p[j] for p in parts]) for j in range(3))
                fit = cl_fit(h, c)
                fit["r2_unpatched"] = cl_fit(h0, c)["r2"]
                fit["n"] = n
                out[direction] = fit
        return out

    def validation_score(self) -> dict[tuple[int, int], float]:
        """Validation IIA of the behavioural directions, validation R^2 of the trained latent
        ones (R^2 is unbounded below: early stopping must not assume a score is >= 0)."""
        val = self.iia("val", self.behaviour) if self.behaviour else {}
        if self.latent_trained:
            for direction, fit in self.cl_fit("val", self.latent_trained).items():
                val[direction] = fit["r2"]
        return val

    @property
    def validation_metric(self) -> str:
        """``"iia"``, ``"r2"``, or ``"iia+r2"`` when both kinds of direction are trained."""
        kinds = [k for k, dirs in (("iia", self.behaviour), ("r2", self.latent_trained)) if dirs]
        return "+".join(kinds) or "iia"

    def attach_runner(self, index: int, runner: Runner) -> None:
        """Make a recording-only party runnable after training (the evaluation protocol).

        The runner records the party's own pool stimuli, so patched runs continue exactly the
        stimuli whose recorded latents were used.
        """
        party = self.parties[index]
        party.runner = runner
        for split in SPLITS:
            runner.cache(split, to_device(party.pools[split].tokens, self.cfg.device))

"""Recording-only systems in the intervention engine: counterfactual latents and the CL loss.

A recording-only system B is never run. What it offers is recorded activity labelled with the
causal variables at every step. This module turns that into engine data:

- :func:`recorded_party` / :func:`party_from_arrays`: a :class:`~simbench.interventions.engine.
  Party` whose pools and latents come from the recording itself (its stimuli, tokens mapped to
  ids with the task vocabulary, its variable coordinates), split into train/val/test stimuli
  (seeded, stratified by sequence length so every split sees every length). Every check a
  recording made by someone else can fail is here, with messages that name what is wrong.
- :class:`StateIndex`: the *counterfactual latent* of an intervention into B is a recorded
  latent of B at a state whose causal variables all equal the counterfactual ones (the target's
  variables at the patched step with the intervened ones set to the source's values). A random
  matching state is drawn per intervention (seeded); none matching is an error that counts
  what is missing.
- :func:`cl_loss` (``0.5 * [(1 - cos) + MSE]``) and :func:`cl_fit` (cosine and R^2 on held-out
  counterfactuals).
- :class:`CLEngine`: the engine with a convex mix ``(1 - eps) L_MAS + eps L_CL``: behaviour loss
  on directions into accessible systems, CL loss on the directions named as latent ones. CLMAS
  and the latent stitch are this engine with different maps and directions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils import parametrize

from simbench.errors import ParameterError, RecordingError
from simbench.interventions.data import Pool
from simbench.interventions.engine import SPLITS, Engine, EngineConfig, Party
from simbench.interventions.maps import InterventionMap
from simbench.tasks.base import EOS, PAD, TOKEN_ID, UNDEFINED, Stimuli, Task

SPLIT_FRACTIONS = (0.7, 0.15, 0.15)  # train / val / test stimuli of a recording
MIN_PER_SPLIT = 10  # fewer stimuli than this in a split cannot cover the task's states
_PROBE_N = 2000  # stimuli sampled from a task to learn which tokens/values it can produce


# ---- recorded parties -------------------------------------------------------------------------
def recorded_party(system: Any, *, site: str, task: Task, variable: str | Sequence[str],
                   seed: int,
                   values: tuple[int, int] | None = None) -> Party:
    """A recording-only Party from a :class:`~simbench.systems.RecordedSystem` at ``site``.

    Needs, at that site: ``activity`` (stimulus, time, unit), ``token`` (stimulus, time; token
    strings of the task's vocabulary), optionally ``valid`` (bool; default: token not PAD or
    empty), and one coordinate (stimulus, time) per causal variable of the task.
    """
    rec = system.recording
    ds = rec.site(site)
    file = rec.path
    act = ds["activity"]
    if "time" not in act.dims:
        raise RecordingError("activity has no 'time' dim; counterfactual latents need the "
                             "activity after every step (stimulus, time, unit)", file=file,
                             site=site, field="activity")
    missing = [v for v in ("token", *task.variables) if v not in ds.coords]
    if missing:
        have = [str(c) for c in ds.coords if c not in ds.dims and c != "stimulus_id"]
        raise RecordingError(
            f"recording lacks the coordinate(s) {', '.join(repr(m) for m in missing)} "
            f"(stimulus, time) that matching counterfactual latents on task '{task.name}' "
            f"needs (its causal variables: {', '.join(task.variables)}, plus 'token'); "
            f"coordinates present: {', '.join(have) or '(none)'}", file=file, site=site,
            field=missing[0], fix="add one integer coordinate per causal variable holding its "
            "value after each step (see the README's recording schema)")
    act = act.transpose("stimulus", "time", "unit")
    tok_str = np.asarray(ds["token"].transpose("stimulus", "time").values, dtype=str)
    if "valid" in ds.coords:
        valid = np.asarray(ds["valid"].transpose("stimulus", "time").values, dtype=bool)
    else:
        valid = (tok_str != "PAD") & (tok_str != "")
    unknown = sorted(set(np.unique(tok_str[valid]).tolist()) - set(TOKEN_ID))
    if unknown:
        raise RecordingError(f"tokens {unknown[:8]} are not in the task vocabulary",
                             file=file, site=site, field="token",
                             fix=f"tokens are strings of: {' '.join(task.vocab[1:])}")
    ids = np.vectorize(lambda s: TOKEN_ID.get(s, PAD), otypes=[np.int64])(tok_str)
    ids[~valid] = PAD
    variables = {v: np.asarray(ds[v].transpose("stimulus", "time").values) for v in task.variables}
    stim_ids = np.asarray(ds["stimulus_id"].values, dtype=str)
    return party_from_arrays(system.system_id, task, variable, ids, np.asarray(act.values),
                             variables, seed=seed, valid=valid, stimulus_ids=stim_ids,
                             values=values, file=file, site=site)


def party_from_arrays(system_id: str, task: Task, variable: str | Sequence[str],
                      tokens: np.ndarray,
                      activity: np.ndarray, variables: Mapping[str, np.ndarray], *, seed: int,
                      valid: np.ndarray | None = None, stimulus_ids: np.ndarray | None = None,
                      values: tuple[int, int] | None = None, file: Any = None,
                      site: str | None = None) -> Party:
    """A recording-only Party from plain arrays (tokens int [n, T], activity [n, T, d]).

    Checks that the tokens are the task's, that every variable value is one the task produces
    and agrees with the task's causal model on the recorded tokens, and that there are enough
    stimuli for three splits.
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    n = tokens.shape[0]
    valid = tokens != PAD if valid is None else np.asarray(valid, dtype=bool) & (tokens != PAD)
    need = MIN_PER_SPLIT * len(SPLITS)
    if n < need:
        raise RecordingError(
            f"recording has {n} stimuli; matching counterfactual latents needs at least {need} "
            f"({MIN_PER_SPLIT} per train/val/test split), and about {40 * len(task.all_counts)}"
            " to cover every state of the task in every split", file=file, site=site,
            field="stimulus", fix="record more stimuli (all counts, e.g. task.sample(600, seed, "
            "counts='all'))")
    probe = task.sample(_PROBE_N, 12345, counts="all")
    _check_tokens(task, tokens, valid, probe, file, site)
    recorded = {v: np.where(valid, np.asarray(variables[v], dtype=np.int64), UNDEFINED)
                for v in task.variables}
    _check_values(task, tokens, valid, recorded, probe, file, site)
    split_of = stratified_split(tokens, valid, seed)
    act = torch.as_tensor(np.where(valid[..., None], activity, 0.0), dtype=torch.float32)
    ids = (np.asarray(stimulus_ids, dtype=str) if stimulus_ids is not None
           else np.array([f"{system_id}-{i}" for i in range(n)]))
    party = Party(system_id, task, variable, int(act.shape[-1]), None)
    for i, split in enumerate(SPLITS):
        rows = np.flatnonzero(split_of == i)
        stim = _stimuli(task, tokens[rows], ids[rows], {k: v[rows] for k, v in recorded.items()})
        party.pools[split] = _pool(task, variable, stim, values, file, site)
        party.latents[split] = act[rows]
    return party


def stratified_split(tokens: np.ndarray, valid: np.ndarray, seed: int) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) per stimulus, ~70/15/15, stratified by length.

    Stimuli are ordered by (length, random) and dealt out in blocks of 20 (14/3/3), so every
    sequence length (for counting tasks: every count) lands in every split when it has at
    least ~7 stimuli.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC1A5]))
    lengths = valid.sum(1)
    order = np.lexsort((rng.random(len(tokens)), lengths))
    slot = np.arange(len(tokens)) % 20
    pattern = np.zeros(20, dtype=np.int64)
    pattern[[3, 10, 16]] = 1
    pattern[[6, 13, 19]] = 2
    out = np.empty(len(tokens), dtype=np.int64)
    out[order] = pattern[slot]
    return out


def _check_tokens(task: Task, tokens: np.ndarray, valid: np.ndarray, probe: Stimuli,
                  file: Any, site: str | None) -> None:
    used = set(np.unique(probe.tokens).tolist())
    present, counts = np.unique(tokens[valid], return_counts=True)
    foreign = [(int(t), int(c)) for t, c in zip(present, counts) if int(t) not in used]
    if foreign:
        names = ", ".join(f"'{task.vocab[t]}' ({c} steps)" for t, c in foreign[:6])
        raise RecordingError(
            f"the stimuli use tokens task '{task.name}' never produces: {names}; is this a "
            "recording of another task?", file=file, site=site, field="token",
            fix=f"{task.name} uses: {' '.join(task.vocab[t] for t in sorted(used) if t != PAD)}"
            "; pass the recording's own task with --task")


def _check_values(task: Task, tokens: np.ndarray, valid: np.ndarray,
                  recorded: Mapping[str, np.ndarray], probe: Stimuli, file: Any,
                  site: str | None) -> None:
    truth = task.causal_model(tokens)
    for name in task.variables:
        rec = recorded[name]
        possible = set(np.unique(probe.variables[name]).tolist()) | {UNDEFINED}
        present, counts = np.unique(rec[valid], return_counts=True)
        bad = [(int(v), int(c)) for v, c in zip(present, counts) if int(v) not in possible]
        if bad:
            lo, hi = min(possible - {UNDEFINED}), max(possible)
            listed = ", ".join(f"{name} = {v} ({c} steps)" for v, c in bad[:6])
            raise RecordingError(
                f"values task '{task.name}' cannot produce: {listed}; it produces {name} in "
                f"{lo}..{hi} (-1 = undefined)", file=file, site=site, field=name,
                fix=f"check the '{name}' coordinate, or pass the recording's own task")
        defined = valid & (rec != UNDEFINED)
        wrong = defined & (rec != truth[name])
        if wrong.any():
            i, t = np.argwhere(wrong)[0]
            raise RecordingError(
                f"'{name}' disagrees with task '{task.name}''s causal model on the recorded "
                f"tokens at {int(wrong.sum())} of {int(defined.sum())} steps (first: stimulus "
                f"{int(i)}, step {int(t)}: recorded {int(rec[i, t])}, causal model "
                f"{int(truth[name][i, t])})", file=file, site=site, field=name,
                fix="the coordinate must hold the variable's value after each step; use -1 "
                "where it is undefined")


def _stimuli(task: Task, tokens: np.ndarray, ids: np.ndarray,
             variables: dict[str, np.ndarray]) -> Stimuli:
    trig = np.argmax(tokens == TOKEN_ID["T"], axis=1)
    return Stimuli(task=task.name, tokens=tokens, lengths=(tokens != PAD).sum(1), ids=ids,
                   variables=variables, response_mask=task.response_mask(tokens),
                   trigger_pos=trig, counts=np.zeros(len(tokens), dtype=np.int64))


def _pool(task: Task, variable: str | Sequence[str], stim: Stimuli,
          values: tuple[int, int] | None, file: Any, site: str | None) -> Pool:
    names = (variable,) if isinstance(variable, str) else tuple(variable)
    joint = {v: stim.variables[v] for v in names}
    vals = joint[names[0]]
    allowed = task.intervenable_positions(stim.tokens)
    for v in joint.values():
        allowed &= v >= 0
    if not allowed.any():
        raise RecordingError(f"no intervenable step with a defined '{names[0]}'", file=file,
                             site=site, field=names[0])
    lo, hi = int(vals[allowed].min()), int(vals[allowed].max())
    if values is not None:
        allowed &= (vals >= values[0]) & (vals <= values[1])
    return Pool(task, names[0], stim, vals, allowed, (lo, hi),
                int(stim.response_mask.sum(1).max()), names, joint)


# ---- counterfactual latents -------------------------------------------------------------------
def counterfactual_states(source: Pool, target: Pool, src_idx: np.ndarray, spos: np.ndarray,
                          tgt_idx: np.ndarray, tpos: np.ndarray,
                          carry: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Every causal variable of the target task right after the intervention.

    The target's own values at the patched step, with its aligned variable (and ``carry``)
    set to the source's values there.
    """
    tv = target.stimuli.variables
    out = {k: v[tgt_idx, tpos].copy() for k, v in tv.items()}
    for sv, tvar in zip(source.variables, target.variables):
        out[tvar] = source.joint[sv][src_idx, spos]
    for name in carry:
        out[name] = source.stimuli.variables[name][src_idx, spos]
    return out


class StateIndex:
    """Recorded states of one split of a party, looked up by their causal variables.

    Candidate states are valid steps with every variable defined, except steps that read EOS
    (the causal model has finished there).
    """

    def __init__(self, pool: Pool, label: str = "") -> None:
        self.pool, self.label = pool, label
        self.names = tuple(pool.task.variables)
        var = pool.stimuli.variables
        ok = (pool.tokens != PAD) & (pool.tokens != EOS)
        for name in self.names:
            ok &= var[name] >= 0
        self.rows, self.pos = np.nonzero(ok)
        self.base = max(int(max(var[n].max() for n in self.names)) + 2, 2)
        keys = self._key({n: var[n][self.rows, self.pos] for n in self.names})
        order = np.argsort(keys, kind="stable")
        self.keys, self.rows, self.pos = keys[order], self.rows[order], self.pos[order]

    def _key(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        key = np.zeros(len(next(iter(values.values()))), dtype=np.int64)
        for name in self.names:
            v = np.asarray(values[name], dtype=np.int64)
            key = key * self.base + np.where((v >= 0) & (v < self.base), v + 1, 0)
        return key

    def match(self, states: Mapping[str, np.ndarray],
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A random recorded (stimulus, step) per requested state; raises when one is absent."""
        keys = self._key(states)
        lo = np.searchsorted(self.keys, keys, side="left")
        hi = np.searchsorted(self.keys, keys, side="right")
        found = hi > lo
        if not found.all():
            miss = ~found
            combos: dict[tuple[int, ...], int] = {}
            for i in np.flatnonzero(miss):
                combo = tuple(int(states[n][i]) for n in self.names)
                combos[combo] = combos.get(combo, 0) + 1
            listed = "; ".join(
                ", ".join(f"{n}={v}" for n, v in zip(self.names, c)) + f" ({k} counterfactuals)"
                for c, k in sorted(combos.items(), key=lambda kv: -kv[1])[:6])
            n_states = len(np.unique(self.keys))
            raise RecordingError(
                f"{int(miss.sum())} of {len(keys)} counterfactuals need a recorded state that "
                f"the {self.label or 'recording'} split does not have ({len(combos)} missing "
                f"states: {listed}); it has {len(self.pool)} stimuli with {len(self.keys)} "
                f"usable steps over {n_states} distinct states",
                field="stimulus", fix="record more stimuli so that every state of the task "
                "(e.g. every count in both phases) occurs in every split; about 30 stimuli "
                "per count is enough")
        pick = lo + (rng.random(len(keys)) * (hi - lo)).astype(np.int64)
        return self.rows[pick], self.pos[pick]


# ---- the counterfactual-latent loss -----------------------------------------------------------
def cl_loss(h: Tensor, c: Tensor) -> Tensor:
    """``0.5 * [(1 - cos(h, c)) + MSE(h, c)]``, averaged over rows (METHOD.md, CLMAS)."""
    cos = F.cosine_similarity(h, c, dim=-1, eps=1e-8)
    mse = ((h - c) ** 2).mean(-1)
    return (0.5 * ((1 - cos) + mse)).mean()


def cl_fit(h: Tensor, c: Tensor) -> dict[str, float]:
    """Held-out fit of intervened latents to counterfactual ones: mean cosine, R^2, MSE.

    R^2 is ``1 - SS_res / SS_tot`` over all units, SS_tot about each unit's mean of ``c``.
    """
    cos = F.cosine_similarity(h, c, dim=-1, eps=1e-8).mean()
    ss_res = ((h - c) ** 2).sum()
    ss_tot = ((c - c.mean(0, keepdim=True)) ** 2).sum().clamp(min=1e-12)
    return {"cosine": float(cos), "r2": float(1 - ss_res / ss_tot),
            "mse": float(((h - c) ** 2).mean())}


@dataclasses.dataclass
class Match:
    """For each intervention of one direction and split: the matched recorded latent."""

    idx: Tensor
    pos: Tensor


class CLEngine(Engine):
    """The engine with counterfactual-latent terms: ``(1 - eps) L_MAS + eps L_CL``.

    ``behaviour`` lists directions trained on the target's behaviour (they need an accessible
    target), ``latent`` those trained with the CL loss (the target may be recording-only: it
    is never run). With no behavioural directions the loss is ``L_CL`` alone (latent stitch);
    with no latent ones it is ``L_MAS`` (eps = 0 is plain MAS with the recorded side used as a
    source only). Early stopping watches validation IIA of the behavioural directions and
    validation R^2 of the latent ones (their mean).
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
                party.latents[split] = lat.to(self.cfg.device)
        super()._prepare()
        rng = np.random.default_rng(np.random.SeedSequence([self.cfg.seed, 0xC0FF]))
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
                self.matches[split][(s, t)] = Match(torch.as_tensor(idx, device=dev),
                                                    torch.as_tensor(pos, device=dev))

    # ---- latents ---------------------------------------------------------------------------
    def intervened_latents(self, split: str, direction: tuple[int, int],
                           rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(patched target latent h', counterfactual latent c, unpatched h_t) for ``rows``."""
        s, t = direction
        d = self.data[split][direction]
        m = self.matches[split][direction]
        lat_t = self.parties[t].latents[split]
        h_t = lat_t[d.tgt_idx[rows], d.tpos[rows]]
        h_s = self.parties[s].latents[split][d.src_idx[rows], d.spos[rows]]
        h_new = self.imap.apply(t, h_t, self.imap.code(s, t, h_s))
        return h_new, lat_t[m.idx[rows], m.pos[rows]], h_t

    def step_loss(self, batches: dict[tuple[int, int], Tensor]) -> Tensor:
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
        val = self.iia("val", self.behaviour) if self.behaviour else {}
        if self.latent_trained:
            for direction, fit in self.cl_fit("val", self.latent_trained).items():
                val[direction] = fit["r2"]
        return val

    def attach_runner(self, index: int, runner: Any) -> None:
        """Make a recording-only party runnable after training (the evaluation protocol).

        The runner records the party's own pool stimuli, so patched runs continue exactly the
        stimuli whose recorded latents were used.
        """
        party = self.parties[index]
        party.runner = runner
        for split in SPLITS:
            runner.cache(split, torch.as_tensor(party.pools[split].tokens,
                                                device=self.cfg.device))


class InverseStitch(InterventionMap):
    """The Moore-Penrose inverse of a trained stitch ``s -> t``, used as a stitch ``t -> s``.

    ``h'_s = (h_t - b) W^+`` with ``W = A B`` the trained map (rank k, so h'_s lies in a
    k-dimensional subspace of the source's space). Keeps the trained direction working too.
    """

    def __init__(self, stitch: Any, s: int, t: int) -> None:
        super().__init__()
        self.stitch, self.s, self.t = stitch, s, t
        seq = stitch.maps[f"{s}->{t}"]
        with torch.no_grad():
            w = seq[0].weight.T @ seq[1].weight.T  # [d_s, d_t]
            self.register_buffer("pinv", torch.linalg.pinv(w.double()).float())  # [d_t, d_s]
            b = seq[1].bias
            self.register_buffer("bias", b.detach().clone() if b is not None
                                 else torch.zeros(w.shape[1]))

    def code(self, s: int, t: int, h_s: Tensor) -> Tensor:
        if (s, t) == (self.t, self.s):
            return (h_s - self.bias) @ self.pinv
        return self.stitch.code(s, t, h_s)

    def apply(self, t: int, h_t: Tensor, z: Tensor) -> Tensor:
        return z.to(h_t.dtype)

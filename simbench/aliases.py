"""The community's measure ids as aliases of simbench measures and their parameters.

Users moving between tools name measures by the ids of the ``similarity`` repository
(Cloos et al., github.com/nacloos/similarity-repository): ``procrustes-angular``,
``svcca-var=0.99``, ``mutual_knn-topk=10``, ``ridge-lambda=1-pearsonr-cv=5folds``,
``cka-kernel=linear-hsic=song-score``, ``rsa-rdm=correlation-compare=spearman``, and the older
forms (``svcca-var99``, ``ridge-lambda1-pearson_r#5folds_cv``, ``cka-hsic_song``). This module
is the one table mapping such an id to (simbench measure, parameters). A registered measure
name always wins over an alias; an alias's parameters are defaults the user may still override.

Ids whose numbers are free (``mutual_knn-topk=N``, ``svcca-var=V``, ``shape_metric-alpha=A-
distance=angular``, ``ridge-lambda=L-pearsonr-cv=Kfolds``) are matched by :data:`TEMPLATES`.
Only ids whose value is the same quantity as the simbench measure's are listed: e.g.
``procrustes-angular-score`` (1 - 2 theta / pi) is not, since ``procrustes_angular`` reports
theta.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from simbench.errors import RegistryError, did_you_mean
from simbench.measure import Measure


@dataclasses.dataclass(frozen=True)
class Alias:
    """One community id: the simbench measure and parameters it means, and what differs."""

    id: str
    measure: str
    params: dict[str, Any]
    note: str = ""


_RSA_NOTE = "simbench's rsa defaults to the paper's protocol: the mean of 10 draws of 1,000 samples"
_CKA_RBF_NOTE = "rbf_sigma is a fraction of the median pairwise distance (Kornblith et al.)"

#: the table: every fixed community id simbench implements
ALIASES: tuple[Alias, ...] = (
    # shape metrics (Williams et al. 2021; netrep, repsim)
    Alias("procrustes-angular", "procrustes_angular", {}),
    Alias("procrustes-distance=angular", "procrustes_angular", {}),
    Alias("shape_metric-alpha=1-distance=angular", "procrustes_angular", {}),
    Alias("cca-angular", "shape_metric", {"alpha": 0.0}),
    Alias("cca-distance=angular", "shape_metric", {"alpha": 0.0}),
    # CCA family
    Alias("cca-score", "svcca", {"var": 1.0}, "mean canonical correlation, no SVD reduction"),
    Alias("svcca-var99", "svcca", {"var": 0.99}),
    Alias("svcca-var95", "svcca", {"var": 0.95}),
    Alias("svcca-score", "svcca", {"var": 0.99}),
    Alias("pwcca-score", "pwcca", {}),
    # ridge predictivity (Brain-Score, deepdive)
    Alias("ridge-lambda1-pearson_r#5folds_cv", "ridge", {"alpha": 1.0, "n_folds": 5}),
    # CKA (Kornblith et al. 2019): gretton = biased HSIC, song = unbiased
    Alias("cka-hsic_gretton", "cka", {}),
    Alias("cka-hsic_song", "cka", {"debiased": True}),
    Alias("cka-kernel=linear-hsic=gretton-score", "cka", {}),
    Alias("cka-kernel=linear-hsic=song-score", "cka", {"debiased": True}),
    Alias("cka-kernel=(rbf-sigma=1.0)-hsic=gretton-score", "cka",
          {"kernel": "rbf", "rbf_sigma": 1.0}, _CKA_RBF_NOTE),
    Alias("cka-kernel=(rbf-sigma=1.0)-hsic=song-score", "cka",
          {"kernel": "rbf", "rbf_sigma": 1.0, "debiased": True}, _CKA_RBF_NOTE),
    # RSA through rsatoolbox (old and new forms)
    # (rsatoolbox's "euclidean" RDM is the squared distance: the newer ids say so)
    *(Alias(form.format(rdm=rdm, new=new, cmp=cmp), "rsa",
            {"rdm_method": rdm, "compare_method": cmp}, _RSA_NOTE)
      for rdm, new in (("correlation", "correlation"), ("euclidean", "squared_euclidean"))
      for cmp in ("spearman", "corr", "cosine", "kendall")
      for form in ("rsa-{rdm}-{cmp}", "rsa-rdm={new}-compare={cmp}")),
)

_NUM = r"([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)"

#: ids with free numbers: (pattern, its form for listing, measure, parameters from the match)
TEMPLATES: tuple[tuple[str, str, str, Callable[[re.Match[str]], dict[str, Any]]], ...] = (
    (rf"mutual_knn-topk={_NUM}", "mutual_knn-topk=K", "mutual_knn",
     lambda m: {"k": int(float(m[1]))}),
    (rf"cknna-topk={_NUM}", "cknna-topk=K", "cknna", lambda m: {"k": int(float(m[1]))}),
    (rf"svcca-var={_NUM}", "svcca-var=V", "svcca", lambda m: {"var": float(m[1])}),
    (rf"shape_metric-alpha={_NUM}-distance=angular", "shape_metric-alpha=A-distance=angular",
     "shape_metric", lambda m: {"alpha": float(m[1])}),
    (rf"ridge-lambda={_NUM}-pearsonr-cv={_NUM}folds", "ridge-lambda=L-pearsonr-cv=Kfolds",
     "ridge", lambda m: {"alpha": float(m[1]), "n_folds": int(float(m[2]))}),
)

_BY_ID = {a.id: a for a in ALIASES}


def resolve(name: str) -> Alias | None:
    """The :class:`Alias` of a community id (table first, then templates), or None."""
    if name in _BY_ID:
        return _BY_ID[name]
    for pattern, _, measure, params in TEMPLATES:
        if match := re.fullmatch(pattern, name):
            return Alias(name, measure, params(match))
    return None


def looks_like_community_id(name: str) -> bool:
    """Whether an unknown name has the shape of a community id (``-``, ``=`` or ``#``)."""
    return any(c in name for c in "-=#")


def listing() -> list[tuple[str, str, str, str]]:
    """(id, measure, parameters, note) rows of every alias and template, for the CLI."""
    rows = [(a.id, a.measure, ", ".join(f"{k}={v}" for k, v in a.params.items()) or "(defaults)",
             a.note) for a in ALIASES]
    rows += [(form, measure, "from the id", "") for _, form, measure, _ in TEMPLATES]
    return rows


def known_ids() -> list[str]:
    """Every fixed id and template form (for suggestions)."""
    return [a.id for a in ALIASES] + [form for _, form, _, _ in TEMPLATES]


class AliasedMeasure(Measure):
    """A registered measure seen through a community id: its parameters' defaults are the
    id's, everything else (name, metadata, ``score``) is the measure's own. The Score's
    ``attrs["alias"]`` records the id."""

    def __init__(self, alias: Alias, target: Measure) -> None:
        self.alias, self.target = alias, target
        for attr in ("name", "family", "access", "min_systems", "max_systems", "symmetric",
                     "higher_is_better", "range", "citation", "description", "needs_task"):
            setattr(self, attr, getattr(target, attr))
        preset = {k: target.param(k).parse(v, measure=target.name)
                  for k, v in alias.params.items()}
        self.params = tuple(dataclasses.replace(p, default=preset[p.name]) if p.name in preset
                            else p for p in target.params)

    def __getattr__(self, attr: str) -> Any:  # e.g. null, lazy_activity
        if attr in ("alias", "target") or attr.startswith("__"):  # unpickling, copying
            raise AttributeError(attr)
        return getattr(self.target, attr)

    def score(self, systems: Any, **kwargs: Any) -> Any:
        """The target measure's score, with ``attrs["alias"]`` naming the id."""
        result = self.target.score(systems, **kwargs)
        if hasattr(result, "attrs"):
            result.attrs.setdefault("alias", self.alias.id)
        return result


def unknown_measure(name: str, measures: dict[str, Any], *, fix_suffix: Callable[[str], str]
                    ) -> RegistryError:
    """The error for a name that is neither a measure nor an alias, with the nearest name
    (a community-looking id is told it is not one simbench implements)."""
    if looks_like_community_id(name):
        return RegistryError(
            f"unknown measure '{name}': not a simbench measure, and not a community id "
            "simbench implements", field="measure",
            fix=fix_suffix(did_you_mean(name, [*measures, *known_ids()],
                                        command="simbench measures --aliases")))
    return RegistryError(f"unknown measure '{name}'", field="measure",
                         fix=fix_suffix(did_you_mean(name, measures,
                                                     command="simbench measures")))


__all__ = ["ALIASES", "TEMPLATES", "Alias", "AliasedMeasure", "known_ids", "listing",
           "looks_like_community_id", "resolve", "unknown_measure"]

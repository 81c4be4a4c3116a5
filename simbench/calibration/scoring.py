"""A null beside every score: what a measure declares, the ``null`` parameter, and the Score.

A measure says how simbench may draw a null for it with an optional class attribute ``null``
(read with a default, so plugins written before it keep working):

- ``null = "permute"``: simbench may re-pair whole stimuli between the two systems (a
  permutation null; see :mod:`simbench.calibration.permutation`);
- ``null = "own"``: the measure draws a null of its own (e.g. a causal measure's untrained
  random subspaces over seeds) when its ``null`` parameter is above 0;
- ``null = None``: no null; asking for one is an error naming the measure.

Without the attribute, a boolean ``permutable`` attribute decides, and without that, correlative
measures (scores of paired samples) may be permuted and others may not.

A measure that supports a null takes the parameter :func:`null_param` (``--null N`` on the
command line, ``null = N`` under ``[measures.<name>]`` in a spec; 0 = no null) and returns
:func:`with_null` of its score: the Score then carries ``null_mean``, ``null_sd``, ``p_value``,
``null_size`` and ``null_method``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from simbench.calibration.permutation import NULL_KINDS, null_kind

if TYPE_CHECKING:
    from simbench.calibration.permutation import NullResult
    from simbench.measure import Param
    from simbench.result import Score

def require_null(measure: Any, n: int) -> None:
    """Raise a ``NullError`` (a ``ParameterError``) when ``n`` > 0 null samples are asked of a
    measure that can neither be permuted nor draw a null of its own."""
    from simbench.calibration.permutation import NullError

    if n <= 0 or null_kind(measure) is not None:
        return
    name = getattr(measure, "name", None) or repr(measure)
    raise NullError(f"measure '{name}' cannot be scored on re-paired stimuli and provides no "
                    "null of its own", field="null",
                    fix=f"drop --null (null = 0) for '{name}'")


def null_param(what: str = "permutations of whole stimuli between the two systems") -> Param:
    """The ``null`` parameter: how many null samples to draw beside the score (0 = none)."""
    from simbench.measure import Param

    return Param("null", 0, f"null distribution and p-value from this many {what} (0 = none; "
                 "more than a small stimulus set allows uses all)", low=0)


def with_null(score: Score, result: NullResult, *, observed: float | None = None) -> Score:
    """``score`` carrying ``result``'s null: mean, sd, p-value, size and how it was drawn.

    ``observed`` (default: the score's value) is what the p-value is computed for, so the
    p-value always refers to the number printed, even where the null's own recomputation of
    the observed value differs by rounding. Notes (e.g. "used all permutations") go to
    ``attrs["null_note"]``.
    """
    from simbench.calibration.permutation import p_value

    value = score.value if observed is None else observed
    p = p_value(float(value), result.samples, result.alternative)
    attrs = dict(score.attrs)
    if result.notes:
        attrs["null_note"] = "; ".join(result.notes)
    # the exact permutation moments, where the null has them (a check on the Monte Carlo)
    attrs.update({k: v for k, v in result.attrs().items() if k.startswith("null_exact_")})
    return dataclasses.replace(score, null_mean=result.null_mean, null_sd=result.null_sd,
                               p_value=p, null_size=result.size, null_method=result.method,
                               attrs=attrs)


__all__ = ["NULL_KINDS", "null_kind", "null_param", "require_null", "with_null"]

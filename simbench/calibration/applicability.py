"""Which registered measures the validity checks cannot apply to, and why.

Every validity check scores two systems against each other: two networks (planted identity,
specificity, separability), two sites of one network (layer order) or two independent data
sets (small-n bias), each system giving one response per stimulus. A measure built for
something else has no cell on the board that could pass or fail; the board lists it as *not
applicable*, with the reason below, so that no registered measure is silently missing.

A registered measure outside this table that a spec does not run is *not run* on that spec's
board, with a reason naming the spec (:func:`absent_reason`).
"""

from __future__ import annotations

from collections.abc import Mapping

#: measure name -> why no validity check applies to it (the reason cell of each check)
NOT_APPLICABLE: Mapping[str, str] = {
    "das": ("'das' scores one network against its task's causal model (one system, no "
            "second one to compare it with), while every check compares two systems, two "
            "sites or two data sets; `simbench score das NETWORK` gives its IIA"),
    "crossnobis": ("'crossnobis' needs repeated measurements of every stimulus (a 'repeat' or "
                   "'run' coordinate) and a network answers each stimulus once, "
                   "deterministically: no network pair, site pair or one-response synthetic "
                   "data set has repeats; it applies to recordings with repeats"),
}


def not_applicable_reason(measure: str) -> str | None:
    """Why no validity check applies to ``measure``, or None when they may."""
    return NOT_APPLICABLE.get(measure)


def absent_reason(measure: str, spec_name: str) -> str:
    """Why the board of spec ``spec_name`` has no result for ``measure``, which it does not
    run: the measure's not-applicable reason, else that the spec runs no variant of it."""
    return not_applicable_reason(measure) or (
        f"spec '{spec_name}' runs no variant of '{measure}': add a [measures.{measure}] "
        "table and list it in the spec's [[pairs]]")


__all__ = ["NOT_APPLICABLE", "absent_reason", "not_applicable_reason"]

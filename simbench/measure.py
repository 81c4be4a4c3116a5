"""The measure contract: what a similarity measure declares about itself, as data.

A measure is an object with metadata the harness and CLI can read (family, the access it needs
of each system, symmetry, direction, range, parameters, citation) and one method, ``score``.
Plugins return measure instances from the ``simbench_measures`` hook.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from simbench.access import Access, Family
from simbench.errors import ParameterError, did_you_mean

if TYPE_CHECKING:
    from simbench.result import Score
    from simbench.systems import System

_BOOL_WORDS = {"1": True, "true": True, "yes": True, "on": True,
               "0": False, "false": False, "no": False, "off": False}


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds, so messages show ``'x'``, not ``np.str_('x')``."""
    item = getattr(value, "item", None)
    return item() if callable(item) and getattr(value, "ndim", None) == 0 else value


def sweep_values(value: Any) -> list[Any]:
    """The values a parameter takes in a sweep: a list/tuple's items, a string's comma-separated
    parts (stripped), or the value alone."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str) and "," in value:
        return [part.strip() for part in value.split(",")]
    return [value]


@dataclasses.dataclass(frozen=True)
class Param:
    """One tunable parameter of a measure, with its default and meaning.

    ``kind`` is inferred from the default when not given; ``None`` defaults need an explicit kind.
    """

    name: str
    default: Any
    help: str
    kind: type | None = None
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    high_open: bool = False

    @property
    def type(self) -> type:
        return self.kind or type(self.default)

    def bounds_text(self) -> str:
        """The allowed range in words: ``[0, 1)``, ``[1, no upper bound)``, ``(no lower bound, 5]``."""
        low = "(no lower bound" if self.low is None else f"[{self.low:g}"
        if self.high is None:
            return f"{low}, no upper bound)"
        return f"{low}, {self.high:g}{')' if self.high_open else ']'}"

    def parse(self, value: Any, *, measure: str = "?") -> Any:
        """Convert a CLI string (or a Python value) to this parameter's type and check it."""
        kind = self.type
        if value is None:
            return None
        try:
            if kind is bool and isinstance(value, str):
                parsed = _BOOL_WORDS[value.strip().lower()]
            elif kind is bool:
                parsed = bool(value)
            elif kind is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            else:
                parsed = kind(value)
        except (KeyError, TypeError, ValueError):
            raise ParameterError(
                f"measure '{measure}': parameter '{self.name}' expects {kind.__name__}, got {_plain(value)!r}",
                field=self.name,
                fix=f"pass e.g. --{self.name.replace('_', '-')} {self.default!r}",
            ) from None
        if self.choices is not None and parsed not in self.choices:
            raise ParameterError(
                f"measure '{measure}': parameter '{self.name}' must be one of {', '.join(map(str, self.choices))}, got {_plain(parsed)!r}",
                field=self.name,
            )
        too_low = self.low is not None and parsed < self.low
        too_high = self.high is not None and (parsed >= self.high if self.high_open else parsed > self.high)
        if too_low or too_high:
            raise ParameterError(
                f"measure '{measure}': parameter '{self.name}' = {parsed!r} is outside "
                f"{self.bounds_text()}",
                field=self.name,
            )
        return parsed


class Measure:
    """Base class of every similarity measure.

    Subclasses set the class attributes below and implement :meth:`score`. ``access`` lists the
    access needed of each system slot: ``"accessible"`` (a network we can run and patch) or
    ``"recording"`` (recorded activity is enough; any system can provide it). When a measure
    takes a variable number of systems (``max_systems`` greater than ``len(access)``), the last
    entry applies to the extra systems.
    """

    name: ClassVar[str]
    family: ClassVar[Family]
    access: ClassVar[tuple[Access, ...]]
    min_systems: ClassVar[int] = 2
    max_systems: ClassVar[int | None] = 2
    symmetric: ClassVar[bool] = True
    higher_is_better: ClassVar[bool] = True
    range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    params: ClassVar[tuple[Param, ...]] = ()
    citation: ClassVar[str] = ""
    description: ClassVar[str] = ""
    needs_task: ClassVar[bool] = False

    def score(
        self,
        systems: Sequence[System],
        *,
        site: str,
        task: str | None,
        seed: int,
        device: str,
        **params: Any,
    ) -> Score:  # pragma: no cover - interface
        """Compare ``systems`` at ``site`` and return a :class:`simbench.Score`.

        What simbench guarantees before calling: ``systems`` are resolved systems whose number
        and access match ``min_systems``/``max_systems``/``access``; ``params`` holds every
        declared parameter, defaults filled in, parsed and range-checked; ``task`` is the
        user's ``--task`` (``None``: each system's own ``task``); ``device`` is a concrete torch
        device (``"cpu"``, ``"cuda"`` or ``"cuda:N"``, never ``"auto"``); ``seed`` is the
        user's seed, and the same seed must give the same value on the CPU.

        What the measure must do: return a ``Score`` (built with keyword arguments) whose
        ``measure`` is ``self.name`` and whose ``systems`` are the systems' ids. ``ci`` is a
        (low, high) pair or ``None``; when an interval is dropped, say why in
        ``attrs["ci_note"]`` (the printed score shows it). Keys the measure sets in ``attrs``
        win over the provenance simbench adds (e.g. set ``attrs["device"] = "cpu"`` if the
        work did not run on ``device``). Leave the systems as you found them.

        What it may raise: a :class:`simbench.SimbenchError` subclass for a problem the user
        can fix (a site that cannot be patched, a task without the variable asked for); it
        reaches the user as is. Anything else, a ``sys.exit`` included, or returning something
        that is not a ``Score``, is reported as a :class:`~simbench.errors.PluginError` naming
        the measure and its plugin.
        """
        raise NotImplementedError

    # ---- helpers shared by every measure -------------------------------------------------
    def access_for(self, index: int) -> Access:
        """The access needed of the system in slot ``index``."""
        return self.access[min(index, len(self.access) - 1)]

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise ParameterError(f"measure '{self.name}' has no parameter '{name}'", field=name,
                             fix=did_you_mean(name, [p.name for p in self.params], sort=False))

    def resolve_params(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with ``given``, each parsed and checked.

        One value per parameter: a list or a comma-separated string (a sweep) is refused with
        the way to sweep, :func:`simbench.api.sweep`, rather than a confusing type error.
        """
        out = {p.name: p.default for p in self.params}
        for key, value in given.items():
            param = self.param(key)
            values = sweep_values(value)
            if len(values) > 1:
                raise ParameterError(
                    f"measure '{self.name}': parameter '{key}' = {value!r} is a sweep "
                    f"({len(values)} values); score() takes one value per parameter",
                    field=key,
                    fix=f"sweep with simbench.api.sweep('{self.name}', ..., {key}={value!r}), "
                    "which returns one Score per value, or call score() in a loop")
            out[key] = param.parse(values[0] if values else value, measure=self.name)
        return out

    def sweep_grid(self, given: Mapping[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
        """The parameter sets a sweep runs (see :func:`simbench.api.sweep`): (names of the
        swept parameters, grid), every element parsed and checked before anything runs."""
        swept: list[str] = []
        axes: list[list[tuple[str, Any]]] = []
        for key, value in given.items():
            param = self.param(key)
            values = sweep_values(value)
            if not values:
                raise ParameterError(f"measure '{self.name}': parameter '{key}' sweeps no values",
                                     field=key, fix=f"give at least one value, e.g. {param.default!r}")
            if len(values) > 1:
                swept.append(key)
            axes.append([(key, param.parse(v, measure=self.name)) for v in values])
        return swept, [dict(combo) for combo in itertools.product(*axes)]  # no axes: [{}]

    def describe(self) -> dict[str, Any]:
        """The measure's metadata as plain data (for `simbench measures --json` and the harness)."""
        return {
            "name": self.name,
            "family": self.family,
            "access": list(self.access),
            "systems": [self.min_systems, self.max_systems],
            "symmetric": self.symmetric,
            "higher_is_better": self.higher_is_better,
            "range": list(self.range),
            "needs_task": self.needs_task,
            "params": [
                {"name": p.name, "default": p.default, "type": p.type.__name__, "help": p.help}
                for p in self.params
            ],
            "citation": self.citation,
            "description": self.description,
        }

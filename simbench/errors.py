"""One exception family for everything a user can get wrong.

Every error names where the problem is (file, site, field) and how to fix it, so the CLI can
print it without a traceback and a user can act on it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SimbenchError(Exception):
    """Base of all simbench errors: a message plus where it happened and what to do."""

    def __init__(
        self,
        message: str,
        *,
        file: object | None = None,
        site: str | None = None,
        field: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.message = message
        self.file = None if file is None else str(file)
        self.site = site
        self.field = field
        self.fix = fix
        super().__init__(self._render())

    def _render(self) -> str:
        where = ", ".join(text for text, value in ((f"file {self.file}", self.file),
                                                   (f"site '{self.site}'", self.site),
                                                   (f"field '{self.field}'", self.field))
                          if value)
        text = f"{where}: {self.message}" if where else self.message
        return f"{text}\n  fix: {self.fix}" if self.fix else text


class RecordingError(SimbenchError):
    """A recording file does not follow the schema, or two recordings cannot be paired."""


class RegistryError(SimbenchError):
    """An unknown measure, or a registry lookup that cannot be answered."""


class PluginError(SimbenchError):
    """A plugin failed while loading or while computing a measure."""


class AccessError(SimbenchError):
    """A measure was asked of systems it cannot handle (e.g. a causal measure on recordings)."""


class TaskError(SimbenchError):
    """Bad task input: unknown task, token outside the vocabulary, unknown variable."""


class TrainingError(SimbenchError):
    """A model that did not reach the accuracy it must have to be shipped or used."""


class SiteError(SimbenchError):
    """A site that does not exist in a system, or that cannot be read or patched."""


class CheckpointError(SimbenchError):
    """A checkpoint that is not safetensors, or whose sha256 does not match its manifest."""


class ParameterError(SimbenchError):
    """A measure parameter that is unknown or out of range."""


class SpecError(SimbenchError):
    """A benchmark spec that does not parse or names unknown things."""


class StoreError(SimbenchError):
    """A results store that is not a simbench store, or has a newer schema."""


class PluginWarning(UserWarning):
    """A plugin failed to load; simbench carries on without it (see ``simbench plugins``)."""


class TokenCodesWarning(UserWarning):
    """A recording's ``token`` coordinate holds integer codes, not token names: measures that
    do not read tokens use it as it is; those that do refuse it (see
    :func:`simbench.recording.name_tokens`)."""


class CoverageWarning(UserWarning):
    """A recording reaches some value of a causal variable with few stimuli: counterfactual
    states with that value are matched from a handful of recorded states."""


def did_you_mean(name: str, known: Iterable[str], *, command: str | None = None,
                 sort: bool = True) -> str:
    """The ``fix`` text for an unknown name: the closest known one, then every known one.

    ``did_you_mean("procrustez", ["cka", "procrustes"], command="simbench measures")`` gives
    ``"did you mean 'procrustes'? known: cka, procrustes (see `simbench measures`)"``. Names
    keep the order given when ``sort`` is False (e.g. tasks in registration order).
    """
    names = [str(k) for k in dict.fromkeys(known)]
    if sort:
        names.sort()
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    text = f"did you mean '{close[0]}'? " if close else ""
    text += f"known: {', '.join(names) or '(none)'}"
    if command:
        text += f" (see `{command}`)"
    return text

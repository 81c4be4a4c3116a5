"""The prompts a spec gives its language models: a file, a list, or a built-in generator.

A spec's ``prompts`` (top level, or per measure) is one of :data:`FORMS`; the ``lm_zoo``
generator gives neutral sentence starts from the language-model zoo's grammar, held out of its
training corpus (``n = 100, seed = 12345`` is the set the zoo's toxicity figures use).

Whatever the form, the prompts are read when the spec is parsed and identified by their
content (:attr:`PromptSet.identity`, a sha256 over the texts): that is what a job's key and a
stored row record, so editing the file gives new jobs, and moving it or writing the same
prompts another way reuses the stored results. Reading a text file and running a built-in
generator runs no code from the spec, so a spec parsed only to view results reads them too.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from simbench.errors import SimbenchError


@dataclasses.dataclass(frozen=True)
class PromptSet:
    """Prompts as a spec gives them: the texts, where they came from, their content hash."""

    prompts: tuple[str, ...]
    origin: str  # e.g. "file /abs/prompts.txt" or "lm_zoo(n=200, seed=0, held_out=true)"

    @property
    def identity(self) -> str:
        """What a job key and a stored row record: ``sha256:HEX`` over the prompts, in order,
        each followed by a newline."""
        text = "".join(p + "\n" for p in self.prompts)
        return f"sha256:{hashlib.sha256(text.encode()).hexdigest()}"


def _lm_zoo(n: int, seed: int, held_out: bool = True) -> list[str]:
    from simbench.zoo.lm_corpus import prompts

    return prompts(n, seed, held_out=held_out)


#: name -> (function, {argument: (type, default)}); a default of None means required
GENERATORS: dict[str, tuple[Callable[..., Sequence[str]], dict[str, tuple[type, Any]]]] = {
    "lm_zoo": (_lm_zoo, {"n": (int, None), "seed": (int, 0), "held_out": (bool, True)}),
}
#: the fewest prompts a generator may be asked for (training, validation and test need 3)
MIN_PROMPTS = 3


class PromptsProblem(SimbenchError):
    """A ``prompts`` value that cannot be read; ``key`` is the offending sub-key (or None)."""

    def __init__(self, message: str, *, key: str | None = None, fix: str | None = None) -> None:
        super().__init__(message, fix=fix)
        self.key = key


FORMS = ('prompts = "prompts.txt" (one prompt per line, relative to the spec), a list of '
         'strings, or prompts = { generator = "lm_zoo", n = 200, seed = 0 }')


def read_prompt_set(value: Any, base: Path) -> PromptSet:
    """The :class:`PromptSet` a spec's ``prompts`` value stands for (see the module docstring).

    Raises :class:`PromptsProblem` (message, offending sub-key and fix) for anything else; the
    spec parser adds the spec file, line and field.
    """
    if isinstance(value, str):
        return _from_file(value, base)
    if isinstance(value, list):
        bad = [v for v in value if not isinstance(v, str) or not v.strip()]
        if bad or not value:
            raise PromptsProblem("a list of prompts must hold non-empty strings, got "
                                 + (repr(bad[0]) if bad else "an empty list"), fix=FORMS)
        return PromptSet(tuple(value), f"list of {len(value)}")
    if isinstance(value, dict):
        return _from_generator(value)
    raise PromptsProblem(f"prompts must be a file path, a list or a generator table, got "
                         f"{value!r}", fix=FORMS)


def _from_file(value: str, base: Path) -> PromptSet:
    from simbench.tasks.continuation import read_prompts

    path = Path(value)
    path = path if path.is_absolute() else (base / path).resolve()
    if path.is_dir():
        raise PromptsProblem(f"prompts file '{value}' is a directory ({path})",
                             fix="name a text file with one prompt per line")
    if not path.is_file():
        raise PromptsProblem(f"no prompts file '{value}' (looked for {path})",
                             fix="write the path relative to the spec file, or use " + FORMS)
    try:
        prompts = read_prompts(path)
    except SimbenchError as exc:
        raise PromptsProblem(f"prompts file '{value}' ({path}): {exc.message}",
                             fix=exc.fix) from None
    return PromptSet(tuple(prompts), f"file {path}")


def _from_generator(table: Mapping[str, Any]) -> PromptSet:
    from simbench.errors import did_you_mean

    name = table.get("generator")
    if not isinstance(name, str):
        raise PromptsProblem("a prompts table needs generator = NAME", key="generator",
                             fix=f"built-in generators: {', '.join(GENERATORS)}")
    if name not in GENERATORS:
        raise PromptsProblem(f"unknown prompts generator '{name}'", key="generator",
                             fix=did_you_mean(name, GENERATORS))
    fn, declared = GENERATORS[name]
    for key in table:
        if key != "generator" and key not in declared:
            raise PromptsProblem(f"unknown argument '{key}' of prompts generator '{name}'",
                                 key=key, fix=did_you_mean(key, declared))
    args: dict[str, Any] = {}
    for key, (kind, default) in declared.items():
        if key not in table and default is None:
            raise PromptsProblem(f"prompts generator '{name}' needs {key} = ...", key=key,
                                 fix=f"e.g. prompts = {{ generator = \"{name}\", n = 200 }}")
        value = table.get(key, default)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise PromptsProblem(f"'{key}' of prompts generator '{name}' must be "
                                 f"{'an integer' if kind is int else 'true or false'}, got "
                                 f"{value!r}", key=key)
        args[key] = value
    if "n" in args and args["n"] < MIN_PROMPTS:
        raise PromptsProblem(f"n = {args['n']}: training, validation and test need at least "
                             f"{MIN_PROMPTS} prompts", key="n", fix="ask for more prompts")
    prompts = tuple(fn(**args))
    shown = ", ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}"
                      for k, v in args.items())
    return PromptSet(prompts, f"{name}({shown})")


def new_tokens_value(value: Any) -> int:
    """A spec's ``new_tokens``: an integer >= 1 (a boolean is refused)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise PromptsProblem(f"new_tokens must be an integer >= 1 (the continuation length in "
                             f"tokens), got {value!r}", fix="write e.g. new_tokens = 8")
    return value


__all__ = ["FORMS", "GENERATORS", "PromptSet", "PromptsProblem", "new_tokens_value",
           "read_prompt_set"]

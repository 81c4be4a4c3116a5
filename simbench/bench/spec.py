"""Benchmark specs: what to score, written as TOML, checked before anything runs.

A spec names ``[systems]`` (with tags), ``[groups]`` of them, ``[measures.LABEL]`` (a list
value is a sweep), ``[[pairs]]`` (named categories of system tuples) and ``[[expect]]`` (the
findings a valid measure should reproduce, see :mod:`.leaderboard`); docs/guide/harness.md
describes every key, and :mod:`.prompts` what language models are given.

Every error names the spec file, the line and the key (:class:`~simbench.errors.SpecError`).
Values are typed strictly: a boolean is not an integer and a number is not a string.

A spec names code (``plugins``), so parsing it to *run* it is trusting it: that parse imports
the plugins and checks names against the registry (measures, parameters, tasks); resolving
systems and checking sites and access happens in :func:`simbench.bench.jobs.prepare`. Parsing
to *view* results (``trusted=False``, what ``simbench leaderboard`` does with a spec that came
with a store) imports nothing and checks only the spec's own structure, so a store or spec
someone sends you is safe to look at.
"""

from __future__ import annotations

import dataclasses
import itertools

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from simbench.bench.locate import Locator, PathPart, dotted
from simbench.bench.prompts import PromptSet, PromptsProblem, new_tokens_value, read_prompt_set
from simbench.errors import ParameterError, SimbenchError, SpecError, did_you_mean

TOP_KEYS = ("name", "description", "task", "seeds", "sites", "plugins", "store", "target",
            "job_timeout", "prompts", "new_tokens", "systems", "groups", "measures", "pairs",
            "expect")
SYSTEM_KEYS = ("zoo", "recording", "model", "source")
MEASURE_KEYS = ("measure", "sites", "seeds", "params", "job_timeout", "prompts", "new_tokens")
PAIR_KINDS = ("pairs", "within", "between", "each")
PAIR_KEYS = ("name", *PAIR_KINDS, "measures", "sites", "seeds", "task")
EXPECT_KEYS = ("finding", "site", "measures", "higher", "lower", "pairs", "above", "below",
               "alike", "margin", "mode", "note")
PAIR_SELECTOR_KEYS = ("category", "a", "b", "same", "differ", "systems")


@dataclasses.dataclass(frozen=True)
class SystemSpec:
    """One system of a spec: its alias, where it comes from, and its tags."""

    alias: str
    source: str  # a zoo id, or an absolute recording path or model directory
    kind: str  # "zoo", "recording" or "model" (a language model's directory)
    tags: Mapping[str, str]

    @property
    def task(self) -> str | None:
        return self.tags.get("task")

    @property
    def is_lm(self) -> bool:
        """A language model: a model directory or a name of the language-model zoo."""
        from simbench.zoo.lm_build import LM_NAMES

        return self.kind == "model" or (self.kind == "zoo" and self.source in LM_NAMES)


@dataclasses.dataclass(frozen=True)
class MeasureSpec:
    """A measure variant: a registered measure plus parameters (lists are sweeps)."""

    label: str
    measure: str
    params: Mapping[str, tuple[Any, ...]]  # each axis parsed and checked (raw when not trusted)
    sites: tuple[str, ...] | None = None
    seeds: tuple[int, ...] | None = None
    job_timeout: float | None = None  # seconds; None = not set here (0 = no limit)
    prompts: PromptSet | None = None  # for language models; None = the spec's
    new_tokens: int | None = None  # continuation length; None = the spec's

    def grid(self) -> list[dict[str, Any]]:
        """Every parameter combination of the sweep (one dict per job)."""
        keys = sorted(self.params)
        return [dict(zip(keys, combo)) for combo in itertools.product(*(self.params[k] for k in keys))]

    @property
    def swept(self) -> list[str]:
        return sorted(k for k, v in self.params.items() if len(v) > 1)


@dataclasses.dataclass(frozen=True)
class PairGroup:
    """One ``[[pairs]]`` entry: a category name and the system tuples it stands for."""

    index: int
    name: str
    kind: str
    tuples: tuple[tuple[str, ...], ...]
    measures: tuple[str, ...] | None = None
    sites: tuple[str, ...] | None = None
    seeds: tuple[int, ...] | None = None
    task: str | None = None


@dataclasses.dataclass(frozen=True)
class Expectation:
    """One ``[[expect]]`` entry: an ordering or a bound a valid measure should satisfy."""

    index: int
    finding: str
    site: str | None
    measures: tuple[str, ...] | None  # labels, measure names or families; None = all
    higher: Any = None
    lower: Any = None
    pairs: Any = None
    alike: Any = None  # [SELECTOR, SELECTOR]: the two score alike, within ``margin``
    above: float | None = None
    below: float | None = None
    margin: float = 0.0
    mode: str = "mean"
    note: str = ""


@dataclasses.dataclass
class Spec:
    """A parsed, name-checked spec."""

    name: str
    path: Path | None
    text: str
    description: str = ""
    task: str | None = None
    seeds: tuple[int, ...] = (0,)
    sites: tuple[str, ...] = ()
    plugins: tuple[str, ...] = ()
    store: str | None = None
    target: str | None = None
    job_timeout: float | None = None  # seconds; None = not set (0 = no limit)
    prompts: PromptSet | None = None  # what language models are aligned and recorded on
    new_tokens: int | None = None  # their continuation length (None: the task's default)
    systems: dict[str, SystemSpec] = dataclasses.field(default_factory=dict)
    groups: dict[str, Any] = dataclasses.field(default_factory=dict)
    measures: dict[str, MeasureSpec] = dataclasses.field(default_factory=dict)
    pair_groups: list[PairGroup] = dataclasses.field(default_factory=list)
    expectations: list[Expectation] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    lenient: bool = False
    trusted: bool = True  # False: parsed to view results; plugins not imported, names unchecked
    _dropped: set[str] = dataclasses.field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        self.locator = Locator(self.text)

    def timeout_for(self, label: str) -> float | None:
        """The ``job_timeout`` of measure ``label``: its own, else the spec's, else None (unset).

        0 means no limit. Who runs the jobs decides what an unset timeout means.
        """
        own = self.measures[label].job_timeout if label in self.measures else None
        return own if own is not None else self.job_timeout

    def lm_settings(self, label: str) -> tuple[PromptSet | None, int | None]:
        """(prompts, new_tokens) of measure ``label`` for language models: its own, else the
        spec's (each None when set nowhere)."""
        m = self.measures.get(label)
        prompts = m.prompts if m is not None and m.prompts is not None else self.prompts
        tokens = m.new_tokens if m is not None and m.new_tokens is not None else self.new_tokens
        return prompts, tokens

    # ---- errors that say where ----------------------------------------------------------
    def error(self, message: str, path: Sequence[PathPart] = (), *, value: str | None = None,
              fix: str | None = None) -> SpecError:
        """A SpecError naming this spec's file, the line of ``path`` (or of ``value``) and the key."""
        line = (self.locator.value_line(value, *path) if value is not None
                else self.locator.line(*path) if path else None)
        where = str(self.path) if self.path is not None else "<spec>"
        if line is not None:
            where = f"{where}:{line}"
        return SpecError(message, file=where, field=dotted(path) or None, fix=fix)

    def check_keys(self, table: Mapping[str, Any], allowed: Iterable[str],
                   path: Sequence[PathPart] = (), where: str = "") -> None:
        """Refuse the first key of ``table`` not in ``allowed``, suggesting the closest one."""
        allowed = tuple(allowed)
        for key in table:
            if key not in allowed:
                raise self.error(f"unknown key '{key}'" + (f" in {where}" if where else ""),
                                 (*path, key), fix=did_you_mean(key, allowed))

    # ---- selections ---------------------------------------------------------------------
    def select(self, selector: Any, path: Sequence[PathPart], _depth: int = 0) -> list[str]:
        """Aliases chosen by a system selector: an alias, a group name, ``"*"``, a list of those,
        or a table of tags (a list value matches any of its items)."""
        if _depth > 20:
            raise self.error("groups refer to each other in a cycle", path)
        if isinstance(selector, str):
            if selector == "*":
                return list(self.systems)
            if selector in self.systems:
                return [selector]
            if selector in self.groups:
                return self.select(self.groups[selector], ("groups", selector), _depth + 1)
            if self.lenient and selector in self._dropped:
                return []
            known = [*self.systems, *self.groups]
            raise self.error(f"unknown system or group '{selector}'", path, value=selector,
                             fix=did_you_mean(selector, known))
        if isinstance(selector, list):  # each alias once, in order
            return list(dict.fromkeys(a for item in selector
                                      for a in self.select(item, path, _depth + 1)))
        if isinstance(selector, dict):
            for key in selector:
                if not any(key in s.tags for s in self.systems.values()):
                    tags = sorted({t for s in self.systems.values() for t in s.tags})
                    raise self.error(f"no system has the tag '{key}'", [*path, key],
                                     fix=f"tags in this spec: {', '.join(tags) or '(none)'}")
            return [a for a, s in self.systems.items()
                    if all(_tag_match(s.tags.get(k), v) for k, v in selector.items())]
        raise self.error(f"a system selector is an alias, a group, a list or a table of tags, "
                         f"not {selector!r}", path)


def _tag_match(have: str | None, want: Any) -> bool:
    if isinstance(want, list):
        return any(_tag_match(have, w) for w in want)
    return have is not None and have == _tag_str(want)


def _tag_str(value: Any) -> str:
    return _toml(value) if isinstance(value, bool) else str(value)


# ---- loading -------------------------------------------------------------------------------
def load_spec(path: str | Path, *, registry: Any = None, lenient: bool = False,
              trusted: bool = True) -> Spec:
    """Read and parse a spec file (see :func:`parse_spec`).

    A bare name that is not a file (``paper``, ``demo``) means the spec of that name shipped with
    simbench, so an installed copy runs its benchmarks without a source checkout.
    """
    from simbench.resources import shipped_specs

    path = Path(path)
    shipped = shipped_specs()
    if not path.exists() and str(path) in shipped:
        path = shipped[str(path)]
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("no such spec file", file=path,
                        fix="check the path, or name a shipped spec: "
                        + ", ".join(shipped)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read the spec: {exc}", file=path) from None
    return parse_spec(text, path=path, registry=registry, lenient=lenient, trusted=trusted)


def parse_spec(text: str, *, path: str | Path | None = None, registry: Any = None,
               lenient: bool = False, trusted: bool = True) -> Spec:
    """Parse spec text; unknown keys, measures, parameters, tasks and aliases are errors.

    ``lenient`` (used by ``simbench demo``) drops measures the registry lacks, with a note in
    ``spec.notes``, instead of failing. ``trusted=False`` parses a spec only to *view* results
    (see the module docstring): names are taken as written, parameter values raw.
    """
    path = None if path is None else Path(path).resolve()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"not valid TOML: {exc}", file=path,
                        fix="see https://toml.io for the syntax") from None
    if registry is None and trusted:
        from simbench.registry import get_registry

        registry = get_registry()
    spec = Spec(name=str(data.get("name") or (path.stem if path else "spec")), path=path,
                text=text, lenient=lenient and trusted, trusted=trusted)
    base = path.parent if path is not None else Path.cwd()

    spec.check_keys(data, TOP_KEYS)
    spec.name = _typed(spec, data, "name", str, spec.name) or spec.name
    spec.description = _typed(spec, data, "description", str, "")
    spec.plugins = tuple(_plugin_ref(p, base) for p in _list_of(spec, data, ("plugins",)) or ())
    if spec.plugins and trusted:
        from simbench.bench.plugins import ensure_plugins

        try:
            ensure_plugins(spec.plugins, registry=registry)
        except SimbenchError as exc:
            raise spec.error(str(exc.message), ("plugins",)) from None
    spec.task = _task(spec, data.get("task"), ("task",), registry)
    sites, seeds = _scope(spec, data, ())
    spec.sites, spec.seeds = sites or (), seeds or (0,)
    spec.store = _typed(spec, data, "store", str, None)
    if spec.store is not None and not Path(spec.store).is_absolute():
        spec.store = str(base / spec.store)
    spec.job_timeout = _timeout(spec, data, ())
    spec.prompts, spec.new_tokens = _lm_settings(spec, data, (), base)

    _parse_systems(spec, data.get("systems", {}), base)
    groups = data.get("groups", {})
    if not isinstance(groups, dict):
        raise spec.error("[groups] must be a table of name = selector", ("groups",))
    spec.groups = dict(groups)
    for name, selector in groups.items():
        if name in spec.systems:
            raise spec.error(f"group '{name}' has the same name as a system", ("groups", name))
        spec.select(selector, ("groups", name))  # unknown aliases fail here, with their line

    spec.target = target = _typed(spec, data, "target", str, None)
    if target is not None and target not in spec.systems:
        raise spec.error(f"target '{target}' is not a system of this spec", ("target",),
                         fix=did_you_mean(target, spec.systems))
    _parse_measures(spec, data.get("measures", {}), base, registry)
    _parse_pairs(spec, data.get("pairs", []), registry)
    _parse_expect(spec, data.get("expect", []))
    if not spec.measures:
        raise spec.error("the spec names no measures (none available)" if spec.lenient
                         else "the spec names no measures", ("measures",),
                         fix="add e.g. [measures.cka] (see `simbench measures`)")
    if not spec.pair_groups:
        raise spec.error("the spec names no pairs", ("pairs",),
                         fix='add e.g. [[pairs]] name = "all" within = "*"')
    return spec


def _plugin_ref(ref: str, base: Path) -> str:
    """A plugin given as a ``.py`` file is made absolute (relative to the spec); a module stays."""
    if ref.endswith(".py"):
        p = Path(ref)
        return str(p if p.is_absolute() else (base / p).resolve())
    return ref


def _typed(spec: Spec, table: Mapping[str, Any], key: str, kind: type, default: Any,
           path: Sequence[PathPart] = ()) -> Any:
    if key not in table:
        return default
    value = table[key]
    if not _is(value, kind):
        raise spec.error(f"'{key}' must be a {kind.__name__}, got {value!r}", (*path, key))
    return float(value) if kind is float else value


def _is(value: Any, kind: type) -> bool:
    """``value`` has the TOML type ``kind``: a boolean is no number (Python's bool is an int),
    and an integer is a float."""
    return (isinstance(value, (int, float) if kind is float else kind)
            and (kind is bool or not isinstance(value, bool)))


def _list_of(spec: Spec, table: Mapping[str, Any], path: Sequence[PathPart],
              kind: type = str) -> list[Any] | None:
    """``table[path[-1]]``: one value of ``kind`` (str or int) or a list of them; None if unset."""
    key = path[-1]
    if key not in table:
        return None
    value = table[key]
    values = value if isinstance(value, list) else [value]
    if not all(_is(v, kind) for v in values):
        raise spec.error(f"'{key}' must be a string or a list of strings, got {value!r}"
                         if kind is str else
                         f"{key} must be an integer or a list of integers, got {value!r}", path)
    return list(values)


def _scope(spec: Spec, table: Mapping[str, Any], path: Sequence[PathPart]
           ) -> tuple[tuple[str, ...] | None, tuple[int, ...] | None]:
    """The ``sites`` and ``seeds`` a table sets (the spec's, a measure's or a [[pairs]] entry's);
    None for each it leaves unset (or, for sites, empty)."""
    sites = _list_of(spec, table, (*path, "sites"))
    seeds = _list_of(spec, table, (*path, "seeds"), int)
    return tuple(sites) if sites else None, None if seeds is None else tuple(seeds)


def _timeout(spec: Spec, table: Mapping[str, Any], path: Sequence[PathPart]) -> float | None:
    """``job_timeout`` in seconds (a number >= 0; 0 = no limit), or None when not set."""
    value = _typed(spec, table, "job_timeout", float, None, path)
    if value is not None and not value >= 0:  # also refuses nan
        raise spec.error(f"'job_timeout' must be a number of seconds >= 0 (0 = no limit), "
                         f"got {value!r}", (*path, "job_timeout"))
    return value


def _task(spec: Spec, value: Any, path: Sequence[PathPart], registry: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise spec.error(f"task must be a string, got {value!r}", path)
    if registry is not None and value not in registry.tasks:
        raise spec.error(f"unknown task '{value}'", path, fix=did_you_mean(value, registry.tasks))
    return value


def _one_of(spec: Spec, table: Mapping[str, Any], keys: Sequence[str],
            path: Sequence[PathPart], needs: str) -> str:
    """The one key of ``keys`` that ``table`` sets; else an error saying what it ``needs``."""
    given = [k for k in keys if k in table]
    if len(given) != 1:
        raise spec.error(f"{needs} (got {given or 'none'})", path)
    return given[0]


def _parse_systems(spec: Spec, table: Any, base: Path) -> None:
    if not isinstance(table, dict) or not table:
        raise spec.error("the spec needs a [systems] table: alias = zoo id or recording path, "
                         "or alias = { zoo = ID | recording = PATH | model = DIR, tag = value, "
                         "... }", ("systems",))
    for alias, entry in table.items():
        path = ("systems", alias)
        if isinstance(entry, str):
            entry = {"source": entry}
        if not isinstance(entry, dict):
            raise spec.error(f"system '{alias}' must be a string or a table", path)
        given = _one_of(spec, entry, SYSTEM_KEYS, path, f"system '{alias}' needs exactly one of "
                        "zoo = ID, recording = PATH, model = DIR or source = ID-OR-PATH")
        where = entry[given]
        if not isinstance(where, str):
            raise spec.error(f"'{given}' must be a string", (*path, given))
        kind = given
        if kind == "source":
            looks_like_file = Path(where).suffix in (".nc", ".nc4", ".cdf", ".h5") or (
                base / where).exists()
            kind = ("model" if (base / where).is_dir() else "recording") if looks_like_file \
                else "zoo"
        if kind in ("recording", "model"):
            where = str((base / where).resolve()) if not Path(where).is_absolute() else where
        if kind == "recording" and Path(where).is_dir():
            raise spec.error(f"recording '{entry[given]}' of system '{alias}' is a directory",
                             (*path, given), fix="a language model's save_pretrained "
                             "directory is model = DIR; a recording is a file (.nc)")
        tags: dict[str, str] = {}
        for key, value in entry.items():
            if key in SYSTEM_KEYS:
                continue
            if not isinstance(value, (str, int, float, bool)):
                raise spec.error(f"tag '{key}' of system '{alias}' must be a string or a number",
                                 (*path, key))
            tags[key] = _tag_str(value)
        spec.systems[alias] = SystemSpec(alias, where, kind, tags)


def _lm_settings(spec: Spec, table: Mapping[str, Any], path: Sequence[PathPart], base: Path
                 ) -> tuple[PromptSet | None, int | None]:
    """``prompts`` and ``new_tokens`` of a table (the spec's top level or a measure's), read and
    checked now, so a missing prompts file fails before anything runs."""
    found: list[Any] = []
    for key, read in (("prompts", lambda v: read_prompt_set(v, base)),
                      ("new_tokens", new_tokens_value)):
        try:
            found.append(read(table[key]) if key in table else None)
        except PromptsProblem as exc:
            where = (*path, key, exc.key) if exc.key else (*path, key)
            raise spec.error(exc.message, where, fix=exc.fix) from None
    return found[0], found[1]


def _parse_measures(spec: Spec, table: Any, base: Path, registry: Any) -> None:
    if not isinstance(table, dict):
        raise spec.error("[measures] must hold one table per measure, e.g. [measures.cka]",
                         ("measures",))
    for label, entry in table.items():
        path: tuple[PathPart, ...] = ("measures", label)
        if not isinstance(entry, dict):
            raise spec.error(f"measure '{label}' must be a table ([measures.{label}])", path)
        name = entry.get("measure", label)
        if not isinstance(name, str):
            raise spec.error("'measure' must be a string", (*path, "measure"))
        measure = None
        preset: dict[str, Any] = {}
        if registry is not None:
            if name not in registry.measures:
                from simbench.aliases import resolve

                alias = resolve(name)  # a community id: its measure, its parameters as defaults
                if alias is not None and alias.measure in registry.measures:
                    name, preset = alias.measure, dict(alias.params)
            if name not in registry.measures:
                if spec.lenient:
                    spec.notes.append(f"measure '{name}' is not installed; skipped")
                    spec._dropped.add(label)
                    continue
                raise spec.error(f"unknown measure '{name}'",
                                 (*path, "measure") if "measure" in entry else path,
                                 fix=did_you_mean(name, registry.measures)
                                 + " (see `simbench measures`)")
            measure = registry.measures[name]
        raw: dict[str, tuple[Any, tuple[PathPart, ...]]] = {
            k: (v, (*path, "measure")) for k, v in preset.items()}
        for key, value in entry.items():
            if key == "params":
                if not isinstance(value, dict):
                    raise spec.error("'params' must be a table", (*path, key))
                raw.update({k: (v, (*path, "params", k)) for k, v in value.items()})
            elif key not in MEASURE_KEYS:
                raw[key] = (value, (*path, key))
        if measure is not None:
            names = [p.name for p in measure.params]
            spec.check_keys(entry, [*MEASURE_KEYS, *names], path, f"[measures.{label}]")
            if isinstance(entry.get("params"), dict):
                spec.check_keys(entry["params"], names, (*path, "params"),
                                f"[measures.{label}.params]")
        params: dict[str, tuple[Any, ...]] = {}
        for key, (value, kpath) in raw.items():
            values = value if isinstance(value, list) else [value]
            if not values:
                raise spec.error(f"the sweep '{key}' is empty", kpath)
            if measure is None:  # parsed for viewing: TOML scalars, kept as written
                for v in values:
                    if not isinstance(v, (bool, int, float, str)):
                        raise spec.error(f"parameter '{key}' must be a string, a number or a "
                                         "boolean (or a list of them: a sweep), got "
                                         f"{_toml(v)}", kpath)
                params[key] = tuple(values)
                continue
            param = measure.param(key)
            for v in values:
                _check_param_type(spec, name, param, v, kpath)
            try:
                params[key] = tuple(param.parse(v, measure=name) for v in values)
            except ParameterError as exc:
                raise spec.error(exc.message, kpath, fix=exc.fix) from None
        prompts, new_tokens = _lm_settings(spec, entry, path, base)
        spec.measures[label] = MeasureSpec(label, name, params, *_scope(spec, entry, path),
                                           _timeout(spec, entry, path), prompts, new_tokens)


_KIND_WORDS = {bool: "a boolean (true or false)", int: "an integer", float: "a number",
               str: "a string"}


def _check_param_type(spec: Spec, measure: str, param: Any, value: Any,
                      path: Sequence[PathPart]) -> None:
    """TOML values must already have the parameter's type: no true -> 1, no 3 -> "3".

    An integer is accepted where a number is expected; a list (a sweep) is checked item by item
    by the caller. Kinds other than bool, int, float and str are left to ``Param.parse``.
    """
    kind = param.type
    if kind in _KIND_WORDS and not _is(value, kind):
        example = _toml(param.default) if isinstance(param.default, kind) else None
        raise spec.error(f"parameter '{param.name}' of measure '{measure}' must be "
                         f"{_KIND_WORDS[kind]}, got {_toml(value)}", path,
                         fix=f"write e.g. {param.name} = {example}" if example else None)


def _toml(value: Any) -> str:
    """A value as it would be written in TOML (true, 3, "3"), for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def _array_tables(spec: Spec, entries: Any, key: str, what: str, keys: Sequence[str]
                  ) -> Iterator[tuple[int, dict[str, Any], tuple[PathPart, ...]]]:
    """(index, table, path) of each ``[[key]]`` entry (one table alone counts as a list of
    one), each checked to be a table with only ``keys``; ``what`` names them in errors."""
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, list):
        raise spec.error(f"{what} must be [[{key}]] tables", (key,))
    for i, entry in enumerate(entries):
        path: tuple[PathPart, ...] = (key, i)
        if not isinstance(entry, dict):
            raise spec.error(f"each [[{key}]] entry must be a table", path)
        spec.check_keys(entry, keys, path, f"[[{key}]]")
        yield i, entry, path


def _parse_pairs(spec: Spec, entries: Any, registry: Any) -> None:
    names: set[str] = set()
    for i, entry, path in _array_tables(spec, entries, "pairs", "pairs", PAIR_KEYS):
        kind = _one_of(spec, entry, PAIR_KINDS, path, "each [[pairs]] entry needs exactly one of "
                       "pairs = [[A, B], ...], within = SELECTOR, between = [SELECTOR, SELECTOR], "
                       "each = SELECTOR")
        name = entry.get("name", f"pairs{i}")
        if not isinstance(name, str):
            raise spec.error("'name' must be a string", (*path, "name"))
        if name in names:
            raise spec.error(f"two [[pairs]] entries are called '{name}'", (*path, "name"))
        names.add(name)
        kpath = (*path, kind)
        value = entry[kind]
        tuples: list[tuple[str, ...]] = []
        if kind == "pairs":
            if not isinstance(value, list) or not all(isinstance(p, list) for p in value):
                raise spec.error("pairs must be a list of lists of aliases, e.g. "
                                 '[["gru1", "gru2"]]', kpath)
            for tup in value:
                members = [spec.select(a, kpath) for a in tup]
                if any(len(m) != 1 for m in members) and not any(len(m) == 0 for m in members):
                    raise spec.error(f"explicit pairs list single systems, got {tup!r}", kpath)
                if all(len(m) == 1 for m in members):
                    tuples.append(tuple(m[0] for m in members))
        elif kind == "within":
            chosen = spec.select(value, kpath)
            tuples = list(itertools.combinations(chosen, 2))
        elif kind == "between":
            if not isinstance(value, list) or len(value) != 2:
                raise spec.error("between needs two selectors: between = [X, Y]", kpath)
            xs, ys = spec.select(value[0], kpath), spec.select(value[1], kpath)
            seen: set[frozenset[str]] = set()
            for x in xs:
                for y in ys:
                    if x != y and frozenset((x, y)) not in seen:
                        seen.add(frozenset((x, y)))
                        tuples.append((x, y))
        else:
            tuples = [(a,) for a in spec.select(value, kpath)]
        if not tuples and not spec.lenient:
            raise spec.error(f"[[pairs]] '{name}' selects no system pairs", kpath)
        measures = _list_of(spec, entry, (*path, "measures"))
        if measures:
            for label in measures:
                if label not in spec.measures and label not in spec._dropped:
                    raise spec.error(f"unknown measure label '{label}'", (*path, "measures"),
                                     value=label, fix=did_you_mean(label, spec.measures))
            measures = [m for m in measures if m in spec.measures]
        task = _task(spec, entry.get("task"), (*path, "task"), registry)
        spec.pair_groups.append(PairGroup(i, name, kind, tuple(tuples),
                                          tuple(measures) if measures is not None else None,
                                          *_scope(spec, entry, path), task))


def _parse_expect(spec: Spec, entries: Any) -> None:
    categories = {g.name for g in spec.pair_groups}
    for i, entry, path in _array_tables(spec, entries, "expect", "expectations", EXPECT_KEYS):
        ordering = "higher" in entry or "lower" in entry
        bound = "pairs" in entry
        alike = "alike" in entry
        if (ordering + bound + alike != 1
                or (ordering and not ("higher" in entry and "lower" in entry))):
            raise spec.error("an [[expect]] entry is either an ordering (higher = SELECTOR, "
                             "lower = SELECTOR), a bound (pairs = SELECTOR with above = X "
                             "and/or below = X) or an equivalence (alike = [SELECTOR, "
                             "SELECTOR] with margin = X)", path)
        if bound and "above" not in entry and "below" not in entry:
            raise spec.error("a bound needs above = X and/or below = X", path)
        for key in ("higher", "lower", "pairs"):
            if key in entry:
                _check_pair_selector(spec, entry[key], (*path, key), categories)
        if alike:
            value = entry["alike"]
            if not isinstance(value, list) or len(value) != 2:
                raise spec.error("alike needs two pair selectors: alike = [SELECTOR, SELECTOR]",
                                 (*path, "alike"))
            for sel in value:
                _check_pair_selector(spec, sel, (*path, "alike"), categories)
            margin = entry.get("margin")
            if not _is(margin, float) or not margin > 0:
                raise spec.error("an equivalence needs margin = X > 0: the most the two "
                                 "selections' similarities (normalised by the measure's range "
                                 f"when it has one) may differ, got {margin!r}",
                                 (*path, "margin") if "margin" in entry else path,
                                 fix="write e.g. margin = 0.05")
        measures = _list_of(spec, entry, (*path, "measures"))
        typed = {key: _typed(spec, entry, key, kind, default, path) for key, kind, default in (
            ("finding", str, f"expectation {i + 1}"), ("site", str, None), ("above", float, None),
            ("below", float, None), ("margin", float, 0.0), ("mode", str, "mean"),
            ("note", str, ""))}
        if typed["mode"] not in ("mean", "all"):
            raise spec.error(f"mode must be 'mean' or 'all', got {typed['mode']!r}",
                             (*path, "mode"))
        spec.expectations.append(Expectation(
            index=i, measures=tuple(measures) if measures else None,
            **{k: entry.get(k) for k in ("higher", "lower", "pairs", "alike")}, **typed))


def _check_pair_selector(spec: Spec, sel: Any, path: Sequence[PathPart],
                         categories: set[str]) -> None:
    """A pair selector: a category name, a list of them, or a table of conditions."""
    if isinstance(sel, str) or (isinstance(sel, list) and all(isinstance(s, str) for s in sel)):
        sel = {"category": sel}
    if not isinstance(sel, dict):
        raise spec.error("a pair selector is a [[pairs]] name, a list of names, or a table "
                         f"with keys {', '.join(PAIR_SELECTOR_KEYS)}", path)
    spec.check_keys(sel, PAIR_SELECTOR_KEYS, path, "a pair selector")
    for key, value in sel.items():
        if key == "category":
            for c in [value] if isinstance(value, str) else value:
                if c not in categories:
                    raise spec.error(f"unknown pair category '{c}'", path, value=c,
                                     fix=did_you_mean(c, categories))
        elif key in ("a", "b", "systems"):
            spec.select(value, (*path, key))
        elif not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise spec.error(f"'{key}' must be a list of tag names", (*path, key))

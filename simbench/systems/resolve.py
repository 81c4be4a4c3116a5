"""The one answer to *what kind of system is this?*, for the API, the CLI and the harness.

What a user, a spec file or a measure passes as a system (a *spec*: a path, a zoo name, a
:class:`~simbench.recording.Recording`, a :class:`~simbench.systems.System`, a torch module) is
offered to each entry of :data:`KINDS`, in order; the first whose ``opens`` says yes loads it.
``opens`` only looks (a type, a suffix, a name in a manifest, whether a path exists); nothing
heavy is imported before a kind has accepted the spec. A spec that no kind opens is one
:class:`~simbench.errors.SimbenchError` listing what each kind looked for.

The order (:data:`KINDS` spells out each kind): objects first (a Recording, a System, a torch
module with native sites), then a local model directory (a local path wins over any name), the
language-model zoo's names, checkpoints (``.safetensors`` with a JSON sidecar), recording files
(any other existing file too: the reader refuses a wrong one, with the reason) and last the
network zoo's ids. A new kind of system is one more :class:`SystemKind` (:func:`register_kind`).

The harness resolves with :func:`resolve_cached`, ``simbench.score`` and the CLI with
:func:`resolve_systems`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import operator
import os
import reprlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from simbench.access import ACCESSIBLE
from simbench.errors import ParameterError, SimbenchError, did_you_mean
from simbench.stimuli import RECORDING_SUFFIXES
from simbench.systems import RecordedSystem, System

if TYPE_CHECKING:
    from simbench.tasks.base import Task

CHECKPOINT_SUFFIX = ".safetensors"


@dataclasses.dataclass(frozen=True)
class SystemKind:
    """One kind of system: how to recognise its spec and how to load it.

    ``opens(spec)`` must be cheap and never raise; ``load(spec, task, lazy)`` returns a
    :class:`~simbench.systems.System` or raises a :class:`~simbench.errors.SimbenchError`
    naming the file and the fix. ``identity(spec)`` (None: such specs never appear in spec
    files) is the stable text a job key records. ``heavy``: loading imports torch or
    transformers, so :func:`resolve_systems` checks everything else first. ``prompted(system,
    continuation)`` (language models only; None for every other kind): the same model given
    other prompts, without loading it again.
    """

    name: str
    looks_for: str
    opens: Callable[[Any], bool]
    load: Callable[[Any, Any, bool], System]
    identity: Callable[[Any], str] | None = None
    heavy: bool = False
    prompted: Callable[[Any, Any], System] | None = None


# ---- recognising ---------------------------------------------------------------------------
def _is_path(spec: object) -> bool:
    return isinstance(spec, (str, Path))


def _instance_of(module: str, cls: str) -> Callable[[object], bool]:
    """A test for instances of ``module.cls``; none exists before the module loads (no import)."""
    return lambda spec: (m := sys.modules.get(module)) is not None and isinstance(
        spec, operator.attrgetter(cls)(m))


def _names_zoo_lm(spec: object) -> bool:
    from simbench.zoo.lm_build import LM_NAMES

    return isinstance(spec, str) and spec in LM_NAMES and not Path(spec).exists()


def _zoo_ids() -> list[str]:
    from simbench.zoo.manifest import read_manifest

    try:
        return sorted(read_manifest()["models"])
    except SimbenchError:  # an unreadable manifest: the zoo kind opens nothing
        return []


# ---- loading -------------------------------------------------------------------------------
def _torch_system() -> Any:
    """:class:`~simbench.systems.torch.TorchSystem`, imported once a kind needs it (torch)."""
    from simbench.systems.torch import TorchSystem

    return TorchSystem


def _load_lm_dir(path: str | Path, task: object) -> System:
    """A model directory as a language model, given ``task`` when it is a
    :class:`~simbench.tasks.continuation.Continuation` (its prompts), else one without prompts."""
    from simbench.lm.load import check_model_dir
    from simbench.lm.system import LMSystem
    from simbench.tasks.continuation import Continuation

    check_model_dir(path)
    return LMSystem.from_dir(path, task=task if isinstance(task, Continuation)
                             else Continuation())


def _load_module(module: Any, task: object, lazy: bool) -> System:
    if task is None:
        raise ParameterError(f"a torch module ({type(module).__name__}) needs the task whose "
                             "stimuli it reads", field="task",
                             fix="pass task='multi_object' (see `simbench tasks`), or wrap it "
                             "yourself: TorchSystem(module, task, sites={...})")
    return _torch_system()(module, task)


def _load_recording(path: str | Path, lazy: bool) -> System:
    from simbench.recording import load_or_open, load_recording

    return RecordedSystem(load_or_open(path) if lazy else load_recording(path))


def zoo_lm_dir(spec: str | Path) -> Path | None:
    """The verified directory of the zoo language model called ``spec`` (``lm_toxic_s1``: see
    `simbench zoo list --lm`), or None when ``spec`` names none (or a local path: it wins)."""
    if not _names_zoo_lm(str(spec)):
        return None
    from simbench.zoo.lm_build import lm_model_dir

    return lm_model_dir(str(spec))


# ---- identities (what a stored result depends on) ------------------------------------------
@functools.cache
def _sha256(path: str, stamp: tuple[Any, ...], lm: bool = False) -> str:
    """:func:`simbench.digest.sha256_file` (``lm``: :func:`simbench.lm.load.model_dir_digest`),
    cached on ``stamp`` (the files' sizes and times): no rehash on rerun."""
    if lm:  # simbench.lm only for a language model
        from simbench.lm.load import model_dir_digest

        return model_dir_digest(path)
    from simbench.digest import sha256_file

    return sha256_file(path)


def file_digest(path: str | Path) -> str:
    """sha256 of a file, cached on (path, size, mtime) so a rerun does not rehash."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise SimbenchError(f"recording '{p}' does not exist", file=p,
                            fix="check the path in the spec (relative to the spec file)") from None
    return _sha256(str(p), (st.st_size, st.st_mtime_ns))


def checkpoint_digest(path: str | Path) -> str:
    """sha256 over a checkpoint's weights and what its sidecar says the model is."""
    p = Path(path)
    side = p.with_suffix(".json")
    facts: Any = None
    if side.is_file():
        try:
            data = json.loads(side.read_text(encoding="utf-8"))
            facts = {k: data.get(k) for k in ("config", "task", "arch")}
        except (OSError, ValueError, AttributeError):
            facts = {"sidecar": file_digest(side)}
    text = json.dumps({"weights": file_digest(p), "model": facts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def lm_digest(path: str | Path) -> str:
    """:func:`simbench.lm.load.model_dir_digest`, cached on the files' sizes and times."""
    root = Path(path)
    return _sha256(str(root), tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns)
                                    for f in sorted(root.iterdir()) if f.is_file()), lm=True)


# ---- the table -----------------------------------------------------------------------------
KINDS: list[SystemKind] = [
    SystemKind("recording object", "a simbench.Recording",
               _instance_of("simbench.recording", "Recording"),
               lambda spec, task, lazy: RecordedSystem(spec)),
    SystemKind("system object", "an object with system_id, access, task, sites and site_data "
               "(simbench.systems.System)",
               lambda spec: not _is_path(spec) and isinstance(spec, System),
               lambda spec, task, lazy: spec),
    SystemKind("torch module", "a torch.nn.Module with native sites (pass task=...)",
               _instance_of("torch", "nn.Module"), _load_module),
    SystemKind("model directory", "an existing directory (save_pretrained: config.json, "
               "safetensors weights, tokenizer)",
               lambda spec: _is_path(spec) and Path(spec).is_dir(),
               lambda spec, task, lazy: _load_lm_dir(spec, task),
               identity=lambda spec: f"lm:sha256:{lm_digest(spec)}", heavy=True,
               prompted=lambda system, lm: system.with_task(lm)),
    SystemKind("zoo language model", "a name of the language-model zoo (see `simbench zoo "
               "list --lm`)", _names_zoo_lm,
               lambda spec, task, lazy: _load_lm_dir(zoo_lm_dir(spec) or spec, task),
               identity=lambda spec: f"lm:sha256:{lm_digest(zoo_lm_dir(spec) or spec)}",
               heavy=True, prompted=lambda system, lm: system.with_task(lm)),
    SystemKind("checkpoint", f"a {CHECKPOINT_SUFFIX} file beside its JSON sidecar",
               lambda spec: _is_path(spec) and Path(spec).suffix == CHECKPOINT_SUFFIX,
               lambda spec, task, lazy: _torch_system().from_checkpoint(Path(spec), task=task),
               identity=lambda spec: f"checkpoint:sha256:{checkpoint_digest(spec)}", heavy=True),
    SystemKind("recording file", f"a recording ({', '.join(RECORDING_SUFFIXES)}) or an "
               "existing file",
               lambda spec: _is_path(spec) and (Path(spec).suffix in RECORDING_SUFFIXES
                                                or Path(spec).exists()),
               lambda spec, task, lazy: _load_recording(spec, lazy),
               identity=lambda spec: f"recording:sha256:{file_digest(spec)}"),
    SystemKind("zoo network", "an id of the network zoo (see `simbench zoo list`)",
               lambda spec: isinstance(spec, str) and spec in _zoo_ids(),
               lambda spec, task, lazy: _torch_system().from_zoo(spec),
               identity=lambda spec: f"zoo:{spec}", heavy=True),
]


def register_kind(kind: SystemKind, *, before: str | None = None) -> None:
    """Add ``kind`` to :data:`KINDS`: last, or just before the kind called ``before``."""
    names = [k.name for k in KINDS]
    if kind.name in names:
        raise ParameterError(f"a system kind called '{kind.name}' exists", field="name",
                             fix="give the new kind another name")
    if before is not None and before not in names:
        raise ParameterError(f"no system kind '{before}'", field="before",
                             fix=did_you_mean(before, names, sort=False))
    KINDS.insert(names.index(before) if before is not None else len(KINDS), kind)


def kind_of(spec: object) -> SystemKind:
    """The first kind in :data:`KINDS` that opens ``spec``; the error lists them all."""
    for kind in KINDS:
        if kind.opens(spec):
            return kind
    raise _no_kind(spec)


def _no_kind(spec: object) -> SimbenchError:
    from simbench.lm.load import SAVE_HOWTO, looks_like_hub_id
    from simbench.zoo.lm_build import LM_NAMES

    shown = repr(str(spec)) if _is_path(spec) else reprlib.repr(spec)
    tried = "; ".join(f"{k.name}: {k.looks_for}" for k in KINDS)
    message = f"{shown} is no system simbench can open (tried, in order: {tried})"
    fix = ("pass a recording path (.nc), a checkpoint, a model directory, a zoo id, a "
           "Recording or a System")
    if isinstance(spec, str) and "/" not in spec and not Path(spec).suffix:
        fix = did_you_mean(spec, [*_zoo_ids(), *LM_NAMES], command="simbench zoo list")
    if looks_like_hub_id(spec):  # a model-hub id reads like a zoo name
        name = str(spec)
        message += (f"; if '{name}' is a model-hub id: simbench loads language models from "
                    "disk only (no model hub is contacted)")
        folder = "'./" + name.split("/")[-1] + "'"
        save = SAVE_HOWTO.replace("ID", repr(name)).replace("DIR", folder)
        fix = save if "/" in name else f"{fix}; a hub model: {save}"
    return SimbenchError(message, field="systems", fix=fix)


def resolve_system(spec: object, *, task: str | Task | None = None,
                   lazy: bool = False) -> System:
    """Turn what a user passes into a :class:`~simbench.systems.System` (see :data:`KINDS`).

    ``task``: the task of a network's stimuli (default its own) or, for a language model, a
    :class:`~simbench.tasks.continuation.Continuation` with its prompts. ``lazy``: a recording
    file too large to load is opened with its activity left in the file (for measures that read
    activity a block of rows at a time); otherwise such a file is refused.
    """
    return kind_of(spec).load(spec, task, lazy)


def identity(spec: str) -> str:
    """What a result depends on in the system ``spec`` names, e.g. ``recording:sha256:HEX``
    (a recording's bytes), ``checkpoint:sha256:HEX`` (weights and sidecar facts),
    ``lm:sha256:HEX`` (a model directory's files), ``zoo:gru_multi_s1``."""
    kind = kind_of(spec)
    if kind.identity is None:
        raise SimbenchError(f"a {kind.name} has no identity a spec file can record",
                            field="systems", fix="name the system by a path or a zoo id")
    return kind.identity(spec)


_CACHE: dict[tuple[str, str | None, int], System] = {}


def resolve_cached(source: str, task: str | None, *, lazy: bool = False, lm: Any = None
                   ) -> System:
    """The harness's one way to a system: :func:`resolve_system` once per process and file
    version (source, task, mtime). Recordings open lazily; ``lazy`` False gets the reader's
    refusal of one too large to load. ``lm`` (:func:`lm_task`): the prompts a language model
    is given. Any failure is a :class:`~simbench.errors.SimbenchError`."""
    kind = kind_of(source)
    key = (source, task, os.stat(source).st_mtime_ns if os.path.exists(source) else 0)
    if key not in _CACHE:
        try:
            _CACHE[key] = kind.load(source, task, True)
        except SimbenchError:
            raise
        except Exception as exc:  # e.g. a zoo that is not installed yet
            raise SimbenchError(f"cannot resolve system '{source}': {type(exc).__name__}: "
                                f"{exc}") from None
    system = _CACHE[key]
    if not lazy and getattr(system, "in_file", False):
        kind.load(source, task, False)  # too large to load whole: raises the reader's error
    return kind.prompted(system, lm) if lm is not None and kind.prompted else system


# ---- several systems for one measure -------------------------------------------------------
def lm_task(prompts: Any = None, new_tokens: int | None = None) -> Any:
    """The :class:`~simbench.tasks.continuation.Continuation` that ``prompts`` (a file, a list
    or a generator) and ``new_tokens`` ask for, or None when neither is given."""
    if prompts is None and new_tokens is None:
        return None
    from simbench.tasks.continuation import DEFAULT_NEW_TOKENS, Continuation

    return Continuation(prompts, new_tokens=DEFAULT_NEW_TOKENS if new_tokens is None
                        else new_tokens)


def with_lm_task(systems: Sequence[System], task: Any) -> list[System]:
    """Language models given ``task`` (their prompts); refuses prompts without a language
    model."""
    if task is None:
        return list(systems)
    from simbench.lm.kind import is_language_model

    if not any(is_language_model(s) for s in systems):
        raise ParameterError("prompts and new_tokens apply to language models, and no system "
                             "is one", field="prompts",
                             fix="drop --prompts/--new-tokens, or pass model directories")
    return [s.with_task(task) if is_language_model(s) else s  # type: ignore[attr-defined]
            for s in systems]


def resolve_systems(measure: str, systems: Sequence[object], *,
                    task: str | None = None, lm: Any = None) -> list[System]:
    """Resolve ``systems`` for ``measure``, cheapest checks first: recordings, the systems'
    number and access and the task name are checked before any network or language model loads
    (a bad recording fails in well under a second). ``lm`` (:func:`lm_task`): the prompts
    language models are given."""
    from simbench.registry import get_registry

    reg = get_registry()
    m = reg.measure(measure)
    lazy = bool(getattr(m, "lazy_activity", False))  # reads activity by blocks of rows
    kinds = [kind_of(s) for s in systems]
    # a heavy system (loading imports torch and takes seconds) stands in unloaded for the
    # access check, so a measure asked of the wrong kinds of system fails before it loads
    early = [SimpleNamespace(access=ACCESSIBLE, task=None, system_id=str(s),
                             path=s if Path(str(s)).suffix == CHECKPOINT_SUFFIX else None)
             if k.heavy else k.load(s, task, lazy) for k, s in zip(kinds, systems)]
    reg.check_access(m, early)
    if task is not None:
        reg.task(task)  # unknown task names fail here, with suggestions
    resolved = [k.load(s, task, lazy) if k.heavy else e for k, s, e in zip(kinds, systems, early)]
    resolved = with_lm_task(resolved, lm)
    reg.check_access(m, resolved)
    return resolved


__all__ = ["CHECKPOINT_SUFFIX", "KINDS", "RECORDING_SUFFIXES", "SystemKind", "checkpoint_digest",
           "file_digest", "identity", "kind_of", "lm_digest", "lm_task", "register_kind",
           "resolve_cached", "resolve_system", "resolve_systems", "with_lm_task", "zoo_lm_dir"]

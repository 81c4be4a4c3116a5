"""Extra plugins named by a spec (``plugins = ["my_pkg.measures", "local_measure.py"]``).

A spec may bring measures that are not installed as entry points: a module name or a ``.py``
file (relative to the spec). They are registered through :meth:`Registry.add_plugin`, the path
entry points take, once per process: in the submitting process and again in every Dask worker,
because each job carries the spec's plugin list. A file plugin's version (shown by
``simbench plugins``) is its sha256 prefix; its code enters a job through the code
fingerprint, so editing the file marks its stored results stale (see
:mod:`simbench.bench.fingerprint`). A plugin that raises, or calls ``sys.exit``, while it is
imported is a :class:`~simbench.errors.PluginError` naming it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from simbench.digest import sha256_file
from simbench.errors import PluginError
from simbench.registry import PluginInfo, Registry, get_registry

_LOADED: dict[tuple[int, str], PluginInfo] = {}


def ensure_plugins(refs: Iterable[str], *, registry: Registry | None = None) -> list[PluginInfo]:
    """Import and register each plugin reference into ``registry`` unless it already is."""
    reg = registry if registry is not None else get_registry()
    out = []
    for ref in refs:
        cache_key = (id(reg), ref)
        if cache_key in _LOADED and any(p is _LOADED[cache_key] for p in reg.plugins):
            out.append(_LOADED[cache_key])
            continue
        module = _import(ref)
        if ref.endswith(".py"):
            path = Path(ref)
            info = PluginInfo(path.stem, "spec-file", sha256_file(path)[:12], str(path))
        else:
            version = str(getattr(module, "__version__", "0"))
            info = PluginInfo(ref.rsplit(".", 1)[-1], "spec-module", version, ref)
        already = [m for m in _measure_names(module) if m in reg.measures
                   and reg.plugin_of(m).module == info.module]
        if not already:
            reg.add_plugin(module, info)
            if info.error:
                raise PluginError(f"plugin '{ref}' failed to load: {info.error}")
        _LOADED[cache_key] = info
        out.append(info)
    return out


def _measure_names(module: Any) -> list[str]:
    impl = getattr(module, "simbench_measures", None)
    try:
        return [m.name for m in impl()] if callable(impl) else []
    except KeyboardInterrupt:
        raise
    except BaseException:  # the registry reports the hook's failure when it calls it
        return []


def _import(ref: str) -> Any:
    """Import a module by dotted name, or a ``.py`` file under a stable private module name."""
    try:
        if not ref.endswith(".py"):
            return importlib.import_module(ref)
        path = Path(ref)
        if not path.exists():
            raise PluginError(f"plugin file '{ref}' does not exist",
                              fix="paths in `plugins` are relative to the spec file")
        name = f"_simbench_spec_plugin_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return module
    except (PluginError, KeyboardInterrupt):
        raise
    except BaseException as exc:  # SystemExit at import is the plugin's failure, not ours
        what = (f"it called sys.exit({exc.code!r}) while being imported"
                if isinstance(exc, SystemExit) else f"{type(exc).__name__}: {exc}")
        raise PluginError(f"cannot import plugin '{ref}': {what}") from None

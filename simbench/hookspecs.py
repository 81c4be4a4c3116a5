"""The simbench plugin contract.

A plugin is any importable module (or object) with functions decorated ``@simbench.hookimpl``
whose names match the hooks below. Declare it in your distribution's ``pyproject.toml``::

    [project.entry-points.simbench]
    my_measure = "my_package.my_module"

and ``pip install`` it: ``simbench measures`` lists what it registers. Every hook returns a list
of registrations (datasette's idiom), so one plugin can provide several measures or tasks.

Hooks are called through pluggy, once per plugin, when the registry is first built. A plugin
loads as a whole or not at all: if its import or a hook fails (an exception, ``sys.exit``, an
item that is not a measure or task class, or a name another plugin already registered), none
of its items are registered, it shows as ``FAILED`` in ``simbench plugins`` with the reason,
and every other plugin still loads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simbench.markers import hookimpl, hookspec

if TYPE_CHECKING:
    from simbench.measure import Measure
    from simbench.tasks.base import Task


@hookspec
def simbench_measures() -> list[Measure]:
    """Return the similarity measures this plugin provides.

    Called once when the registry loads. Each item is an instance of a
    :class:`simbench.measure.Measure` subclass; its ``name`` must be unique across all loaded
    plugins (the second plugin claiming a name fails to load, naming both). The measure's
    metadata (family, access needed of each system, parameters with defaults, citation) is read
    from the instance and shown by ``simbench measures``; what ``Measure.score`` must return and
    may raise is documented there. Import heavy libraries (torch, rsatoolbox) inside ``score``,
    not at module import, so the CLI stays fast.
    """


@hookspec
def simbench_tasks() -> list[type[Task]]:
    """Return the task classes this plugin provides.

    Called once when the registry loads. Each item is a subclass of
    :class:`simbench.tasks.base.Task` with a unique ``name``: a causal model, a seeded stimulus
    generator and a counterfactual generator. Tasks are what causal measures intervene with;
    every lookup of a task by name (``--task``, a checkpoint's task, a spec) goes through the
    registry, so a task plugin works everywhere a built-in task does.
    """


__all__ = ["hookimpl", "hookspec", "simbench_measures", "simbench_tasks"]

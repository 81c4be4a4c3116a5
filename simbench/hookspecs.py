"""The simbench plugin contract.

A plugin is any importable module (or object) with functions decorated ``@simbench.hookimpl``
whose names match the hooks below. Declare it in your distribution's ``pyproject.toml``::

    [project.entry-points.simbench]
    my_measure = "my_package.my_module"

and ``pip install`` it: ``simbench measures`` lists what it registers. Every hook returns a list
of registrations (datasette's idiom), so one plugin can provide several measures or tasks. Hooks
are called once, when the registry is first built; a hook that raises marks its plugin as
failed (shown by ``simbench plugins``) and the other plugins still load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from simbench.measure import Measure
    from simbench.tasks.base import Task

hookspec = pluggy.HookspecMarker("simbench")
hookimpl = pluggy.HookimplMarker("simbench")


@hookspec
def simbench_measures() -> list[Measure]:
    """Return the similarity measures this plugin provides.

    Called once when the registry loads. Each item is an instance of a
    :class:`simbench.measure.Measure` subclass; its ``name`` must be unique across all loaded
    plugins (a duplicate is an error naming both plugins). The measure's metadata (family,
    access needed of each system, parameters with defaults, citation) is read from the
    instance and shown by ``simbench measures``. Import heavy libraries (torch, rsatoolbox)
    inside ``score``, not at module import, so the CLI stays fast.
    """


@hookspec
def simbench_tasks() -> list[type[Task]]:
    """Return the task classes this plugin provides.

    Called once when the registry loads. Each item is a subclass of
    :class:`simbench.tasks.base.Task` with a unique ``name``: a causal model, a seeded stimulus
    generator and a counterfactual generator. Tasks are what causal measures intervene with.
    """

"""The built-in task suite: numeric-equivalence tasks with causal models (numpy only).

Tasks are plugins: this module is registered through the ``simbench`` entry-point group and
answers the ``simbench_tasks`` hook exactly as a third-party task package would. A task is looked
up by name only through the plugin registry (:func:`simbench.registry.task_by_name`), so
built-in and plugin tasks behave the same everywhere. Importing this package never imports
torch.
"""

from __future__ import annotations

from simbench.markers import hookimpl
from simbench.tasks.arithmetic import Arithmetic
from simbench.tasks.base import (
    BOS,
    EOS,
    PAD,
    TOKEN_ID,
    TRIGGER,
    UNDEFINED,
    VOCAB,
    Stimuli,
    Task,
    content_id,
)
from simbench.tasks.continuation import Continuation
from simbench.tasks.counting import CountingTask, Modulo, MultiObject, Rounding, SameObject

BUILTIN_TASKS: tuple[type[Task], ...] = (MultiObject, SameObject, Modulo, Rounding, Arithmetic,
                                         Continuation)


@hookimpl
def simbench_tasks() -> list[type[Task]]:
    """The built-in tasks."""
    return list(BUILTIN_TASKS)


__all__ = [
    "BOS", "BUILTIN_TASKS", "EOS", "PAD", "TOKEN_ID", "TRIGGER", "UNDEFINED", "VOCAB",
    "Arithmetic", "Continuation", "CountingTask", "Modulo", "MultiObject", "Rounding", "SameObject", "Stimuli",
    "Task", "content_id", "simbench_tasks",
]

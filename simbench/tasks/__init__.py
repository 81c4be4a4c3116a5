"""The built-in task suite: numeric-equivalence tasks with causal models (numpy only).

Tasks are plugins: this module is registered through the ``simbench`` entry-point group and
answers the ``simbench_tasks`` hook exactly as a third-party task package would. Importing it
never imports torch.
"""

from __future__ import annotations

from simbench import hookimpl
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
)
from simbench.tasks.counting import CountingTask
from simbench.tasks.modulo import Modulo
from simbench.tasks.multi_object import MultiObject
from simbench.tasks.rounding import Rounding
from simbench.tasks.same_object import SameObject

BUILTIN_TASKS: tuple[type[Task], ...] = (MultiObject, SameObject, Modulo, Rounding, Arithmetic)


@hookimpl
def simbench_tasks() -> list[type[Task]]:
    """The built-in tasks."""
    return list(BUILTIN_TASKS)


def task_by_name(name: str | Task | type[Task]) -> Task:
    """An instance of a task by name: the built-ins first, then plugin tasks from the registry.

    An unknown name raises :class:`TaskError` listing the valid ones.
    """
    from simbench.errors import TaskError

    if isinstance(name, Task):
        return name
    if isinstance(name, type) and issubclass(name, Task):
        return name()
    for cls in BUILTIN_TASKS:
        if cls.name == name:
            return cls()
    valid = [t.name for t in BUILTIN_TASKS]
    try:
        from simbench.registry import get_registry

        tasks = get_registry().tasks
        valid += [k for k in tasks if k not in valid]
        if name in tasks:
            task = tasks[name]
            return task() if isinstance(task, type) else task
    except Exception:  # a broken registry must not hide the built-ins
        pass
    raise TaskError(f"unknown task {name!r}", field="task", fix=f"valid tasks: {', '.join(valid)}")


__all__ = [
    "BOS", "BUILTIN_TASKS", "EOS", "PAD", "TOKEN_ID", "TRIGGER", "UNDEFINED", "VOCAB",
    "Arithmetic", "CountingTask", "Modulo", "MultiObject", "Rounding", "SameObject", "Stimuli",
    "Task", "simbench_tasks", "task_by_name",
]

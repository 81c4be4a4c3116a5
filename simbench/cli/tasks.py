"""``simbench tasks``: the task suite (built-in and plugin tasks) with their causal variables."""

from __future__ import annotations

import argparse
import json

from simbench.cli.output import table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tasks", help="list the tasks and their causal variables")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_tasks)


def _task_classes() -> list[type]:
    """Every registered task class (built-in and plugin), from the plugin registry."""
    from simbench.registry import get_registry

    return list(get_registry().tasks.values())


def cmd_tasks(args: argparse.Namespace, extra: list[str]) -> int:
    described = [cls().describe() for cls in _task_classes()]
    if args.json:
        print(json.dumps(described, indent=2))
        return 0
    rows = [(d["name"], d["title"], ", ".join(d["variables"]), d["description"])
            for d in described]
    print(table(("task", "title", "causal variables", "sequences"), rows))
    return 0

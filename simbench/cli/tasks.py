"""``simbench tasks``: the task suite (built-in and plugin tasks) with their causal variables,
and ``simbench tasks --check NAME``: a task plugin's self-test."""

from __future__ import annotations

import argparse
import json

from simbench.cli.output import table

#: the built-in symbolic tasks, as `simbench tasks --help` names them (a test keeps this list
#: equal to the registered built-in tasks)
BUILT_IN = "multi_object, same_object, modulo, rounding, arithmetic"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tasks", help="list the tasks and their causal variables; --check NAME tests a task",
        description="Lists every registered task: the built-in symbolic tasks (" + BUILT_IN
        + "; each with a causal model whose variables MAS, DAS and CLMAS align), continuation "
        "(the behavioural task of language models: greedy continuation of prompts, whose "
        "one variable is the continuation itself) and those of task plugins. --check NAME runs the "
        "task contract on a few seeded samples (vocabulary and special tokens, seeded "
        "sampling, causal model shapes, masks, counterfactual consistency, scoring) and "
        "prints each broken rule with the method that broke it and a fix; exit status 1 when "
        "any rule is broken.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--check", metavar="NAME",
                   help="self-test one task ('all': every registered task)")
    p.set_defaults(handler=cmd_tasks)


def cmd_tasks(args: argparse.Namespace, extra: list[str]) -> int:
    if args.check:
        return cmd_check(args.check, as_json=args.json)
    from simbench.registry import get_registry

    reg = get_registry()  # every registered task class, built-in and plugin
    described = [{**cls().describe(), "plugin": reg.task_plugin_of(cls.name).label}
                 for cls in reg.tasks.values()]
    if args.json:
        print(json.dumps(described, indent=2))
        return 0
    rows = [(d["name"], d["title"], ", ".join(d["variables"]), d["description"])
            for d in described]
    print(table(("task", "title", "causal variables", "sequences"), rows))
    return 0


def cmd_check(name: str, *, as_json: bool = False) -> int:
    """Run :func:`simbench.tasks.validation.check_task` on one task (or all) and report."""
    from simbench.registry import get_registry
    from simbench.tasks.validation import check_task, format_problems

    reg = get_registry()
    names = list(reg.tasks) if name == "all" else [name]
    classes = [reg.task(n) for n in names]  # an unknown name: TaskError listing the known ones
    report = {n: (reg.task_plugin_of(n).label, check_task(cls)) for n, cls in zip(names, classes)}
    if as_json:
        print(json.dumps([{"name": n, "plugin": plugin, "ok": not probs,
                           "problems": [{"method": p.method, "message": p.message,
                                         "fix": p.fix} for p in probs]}
                          for n, (plugin, probs) in report.items()], indent=2))
    else:
        for n, (plugin, probs) in report.items():
            print(format_problems(n, probs).replace(f"task '{n}'",
                                                    f"task '{n}' (plugin {plugin})", 1))
    return 1 if any(probs for _, probs in report.values()) else 0

"""The behavioural task of language models: greedy continuations of a set of prompts.

Unlike the numeric tasks, this task has no symbolic causal model: its counterfactual behaviour
is another model's own. Each language model greedily continues every prompt by
``new_tokens`` tokens; in a source -> target interchange intervention the target should then
produce the *source's* continuation tokens (see :mod:`simbench.lm.engine`). The task holds the
prompts and the continuation length; the vocabulary is the models' tokenizer's, so the
token-level methods of :class:`~simbench.tasks.base.Task` (``sample``, ``causal_model``,
``counterfactual``) are refused with a message that says where the behaviour comes from.
Prompts come from :func:`collect_prompts`. Numpy only: importing this module never imports
torch or transformers.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from simbench.errors import TaskError
from simbench.tasks.base import Task, content_id, unique_ids

#: Variable name of the behavioural "variable": the whole continuation.
CONTINUATION = "continuation"
DEFAULT_NEW_TOKENS = 8
DEFAULT_N_PROMPTS = 256


def prompt_id(text: str) -> str:
    """The stimulus id of a prompt: ``prompt-{hash}``, a 12-hex-digit BLAKE2b hash of its text.

    The id depends on the text only (not on a tokenizer), so two models' recordings of the same
    prompts pair stimulus by stimulus.
    """
    return content_id("prompt", [text])


def read_prompts(path: str | Path) -> list[str]:
    """One prompt per line of a UTF-8 text file; blank lines are skipped.

    A missing file or a file without a prompt raises :class:`TaskError` naming it.
    """
    file = Path(path)
    if not file.is_file():
        raise TaskError("no such prompts file", file=file, field="prompts",
                        fix="pass a text file with one prompt per line")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TaskError(f"the prompts file is not UTF-8 text ({exc.reason})", file=file,
                        field="prompts", fix="save it as UTF-8, one prompt per line") from None
    # '#' lines are comments, as in a --stimuli file: never scored as prompts
    prompts = [line.rstrip("\r") for line in text.split("\n")
               if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise TaskError("the prompts file holds no prompt (it is empty or blank)", file=file,
                        field="prompts", fix="write one prompt per line")
    return prompts


PromptSource = str | Path | Sequence[str] | Callable[[int, int], Sequence[str]] | Iterable[str]


def collect_prompts(source: PromptSource, *, n: int = DEFAULT_N_PROMPTS,
                    seed: int = 0) -> tuple[list[str], str]:
    """Prompts from a file path, a list, a generator function ``fn(n, seed)`` or an iterable.

    Returns the prompts and a short description of where they came from (kept in results).
    An iterable is read up to ``n`` prompts; every prompt must be a non-empty string.
    """
    if isinstance(source, (str, Path)):
        return read_prompts(source), str(source)
    if callable(source):
        got = list(source(n, seed))
        origin = f"generator {getattr(source, '__qualname__', type(source).__name__)}"
    elif isinstance(source, Sequence):
        got, origin = list(source), "list"
    elif isinstance(source, Iterable):
        got, origin = list(itertools.islice(source, n)), "iterable"
    else:
        raise TaskError(f"cannot read prompts from {type(source).__name__}", field="prompts",
                        fix="pass a text file, a list of strings or a generator of strings")
    bad = [p for p in got if not isinstance(p, str) or not p.strip()]
    if bad:
        raise TaskError(f"{len(bad)} prompt(s) are empty or not strings (e.g. {bad[0]!r})",
                        field="prompts", fix="give every prompt as a non-empty string")
    if not got:
        raise TaskError(f"the prompts ({origin}) are empty", field="prompts",
                        fix="give at least one prompt")
    return got, origin


class Continuation(Task):
    """Greedy continuation of prompts by language models (the behavioural task).

    ``prompts``: a file, a list or a generator (see :func:`collect_prompts`); ``None`` leaves
    the task without prompts (a measure then takes them from its ``prompts`` parameter).
    ``new_tokens``: continuation length. ``n_prompts``: how many a generator yields.
    """

    name: ClassVar[str] = "continuation"
    title: ClassVar[str] = "LM continuation"
    description: ClassVar[str] = ("language models greedily continue prompts; the "
                                  "counterfactual of source -> target is the source's own "
                                  "continuation")
    variables: ClassVar[tuple[str, ...]] = (CONTINUATION,)
    symbolic: ClassVar[bool] = False

    def __init__(self, prompts: PromptSource | None = None, *,
                 new_tokens: int = DEFAULT_NEW_TOKENS, n_prompts: int = DEFAULT_N_PROMPTS,
                 seed: int = 0) -> None:
        if int(new_tokens) < 1:
            raise TaskError(f"new_tokens = {new_tokens}: a continuation needs at least one "
                            "token", field="new_tokens", fix="pass new_tokens >= 1")
        self.new_tokens = int(new_tokens)
        got, self.origin = (([], "") if prompts is None
                            else collect_prompts(prompts, n=n_prompts, seed=seed))
        self.prompts: tuple[str, ...] = tuple(got)

    def __repr__(self) -> str:
        return (f"Continuation({len(self.prompts)} prompts from {self.origin or 'nowhere'}, "
                f"new_tokens={self.new_tokens})")

    @property
    def prompt_ids(self) -> np.ndarray:
        """Stimulus ids of the prompts (:func:`prompt_id`; repeats get ``-2``, ``-3``...)."""
        return unique_ids(prompt_id(p) for p in self.prompts)

    def _refuse(self, what: str) -> Any:
        raise TaskError(
            f"the continuation task has no {what}: its counterfactual behaviour is each "
            "language model's own greedy continuation", field="task",
            fix="use it with language-model systems (a local model directory or "
            "simbench.lm.LMSystem)")

    def sample(self, n: int, seed: int, **kwargs: Any) -> Any:
        return self._refuse("token-level stimulus sampler")

    def causal_model(self, tokens: Any) -> Any:
        return self._refuse("symbolic causal model")

    # both read the causal model the task lacks
    response_mask = intervenable_positions = causal_model

    def counterfactual(self, *args: Any, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        return self._refuse("symbolic counterfactuals")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "held_out_counts": [], "vocab_size": None, "vocab": [],
                "special_tokens": dict.fromkeys(("pad", "bos", "eos")),
                "new_tokens": self.new_tokens, "n_prompts": len(self.prompts)}


__all__ = ["CONTINUATION", "Continuation", "collect_prompts", "prompt_id", "read_prompts"]

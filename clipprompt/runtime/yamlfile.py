"""Reading a YAML config file so that a mistake in it is one line naming the file and line."""

from __future__ import annotations

import contextlib
from pathlib import Path

from clipprompt.errors import UserError


def load_yaml(path) -> object:
    """The parsed contents of ``path`` (``yaml.safe_load``; an empty file gives None).

    A syntax error becomes ``UserError("<path>, line <n>: <problem>")`` (lines counted from 1),
    an unreadable file ``UserError("<path>: <reason>")``.
    """
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UserError(f"{path}: cannot read it ({reason})") from None
    with yaml_errors_as_user_errors(path):
        return yaml.safe_load(text)


def describe_yaml_error(path, exc) -> str:
    """``<path>, line <n>: <problem>`` for a ``yaml.YAMLError`` (lines counted from 1, as editors do)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem_text = getattr(exc, "problem", None)
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if mark is None and not problem_text:
        return f"{path}: {' '.join(str(exc).split())}"
    where = f", line {mark.line + 1}" if mark is not None else ""
    problem = " ".join(str(problem_text or context or "invalid YAML").split())
    if problem_text and context and context_mark is not None and context_mark is not mark:
        problem += f" ({context} from line {context_mark.line + 1})"  # e.g. where a quote opened
    return f"{path}{where}: {problem}"


@contextlib.contextmanager
def yaml_errors_as_user_errors(path):
    """Inside the block (e.g. yacs' ``merge_from_file``), a ``yaml.YAMLError`` becomes a
    :class:`UserError` naming ``path`` and its line."""
    import yaml

    try:
        yield
    except yaml.YAMLError as exc:
        raise UserError(describe_yaml_error(path, exc)) from None


def load_yaml_mapping(path) -> dict:
    """``load_yaml`` for a config file: a mapping at the top (an empty file is ``{}``)."""
    tree = load_yaml(path)
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise UserError(f"{path}: expected KEY: value pairs at the top, found a {type(tree).__name__}")
    return tree

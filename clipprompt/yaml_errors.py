"""A YAML syntax error in a user's file as one line naming the file and line (no Dassl import)."""

from __future__ import annotations

import contextlib

import yaml

from .errors import UserError


def describe_yaml_error(path, exc: yaml.YAMLError) -> str:
    """``<path>:<line>: not valid YAML (<problem>)``; the line is 1-based, as editors count."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
    problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
    return f"{where}: not valid YAML ({problem})"


@contextlib.contextmanager
def yaml_errors_as_user_errors(path):
    """Inside the block, a ``yaml.YAMLError`` becomes a :class:`UserError` naming ``path`` and its line."""
    try:
        yield
    except yaml.YAMLError as exc:
        raise UserError(describe_yaml_error(path, exc)) from None

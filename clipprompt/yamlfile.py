"""Reading a YAML config file so that a mistake in it is one line naming the file and line."""

from __future__ import annotations

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
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        if exc.problem and exc.context and exc.context_mark is not None and exc.context_mark is not mark:
            problem += f" ({exc.context} from line {exc.context_mark.line + 1})"  # e.g. where a quote opened
        raise UserError(f"{path}{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: {' '.join(str(exc).split())}") from None


def load_yaml_mapping(path) -> dict:
    """``load_yaml`` for a config file: a mapping at the top (an empty file is ``{}``)."""
    tree = load_yaml(path)
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise UserError(f"{path}: expected KEY: value pairs at the top, found a {type(tree).__name__}")
    return tree

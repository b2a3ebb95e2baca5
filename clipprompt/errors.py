"""The one exception type for mistakes a user can fix (a path, a config key, a file)."""

import sys


class UserError(ValueError):
    """A problem with the user's input; its message says what to fix in one line.

    Command-line entry points print these as ``error: <message>`` and exit
    with status 2 instead of showing a traceback (see ``exit_status``).
    """


def exit_status(main):
    """Call ``main()``; a ``UserError`` becomes one ``error:`` line on stderr and status 2.

    Returns ``main()``'s status when it is an int, else 0, for ``sys.exit``.
    """
    try:
        status = main()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return status if isinstance(status, int) else 0

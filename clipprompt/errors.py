"""The one exception type for mistakes a user can fix (a path, a config key, a file)."""


class UserError(ValueError):
    """A problem with the user's input; its message says what to fix in one line.

    ``train.py`` prints these as ``error: <message>`` and exits with status 2
    instead of showing a traceback.
    """

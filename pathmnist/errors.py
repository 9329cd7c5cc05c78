"""The one exception a user's mistake raises.

A bad file, flag or value raises `PathMNISTError` with one sentence that names the
problem and the fix. It is a `ValueError`, so `except ValueError` still catches it; the
examples print `error: <sentence>` and exit with status 2, without a traceback.
"""


class PathMNISTError(ValueError):
    """A user error: the message names what is wrong and how to fix it."""

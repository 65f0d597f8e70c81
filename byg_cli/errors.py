"""User-facing errors: the CLI prints these as one line, without a traceback."""


class BygError(Exception):
    """A problem with the user's input (a recipe key, a path, a file) that the user can fix."""

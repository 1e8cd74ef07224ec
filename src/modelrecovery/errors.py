"""Errors that reach the user as one clear line and a non-zero exit."""


class InputError(ValueError):
    """Bad user input: the message names the file, the row or key, and what was wrong."""

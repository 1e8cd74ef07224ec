"""Errors that reach the user as one clear line and a non-zero exit."""


class InputError(ValueError):
    """Bad user input: the message names the file, the row or key, and what was wrong."""


class ResourceError(RuntimeError):
    """A job needs more of a resource (memory, disk) than it is allowed: the message says
    how much, and which setting to change."""

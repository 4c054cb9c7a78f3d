"""Errors a person can act on. Every message names the thing to fix."""


class DermlensError(Exception):
    """Base class: the command line prints the message and exits non-zero, never a traceback."""


class DatasetError(DermlensError):
    """A dataset cannot be read as given (missing files, bad columns, unknown labels...)."""


class ConfigError(DermlensError):
    """A configuration value is unknown or out of range."""


class ModelFileError(DermlensError):
    """A checkpoint or exported model is missing, corrupt, or does not match what is asked of it."""

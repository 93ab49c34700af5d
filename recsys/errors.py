"""User-facing errors.

Anything the user can fix (a bad file, a missing column, an unknown config key, an empty
result after filtering) raises :class:`RecsysError` with a message that says what and where.
The CLI prints the message and exits non-zero without a traceback.
"""

from __future__ import annotations


class RecsysError(Exception):
    """An error caused by user input; its message is shown as is."""


class ConfigError(RecsysError):
    """A configuration file or override is invalid."""


class DataError(RecsysError):
    """An input data file is missing, malformed or yields an empty result."""

"""User-facing errors: the CLI turns these into one clear line and exit code 2, no traceback."""


class PvgError(Exception):
    """Bad input a user can fix (a file, a key, a line); the message says what and how."""

"""The one error type podku raises on purpose: its message is shown to the user as is."""


class PodkuError(Exception):
    """A failure the user can act on; the CLI prints it on one line and exits non-zero."""

    exit_code = 1


class UsageError(PodkuError):
    """Bad input: a name, a key, an argument. Nothing was changed."""

    exit_code = 2

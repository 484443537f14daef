"""Errors a user can fix, under one base: the CLI shows a `UserError` as one line and exits with
status 2. Anything else escaping a run is a bug (ours or a dependency's): one line saying so,
`CL_BENCH_DEBUG=1` for the traceback, exit status 1. This module imports nothing heavy, so the
CLI can name these before torch is loaded.

A `ValueError` raised by torch is therefore a bug report, not a config error: only what our code
recognises as the user's to fix becomes a `UserError`.
"""

EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3
EXIT_BUG = 1


class UserError(Exception):
    """Something in the config, the command line or the files on disk that the user can fix;
    the message is the one line they see, naming the key or file and what is allowed."""


# ValueError too: code that called builders with a bad value long before this base existed
# catches ValueError, and for a bad value it is the right type.
class ConfigError(UserError, ValueError):
    """A config value, key or combination that cannot run."""


class UnknownNameError(ConfigError):
    """A config named a component that is not registered."""


class DataUnavailableError(UserError, RuntimeError):
    """A dataset's files are missing, corrupt, or could not be downloaded."""


class CheckpointError(UserError, ValueError):
    """A checkpoint or run folder that cannot be resumed from: unreadable, unsafe, another config."""


def debugging() -> bool:
    """CL_BENCH_DEBUG=1: let errors propagate with their tracebacks."""
    import os

    return os.environ.get("CL_BENCH_DEBUG", "") not in ("", "0")


def describe(exc: BaseException) -> str:
    """The one line shown for an error: a user error's message, or a bug named as one."""
    if isinstance(exc, UserError):
        return f"cl-bench: error: {exc}"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return (f"cl-bench: internal error: {type(exc).__name__}{': ' + first if first else ''} "
            f"(a bug in cl-bench or a dependency; run with CL_BENCH_DEBUG=1 for the traceback)")


def exit_status(exc: BaseException) -> int:
    return EXIT_USER_ERROR if isinstance(exc, UserError) else EXIT_BUG

"""Errors a user can fix. The CLI turns them into one line and exit status 2; they live in a
module without heavy imports so the CLI can name them before torch is loaded."""


class DataUnavailableError(RuntimeError):
    """A dataset's files are missing, corrupt, or could not be downloaded."""

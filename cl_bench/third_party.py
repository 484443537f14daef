"""Third-party imports that talk to the user about things they cannot act on, made once, quietly.

Avalanche imports qpsolvers (for GEM), which imports jaxopt when it is installed, and jaxopt
announces on import that it is unmaintained. Importing qpsolvers here first, with a filter scoped
to that one import and that one message, keeps every other warning visible. Done from the package
init because any module that touches avalanche.training or avalanche.models triggers it.
"""
from __future__ import annotations

import contextlib
import warnings


def import_quietly() -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="JAXopt is no longer maintained", category=DeprecationWarning)
        with contextlib.suppress(ImportError):  # not installed: nothing to silence
            import qpsolvers  # noqa: F401

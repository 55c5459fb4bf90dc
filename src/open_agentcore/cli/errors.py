"""The CLI's own failure type: one line for the user, exit code 1."""

from __future__ import annotations


class CliError(Exception):
    """A failure the user can act on; `main` prints its message on one line and exits 1."""


__all__ = ["CliError"]

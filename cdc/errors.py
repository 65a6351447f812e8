"""Errors of the daemon, rooted at one `CdcError`; each names the problem and its fix."""

from __future__ import annotations


class CdcError(Exception):
    """A failure with a message for people: what is wrong, and how to fix it."""

    exit_code = 1

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.problem}; fix: {self.fix}" if self.fix else self.problem


class ConfigError(CdcError):
    """Bad flags, environment or configuration file."""

    exit_code = 2


class StartupError(CdcError):
    """The daemon cannot start: the server cannot be captured, a dependency is missing."""

    exit_code = 3


class CaptureError(CdcError):
    """Capture cannot go on (purged position, lost privileges, setting changed): fatal."""

    exit_code = 1


class DecodeError(CdcError):
    """A row image could not be decoded; never skipped."""

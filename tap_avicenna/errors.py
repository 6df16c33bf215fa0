"""Errors the tap reports to the user as one clear line (no traceback)."""

from __future__ import annotations


class AvicennaError(Exception):
    """An expected failure: the message is the one line the user sees."""


class ConfigError(AvicennaError):
    """A setting is missing or invalid; the message names the setting."""


class ApiError(AvicennaError):
    """The API answered in a way the tap cannot continue from."""


class AuthError(ApiError):
    """The API rejected the credentials."""


class ColumnsRefused(ApiError):
    """A filter export was refused (HTTP 400) with an answer naming some of the columns it
    asked for (`columns`); the message is the refusal's."""

    def __init__(self, message: str, columns: tuple[str, ...]) -> None:
        super().__init__(message)
        self.columns = columns


class ExportFailed(AvicennaError):
    """An export could not be completed within its attempts or time."""


class FileFormatError(AvicennaError):
    """A downloaded export file is broken or hostile (names the file, line and reason)."""


class LocalWriteError(AvicennaError):
    """A file could not be written on this machine (disk full, no permission, read-only
    file system): the message names the folder and the error."""

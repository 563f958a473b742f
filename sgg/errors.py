"""Errors that sgg raises for bad user input."""

from __future__ import annotations


class SggInputError(ValueError):
    """Bad input from the user (a file, a label line, a config): the message names the file and the cause."""

    def __init__(self, message: str, path: object | None = None, where: str | None = None):
        parts = []
        if path is not None:
            parts.append(str(path))
        if where:
            parts.append(where)
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.path = path
        self.where = where

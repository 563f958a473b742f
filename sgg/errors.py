"""Errors that sgg raises for bad user input."""

from __future__ import annotations


class SggInputError(ValueError):
    """Bad input from the user (a file, a label line, a config, a command-line option): the message names
    the option, the file and the record at fault, then the cause — ``--out x.tif: unknown output suffix``,
    ``a.json: objects[3].box.w: must be > 0``. The command line prints it as one line, exit status 2."""

    def __init__(self, message: str, path: object | None = None, where: str | None = None,
                 option: str | None = None):
        head = " ".join(str(p) for p in (option, path) if p is not None)
        prefix = ": ".join(p for p in (head, where) if p)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.path = path
        self.where = where
        self.option = option

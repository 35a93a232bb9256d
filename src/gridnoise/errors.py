"""Errors that the CLI turns into one line and an exit status, never a traceback."""

from __future__ import annotations


class GridnoiseError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do."""

    exit_code = 2


class CheckpointError(GridnoiseError):
    """A checkpoint or result file is missing, corrupt or from another run."""


class OutputExistsError(GridnoiseError):
    """The output directory already holds results."""


class DivergedError(GridnoiseError):
    """Training produced a non-finite loss; the last good checkpoint is kept."""

    exit_code = 1

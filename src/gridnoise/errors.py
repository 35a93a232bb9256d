"""Every error gridnoise reports to a user: the CLI prints its message as one line and exits with
its `exit_code`, never a traceback. Each message says what is wrong and what to do.

    GridnoiseError
      ConfigError        a setting or config/experiment file is invalid
        SamplerError     a sampler the run's adaptation or schedule does not support
      DataError          a data set cannot be produced (unknown name, missing or corrupt table)
      MetricError        a metric cannot be computed on the given inputs
      CheckpointError    a checkpoint or result file is missing, corrupt or from another run
      OutputExistsError  the output already holds results that would be clobbered
      ClusterError       the Dask scheduler cannot be reached
      DivergedError      training produced a non-finite loss (exit status 1)

The value errors also derive from `ValueError`, so code that catches that keeps working.
"""

from __future__ import annotations


class GridnoiseError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do."""

    exit_code = 2


class ConfigError(GridnoiseError, ValueError):
    """A configuration value or file is invalid; the message says which and how to fix it."""


class SamplerError(ConfigError):
    """A sampler that the run's adaptation or schedule does not support."""


class DataError(GridnoiseError, ValueError):
    """A data set cannot be produced; the message says why and what to do."""


class MetricError(GridnoiseError, ValueError):
    """A metric cannot be computed on the given inputs; the message says why."""


class CheckpointError(GridnoiseError):
    """A checkpoint or result file is missing, corrupt or from another run."""


class OutputExistsError(GridnoiseError):
    """The output directory already holds results."""


class ClusterError(GridnoiseError):
    """The Dask scheduler cannot be reached."""


class DivergedError(GridnoiseError):
    """Training produced a non-finite loss; the last good checkpoint is kept."""

    exit_code = 1


def one_line(error: BaseException) -> str:
    """The message of `error` as one line: a GridnoiseError's own text, an OSError's reason and path.
    Bytes that were not UTF-8 in a file name or argument (lone surrogates in Python) are shown as
    escapes, so any terminal can print the line."""
    if isinstance(error, OSError) and not isinstance(error, GridnoiseError):
        text = f"{error.strerror or error}: {error.filename or ''} - check the path and permissions"
    else:
        text = str(error)
    return " ".join(text.encode("utf-8", "backslashreplace").decode("utf-8").split())


def exit_code(error: BaseException) -> int:
    """The exit status for `error`: its own for a GridnoiseError, 2 (bad input) otherwise."""
    return getattr(error, "exit_code", 2)

"""One error hierarchy: everything the CLI reports in one line derives from GridnoiseError."""

import inspect

import pytest

from gridnoise import errors

from conftest import cli


def test_every_reported_error_is_a_gridnoise_error_and_value_errors_stay_value_errors():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__]
    assert {"ConfigError", "SamplerError", "DataError", "MetricError", "CheckpointError", "OutputExistsError",
            "ClusterError", "DivergedError"} <= {c.__name__ for c in classes}
    assert all(issubclass(c, errors.GridnoiseError) for c in classes)
    for c in (errors.ConfigError, errors.SamplerError, errors.DataError, errors.MetricError):
        assert issubclass(c, ValueError)
    # the modules that raise them re-export nothing of their own
    from gridnoise import config, data, metrics

    assert config.ConfigError is errors.ConfigError and data.DataError is errors.DataError
    assert metrics.MetricError is errors.MetricError


@pytest.mark.parametrize("error, code", [(errors.DivergedError("x"), 1), (errors.ConfigError("x"), 2),
                                         (FileNotFoundError(2, "No such file", "/nope"), 2)])
def test_exit_codes_and_one_line_messages(error, code):
    assert errors.exit_code(error) == code
    assert "\n" not in errors.one_line(error)


def test_an_os_error_is_one_line_naming_the_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = cli("train", "--steps", 1, "--n-points", 300, "--out", blocker / "run")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(blocker / "run") in lines[0] and "check the path" in lines[0]
    assert blocker.read_text() == "x"

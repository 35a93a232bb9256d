import os
import stat

import numpy as np
import pytest

from gridnoise.files import atomic_write, write_json, write_npz


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = write_json(tmp_path / "metrics.json", {"kl_divergence": 0.5})
    before = path.read_bytes()

    def fail(f):
        f.write(b"half a fi")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, fail)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_npz_round_trip(tmp_path):
    samples = np.arange(12, dtype=np.float32).reshape(6, 2)
    with np.load(write_npz(tmp_path / "samples.npz", samples=samples), allow_pickle=False) as f:
        np.testing.assert_array_equal(f["samples"], samples)


def test_written_files_get_the_umask_permissions_not_mkstemps_0600(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    written = write_json(tmp_path / "report.json", {})
    assert stat.S_IMODE(written.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~umask

import json

from gridnoise.bench import BenchSettings, format_table, run_bench, training_flops_per_step
from gridnoise.config import RunConfig


def test_flop_count_of_the_reference_network():
    # (384 * 256 + 3 * 256^2 + 256 * 2) MACs per sample, x2 forward, x3 with backward, x256 samples
    assert training_flops_per_step(RunConfig(), False) == 6 * (384 * 256 + 3 * 65536 + 512) * 256


def test_bench_runs_at_a_tiny_size(tmp_path):
    result = run_bench(BenchSettings(steps=3, warmup=1, samples=50, n_points=1000, workers=2))
    for variant in ("baseline", "multiscale_l1"):
        v = result["variants"][variant]
        assert v["plain_steps_per_s"] > 0 and v["gridnoise_steps_per_s_machine"] > 0
        assert v["training_speedup"] == v["gridnoise_steps_per_s_machine"] / v["plain_steps_per_s"]
        assert 0 < v["fraction_of_fp32_peak"]
    assert result["matmul_gflops"]["fp32_1thread"] > 0
    assert "multiscale_l1" in format_table(result)
    json.dumps(result)

import json

import pytest

from gridnoise.bench import BenchSettings, format_table, has_native_bf16, run_bench, training_flops_per_step
from gridnoise.config import RunConfig


def test_flop_count_of_the_reference_network():
    # (384 * 256 + 3 * 256^2 + 256 * 2) MACs per sample, x2 forward, x3 with backward, x256 samples
    assert training_flops_per_step(RunConfig(), False) == 6 * (384 * 256 + 3 * 65536 + 512) * 256


def test_bench_runs_at_a_tiny_size():
    # one worker, so the share of peak must be taken over the cores in use, not the machine's
    result = run_bench(BenchSettings(steps=3, warmup=1, samples=50, n_points=1000, workers=1, levers=True))
    precisions = ["fp32", "bf16"] if has_native_bf16() else ["fp32"]
    for variant in ("baseline", "multiscale_l1"):
        v = result["variants"][variant]
        assert v["plain_steps_per_s"] > 0 and v["plain_sampling_seconds"] > 0
        for precision in precisions:
            p = v[precision]
            assert p["steps_per_s_machine"] > 0 and p["sampling_seconds"] > 0 and p["sampling_seconds_machine"] > 0
            assert p["training_speedup"] == p["steps_per_s_machine"] / v["plain_steps_per_s"]
            peak = result["matmul_gflops"][f"{precision}_1thread"]
            assert p["fraction_of_peak"] == pytest.approx(p["training_gflops"] / peak)
    assert result["matmul_gflops"]["fp32_1thread"] > 0
    assert result["levers"]["vmap_models"]["model_steps_per_s"] > 0
    compiled = result["levers"]["torch_compile"]
    assert compiled.get("compile_seconds", 0) > 0 or compiled["error"]
    table = format_table(result)
    assert "multiscale_l1" in table and "torch.compile" in table
    json.dumps(result)

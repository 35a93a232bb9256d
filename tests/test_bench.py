import json
import os
import shutil

import pytest

from gridnoise.bench import BenchSettings, best_of, format_table, run_bench, sampling_flops, training_flops_per_step
from gridnoise.config import RunConfig
from gridnoise.precision import native_bf16


def test_flop_count_of_the_reference_network():
    # (384 * 256 + 3 * 256^2 + 256 * 2) MACs per sample, x2 forward, x3 with backward, x256 samples
    assert training_flops_per_step(RunConfig(), False) == 6 * (384 * 256 + 3 * 65536 + 512) * 256
    # one forward call (2 FLOPs per MAC) per point and timestep; the level input adds one column
    assert sampling_flops(RunConfig(), True, 10) == 2 * (385 * 256 + 3 * 65536 + 512) * 10 * 100


def testbest_of_takes_the_highest_rate_or_the_lowest_time():
    assert best_of(3, next, iter([2.0, 5.0, 1.0])) == 5.0
    assert best_of(3, next, iter([2.0, 5.0, 1.0]), lower=True) == 1.0
    assert best_of(1, next, iter([2.0, 5.0])) == 2.0  # runs exactly `repeats` times


def test_bench_runs_at_a_tiny_size():
    # one worker, so the share of peak must be taken over the cores in use, not the machine's
    # (the peak is measured with as many single-threaded processes as the training figure)
    result = run_bench(BenchSettings(steps=3, warmup=1, samples=50, n_points=1000, workers=1, repeats=1,
                                     levers=True, task_steps=20))
    precisions = ["fp32", "bf16"] if native_bf16("cpu") else ["fp32"]
    for variant in ("baseline", "multiscale_l1"):
        v = result["variants"][variant]
        assert v["plain_steps_per_s"] > 0 and v["plain_sampling_seconds"] > 0
        for precision in precisions:
            p = v[precision]
            assert p["steps_per_s_machine"] > 0 and p["sampling_seconds"] > 0 and p["sampling_seconds_machine"] > 0
            assert p["training_speedup"] == p["steps_per_s_machine"] / v["plain_steps_per_s"]
            peak = result["matmul_gflops"][f"{precision}_machine"]
            assert p["fraction_of_peak"] == pytest.approx(p["training_gflops"] / peak)
            assert 0 < p["sampling_fraction_of_peak"] < 1.5  # no code beats the matmul peak
    assert result["matmul_gflops"]["fp32_1thread"] > 0
    # one worker's machine peak is one thread's, up to timing noise
    assert 0.5 < result["matmul_gflops"]["fp32_machine"] / result["matmul_gflops"]["fp32_1thread"] < 2
    assert result["levers"]["vmap_models"]["model_steps_per_s"] > 0
    compiled = result["levers"]["torch_compile"]
    if shutil.which(os.environ.get("CXX", "c++")):  # inductor compiles C++: with a compiler it must work
        assert compiled["compile_seconds"] > 0 and compiled["compiled_steps_per_s"] > 0, compiled
    else:
        assert "error" in compiled and "compiled_steps_per_s" not in compiled
    # one real grid task, as a study worker runs it: the share of its wall time beyond training and
    # evaluation, as the task recorded it, against the 3 % budget
    task = result["grid_task"]
    assert task["steps"] == 20 and task["snapshots"] == 10 and task["target"] == 0.03
    assert task["wall_time"] > task["training_time"] > 0 and task["evaluation_time"] > 0
    assert 0 <= task["overhead_share"] <= 1
    table = format_table(result)
    assert "multiscale_l1" in table and "torch.compile" in table
    assert f"{100 * task['overhead_share']:.1f}%" in table and "target: beyond <= 3%" in table
    assert result["machine"]["cpu"] in table  # the table says which machine it is from
    json.dumps(result)

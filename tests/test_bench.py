import json
import os
import shutil

import pytest
import torch

from gridnoise.bench import BenchSettings, best_of, format_table, run_bench, sampling_flops, training_flops_per_step
from gridnoise.components import build_components
from gridnoise.config import RunConfig, adaptation_for
from gridnoise.data import load
from gridnoise.sampling import sample
from gridnoise.seeding import generator
from gridnoise.trainer import Trainer

from conftest import HARDWARE_BF16


@pytest.mark.parametrize("variant", ["baseline", "multiscale_l1"])
def test_flop_counts_agree_with_what_torch_counts(variant):
    from torch.utils.flop_counter import FlopCounterMode

    cfg = RunConfig(variant=variant, adaptation=adaptation_for(variant), device="cpu")
    grid_input = variant != "baseline"  # as run_bench asks
    trainer = Trainer(cfg, load("moons", 1000))
    trainer.train_step()
    with FlopCounterMode(display=False) as counted:
        trainer.train_step()
    step = counted.get_total_flops()
    estimate = training_flops_per_step(cfg, grid_input)
    if grid_input:  # the grid's g has a gradient, so every layer computes its input's gradient too
        assert estimate == step
    else:  # the baseline's first layer takes the fixed embeddings: no input gradient, which the estimate counts
        assert step < estimate < 1.15 * step
    cfg.diffusion.num_timesteps = 10
    scheduler, adaptation, model = build_components(cfg, torch.device("cpu"))
    with FlopCounterMode(display=False) as counted:
        sample(model, adaptation, scheduler, 100, generator(0, "flops"))
    assert sampling_flops(cfg, grid_input, 100) == counted.get_total_flops()


def testbest_of_takes_the_highest_rate_or_the_lowest_time():
    assert best_of(3, next, iter([2.0, 5.0, 1.0])) == 5.0
    assert best_of(3, next, iter([2.0, 5.0, 1.0]), lower=True) == 1.0
    assert best_of(1, next, iter([2.0, 5.0])) == 2.0  # runs exactly `repeats` times


def test_bench_runs_at_a_tiny_size():
    # one worker, so the share of peak must be taken over the cores in use, not the machine's
    # (the peak is measured with as many single-threaded processes as the training figure)
    result = run_bench(BenchSettings(steps=3, warmup=1, samples=50, n_points=1000, workers=1, repeats=1,
                                     levers=True, task_steps=20, ode_points=4))
    assert result["machine"]["native_bf16"] == HARDWARE_BF16
    precisions = ["fp32", "bf16"] if HARDWARE_BF16 else ["fp32"]
    assert set(result["matmul_gflops"]) == {f"{p}_{n}" for p in precisions
                                            for n in ("1thread", "all_threads", "machine")}
    for variant in ("baseline", "multiscale_l1"):
        v = result["variants"][variant]
        assert set(v) == {"plain_steps_per_s", "plain_sampling_seconds", "evaluation_seconds", *precisions}
        assert v["plain_steps_per_s"] > 0 and v["plain_sampling_seconds"] > 0 and v["evaluation_seconds"] > 0
        for precision in precisions:
            p = v[precision]
            assert p["steps_per_s_one_process"] > 0 and p["steps_per_s_machine"] > 0
            assert p["sampling_seconds"] > 0 and p["sampling_seconds_machine"] > 0
            # every ratio is the ratio of the figures it reports
            assert p["training_speedup"] == pytest.approx(p["steps_per_s_machine"] / v["plain_steps_per_s"])
            assert p["sampling_speedup"] == pytest.approx(v["plain_sampling_seconds"] / p["sampling_seconds"])
            assert p["sampling_speedup_machine"] == pytest.approx(v["plain_sampling_seconds"]
                                                                  / p["sampling_seconds_machine"])
            peak = result["matmul_gflops"][f"{precision}_machine"]
            assert p["training_gflops"] > 0
            assert p["fraction_of_peak"] == pytest.approx(p["training_gflops"] / peak)
            assert 0 < p["sampling_fraction_of_peak"] < 1.5  # no code beats the matmul peak
    assert result["matmul_gflops"]["fp32_1thread"] > 0
    # one worker's machine peak is one thread's, up to timing noise
    assert 0.5 < result["matmul_gflops"]["fp32_machine"] / result["matmul_gflops"]["fp32_1thread"] < 2
    vmapped = result["levers"]["vmap_models"]
    assert vmapped["model_steps_per_s"] > 0
    assert vmapped["speedup"] == pytest.approx(vmapped["model_steps_per_s"] / vmapped["single_steps_per_s"])
    compiled = result["levers"]["torch_compile"]
    if shutil.which(os.environ.get("CXX", "c++")):  # inductor compiles C++: with a compiler it must work
        assert compiled["compile_seconds"] > 0 and compiled["compiled_steps_per_s"] > 0, compiled
        assert compiled["speedup"] == pytest.approx(compiled["compiled_steps_per_s"] / compiled["eager_steps_per_s"])
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
    # a baseline task's likelihood evaluation against its training: what the task and the evaluation recorded
    cost = result["likelihood"]
    assert (cost["variant"], cost["steps"], cost["nll_ode_points"], cost["nll_ode_check_points"]) == \
        ("baseline", 20, 4, 4)
    assert cost["nll_elbo_points"] == 50  # the task's held-out draw: eval.num_samples points
    assert cost["likelihood_time"] >= cost["nll_elbo_time"] + cost["nll_ode_time"] > 0
    assert cost["ratio"] == pytest.approx(cost["likelihood_time"] / cost["training_time"])
    assert f"= {cost['ratio']:.2f}x the task's training" in table and "target: <= 1x" in table
    assert result["machine"]["cpu"] in table  # the table says which machine it is from
    json.dumps(result)

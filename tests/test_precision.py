import pytest
import torch

from gridnoise.config import RunConfig, adaptation_for, comparable_dict, from_dict, to_dict
from gridnoise.data import load
from gridnoise.errors import ConfigError
from gridnoise.model import MLPDenoiser
from gridnoise.precision import (
    Autocast,
    autocast,
    cpu_has_native_bf16,
    native_bf16,
    slow_precision_warning,
    with_precision,
)
from gridnoise.study.experiment import config_hash
from gridnoise.trainer import Trainer

from conftest import HARDWARE_BF16

# A GPU with bf16 tensor cores: compute capability 8.0 (Ampere) or later
AMPERE_GPU = torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 0)


def _trainer(precision: str, variant: str = "multiscale_l1", steps: int = 5) -> Trainer:
    cfg = RunConfig(dataset="moons", variant=variant, adaptation=adaptation_for(variant), device="cpu",
                    n_points=2000, precision=precision)
    cfg.train.steps = steps
    return Trainer(cfg, load("moons", 2000))


def test_fp32_is_the_network_itself():
    model = MLPDenoiser()
    assert with_precision(model, "fp32") is model
    assert isinstance(with_precision(model, "bf16"), Autocast)


def test_bf16_runs_linear_layers_in_bfloat16_and_returns_fp32():
    model = MLPDenoiser()
    seen = []
    model.network[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    x, t = torch.randn(8, 2), torch.randint(0, 100, (8,))
    out = with_precision(model, "bf16")(x, t)
    assert seen == [torch.bfloat16] and out.dtype == torch.float32
    exact = model(x, t)
    assert seen[-1] == torch.float32
    # bf16 keeps about 3 significant digits: close to fp32, not equal
    assert not torch.equal(out, exact) and torch.allclose(out, exact, atol=0.05)


def test_bf16_training_is_reproducible_and_close_to_fp32():
    runs = {}
    for precision in ("fp32", "bf16", "bf16"):
        tr = _trainer(precision)
        tr.fit()
        runs.setdefault(precision, []).append(tr.losses.clone())
    assert torch.equal(runs["bf16"][0], runs["bf16"][1])
    assert torch.isfinite(runs["bf16"][0]).all()
    assert not torch.equal(runs["bf16"][0], runs["fp32"][0])
    assert torch.allclose(runs["bf16"][0], runs["fp32"][0], rtol=0.05)


def test_unknown_precision_is_refused():
    with pytest.raises(ConfigError, match="precision"):
        from_dict(RunConfig, {"precision": "fp16"})
    with pytest.raises(ValueError, match="unknown precision"):
        autocast("int8", "cpu")


def test_fp32_keeps_the_task_hashes_of_configs_written_before_precision_existed():
    cfg = RunConfig()
    old = to_dict(cfg)
    del old["precision"]  # a config.toml from before the setting
    assert comparable_dict(from_dict(RunConfig, old)) == comparable_dict(cfg)
    assert "precision" not in comparable_dict(cfg)
    bf16 = RunConfig(precision="bf16")
    assert comparable_dict(bf16)["precision"] == "bf16" and config_hash(bf16) != config_hash(cfg)


# /proc/cpuinfo of known CPUs, abridged to the lines that matter: which have bf16 matrix instructions
CPUINFO = "processor\t: 0\nvendor_id\t: {vendor}\nmodel name\t: {model}\nflags\t\t: {flags}\nbugs\t\t: spectre_v1\n"
BASE_FLAGS = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr sse sse2 ssse3 fma cx16 sse4_1 sse4_2 avx f16c avx2 bmi2"
KNOWN_CPUS = [
    ("AuthenticAMD", "AMD EPYC 7B13 64-Core Processor", "sha_ni clzero", False),  # Zen 3: AVX2 only
    ("GenuineIntel", "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz",  # Ice Lake: AVX512 without bf16
     "avx512f avx512dq avx512cd avx512bw avx512vl avx512ifma avx512vbmi avx512_vbmi2 avx512_vnni", False),
    ("GenuineIntel", "Intel(R) Xeon(R) Platinum 8380H CPU @ 2.90GHz",  # Cooper Lake: AVX512-BF16
     "avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni avx512_bf16", True),
    ("AuthenticAMD", "AMD EPYC 9654 96-Core Processor",  # Zen 4: AVX512-BF16
     "avx512f avx512dq avx512bw avx512vl avx512_bf16 avx512_vnni avx512_bitalg", True),
    ("GenuineIntel", "Intel(R) Xeon(R) Platinum 8480+",  # Sapphire Rapids: AMX and AVX512-BF16
     "avx512f avx512bw avx512vl avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8", True),
]


@pytest.mark.parametrize("vendor, model, flags, native", KNOWN_CPUS)
def test_native_bf16_cpus_are_told_by_their_flags(vendor, model, flags, native):
    cpuinfo = CPUINFO.format(vendor=vendor, model=model, flags=f"{BASE_FLAGS} {flags}")
    assert cpu_has_native_bf16(cpuinfo) is native
    assert cpu_has_native_bf16(cpuinfo.replace("avx512_bf16", "")) is ("amx_bf16" in flags)  # AMX alone suffices
    assert cpu_has_native_bf16(cpuinfo.replace("avx512_bf16", "").replace("amx_bf16", "")) is False


def test_no_flags_line_is_no_native_bf16():
    assert cpu_has_native_bf16("") is False
    # the flag must be a flag of this CPU, not a word elsewhere in the file
    assert cpu_has_native_bf16(CPUINFO.format(vendor="x", model="avx512_bf16", flags=BASE_FLAGS)) is False


def test_native_bf16_agrees_with_the_kernel_and_torch():
    assert native_bf16("cpu") == HARDWARE_BF16  # the flags the kernel reports for this CPU
    if native_bf16("cpu"):  # bf16 matrix instructions come with AVX512, so torch runs its AVX512 kernels
        assert torch.backends.cpu.get_cpu_capability() == "AVX512"
        assert torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert native_bf16("cuda") == AMPERE_GPU


def test_only_emulated_bf16_is_warned_about():
    assert slow_precision_warning("fp32", "cpu") is None and slow_precision_warning("fp32", "cuda") is None
    cpu = slow_precision_warning("bf16", "cpu")
    assert (cpu is None) == HARDWARE_BF16
    assert HARDWARE_BF16 or ("no AVX512-BF16 or AMX" in cpu and "--precision fp32" in cpu)
    cuda = slow_precision_warning("bf16", "cuda")
    assert (cuda is None) == AMPERE_GPU
    assert AMPERE_GPU or "--precision fp32" in cuda

"""gridnoise: diffusion models on 2-D data with learnable grid-based noise adaptation.

The public API (docs/reference/api.md lists it): names are imported on first use, so
`import gridnoise` stays light (the command line starts without importing torch).
"""

from __future__ import annotations

import importlib
from typing import Any

from gridnoise.version import __version__

# public name -> the module that defines it
_EXPORTS = {
    "make_config": "gridnoise.api", "load_data": "gridnoise.api", "train": "gridnoise.api",
    "load_run": "gridnoise.api", "Run": "gridnoise.api", "sample_metrics": "gridnoise.api", "evaluate": "gridnoise.api",
    "run_experiment": "gridnoise.api", "tune_experiment": "gridnoise.api", "load_study": "gridnoise.api",
    "Study": "gridnoise.api",
    "RunConfig": "gridnoise.config", "SamplerConfig": "gridnoise.config", "AdaptationConfig": "gridnoise.config",
    "DATASETS": "gridnoise.data", "VARIANTS": "gridnoise.presets",
    "DDPMScheduler": "gridnoise.schedulers", "DDIMScheduler": "gridnoise.schedulers",
    "NoiseAdaptation": "gridnoise.adaptation", "GridAdaptation": "gridnoise.adaptation",
    "MLPDenoiser": "gridnoise.model", "check_adaptation": "gridnoise.testing",
    "GridnoiseError": "gridnoise.errors",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'gridnoise' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(__all__)

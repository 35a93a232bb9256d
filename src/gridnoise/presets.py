"""The study's five variants as named presets (SYSTEM.md section 1).

A variant is data: the adaptation settings it resolves to. Adding a variant is adding an
entry here (or writing the same table in a TOML file).
"""

from __future__ import annotations

from gridnoise.config import AdaptationConfig, ConfigError

SEED_EXTENT = [-1.0, 1.0, -1.0, 1.0]

VARIANTS: dict[str, dict] = {
    "baseline": dict(kind="none"),
    "grid10": dict(kind="seed_grid", grids={"grid": 10}),
    "grid20": dict(kind="seed_grid", grids={"grid": 20}),
    "multiscale": dict(kind="seed_grid", grids={"coarse": 5, "fine": 20}),
    "multiscale_l1": dict(kind="seed_grid", grids={"coarse": 5, "fine": 20}, l1={"fine": 0.01}),
}
# The seed's variants with grids over the data's bounding box (+5%) instead of [-1, 1]^2.
VARIANTS.update({f"{name}_data": dict(VARIANTS[name], extent_from_data=True)
                 for name in ("grid10", "grid20", "multiscale", "multiscale_l1")})
# Beyond the seed (issue 5): consistent conditioning and a learned reverse variance, data extent.
VARIANTS.update({
    "conditioning": dict(kind="conditioning", grids={"grid": 10}, extent_from_data=True),
    "conditioning_multiscale": dict(kind="conditioning", grids={"coarse": 5, "fine": 20}, extent_from_data=True),
    "reverse_variance": dict(kind="reverse_variance", grids={"grid": 10}, extent_from_data=True),
    "reverse_variance_multiscale": dict(kind="reverse_variance", grids={"coarse": 5, "fine": 20},
                                        extent_from_data=True),
})

# Human-readable labels used by the seed's plots and logs.
LABELS: dict[str, str] = {
    "baseline": "Baseline",
    "grid10": "10x10 Grid",
    "grid20": "20x20 Grid",
    "multiscale": "Multi-scale Grid",
    "multiscale_l1": "Multi-scale + L1 Reg",
    "grid10_data": "10x10 Grid, data extent",
    "grid20_data": "20x20 Grid, data extent",
    "multiscale_data": "Multi-scale Grid, data extent",
    "multiscale_l1_data": "Multi-scale + L1, data extent",
    "conditioning": "x_t-conditioned 10x10 Grid",
    "conditioning_multiscale": "x_t-conditioned Multi-scale",
    "reverse_variance": "Reverse-variance 10x10 Grid",
    "reverse_variance_multiscale": "Reverse-variance Multi-scale",
}


def adaptation_for(variant: str) -> AdaptationConfig:
    """The adaptation settings of a named variant; unknown names raise ConfigError."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown variant '{variant}': choose one of {', '.join(VARIANTS)}")
    spec = VARIANTS[variant]
    return AdaptationConfig(
        kind=spec["kind"],
        grids=dict(spec.get("grids", {})),
        l1=dict(spec.get("l1", {})),
        extent=list(SEED_EXTENT),
        extent_from_data=spec.get("extent_from_data", False),
    )

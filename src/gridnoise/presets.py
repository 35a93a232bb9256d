"""Named variants as data: the adaptation settings each resolves to (`config.adaptation_for`).

The original study ran five (`baseline`, `grid10`, `grid20`, `multiscale`, `multiscale_l1`);
the others move its grids onto the data's extent or fix the inconsistencies of its mechanism.
Adding a variant is adding an entry here, or writing the same table in a TOML file.
"""

from __future__ import annotations

ORIGINAL_EXTENT = (-1.0, 1.0, -1.0, 1.0)  # the original study's grids cover [-1, 1]^2

VARIANTS: dict[str, dict] = {
    "baseline": dict(kind="none"),
    "grid10": dict(kind="original_grid", grids={"grid": 10}),
    "grid20": dict(kind="original_grid", grids={"grid": 20}),
    "multiscale": dict(kind="original_grid", grids={"coarse": 5, "fine": 20}),
    "multiscale_l1": dict(kind="original_grid", grids={"coarse": 5, "fine": 20}, l1={"fine": 0.01}),
}
# The original variants with grids over the data's bounding box (+5%) instead of [-1, 1]^2.
VARIANTS.update({f"{name}_data": dict(VARIANTS[name], extent_from_data=True)
                 for name in ("grid10", "grid20", "multiscale", "multiscale_l1")})
# Consistent mechanisms, over the data's extent: g fed to the denoiser at x_t in training and
# sampling alike, and g as a learned reverse variance.
VARIANTS.update({
    "conditioning": dict(kind="conditioning", grids={"grid": 10}, extent_from_data=True),
    "conditioning_multiscale": dict(kind="conditioning", grids={"coarse": 5, "fine": 20}, extent_from_data=True),
    "reverse_variance": dict(kind="reverse_variance", grids={"grid": 10}, extent_from_data=True),
    "reverse_variance_multiscale": dict(kind="reverse_variance", grids={"coarse": 5, "fine": 20},
                                        extent_from_data=True),
    # the control for those: one cell, a learned reverse variance per timestep that is the same everywhere,
    # so what the grids add beyond it is what is spatial
    "reverse_variance_constant": dict(kind="reverse_variance", grids={"grid": 1}, extent_from_data=True),
})
# Continuous time (gridnoise.continuous), between the discrete schedule's log-SNR ends: VDM's learned scalar
# schedule (the input-independent best) and its fixed linear one; MuLAN's input-adaptive per-coordinate
# schedule from a 2-D latent z, and from a grid cell (3 x 3 over the data) as the latent.
VARIANTS.update({
    "vdm": dict(kind="vdm"),
    "vdm_fixed": dict(kind="vdm", learned_schedule=False),
    "mulan": dict(kind="mulan", latent_dim=2),
    "mulan_cells": dict(kind="mulan_cells", grids={"cells": 3}, extent_from_data=True),
})

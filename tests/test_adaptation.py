import numpy as np
import pytest
import torch

from gridnoise.adaptation import Grid, NoiseAdaptation, SeedGridAdaptation, build_adaptation, grid_label
from gridnoise.config import AdaptationConfig
from gridnoise.diffusion import DDPMScheduler
from gridnoise.presets import adaptation_for

SEED_EXTENT = [-1.0, 1.0, -1.0, 1.0]


def seed_cell(p: torch.Tensor, n: int) -> torch.Tensor:
    """The seed's own formula, written out: clamp(floor((p + 1) / 2 * n), 0, n - 1)."""
    return torch.clamp(torch.floor((p + 1) / 2 * n).long(), 0, n - 1)


@pytest.mark.parametrize("n", [1, 5, 10, 20])
def test_cell_index_is_the_seeds(n):
    points = torch.randn(5000, 2) * 3  # many outside [-1, 1]^2
    i, j = Grid(4, n, SEED_EXTENT).cell_index(points)
    assert torch.equal(i, seed_cell(points[:, 0], n))
    assert torch.equal(j, seed_cell(points[:, 1], n))


def test_lookup_reads_t_i_j():
    grid = Grid(3, 4, SEED_EXTENT)
    with torch.no_grad():
        grid.values.copy_(torch.arange(3 * 16, dtype=torch.float32).reshape(3, 4, 4))
    points = torch.tensor([[-0.9, 0.9], [0.1, -0.6], [5.0, -5.0]])
    t = torch.tensor([0, 2, 1])
    # cells: (0, 3), (2, 0), (3, 0)
    assert grid(points, t).tolist() == [3.0, 2 * 16 + 8.0, 16 + 12.0]


def test_other_extent_maps_corners():
    grid = Grid(1, 4, [-4.0, 4.0, 0.0, 2.0])
    i, j = grid.cell_index(torch.tensor([[-3.9, 0.1], [3.9, 1.9], [0.1, 1.01]]))
    assert i.tolist() == [0, 3, 2] and j.tolist() == [0, 3, 2]


def test_multiscale_level_is_the_product():
    ad = SeedGridAdaptation(2, {"coarse": 5, "fine": 20}, SEED_EXTENT)
    with torch.no_grad():
        ad.grid_modules["coarse"].values.uniform_(0.5, 1.5)
        ad.grid_modules["fine"].values.uniform_(0.5, 1.5)
    p, t = torch.rand(100, 2) * 2 - 1, torch.randint(0, 2, (100,))
    coarse, fine = ad.grid_modules["coarse"](p, t), ad.grid_modules["fine"](p, t)
    assert torch.allclose(ad.level(p, t), coarse * fine)


def test_seed_training_scales_noise_at_x0_and_sampling_looks_at_xt():
    s = DDPMScheduler(10)
    ad = SeedGridAdaptation(10, {"grid": 2}, SEED_EXTENT)
    with torch.no_grad():
        ad.grid_modules["grid"].values[:, 1, 1] = 3.0  # the cell x>0, y>0
    x0 = torch.tensor([[0.5, 0.5], [-0.5, -0.5]])
    eps = torch.full((2, 2), 4.0)
    t = torch.tensor([9, 9])
    x_t, g = ad.training_inputs(s, x0, eps, t)
    assert g.tolist() == [3.0, 1.0]
    abar = s.alphas_cumprod[9]
    expected = abar.sqrt() * x0 + (1 - abar).sqrt() * eps * torch.tensor([[3.0], [1.0]])
    assert torch.allclose(x_t, expected)
    # x_t of the second point lands in the scaled cell; sampling must look there, not at x0.
    assert (x_t[1] > 0).all()
    assert ad.sampling_level(x_t, t).tolist() == [3.0, 3.0]


def test_all_ones_grid_reproduces_plain_ddpm():
    s = DDPMScheduler(20)
    x0, eps, t = torch.randn(64, 2), torch.randn(64, 2), torch.randint(0, 20, (64,))
    plain, _ = NoiseAdaptation().training_inputs(s, x0, eps, t)
    ad = build_adaptation(adaptation_for("multiscale"), 20)
    graded, g = ad.training_inputs(s, x0, eps, t)
    assert torch.equal(plain, graded) and torch.equal(g, torch.ones(64))


def test_l1_penalty_pulls_fine_grid_to_one():
    ad = build_adaptation(adaptation_for("multiscale_l1"), 4)
    assert ad.penalty().item() == 0
    with torch.no_grad():
        ad.grid_modules["fine"].values[0, 0, 0] = 1.5
        ad.grid_modules["coarse"].values[0, 0, 0] = 9.0  # not penalised
    assert ad.penalty().item() == pytest.approx(0.01 * 0.5)
    ad.penalty().backward()
    assert ad.grid_modules["fine"].values.grad[0, 0, 0] == pytest.approx(0.01)
    assert ad.grid_modules["coarse"].values.grad is None or ad.grid_modules["coarse"].values.grad.abs().sum() == 0


def test_presets_match_the_study():
    assert adaptation_for("baseline").kind == "none"
    assert adaptation_for("grid10").grids == {"grid": 10}
    assert adaptation_for("grid20").grids == {"grid": 20}
    assert adaptation_for("multiscale").grids == {"coarse": 5, "fine": 20}
    assert adaptation_for("multiscale_l1").l1 == {"fine": 0.01}
    assert all(adaptation_for(v).extent == SEED_EXTENT for v in ("grid10", "multiscale"))
    assert [grid_label(n) for n in ("grid", "coarse", "fine")] == ["grid", "coarse_grid", "fine_grid"]


def test_grids_live_in_state_dict_and_follow_to():
    ad = build_adaptation(AdaptationConfig(kind="seed_grid", grids={"grid": 3}, extent=[-4, 4, -4, 4]), 5)
    state = ad.state_dict()
    assert state["grid_modules.grid.values"].shape == (5, 3, 3)
    assert state["grid_modules.grid.extent"].tolist() == [-4, 4, -4, 4]
    assert ad.to(torch.float64).grids()["grid"].dtype == torch.float64


def test_bad_sizes():
    with pytest.raises(ValueError, match="grid size"):
        Grid(10, 0, SEED_EXTENT)
    with pytest.raises(ValueError, match="at least one grid"):
        SeedGridAdaptation(10, {}, SEED_EXTENT)


def test_seed_extent_edge_share():
    # SYSTEM.md section 4: only about 4% of circle points lie strictly inside [-1, 1]^2.
    from gridnoise.data import load

    pts = load("circle", 20_000)
    inside = np.mean((np.abs(pts) < 1).all(axis=1))
    assert 0.02 < inside < 0.07

import numpy as np
import pytest
import torch

from gridnoise.adaptation import Grid, NoiseAdaptation, OriginalGridAdaptation, data_extent, edge_cell_share, grid_label
from gridnoise.components import build_adaptation
from gridnoise.config import AdaptationConfig, adaptation_for
from gridnoise.schedulers import DDPMScheduler

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
    ad = OriginalGridAdaptation(2, {"coarse": 5, "fine": 20}, SEED_EXTENT)
    with torch.no_grad():
        ad.grid_modules["coarse"].values.uniform_(0.5, 1.5)
        ad.grid_modules["fine"].values.uniform_(0.5, 1.5)
    p, t = torch.rand(100, 2) * 2 - 1, torch.randint(0, 2, (100,))
    coarse, fine = ad.grid_modules["coarse"](p, t), ad.grid_modules["fine"](p, t)
    assert torch.allclose(ad.noise_scale(p, t), coarse * fine)


def test_seed_training_scales_noise_at_x0_and_sampling_looks_at_xt():
    s = DDPMScheduler(10)
    ad = OriginalGridAdaptation(10, {"grid": 2}, SEED_EXTENT)
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
    assert ad.sampling_noise_scale(x_t, t).tolist() == [3.0, 3.0]


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
        OriginalGridAdaptation(10, {}, SEED_EXTENT)


def test_seed_extent_edge_share():
    # only about 4% of circle points lie strictly inside [-1, 1]^2.
    from gridnoise.data import load

    pts = load("circle", 20_000)
    inside = np.mean((np.abs(pts) < 1).all(axis=1))
    assert 0.02 < inside < 0.07


# -- beyond the seed: data extent, consistent conditioning, learned reverse variance ----------

def test_data_extent_is_the_bounding_box_plus_five_percent():
    points = torch.tensor([[0.0, -1.0], [10.0, 1.0], [4.0, 0.0]])
    assert data_extent(points) == pytest.approx([-0.5, 10.5, -1.1, 1.1])


def test_edge_cell_share_by_hand():
    # 4 x 4 grid over [0, 4]^2: cells are unit squares; the border ring holds 12 of 16 cells.
    points = torch.tensor([[1.5, 1.5], [2.5, 2.5], [0.5, 2.5], [3.5, 3.5], [9.0, 2.0]])
    assert edge_cell_share(points, 4, [0, 4, 0, 4]) == pytest.approx(3 / 5)
    # The seed's [-1, 1]^2 puts most of a data set spanning [-4, 4] in border cells; its own box does not.
    data = torch.randn(20000, 2) * 2
    seed, own = edge_cell_share(data, 10, SEED_EXTENT), edge_cell_share(data, 10, data_extent(data))
    assert seed > 0.8 and own < 0.4


def test_data_extent_is_set_in_training_and_saved_with_the_grids():
    from gridnoise.components import sampling_components
    from gridnoise.config import RunConfig
    from gridnoise.trainer import Trainer

    cfg = RunConfig(dataset="moons", variant="multiscale_data", adaptation=adaptation_for("multiscale_data"),
                    device="cpu", n_points=1000)
    cfg.train.steps = 2
    data = torch.randn(1000, 2) * 3
    tr = Trainer(cfg, data.numpy())
    expected = torch.tensor(data_extent(tr.data))
    for grid in tr.adaptation.grid_modules.values():
        assert torch.equal(grid.extent, expected)
    tr.fit()
    _, _, adaptation = sampling_components(tr.state_dict(), torch.device("cpu"))
    assert all(torch.equal(g.extent, expected) for g in adaptation.grid_modules.values())


def _random_grids(ad, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in ad.parameters():
            p.copy_(0.5 + torch.rand(p.shape, generator=gen))
    return ad


def test_conditioning_looks_up_g_at_x_t_in_training_and_sampling_alike():
    s = DDPMScheduler(20)
    ad = _random_grids(build_adaptation(adaptation_for("conditioning_multiscale"), 20))
    x0, eps, t = torch.randn(500, 2) * 2, torch.randn(500, 2), torch.randint(0, 20, (500,))
    x_t, g = ad.training_inputs(s, x0, eps, t)
    assert torch.equal(x_t, s.add_noise(x0, eps, t))  # standard DDPM forward process
    assert torch.equal(g, ad.sampling_noise_scale(x_t, t))
    assert not torch.equal(g, ad.sampling_noise_scale(x0, t))  # and not at x_0, as the seed does
    assert ad.conditions_model and ad.reverse_std_scale(x_t, t) is None


def test_reverse_variance_uses_the_same_lookup_in_its_loss_and_its_step():
    s = DDPMScheduler(20)
    ad = _random_grids(build_adaptation(adaptation_for("reverse_variance"), 20))
    x0, eps, t = torch.randn(300, 2), torch.randn(300, 2), torch.randint(1, 20, (300,))
    x_t, level = ad.training_inputs(s, x0, eps, t)
    assert level is None and torch.equal(x_t, s.add_noise(x0, eps, t)) and not ad.conditions_model
    predicted = eps + 0.3 * torch.randn(300, 2)
    g2 = ad.reverse_std_scale(x_t, t) ** 2
    gap = ((s.q_posterior_mean(x0, x_t, t)
            - s.q_posterior_mean(s.predict_start_from_noise(x_t, t, predicted), x_t, t)) ** 2).sum(-1)
    by_hand = (torch.log(g2) + 1 / g2 - 1) + gap / (2 * g2 * s.posterior_variance[t])  # d/2 = 1
    assert torch.allclose(ad.auxiliary_loss(s, x0, x_t, t, predicted), by_hand.mean())


def test_reverse_variance_optimum_is_one_for_the_true_mean():
    s = DDPMScheduler(10)
    ad = build_adaptation(adaptation_for("reverse_variance"), 10)
    x0, eps, t = torch.randn(200, 2), torch.randn(200, 2), torch.randint(0, 10, (200,))
    x_t = s.add_noise(x0, eps, t)
    loss = ad.auxiliary_loss(s, x0, x_t, t, eps)  # eps_hat = eps: the model's mean is the true one
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-5)
    assert ad.grid_modules["grid"].values.grad.abs().max() < 1e-4


def test_trained_reverse_variance_grid_approaches_the_analytic_optimum():
    # A fixed (untrained) network, grids trained alone by the KL term: each cell's g^2 should
    # reach 1 + E_cell ||mu_true - mu_model||^2 / (d beta~_t) (the Analytic-DPM-style optimum).
    from gridnoise.model import MLPDenoiser

    torch.manual_seed(0)
    T, n = 4, 2
    s = DDPMScheduler(T, beta_start=0.05, beta_end=0.3)
    ad = build_adaptation(AdaptationConfig(kind="reverse_variance", grids={"grid": n}, extent=[-2, 2, -2, 2]), T)
    net = MLPDenoiser().requires_grad_(False)
    optimizer = torch.optim.Adam(ad.parameters(), lr=0.02)
    gen = torch.Generator().manual_seed(1)

    def batch(size):
        x0 = torch.randn(size, 2, generator=gen)
        eps = torch.randn(size, 2, generator=gen)
        t = torch.randint(1, T, (size,), generator=gen)
        x_t = s.add_noise(x0, eps, t)
        return x0, x_t, t, net(x_t, t) * 0.5  # a deliberately imperfect fixed prediction

    for _ in range(800):
        x0, x_t, t, predicted = batch(512)
        loss = ad.auxiliary_loss(s, x0, x_t, t, predicted)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    x0, x_t, t, predicted = batch(200_000)
    gap = ((s.q_posterior_mean(x0, x_t, t)
            - s.q_posterior_mean(s.predict_start_from_noise(x_t, t, predicted), x_t, t)) ** 2).sum(-1)
    i, j = ad.grid_modules["grid"].cell_index(x_t)
    grid = ad.grid_modules["grid"].values.detach()
    for tt in range(1, T):
        for ci in range(n):
            for cj in range(n):
                cell = (t == tt) & (i == ci) & (j == cj)
                optimum = 1 + gap[cell].mean() / (2 * s.posterior_variance[tt])
                assert grid[tt, ci, cj] ** 2 == pytest.approx(float(optimum), rel=0.05), (tt, ci, cj)
    assert (grid[1:] ** 2 > 1.05).any()  # the test is not trivially at g = 1


def test_field_edges_are_exactly_where_g_jumps():
    """Along a fine line across the plane, g changes between neighbouring points only where an
    edge lies between them, and every edge inside the extent separates some change."""
    ad = build_adaptation(AdaptationConfig(kind="original_grid", grids={"coarse": 5, "fine": 20},
                                           extent=[-1.0, 1.5, -2.0, 1.0]), 3)
    with torch.no_grad():
        for grid in ad.grids().values():
            grid.copy_(torch.rand(grid.shape, generator=torch.Generator().manual_seed(0)) + 0.5)
    xs, ys = ad.field_edges()
    assert len(xs) == len(ys) == 19  # the coarse grid's 4 inner edges per axis are among the fine grid's 19
    assert torch.allclose(xs, torch.linspace(-1, 1.5, 21, dtype=torch.float64)[1:-1])
    line = torch.linspace(-3, 3, 60001, dtype=torch.float64) + 3.1e-5  # no point on an edge (rounding decides there)
    for axis, edges in enumerate((xs, ys)):
        points = torch.full((len(line), 2), 0.3, dtype=torch.float64)
        points[:, axis] = line
        g = ad.sampling_noise_scale(points, torch.full((len(line),), 1))
        changes = torch.nonzero(g[1:] != g[:-1]).squeeze(1)
        between = torch.searchsorted(edges, line[changes], right=True) != torch.searchsorted(edges, line[changes + 1],
                                                                                                 right=True)
        assert between.all() and len(changes) == len(edges)  # no jump off an edge, one per edge
    assert [len(e) for e in NoiseAdaptation().field_edges()] == [0, 0]


def test_the_ode_likelihood_is_declared_per_adaptation():
    from gridnoise.adaptation import ConditioningGridAdaptation, ReverseVarianceGridAdaptation, ode_skip_reason

    assert ode_skip_reason(NoiseAdaptation) is None
    assert ode_skip_reason(OriginalGridAdaptation) is None and ode_skip_reason(ConditioningGridAdaptation) is None
    assert "not the standard posterior" in ode_skip_reason(ReverseVarianceGridAdaptation)

    class Undeclared(NoiseAdaptation):  # a plug-in giving the network a g without saying where it jumps
        conditions_model = True

        def sampling_noise_scale(self, sample, timesteps):
            return (sample[:, 0] > 0).float() + 1

    class Declared(Undeclared):
        def field_edges(self):
            return torch.zeros(1, dtype=torch.float64), torch.zeros(0, dtype=torch.float64)

    class Wider(NoiseAdaptation):  # a plug-in changing the reverse step's noise
        def reverse_std_scale(self, sample, timesteps):
            return torch.full((len(sample),), 2.0)

    assert "define field_edges" in ode_skip_reason(Undeclared())
    assert ode_skip_reason(Declared) is None
    assert "variance" in ode_skip_reason(Wider)


def test_the_constant_reverse_variance_is_the_same_everywhere_and_still_learned_per_timestep():
    adaptation = build_adaptation(adaptation_for("reverse_variance_constant"), 20)
    with torch.no_grad():
        for p in adaptation.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(0)))
    points = torch.tensor([[-50.0, 3.0], [0.0, 0.0], [0.7, -0.2], [40.0, 40.0]])
    for t in (0, 7, 19):
        scale = adaptation.reverse_std_scale(points, torch.full((4,), t))
        assert torch.allclose(scale, scale[:1].expand(4))  # one value for the whole plane
    first, last = (adaptation.reverse_std_scale(points[:1], torch.tensor([t])) for t in (0, 19))
    assert not torch.equal(first, last)  # but its own at each timestep

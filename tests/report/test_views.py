"""What a figure shows: the outlier rule for metric axes, the sample panels' view and the clamped
region of a grid, by hand."""

import numpy as np
import pytest

from gridnoise.report.views import (
    OUTLIER_FACTOR,
    SAMPLE_MARGIN,
    clamped_strips,
    clip_to_view,
    grid_view,
    outlying,
    sample_view,
    typical_range,
)


def test_a_diverging_value_is_outlying_and_a_real_difference_is_not():
    assert outlying([0.7, 0.72, 113.0]).tolist() == [False, False, True]
    assert outlying([113.0, 0.7]).tolist() == [True, False]  # two runs: the smaller is the typical one
    assert not outlying([0.4, 0.3, 0.4005]).any()  # a run 25% better is a result, not a divergence
    assert not outlying([10.0, 15.0, 20.0, 300.0]).any()  # 20x the typical time: still on the axis
    assert outlying([0.5, np.nan, np.inf, 0.6]).tolist() == [False, False, True, False]
    # the fence: lower median 0.72, typical magnitude max(0.72, lower median of |v - 0.72| = 0.02)
    assert typical_range([0.7, 0.72, 113.0]) == pytest.approx((0.72 - OUTLIER_FACTOR * 0.72,
                                                               0.72 + OUTLIER_FACTOR * 0.72))
    assert typical_range([1.0]) == (-np.inf, np.inf)


def test_sample_view_is_the_data_with_a_margin_or_the_tighter_runs():
    data = np.array([[-1.0, 0.0], [3.0, 1.0]])  # 4 wide, 1 high
    half = 4 * (0.5 + SAMPLE_MARGIN)
    assert sample_view(data, [np.full((5, 2), 1e3)]) == pytest.approx((1 - half, 1 + half, 0.5 - half, 0.5 + half))
    rng = np.random.default_rng(0)
    good, blown = rng.normal(size=(500, 2)), rng.normal(size=(500, 2)) * 1000
    xmin, xmax, _, _ = sample_view(None, [blown, good])  # without the data: not the diverging run's box
    assert -6 < xmin < -2 and 2 < xmax < 6


def test_clip_to_view_moves_what_is_outside_onto_the_edge():
    points = np.array([[0.0, 0.0], [5.0, 0.5], [-np.inf, 2.0], [np.nan, 0.0]])
    inside, clipped = clip_to_view(points, (-1.0, 1.0, -1.0, 1.0))
    assert inside.tolist() == [True, False, False, False]
    assert clipped.tolist() == [[1.0, 0.5], [-1.0, 1.0], [0.0, 0.0]]


def test_clamped_strips_cover_the_view_outside_the_grid():
    view = grid_view([-1, 1, -1, 1], np.array([[-2.0, 0.0], [1.0, 3.0]]))
    assert view == (-2.0, 1.0, -1.0, 3.0)
    assert clamped_strips([-1, 1, -1, 1], view) == [(-2.0, -1.0, -1.0, 3.0), (-1.0, 1.0, 1.0, 3.0)]
    assert clamped_strips([-1, 1, -1, 1], grid_view([-1, 1, -1, 1], np.zeros((3, 2)))) == []

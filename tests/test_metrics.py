"""Distances and scores on hand-worked examples and their defining properties."""

from __future__ import annotations

import math

import numpy as np
import pytest

from subgroup_values.stats.metrics import accuracy, expected_nmae, jensen_shannon, nmae, total_variation, wasserstein


def test_wasserstein_hand_worked():
    # all mass at opposite ends of a 4-point scale: the maximum, 1
    assert wasserstein([1, 0, 0, 0], [0, 0, 0, 1]) == pytest.approx(1.0)
    # one step on a 4-point scale (range 3): 1/3
    assert wasserstein([1, 0, 0, 0], [0, 1, 0, 0]) == pytest.approx(1 / 3)
    # CDFs (0.5, 1, 1) vs (0, 0.5, 1): gaps 0.5 + 0.5 over range 2 -> 0.5
    assert wasserstein([0.5, 0.5, 0], [0, 0.5, 0.5]) == pytest.approx(0.5)
    # counts are normalised; uneven option values weigh the gaps
    assert wasserstein([2, 0, 0], [0, 0, 5], values=[1, 2, 10]) == pytest.approx(1.0)
    assert wasserstein([1, 0, 0], [0, 1, 0], values=[1, 2, 10]) == pytest.approx(1 / 9)


def test_jensen_shannon_hand_worked():
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    # p=(1,0), q=(.5,.5): m=(.75,.25); JSD = .5*log2(1/.75) + .5*(.5*log2(.5/.75)+.5*log2(.5/.25))
    jsd = 0.5 * math.log2(1 / 0.75) + 0.5 * (0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(2))
    assert jensen_shannon([1, 0], [0.5, 0.5]) == pytest.approx(math.sqrt(jsd))


def test_total_variation_hand_worked():
    assert total_variation([1, 0, 0], [0, 0, 1]) == pytest.approx(1.0)
    # (.5, .3, .2) vs (.2, .3, .5): |.3| + 0 + |.3| over 2
    assert total_variation([0.5, 0.3, 0.2], [0.2, 0.3, 0.5]) == pytest.approx(0.3)
    assert total_variation([5, 3, 2], [2, 3, 5]) == pytest.approx(0.3)  # counts are normalised
    # blind to distance: one step and three steps cost the same, unlike Wasserstein
    assert total_variation([1, 0, 0, 0], [0, 1, 0, 0]) == total_variation([1, 0, 0, 0], [0, 0, 0, 1]) == 1.0


def test_wasserstein_is_one_minus_opinionqa_representativeness():
    """OpinionQA (Santurkar et al. 2023) scores alignment as 1 - W1(D1, D2) / (N - 1), W1 on the option positions
    1..N (scipy's wasserstein_distance, as in their released code): our normalised W is exactly 1 - that."""
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(1)
    for _ in range(100):
        n = int(rng.integers(2, 11))
        p, q = rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n))
        pos = np.arange(1, n + 1)
        representativeness = 1 - wasserstein_distance(pos, pos, p, q) / (n - 1)
        assert wasserstein(p, q) == pytest.approx(1 - representativeness, abs=1e-12)


@pytest.mark.parametrize("distance", [wasserstein, jensen_shannon, total_variation])
def test_distance_properties(distance):
    rng = np.random.default_rng(0)
    for _ in range(200):
        k = rng.integers(2, 11)
        p, q = rng.dirichlet(np.ones(k)), rng.dirichlet(np.ones(k))
        assert distance(p, p) == pytest.approx(0.0, abs=1e-12)
        assert distance(p, q) == pytest.approx(distance(q, p))
        assert 0.0 <= distance(p, q) <= 1.0 + 1e-12


def test_distance_input_errors():
    with pytest.raises(ValueError, match="different option sets"):
        wasserstein([1, 0], [1, 0, 0])
    with pytest.raises(ValueError, match="positive total"):
        jensen_shannon([0, 0], [1, 0])
    with pytest.raises(ValueError, match="non-negative"):
        wasserstein([-1, 2], [1, 0])


def test_accuracy_and_nmae_are_tie_aware():
    assert accuracy(2, [2]) == 1.0 and accuracy(3, [2]) == 0.0
    assert accuracy(3, [2, 3]) == 1.0
    assert accuracy(None, [2]) == 0.0
    assert nmae(4, [1], 1, 4) == pytest.approx(1.0)
    assert nmae(3, [1, 4], 1, 4) == pytest.approx(1 / 3)  # nearest tied mode
    assert nmae(None, [2], 1, 10) == 1.0
    assert nmae(7, [5], 1, 10) == pytest.approx(2 / 9)
    assert expected_nmae([0.5, 0, 0.5], [1, 2, 3], [1]) == pytest.approx(0.5)

"""Worth in respondents: inverting the own-sample curve, its extrapolation, and the prior plus k answers."""

from __future__ import annotations

import numpy as np
import pytest

from subgroup_values.analysis import worth


def test_invert_and_extrapolate_a_known_curve():
    m = np.arange(1, 41)
    curve = np.sqrt(0.002 + 0.09 / m)
    assert worth.invert(curve, curve[9]) == pytest.approx(10)
    assert worth.invert(curve, (curve[9] + curve[10]) / 2) == pytest.approx(10.5)
    assert worth.invert(curve, curve[0] + 0.1) == 0.0
    assert np.isinf(worth.invert(curve, 0.05))  # closer than 40 respondents get
    assert worth.extrapolate(curve, np.sqrt(0.002 + 0.09 / 100)) == pytest.approx(100, rel=1e-6)
    assert np.isinf(worth.extrapolate(curve, 0.04))  # below the asymptote: no sample size reaches it

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from initstudy.stats import holm, pairwise, summarize, welch

# Welch's t-test, example 1 of the Wikipedia article (t = -2.46, df = 24.99, p = 0.021).
A1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
A2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]


def test_summary_of_a_hand_computed_sample():
    s = summarize([1, 2, 3, 4, 5])
    assert s["mean"] == 3 and s["n"] == 5
    assert s["std"] == pytest.approx(math.sqrt(2.5))
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)  # t(0.975, 4 df) from a t table
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((3 - half, 3 + half), abs=1e-5)


def test_one_run_has_no_interval():
    assert summarize([0.7]) == {"mean": 0.7, "std": None, "ci_low": None, "ci_high": None, "n": 1}


def test_welch_matches_the_textbook_example():
    t = welch(A1, A2)
    diff = np.mean(A1) - np.mean(A2)
    assert t["diff"] == pytest.approx(diff)
    assert t["p"] == pytest.approx(0.021, abs=0.001)
    # the interval from the example's t = -2.46 and df = 24.99
    half = scipy_stats.t.ppf(0.975, 24.99) * diff / -2.46  # t quantile x standard error
    assert (t["ci_low"], t["ci_high"]) == pytest.approx((diff - half, diff + half), rel=0.01)


def test_holm_correction_by_hand():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, max(0.06, 0.04*1) = 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # a missing p-value (one seed) is skipped, and adjusted values never decrease
    assert holm([0.5, None, 0.9]) == [1.0, None, 1.0]


def test_pairwise_flags_only_corrected_significance():
    groups = {"a": A1, "b": A2, "c": [x + 0.01 for x in A1]}
    tests = {(t["a"], t["b"]): t for t in pairwise(groups)}
    assert len(tests) == 3
    # a vs b alone has p = 0.021 < 0.05, but Holm over three pairs multiplies it (2 or 3 x)
    assert tests["a", "b"]["p"] < 0.05 and tests["a", "b"]["p_holm"] > 0.05
    assert not tests["a", "b"]["significant"] and not tests["a", "c"]["significant"]

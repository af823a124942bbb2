"""ECE, reliability curves and temperature scaling against hand-computed numbers,
a plain loop and a grid search."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lossnotes.calibration import (
    expected_calibration_error,
    fit_temperature,
    reliability_curve,
    temperature_nll,
)


def ece_loop(probs, labels, n_bins):
    """ECE written out with Python lists and floats: bins ((m - 1)/M, m/M]."""
    rows = probs.tolist()
    bins = [[] for _ in range(n_bins)]
    for row, label in zip(rows, labels.tolist(), strict=True):
        conf = max(row)
        pred = row.index(conf)  # the first maximum, as torch.argmax
        m = next(b for b in range(n_bins) if conf <= (b + 1) / n_bins)
        bins[m].append((conf, pred == label))
    total = 0.0
    for members in bins:
        if members:
            conf = sum(c for c, _ in members) / len(members)
            acc = sum(ok for _, ok in members) / len(members)
            total += len(members) / len(rows) * abs(acc - conf)
    return total


def random_probs(n, c, seed, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(n, c, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, c, (n,), generator=gen)
    return torch.softmax(logits, dim=1), labels, logits


def test_ece_hand_computed():
    # confidences 0.95 (right), 0.85 (right), 0.75 (wrong), 0.7 (right),
    # 0.6 (wrong);
    # M = 5: bin (0.8, 1] conf 0.9 acc 1 -> 2/5 * 0.1 = 0.04; bin (0.6, 0.8]
    # conf 0.725 acc 1/2 -> 2/5 * 0.225 = 0.09; bin (0.4, 0.6] (0.6 is on its right
    # edge, so in it) conf 0.6 acc 0 -> 1/5 * 0.6 = 0.12; ECE = 0.25
    probs = torch.tensor(
        [[0.95, 0.05], [0.15, 0.85], [0.75, 0.25], [0.3, 0.7], [0.6, 0.4]],
        dtype=torch.float64,
    )
    labels = torch.tensor([0, 1, 1, 1, 1])
    assert math.isclose(
        expected_calibration_error(probs, labels, n_bins=5), 0.25, rel_tol=1e-12
    )
    curve = reliability_curve(probs, labels, n_bins=5)
    assert curve.count.tolist() == [0.0, 0.0, 1.0, 2.0, 2.0]
    assert torch.allclose(
        curve.confidence[2:], torch.tensor([0.6, 0.725, 0.9], dtype=torch.float64)
    )
    assert curve.accuracy[2:].tolist() == [0.0, 0.5, 1.0]
    assert (
        torch.isnan(curve.confidence[:2]).all()
        and torch.isnan(curve.accuracy[:2]).all()
    )
    assert curve.edges.tolist() == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


def test_perfectly_calibrated_bins_give_zero():
    # four samples at confidence 0.75, three right: accuracy = confidence in the bin
    probs = torch.tensor([[0.75, 0.25]] * 4, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1])
    assert expected_calibration_error(probs, labels) == 0.0


def test_always_right_at_full_confidence_is_zero_and_always_wrong_is_one():
    eye = torch.eye(3, dtype=torch.float64)
    assert expected_calibration_error(eye, torch.tensor([0, 1, 2])) == 0.0
    assert expected_calibration_error(eye, torch.tensor([1, 2, 0])) == 1.0


@pytest.mark.parametrize("n_bins", [1, 2, 10, 15, 100])
@pytest.mark.parametrize("seed", range(4))
def test_ece_matches_loop(n_bins, seed):
    probs, labels, _ = random_probs(300, 7, seed)
    assert math.isclose(
        expected_calibration_error(probs, labels, n_bins),
        ece_loop(probs, labels, n_bins),
        rel_tol=1e-12,
        abs_tol=1e-15,
    )


@given(
    n=st.integers(1, 60),
    c=st.integers(2, 8),
    n_bins=st.integers(1, 20),
    seed=st.integers(0, 2**16),
    scale=st.floats(0.0, 10.0),
)
def test_ece_matches_loop_property(n, c, n_bins, seed, scale):
    probs, labels, _ = random_probs(n, c, seed, scale)
    ece = expected_calibration_error(probs, labels, n_bins)
    assert 0.0 <= ece <= 1.0
    assert math.isclose(ece, ece_loop(probs, labels, n_bins), abs_tol=1e-12)


def test_edges_are_closed_on_the_right():
    # confidence exactly 1/2 goes to (0, 1/2], exactly 1 to (1/2, 1]
    probs = torch.tensor([[0.5, 0.5], [1.0, 0.0]], dtype=torch.float64)
    curve = reliability_curve(probs, torch.tensor([0, 0]), n_bins=2)
    assert curve.count.tolist() == [1.0, 1.0]


def test_float32_and_numpy_inputs():
    probs, labels, _ = random_probs(50, 4, 9)
    ref = expected_calibration_error(probs, labels)
    assert math.isclose(
        expected_calibration_error(probs.float(), labels), ref, abs_tol=1e-6
    )
    assert expected_calibration_error(probs.numpy(), labels.numpy()) == ref


def nll_grid_minimiser(logits, labels, lo=0.05, hi=20.0, n=4001):
    """The temperature of the smallest float64 NLL on a fine log-spaced grid."""
    temps = torch.logspace(math.log10(lo), math.log10(hi), n, dtype=torch.float64)
    z = logits.double()
    picked = z.gather(1, labels[:, None])
    nll = (
        torch.logsumexp(z[None] / temps[:, None, None], dim=2)
        - picked.T / temps[:, None]
    ).mean(dim=1)
    i = int(nll.argmin())
    return temps[i].item(), (temps[max(i - 1, 0)].item(), temps[i + 1].item())


@pytest.mark.parametrize("scale", [0.5, 3.0, 10.0])
@pytest.mark.parametrize("seed", range(3))
def test_temperature_matches_grid_search(scale, seed):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 5, (400,), generator=gen)
    # logits that favour the true class, with noise; under- to overconfident
    logits = scale * (
        torch.nn.functional.one_hot(labels, 5).double()
        + torch.randn(400, 5, generator=gen, dtype=torch.float64)
    )
    t_star = fit_temperature(logits, labels)
    t_grid, (below, above) = nll_grid_minimiser(logits, labels)
    assert below <= t_star <= above, (t_star, t_grid)
    # and it is a minimum of the NLL: nothing on either side is lower
    best = temperature_nll(logits, labels, t_star)
    for t in (t_star * 0.999, t_star * 1.001, t_grid):
        assert best <= temperature_nll(logits, labels, t) + 1e-15


def test_temperature_closed_form_two_classes():
    # logit gap 2, 3 of 4 labelled 0: NLL minimal where sigmoid(2 / T) = 3/4
    z = torch.tensor([[2.0, 0.0]] * 4, dtype=torch.float64)
    t_star = fit_temperature(z, torch.tensor([0, 0, 0, 1]))
    assert math.isclose(t_star, 2 / math.log(3), rel_tol=1e-12)


def test_temperature_at_the_bounds():
    z = torch.tensor([[3.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    # all right: the NLL keeps falling as T -> 0
    assert fit_temperature(z, torch.tensor([0, 1]), t_min=0.1) == 0.1
    # all wrong: the NLL keeps falling as T -> infinity
    assert fit_temperature(z, torch.tensor([1, 0]), t_max=50.0) == 50.0


def test_temperature_scaling_keeps_the_argmax():
    _, labels, logits = random_probs(200, 6, 3)
    t_star = fit_temperature(logits, labels)
    assert torch.equal((logits / t_star).argmax(1), logits.argmax(1))


def test_temperature_nll_matches_cross_entropy():
    _, labels, logits = random_probs(30, 4, 5)
    ref = torch.nn.functional.cross_entropy(logits / 1.7, labels).item()
    assert math.isclose(temperature_nll(logits, labels, 1.7), ref, rel_tol=1e-13)


@pytest.mark.parametrize(
    ("probs", "labels", "error", "match"),
    [
        ([[0.5, 0.5]], [0], TypeError, "labels must be a torch.Tensor"),
        ([[0.5, 0.5]], torch.tensor([0.0]), TypeError, "integer dtype"),
        ([[0.5, 0.5]], torch.tensor([0, 1]), ValueError, r"shape \(1,\)"),
        ([[0.5, 0.5]], torch.tensor([2]), ValueError, "class 2 at position 0"),
        ([[0.5, 0.5]], torch.tensor([-1]), ValueError, "class -1"),
        (
            [[1.2, -0.2]],
            torch.tensor([0]),
            ValueError,
            r"probabilities in \[0, 1\]",
        ),
        ([[0.6, 0.6]], torch.tensor([0]), ValueError, "row 0 sums to 1.2"),
        ([[math.nan, 0.5]], torch.tensor([0]), ValueError, "NaN"),
        ([0.5, 0.5], torch.tensor([0]), ValueError, r"shape \(N, C\)"),
        ([[1.0]], torch.tensor([0]), ValueError, "C >= 2"),
        (
            torch.ones(2, 2, dtype=torch.long),
            torch.tensor([0, 1]),
            TypeError,
            "float",
        ),
        ("probs", torch.tensor([0]), TypeError, "probs must be"),
    ],
)
def test_ece_errors(probs, labels, error, match):
    if isinstance(probs, list):
        probs = torch.tensor(probs, dtype=torch.float64)
    with pytest.raises(error, match=match):
        expected_calibration_error(probs, labels)
    with pytest.raises(error, match=match):
        reliability_curve(probs, labels)


@pytest.mark.parametrize(
    ("n_bins", "error", "match"),
    [
        (0, ValueError, "n_bins must be >= 1"),
        (2.0, TypeError, "n_bins must be an int"),
        (True, TypeError, "n_bins"),
    ],
)
def test_n_bins_errors(n_bins, error, match):
    probs = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    with pytest.raises(error, match=match):
        expected_calibration_error(probs, torch.tensor([0]), n_bins=n_bins)


def test_temperature_errors():
    z = torch.zeros(3, 2, dtype=torch.float64)
    y = torch.tensor([0, 1, 0])
    with pytest.raises(ValueError, match="logits contains inf"):
        fit_temperature(torch.full((3, 2), math.inf), y)
    with pytest.raises(ValueError, match="logits contains NaN"):
        fit_temperature(torch.full((3, 2), math.nan), y)
    with pytest.raises(ValueError, match=r"logits must have shape \(N, C\)"):
        fit_temperature(torch.zeros(3), y)
    with pytest.raises(ValueError, match="class 5"):
        fit_temperature(z, torch.tensor([0, 5, 0]))
    with pytest.raises(ValueError, match="0 < t_min < t_max"):
        fit_temperature(z, y, t_min=2.0, t_max=1.0)
    with pytest.raises(ValueError, match="0 < t_min < t_max"):
        fit_temperature(z, y, t_min=0.0)
    with pytest.raises(ValueError, match="0 < t_min < t_max"):
        fit_temperature(z, y, t_max=math.inf)
    with pytest.raises(TypeError, match="t_min must be a real number"):
        fit_temperature(z, y, t_min="0.1")
    with pytest.raises(TypeError, match="positional"):
        fit_temperature(z, y, 0.1, 10.0)  # the bounds are keyword-only
    with pytest.raises(ValueError, match="temperature must be finite and > 0"):
        temperature_nll(z, y, 0.0)
    with pytest.raises(TypeError, match="temperature must be a real number"):
        temperature_nll(z, y, None)
    with pytest.raises(TypeError, match="labels holds class indices"):
        temperature_nll(z, np.array([0.0, 1.0, 0.0]), 1.0)

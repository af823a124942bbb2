"""distillation_loss against PyTorch's F.kl_div composition: value and gradient."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from lossnotes.functional import distillation_loss
from lossnotes.functional.divergence import KL_MEAN_WARNING


def torch_reference(z, v, T, reduction="batchmean"):
    """The recipe every distillation codebase writes, with torch's own functions."""
    log_q = F.log_softmax(z / T, dim=1)
    p = F.softmax(v / T, dim=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return T**2 * F.kl_div(log_q, p, reduction=reduction)


def pair(shape, seed, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(shape, generator=gen, dtype=torch.float64)
    v = scale * torch.randn(shape, generator=gen, dtype=torch.float64)
    return z, v


@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none", "mean"])
@pytest.mark.parametrize("shape", [(5, 7), (3, 4, 6), (2, 3, 4, 5)])
def test_matches_torch_composition(reduction, shape):
    z, v = pair(shape, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = distillation_loss(z, v, 2.5, reduction=reduction)
    assert torch.allclose(ours, torch_reference(z, v, 2.5, reduction), rtol=1e-12)


@given(
    n=st.integers(1, 6),
    c=st.integers(2, 12),
    temperature=st.floats(0.1, 50.0),
    seed=st.integers(0, 2**16),
)
def test_matches_torch_for_any_size_and_temperature(n, c, temperature, seed):
    z, v = pair((n, c), seed)
    ours = distillation_loss(z, v, temperature)
    ref = torch_reference(z, v, temperature)
    assert torch.allclose(ours, ref, rtol=1e-9, atol=1e-12)


def test_hand_computed_value():
    # q = (1/2, 1/2); at T = 2 the teacher logits (0, 2 log 3) give p = (1/4, 3/4):
    # T² KL(p || q) = 4 (1/4 log(1/2) + 3/4 log(3/2)) = 4 (3/4 log 3 - log 2)
    z = torch.zeros(1, 2, dtype=torch.float64)
    v = torch.tensor([[0.0, 2 * math.log(3)]], dtype=torch.float64)
    expected = 4 * (0.75 * math.log(3) - math.log(2))
    assert math.isclose(
        distillation_loss(z, v, 2.0).item(), expected, rel_tol=1e-14
    )


def test_gradient_matches_torch_and_formula():
    z, v = pair((4, 6), 1)
    T = 3.0
    ours = z.clone().requires_grad_()
    ref = z.clone().requires_grad_()
    distillation_loss(ours, v, T).backward()
    torch_reference(ref, v, T).backward()
    assert torch.allclose(ours.grad, ref.grad, rtol=1e-12)
    # d/dz of T² KL(p || q) with batchmean: T (q - p) / N
    q, p = F.softmax(z / T, dim=1), F.softmax(v / T, dim=1)
    assert torch.allclose(ours.grad, T * (q - p) / 4, rtol=1e-12)


def test_gradcheck_float64():
    z, v = pair((3, 5), 2)
    z.requires_grad_()
    assert torch.autograd.gradcheck(lambda s: distillation_loss(s, v, 1.7), (z,))


def test_t_squared_keeps_the_gradient_size():
    # without T² the gradient falls as 1/T² (Hinton et al. 2015): quadrupling T
    # divides it by about 16 once T is large; T² times it tends to
    # ((z - mean z) - (v - mean v)) / C
    z, v = pair((1, 10), 3)
    grads = {}
    for T in (50.0, 200.0):
        s = z.clone().requires_grad_()
        distillation_loss(s, v, T).backward()
        grads[T] = s.grad
    limit = ((z - z.mean()) - (v - v.mean())) / 10
    for T, g in grads.items():
        assert (g - limit).norm() / limit.norm() < 2 / T * 10 + 1e-3
    bare = {T: g.norm().item() / T**2 for T, g in grads.items()}
    assert 15.5 < bare[50.0] / bare[200.0] < 16.5


def test_large_temperature_is_logit_matching():
    # T² KL -> sum(((z - z̄) - (v - v̄))²) / (2C) as T -> infinity
    z, v = pair((1, 8), 4)
    centred = (z - z.mean()) - (v - v.mean())
    expected = (centred**2).sum().item() / 16
    got = distillation_loss(z, v, 1e4).item()
    assert math.isclose(got, expected, rel_tol=1e-4)


def test_equal_logits_give_zero():
    z, _ = pair((3, 4), 5)
    assert distillation_loss(z, z.clone(), 2.0).abs().item() < 1e-15


def test_teacher_probability_underflow_is_exact_zero():
    # teacher logit gap of 2000 at T = 1: p = (1, e^-2000 = 0); no NaN from 0 log 0
    z = torch.zeros(1, 2, dtype=torch.float64)
    v = torch.tensor([[1000.0, -1000.0]], dtype=torch.float64)
    loss = distillation_loss(z, v, 1.0)
    assert math.isclose(loss.item(), math.log(2), rel_tol=1e-14)


def test_one_dim_input_is_one_sample():
    z, v = pair((6,), 6)
    batched = distillation_loss(z[None], v[None], 2.0)
    assert torch.allclose(distillation_loss(z, v, 2.0), batched, rtol=1e-14)


def test_batchmean_is_sum_over_n_and_c_times_mean():
    z, v = pair((4, 5), 7)
    total = distillation_loss(z, v, 2.0, reduction="sum")
    with pytest.warns(UserWarning, match="batchmean"):
        mean = distillation_loss(z, v, 2.0, reduction="mean")
    assert torch.allclose(distillation_loss(z, v, 2.0), total / 4, rtol=1e-14)
    assert torch.allclose(distillation_loss(z, v, 2.0), 5 * mean, rtol=1e-14)


def test_mean_warns_like_torch():
    z, v = pair((2, 3), 8)
    with pytest.warns(UserWarning) as record:
        distillation_loss(z, v, 1.0, reduction="mean")
    assert str(record[0].message) == KL_MEAN_WARNING


def test_float32_follows_student_dtype():
    z, v = pair((2, 3), 9)
    out = distillation_loss(z.float(), v, 2.0)
    assert out.dtype == torch.float32
    assert math.isclose(out.item(), torch_reference(z, v, 2.0).item(), rel_tol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"temperature": 0.0}, ValueError, "temperature must be > 0"),
        ({"temperature": -1.0}, ValueError, "temperature"),
        ({"temperature": math.inf}, ValueError, "temperature"),
        ({"temperature": "2"}, TypeError, "temperature must be a real number"),
        ({"temperature": 2.0, "reduction": "avg"}, ValueError, "reduction must be"),
    ],
)
def test_bad_options(kwargs, error, match):
    z, v = pair((2, 3), 10)
    with pytest.raises(error, match=match):
        distillation_loss(z, v, **kwargs)


def test_bad_inputs():
    z, v = pair((2, 3), 11)
    with pytest.raises(ValueError, match="teacher_logits has shape"):
        distillation_loss(z, v[:, :2], 1.0)
    with pytest.raises(ValueError, match="0-dim"):
        distillation_loss(torch.tensor(1.0), torch.tensor(1.0), 1.0)
    with pytest.raises(ValueError, match="student_logits contains NaN"):
        distillation_loss(torch.full((2, 3), math.nan), v, 1.0)
    with pytest.raises(ValueError, match="teacher_logits contains inf"):
        distillation_loss(z, torch.full((2, 3), math.inf), 1.0)
    with pytest.raises(TypeError, match="floating-point"):
        distillation_loss(torch.zeros(2, 3, dtype=torch.long), v, 1.0)
    with pytest.raises(TypeError, match="student_logits must be"):
        distillation_loss("logits", v, 1.0)
    with pytest.raises(TypeError, match="positional argument"):
        distillation_loss(z, v, 1.0, "sum")  # reduction is keyword-only

"""Loss weighting arithmetic, pinned on hand-computed numbers."""

import math

import pytest
import torch

from omniglot_mtl.weighting import LossWeighting


def losses(a: float, c: float, grad: bool = False) -> dict[str, torch.Tensor]:
    return {"alphabet": torch.tensor(a, requires_grad=grad), "character": torch.tensor(c, requires_grad=grad)}


def test_static_is_the_weighted_sum():
    w = LossWeighting({"alphabet": 1.0, "character": 2.0})
    assert w(losses(0.5, 3.0)).item() == pytest.approx(1.0 * 0.5 + 2.0 * 3.0)
    assert w.effective_weights() == {"alphabet": 1.0, "character": 2.0}


def test_notebook_normalisation_has_no_gradient_and_ours_does():
    loss = torch.tensor(4.0, requires_grad=True)
    (loss / torch.max(loss)).backward()  # the notebook's recipe: constant 1
    assert loss.grad.item() == 0.0

    w = LossWeighting({"alphabet": 1.0, "character": 1.0}, normalize=True)
    ls = losses(2.0, 8.0, grad=True)
    total = w(ls)
    total.backward()
    assert total.item() == pytest.approx(2.0)  # each loss divided by its own first value
    assert ls["alphabet"].grad.item() == pytest.approx(1 / 2.0)
    assert ls["character"].grad.item() == pytest.approx(1 / 8.0)


def test_normalised_sum_is_invariant_to_rescaling_one_task():
    seq = [(2.0, 8.0), (1.5, 7.0), (1.0, 5.0)]
    plain = LossWeighting({"alphabet": 0.3, "character": 0.7}, normalize=True)
    scaled = LossWeighting({"alphabet": 0.3, "character": 0.7}, normalize=True)
    for a, c in seq:
        # The character loss in units 1000x larger (the notebook's MSE next to a cross-entropy).
        assert plain(losses(a, c)).item() == pytest.approx(scaled(losses(a, 1000 * c)).item(), rel=1e-6)
    # Running magnitude after three steps, momentum 0.9: 0.9 * (0.9 * 8 + 0.1 * 7) + 0.1 * 5.
    assert plain.magnitude[1].item() == pytest.approx(0.9 * (0.9 * 8 + 0.1 * 7) + 0.1 * 5)


def test_uncertainty_weighting():
    w = LossWeighting({"alphabet": 1.0, "character": 2.0}, method="uncertainty")
    with torch.no_grad():
        w.log_var.copy_(torch.tensor([0.0, math.log(4.0)]))
    total = w(losses(1.0, 3.0))
    # 1 * (0.5 * e^0 * 1 + 0) + 2 * (0.5 * (1/4) * 3 + 0.5 * ln 4)
    assert total.item() == pytest.approx(0.5 + 2 * (0.375 + 0.5 * math.log(4.0)))
    total.backward()
    # d/ds of w * (0.5 e^-s L + 0.5 s) = w * (0.5 - 0.5 e^-s L)
    assert w.log_var.grad.tolist() == pytest.approx([1 * (0.5 - 0.5), 2 * (0.5 - 0.5 * 0.25 * 3.0)])
    assert w.effective_weights() == pytest.approx({"alphabet": 0.5, "character": 2 * 0.5 * 0.25})


def test_dynamic_weight_average():
    w = LossWeighting({"alphabet": 1.0, "character": 1.0}, method="dwa")
    w.end_epoch({"alphabet": 2.0, "character": 4.0})
    assert w(losses(1.0, 1.0)).item() == pytest.approx(2.0)  # lambdas stay 1 for two epochs
    w.end_epoch({"alphabet": 1.0, "character": 4.0})
    # ratios r = (0.5, 1.0); lambda = 2 * softmax(r / 2)
    e1, e2 = math.exp(0.25), math.exp(0.5)
    lam = [2 * e1 / (e1 + e2), 2 * e2 / (e1 + e2)]
    assert w.effective_weights() == pytest.approx(dict(zip(("alphabet", "character"), lam, strict=True)))
    assert w(losses(3.0, 5.0)).item() == pytest.approx(lam[0] * 3 + lam[1] * 5)

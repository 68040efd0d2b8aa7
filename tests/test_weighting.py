"""Loss weighting arithmetic, pinned on hand-computed numbers."""

import math

import pytest
import torch

from omniglot_mtl.weighting.methods import METHODS, LossWeighting, make_weighting


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
    w = make_weighting({"alphabet": 1.0, "character": 2.0}, "uncertainty")
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
    w = make_weighting({"alphabet": 1.0, "character": 1.0}, "dwa")
    w.end_epoch({"alphabet": 2.0, "character": 4.0})
    assert w(losses(1.0, 1.0)).item() == pytest.approx(2.0)  # lambdas stay 1 for two epochs
    w.end_epoch({"alphabet": 1.0, "character": 4.0})
    # ratios r = (0.5, 1.0); lambda = 2 * softmax(r / 2)
    e1, e2 = math.exp(0.25), math.exp(0.5)
    lam = [2 * e1 / (e1 + e2), 2 * e2 / (e1 + e2)]
    assert w.effective_weights() == pytest.approx(dict(zip(("alphabet", "character"), lam, strict=True)))
    assert w(losses(3.0, 5.0)).item() == pytest.approx(lam[0] * 3 + lam[1] * 5)


def test_famo_loss_gradient_and_logit_update():
    w = make_weighting({"alphabet": 1.0, "character": 1.0}, "famo")
    assert list(w.parameters()) == []  # the model's optimizer never sees FAMO's logits
    ls = losses(2.0, 8.0, grad=True)
    total = w(ls)
    # z = (1/2, 1/2); c = 1 / (0.5 / 2 + 0.5 / 8) = 3.2; loss = c * (0.5 ln 2 + 0.5 ln 8)
    assert total.item() == pytest.approx(3.2 * 0.5 * math.log(16.0), rel=1e-6)
    total.backward()
    # d/dl_t = c * z_t / l_t: a convex combination of the task gradients
    assert ls["alphabet"].grad.item() == pytest.approx(0.8) and ls["character"].grad.item() == pytest.approx(
        0.2
    )
    assert w.effective_weights() == pytest.approx({"alphabet": 0.8, "character": 0.2})
    # After the step the same batch gives (1, 7): log losses fell by ln 2 and ln(8/7).
    w.after_step(losses(1.0, 7.0))
    # grad_xi = J^T delta, J = diag(z) - z z^T = [[.25, -.25], [-.25, .25]] -> (+g, -g), g > 0;
    # Adam's first step moves each logit by lr = 0.025 against the sign of its gradient.
    assert w.famo_logits.tolist() == pytest.approx([-0.025, 0.025], abs=1e-6)
    # So the character task, which improved less, now weighs more.
    z = torch.softmax(torch.tensor([-0.025, 0.025]), 0)
    c = 1 / (z[0] / 3.0 + z[1] / 5.0)
    assert w(losses(3.0, 5.0)).item() == pytest.approx(
        (c * (z[0] * math.log(3.0) + z[1] * math.log(5.0))).item(), rel=1e-5
    )


def test_famo_static_weights_tilt_the_combination():
    w = make_weighting({"alphabet": 1.0, "character": 3.0}, "famo")
    ls = losses(2.0, 2.0, grad=True)
    w(ls).backward()
    # z' = (0.5, 1.5); c = 1 / (0.5 / 2 + 1.5 / 2) = 1; d/dl_t = c * z'_t / l_t = (0.25, 0.75)
    assert [ls["alphabet"].grad.item(), ls["character"].grad.item()] == pytest.approx([0.25, 0.75])


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("method", list(METHODS))
def test_logged_weights_are_the_gradient_of_the_total_on_each_raw_loss(method, normalize):
    """effective_weights() is what the weight curves show: d total / d raw loss, for every method
    with and without normalize (FAMO with normalize logged them too large by the magnitude)."""
    w = make_weighting({"alphabet": 1.0, "character": 3.0}, method, normalize)
    for step, (a, c) in enumerate([(4.0, 9.0), (3.0, 8.0), (2.0, 6.0)]):
        w.end_epoch({"alphabet": a, "character": c})  # DWA's lambdas move from the 2nd epoch
        ls = losses(a, c, grad=True)
        w(ls).backward()
        if w.needs_losses_after_step:
            w.after_step(losses(a * 0.9, c * 0.95))
        grads = {t: ls[t].grad.item() for t in ls}
        assert w.effective_weights() == pytest.approx(grads, rel=1e-5), step


def test_famo_with_normalize_compares_losses_on_one_scale():
    """FAMO's update compares the loss before and after the step; with normalize both must be
    divided by the same magnitude, or a task's update is biased by -log(magnitude)."""
    w = make_weighting({"alphabet": 1.0, "character": 1.0}, "famo", normalize=True)
    w(losses(2.0, 8.0))
    w.after_step(losses(2.0, 8.0))  # nothing changed: no task improved more than the other
    assert w.famo_logits.tolist() == pytest.approx([0.0, 0.0], abs=1e-7)

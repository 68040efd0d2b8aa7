"""train.optimizer: muon: the orthogonalisation, and each kind of weight's step."""

import math

import pytest
import torch

from omniglot_mtl.core.params import Train
from omniglot_mtl.models.networks import ModelConfig, build_model
from omniglot_mtl.training.loop import make_optimizer
from omniglot_mtl.training.muon import NEWTON_SCHULZ, NEWTON_SCHULZ_STEPS, orthogonalize
from omniglot_mtl.weighting.methods import make_weighting


@pytest.mark.parametrize("shape", [(64, 288), (32, 9)])  # a wide kernel, and a tall one (transposed)
def test_orthogonalize_keeps_the_singular_vectors_and_brings_the_singular_values_near_1(shape):
    generator = torch.Generator().manual_seed(0)
    k = min(shape)
    u, _ = torch.linalg.qr(torch.randn(shape[0], k, generator=generator))
    v, _ = torch.linalg.qr(torch.randn(shape[1], k, generator=generator))
    g = u @ torch.diag(torch.linspace(1, 4, k)) @ v.T  # singular values 1 to 4
    in_g_basis = u.T @ orthogonalize(g) @ v
    values = in_g_basis.diagonal()
    assert (in_g_basis - torch.diag(values)).abs().max() < 1e-5  # the same singular vectors
    assert values.min() > 0.6 and values.max() < 1.2


@pytest.mark.parametrize("shape", [(256, 1152), (32, 9)])
def test_orthogonalize_on_the_gram_matrix_is_the_quintic_iteration_on_the_kernel(shape):
    g = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    # torch.optim.Muon's iteration, on the matrix itself, in float64
    a, b, c = NEWTON_SCHULZ
    x = g.double().T if shape[0] > shape[1] else g.double()
    x = x / x.norm()
    for _ in range(NEWTON_SCHULZ_STEPS):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    expected = x.T if shape[0] > shape[1] else x
    assert (orthogonalize(g).double() - expected).abs().max() < 1e-5


def test_muon_moves_kernels_by_a_fraction_of_their_norm_and_everything_else_as_adamw():
    model = build_model(ModelConfig("multi_output", 3, 5, 16, "convnet", alphabet_hidden=4))
    weighting = make_weighting({"alphabet": 1.0, "character": 1.0}, "uncertainty")  # learns 2 scalars
    cfg = Train(lr=0.01, optimizer="muon", weight_decay=0.05, muon_lr=0.02)
    optimizer = make_optimizer(model, weighting, cfg, torch.device("cpu"))
    kernels, matrices, vectors = optimizer.param_groups
    params = [*model.parameters(), *weighting.parameters()]
    assert sorted(id(p) for g in optimizer.param_groups for p in g["params"]) == sorted(map(id, params))
    assert [p.ndim for p in kernels["params"]] == [4] * 4 and kernels["muon"] and kernels["lr"] == 0.02
    assert {id(p) for p in matrices["params"]} == {id(p) for p in params if p.ndim == 2}
    assert (matrices["lr"], matrices["weight_decay"]) == (0.01, 0.05)
    assert all(p.ndim < 2 for p in vectors["params"]) and vectors["weight_decay"] == 0.0

    # The others, against torch's AdamW (the same groups, decay and rate) on the same gradients.
    others = [{k: g[k] for k in ("params", "weight_decay")} for g in (matrices, vectors)]
    reference = {id(p): p.detach().clone().requires_grad_() for g in others for p in g["params"]}
    copies = [
        {"params": [reference[id(p)] for p in g["params"]], "weight_decay": g["weight_decay"]} for g in others
    ]
    adamw = torch.optim.AdamW(copies, lr=0.01, foreach=False)
    generator = torch.Generator().manual_seed(0)
    grads = []
    for step in range(3):
        before = [k.detach().clone() for k in kernels["params"]]
        for p in params:
            p.grad = torch.randn(p.shape, generator=generator)
            if id(p) in reference:
                reference[id(p)].grad = p.grad.clone()
        grads.append([k.grad.clone() for k in kernels["params"]])
        optimizer.step()
        adamw.step()
        for i, (kernel, old) in enumerate(zip(kernels["params"], before, strict=True)):
            out, fan_in = kernel.shape[0], kernel[0].numel()
            rescaled = old * math.sqrt(out) / old.norm()
            if step < 2:
                # Nesterov momentum 0.9: step 0 along the gradient g0; step 1 along g1 lerped
                # towards the momentum m1 = (0.1 g0) lerped towards g1 by 0.1.
                g0, g1 = grads[0][i], grads[-1][i]
                direction = g0 if step == 0 else g1.lerp((0.1 * g0).lerp(g1, 0.1), 0.9)
                scale = math.sqrt(out / min(out, fan_in))  # 1 for a wide kernel; the first is tall
                expected = rescaled - 0.02 * scale * orthogonalize(direction.flatten(1)).view_as(kernel)
                torch.testing.assert_close(kernel.detach(), expected)
            moved = (kernel.detach() - rescaled).norm() / math.sqrt(out)
            assert 0.6 * 0.02 < moved < 1.2 * 0.02  # lr of the kernel's norm, within orthogonalize's band
    assert kernels["params"][0].shape[0] > kernels["params"][0][0].numel()  # the tall case was run
    for p in reference:
        torch.testing.assert_close(reference[p], next(q for q in params if id(q) == p))
    # Its state loads back: AdamW's load_state_dict reads a step from every parameter's state.
    fresh = make_optimizer(model, weighting, cfg, torch.device("cpu"))
    fresh.load_state_dict(optimizer.state_dict())
    for kernel in kernels["params"]:
        torch.testing.assert_close(fresh.state[kernel]["momentum"], optimizer.state[kernel]["momentum"])

"""``train.optimizer: muon``: Muon for the convolution kernels, AdamW for every other weight.

Muon (Keller Jordan, github.com/KellerJordan/Muon) steps a weight matrix along the nearest
orthogonal matrix to its Nesterov momentum, computed by a few Newton-Schulz iterations, so that
every direction of the update moves as much as the strongest one. Here it takes each
convolution kernel flattened to (out, in * k * k), and, as in the Muon variant of
KellerJordan/cifar10-airbench, first rescales the kernel to norm sqrt(out): a kernel followed
by batch norm computes the same function at any scale, so the step is then ``lr`` of the
kernel's own size, and weight decay has nothing left to do for it. A kernel that is not
followed by batch norm (the seed backbone's) is rescaled all the same.

Not ``torch.optim.Muon``: it takes 2-D matrices only, and orthogonalises in bfloat16, which a
CPU without native bf16 emulates: an epoch of the convnet took 137 s with it on an AVX2-only
EPYC, against 23 s in float32 here.
"""

import math

import torch

NEWTON_SCHULZ = (3.4445, -4.775, 2.0315)  # torch.optim.Muon's and the Muon repository's
NEWTON_SCHULZ_STEPS = 5  # 3 lost half the gain (docs/results.md at commit d861b80, "Time to accuracy")
MOMENTUM = 0.9


def orthogonalize(g: torch.Tensor) -> torch.Tensor:
    """About U V^T, where g = U S V^T: the quintic Newton-Schulz iteration of ``torch.optim.Muon``
    (it leaves the singular values between about 0.5 and 1.5, which trains as well as 1).

    Each step of it, x <- (a + b G + c G^2) x with G = x x^T, multiplies x on the left by a
    polynomial of G, so the steps are carried out on the small Gram matrix alone: G <- q G q and
    the product of the q's, and x is multiplied once at the end (the "Gram" Newton-Schulz). The
    same function up to float32 rounding, in half the arithmetic for the convnet's widest
    kernel, 256 x 1,152: 4.6 ms against 7.1 for the steps on x (docs/results.md, "Speed of the
    training step"). G squares the singular values, so it rounds more on a badly conditioned
    kernel (2e-5 against 1.5e-6 off float64's result for singular values spread down to 1e-8,
    entries up to 0.07): within what trains alike in float32, which the kernels are; bfloat16
    would need measuring again.
    """
    a, b, c = NEWTON_SCHULZ
    tall = g.shape[0] > g.shape[1]
    x = g.T if tall else g  # iterate on the smaller Gram matrix
    x = x / x.norm().clamp(min=1e-7)  # singular values at most 1
    gram = x @ x.T
    left = None  # the product of the steps' polynomials
    for step in range(NEWTON_SCHULZ_STEPS):
        q = torch.addmm(gram, gram, gram, beta=b, alpha=c)
        q.diagonal().add_(a)
        left = q if left is None else q @ left
        if step < NEWTON_SCHULZ_STEPS - 1:
            gram = q @ gram @ q  # the next x's Gram matrix: q x x^T q
    x = left @ x
    return x.T if tall else x


class MuonAdamW(torch.optim.AdamW):
    """torch's AdamW, except for the groups marked ``"muon": True``: convolution kernels, which
    take Muon's step. One optimizer, so that one scheduler moves every group's ``lr``."""

    @torch.no_grad()
    def step(self) -> None:  # no closure: the training loop never passes one
        groups = self.param_groups
        # AdamW's own step (fused, where asked) over its groups alone; the kernels have no Adam state.
        self.param_groups = [g for g in groups if not g.get("muon")]
        try:
            super().step()
        finally:
            self.param_groups = groups
        for group in groups:
            if group.get("muon"):
                for p in group["params"]:
                    if p.grad is not None:
                        self._muon(p, group)

    def _muon(self, p: torch.Tensor, group: dict) -> None:
        state = self.state[p]
        if not state:
            # "step": AdamW's load_state_dict reads one from every parameter's state.
            state["step"] = torch.tensor(0.0)
            state["momentum"] = torch.zeros_like(p)
        state["step"] += 1
        momentum = state["momentum"].lerp_(p.grad, 1 - MOMENTUM)
        nesterov = p.grad.lerp(momentum, MOMENTUM)
        out, fan_in = p.shape[0], p[0].numel()
        # Norm sqrt(min(out, fan_in)) once orthogonal; scaled to the kernel's sqrt(out).
        step = orthogonalize(nesterov.flatten(1)).view_as(p) * math.sqrt(out / min(out, fan_in))
        p.mul_(math.sqrt(out) / p.norm())
        p.add_(step, alpha=-group["lr"])

"""How task losses become one loss: static weights, optional normalisation, learned weights.

The notebook's recipe for losses on different scales, ``loss / torch.max(loss)``, divides a
scalar by itself: the result is the constant 1 and its gradient is zero, so nothing trains.
``normalize`` here divides each task loss by a *detached* running mean of its own magnitude:
the gradient keeps its direction (scaled by 1 / magnitude), and multiplying one task's loss by
any constant leaves the weighted sum unchanged, because its running mean scales by the same
constant.
"""

from collections.abc import Callable

import torch
from torch import nn


class LossWeighting(nn.Module):
    """Combine ``{task: loss}`` into one scalar.

    method:
      - ``static``: sum of ``weight[t] * loss[t]``.
      - ``uncertainty``: Kendall, Gal & Cipolla (2018), "Multi-task learning using uncertainty to
        weigh losses": a learned log-variance ``s[t]`` per task,
        ``weight[t] * (0.5 * exp(-s[t]) * loss[t] + 0.5 * s[t])`` (the form of LibMTL).
        ``s`` are parameters: pass this module's parameters to the optimizer.
      - ``dwa``: Dynamic Weight Average (Liu, Johns & Davison 2019): from the third epoch,
        ``lambda[t] = K * softmax_t(r[t] / T)`` with ``r[t]`` the ratio of task t's mean loss in
        the last two epochs and T = 2; the loss is ``sum weight[t] * lambda[t] * loss[t]``.
      - ``famo``: Fast Adaptive Multitask Optimization (Liu, Liu, Sun & Liu, NeurIPS 2023), as in
        the authors' code: task logits ``xi``, ``z = softmax(xi)``, and the loss
        ``c * sum z[t] * log(loss[t])`` with ``c = 1 / sum(z[t] / loss[t])`` held constant, so
        the step follows ``sum (z[t] / loss[t]) * grad loss[t]`` normalised to a convex
        combination. After each optimizer step, :meth:`after_step` takes the same batch's losses
        again and moves ``xi`` (Adam, lr 0.025, weight decay 0.001) so that the task whose log
        loss fell least gets more weight: all tasks improve at the same rate. Static weights
        multiply ``z``. One extra forward pass per step; no per-task gradients.
    normalize: divide each loss by a detached running mean of its magnitude first (EMA with
    ``momentum``, started at the first value).
    """

    METHODS = ("static", "uncertainty", "dwa", "famo")  # params.LOSS_METHODS lists the same (tested)

    def __init__(
        self,
        weights: dict[str, float],
        method: str = "static",
        normalize: bool = False,
        momentum: float = 0.9,
        temperature: float = 2.0,
    ):
        super().__init__()
        if method not in self.METHODS:
            raise ValueError(f"unknown loss weighting method {method!r}")
        self.tasks = tuple(weights)
        self.method = method
        self.normalize = normalize
        self.momentum = momentum
        self.temperature = temperature
        self.register_buffer("weight", torch.tensor([weights[t] for t in self.tasks], dtype=torch.float32))
        self.register_buffer("magnitude", torch.ones(len(self.tasks)))
        self.register_buffer("seen", torch.zeros((), dtype=torch.bool))
        self.register_buffer("dwa", torch.ones(len(self.tasks)))
        self.epoch_losses: list[torch.Tensor] = []  # mean task losses of past epochs, for DWA
        # Distributed training sets this to a mean over processes: the statistics the weights
        # are made of (magnitudes, FAMO's losses) are then those of the whole batch, the same in
        # every process. DWA's epoch means and the log-variances' gradients are summed outside.
        self.sync: Callable[[torch.Tensor], torch.Tensor] | None = None
        if method == "uncertainty":
            self.log_var = nn.Parameter(torch.zeros(len(self.tasks)))
        elif method == "famo":
            # Not an nn.Parameter: the model's optimizer must not see it; FAMO has its own rule.
            self.register_buffer("famo_logits", torch.zeros(len(self.tasks)))
            self.register_buffer("famo_factor", torch.ones(len(self.tasks)))  # for effective_weights
            # Made at the first update, over the buffer as it is then (after any .to(device)).
            self._famo_optimizer: torch.optim.Optimizer | None = None
            self._famo_last: torch.Tensor | None = None

    @property
    def needs_losses_after_step(self) -> bool:
        return self.method == "famo"

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        loss = torch.stack([losses[t] for t in self.tasks]).float()
        if self.normalize:
            loss = loss / self._update_magnitude(loss.detach())
        if self.method == "uncertainty":
            per_task = 0.5 * torch.exp(-self.log_var) * loss + 0.5 * self.log_var
        elif self.method == "dwa":
            per_task = self.dwa * loss
        elif self.method == "famo":
            return self._famo_loss(loss)
        else:
            per_task = loss
        return (self.weight * per_task).sum()

    def _famo_loss(self, loss: torch.Tensor) -> torch.Tensor:
        # Cross-entropy's lower bound is 0; the authors' 1e-8 keeps the log finite.
        bounded = loss + 1e-8
        seen = bounded.detach() if self.sync is None else self.sync(bounded.detach())
        z = self.weight * torch.softmax(self.famo_logits, 0)
        c = 1 / (z / seen).sum()
        self.famo_factor.copy_(c * z / seen)
        self._famo_last = seen
        if self.sync is None:
            return (c * z * bounded.log()).sum()
        # Several processes: the gradient of log(loss) taken at the whole batch's loss,
        # c z / L * grad(L_share), so that DDP's mean over processes is one process's step.
        return (c * z * bounded / seen).sum()

    @torch.no_grad()
    def after_step(self, losses: dict[str, torch.Tensor]) -> None:
        """FAMO: the same batch's task losses after the optimizer step; updates the task logits."""
        if self.method != "famo" or self._famo_last is None:
            return
        new = torch.stack([losses[t] for t in self.tasks]).float() + 1e-8
        if self.sync is not None:
            new = self.sync(new)
        delta = self._famo_last.log() - new.log()  # how much each task's log loss fell
        # The gradient of softmax(xi) . delta with respect to xi, in closed form: J^T delta with
        # J = diag(z) - z z^T, i.e. z * (delta - z . delta).
        z = torch.softmax(self.famo_logits, 0)
        self.famo_logits.grad = z * (delta - (z * delta).sum())
        if self._famo_optimizer is None:
            self._famo_optimizer = torch.optim.Adam([self.famo_logits], lr=0.025, weight_decay=0.001)
        self._famo_optimizer.step()

    def _update_magnitude(self, value: torch.Tensor) -> torch.Tensor:
        # torch.where rather than an `if` on a tensor: no host sync inside the training step.
        if self.sync is not None:
            value = self.sync(value)
        ema = self.momentum * self.magnitude + (1 - self.momentum) * value
        self.magnitude.copy_(torch.where(self.seen, ema, value))
        self.seen.fill_(True)
        return self.magnitude

    @torch.no_grad()
    def end_epoch(self, mean_losses: dict[str, float]) -> None:
        """Record this epoch's mean task losses; DWA sets next epoch's lambdas from them."""
        self.epoch_losses.append(torch.tensor([mean_losses[t] for t in self.tasks], dtype=torch.float32))
        if self.method == "dwa" and len(self.epoch_losses) >= 2:
            ratio = self.epoch_losses[-1] / self.epoch_losses[-2]
            lam = len(self.tasks) * torch.softmax(ratio / self.temperature, dim=0)
            self.dwa.copy_(lam.to(self.dwa.device))

    @torch.no_grad()
    def effective_weights(self) -> dict[str, float]:
        """The factor each raw task loss is multiplied by in the total, as of now."""
        w = self.weight.clone()
        if self.normalize:
            w = w / self.magnitude
        if self.method == "uncertainty":
            w = w * 0.5 * torch.exp(-self.log_var)
        elif self.method == "dwa":
            w = w * self.dwa
        elif self.method == "famo":  # d total / d loss[t] at the last step: c * z[t] / loss[t]
            w = self.famo_factor.clone()
        return dict(zip(self.tasks, w.tolist(), strict=True))

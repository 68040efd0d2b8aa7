"""How task losses become one loss: one class per method, behind one small interface.

A method is a subclass of :class:`LossWeighting`, registered under its ``loss.method`` name with
``@register("name")``. It overrides :meth:`~LossWeighting.combine` (task losses -> one scalar)
and :meth:`~LossWeighting.factors` (the factor on each task's loss in that scalar, for the
curves), and if it needs them the hooks :meth:`~LossWeighting.after_step` and
:meth:`~LossWeighting.end_epoch`. The static weights and ``normalize`` are the base class's:
every method gets them. Its own hyperparameters are its constructor's keyword-only arguments,
with defaults, annotated as params.yaml's own fields are (a type, and a range such as
``Annotated[float, between(0, 1)]``): params.yaml sets them as ``loss.<name>.<argument>``, and
the params check validates them by those annotations and builds the method with them, so that a
bad value (or one the constructor refuses with ``ValueError("<argument>: <why>")``) fails
before any stage runs.

The notebook's recipe for losses on different scales, ``loss / torch.max(loss)``, divides a
scalar by itself: the result is the constant 1 and its gradient is zero, so nothing trains.
``normalize`` here divides each task loss by a *detached* running mean of its own magnitude:
the gradient keeps its direction (scaled by 1 / magnitude), and multiplying one task's loss by
any constant leaves the weighted sum unchanged, because its running mean scales by the same
constant.
"""

import inspect
from collections.abc import Callable
from typing import Annotated

import torch
from torch import nn

from omniglot_mtl.core.params import between

METHODS: dict[str, type["LossWeighting"]] = {}


def register(name: str):
    """Class decorator: make a :class:`LossWeighting` subclass the method ``loss.method: name``."""

    def add(cls: type["LossWeighting"]) -> type["LossWeighting"]:
        if name in METHODS:
            raise ValueError(f"loss weighting method {name!r} is registered twice")
        METHODS[name] = cls
        return cls

    return add


def make_weighting(
    weights: dict[str, float], method: str = "static", normalize: bool = False, options: dict | None = None
) -> "LossWeighting":
    """The registered method ``method`` over the tasks of ``weights`` (task -> static weight),
    with its hyperparameters ``options`` (loss.<method> in params.yaml)."""
    if method not in METHODS:
        raise ValueError(f"unknown loss weighting method {method!r} (known: {', '.join(METHODS)})")
    return METHODS[method](weights, normalize=normalize, **(options or {}))


def from_params(loss) -> "LossWeighting":
    """The weighting that params.yaml's ``loss`` section (a params.Loss) asks for."""
    return make_weighting(loss.weights, loss.method, loss.normalize, loss.methods.get(loss.method))


def hyperparameters(method: type["LossWeighting"]) -> dict[str, inspect.Parameter]:
    """A method's own hyperparameters: its constructor's keyword-only arguments."""
    parameters = inspect.signature(method).parameters.values()
    return {p.name: p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


@register("static")
class LossWeighting(nn.Module):
    """``static``: the sum of ``weight[t] * loss[t]``; the base class of every method.

    normalize: divide each loss by a detached running mean of its magnitude first (EMA with
    ``momentum``, started at the first value), before the method combines them.
    """

    # Whether the loop must call after_step with the same batch's losses after each optimizer step.
    needs_losses_after_step = False

    def __init__(self, weights: dict[str, float], normalize: bool = False, momentum: float = 0.9):
        super().__init__()
        self.tasks = tuple(weights)
        self.normalize = normalize
        self.momentum = momentum
        self.register_buffer("weight", torch.tensor([weights[t] for t in self.tasks], dtype=torch.float32))
        self.register_buffer("magnitude", torch.ones(len(self.tasks)))
        self.register_buffer("seen", torch.zeros((), dtype=torch.bool))
        # Distributed training sets this to a mean over processes: the statistics the weights
        # are made of (magnitudes, FAMO's losses) are then those of the whole batch, the same in
        # every process. DWA's epoch means and learned parameters' gradients are averaged outside
        # (distributed.World).
        self.sync: Callable[[torch.Tensor], torch.Tensor] | None = None

    # -- the interface a method overrides ------------------------------------------------------

    def combine(self, loss: torch.Tensor) -> torch.Tensor:
        """The total from the task losses ``loss`` (one per task, in ``self.tasks`` order)."""
        return (self.weight * loss).sum()

    def factors(self) -> torch.Tensor:
        """d total / d loss[t] at the last :meth:`combine`: the factor on each task's loss."""
        return self.weight.clone()

    def after_step(self, losses: dict[str, torch.Tensor]) -> None:
        """Called with the same batch's losses after each optimizer step, if
        ``needs_losses_after_step``."""

    def end_epoch(self, mean_losses: dict[str, float]) -> None:
        """Called with each epoch's mean training loss per task."""

    def records(self) -> dict[str, float]:
        """Extra per-epoch curves of the method's own state (e.g. learned parameters)."""
        return {}

    # -- shared by every method ----------------------------------------------------------------

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        loss = self._stack(losses)
        if self.normalize:
            loss = loss / self._update_magnitude(loss.detach())
        return self.combine(loss)

    def _update_magnitude(self, value: torch.Tensor) -> torch.Tensor:
        # torch.where rather than an `if` on a tensor: no host sync inside the training step.
        if self.sync is not None:
            value = self.sync(value)
        ema = self.momentum * self.magnitude + (1 - self.momentum) * value
        self.magnitude.copy_(torch.where(self.seen, ema, value))
        self.seen.fill_(True)
        return self.magnitude

    @torch.no_grad()
    def effective_weights(self) -> dict[str, float]:
        """The factor each *raw* task loss is multiplied by in the total, as of now."""
        w = self.factors()
        if self.normalize:  # the method saw loss / magnitude
            w = w / self.magnitude
        return dict(zip(self.tasks, w.tolist(), strict=True))

    def _stack(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack([losses[t] for t in self.tasks]).float()


@register("uncertainty")
class Uncertainty(LossWeighting):
    """Kendall, Gal & Cipolla (2018), "Multi-task learning using uncertainty to weigh losses": a
    learned log-variance ``s[t]`` per task, ``weight[t] * (0.5 * exp(-s[t]) * loss[t] + 0.5 *
    s[t])`` (the form of LibMTL). ``s`` are parameters: pass this module's parameters to the
    optimizer."""

    def __init__(self, weights: dict[str, float], **kwargs):
        super().__init__(weights, **kwargs)
        self.log_var = nn.Parameter(torch.zeros(len(self.tasks)))

    def combine(self, loss: torch.Tensor) -> torch.Tensor:
        return (self.weight * (0.5 * torch.exp(-self.log_var) * loss + 0.5 * self.log_var)).sum()

    def factors(self) -> torch.Tensor:
        return self.weight * 0.5 * torch.exp(-self.log_var)

    def records(self) -> dict[str, float]:
        return {f"log_var/{t}": v for t, v in zip(self.tasks, self.log_var.tolist(), strict=True)}


@register("dwa")
class DynamicWeightAverage(LossWeighting):
    """Dynamic Weight Average (Liu, Johns & Davison 2019): from the third epoch,
    ``lambda[t] = K * softmax_t(r[t] / T)`` with ``r[t]`` the ratio of task t's mean loss in the
    last two epochs and the temperature T (loss.dwa.temperature, the paper's 2); the loss is
    ``sum weight[t] * lambda[t] * loss[t]``."""

    # At 0.001 the weights are all but one-hot, at 1,000 all but equal; near 0, ratio / T overflows.
    def __init__(
        self, weights: dict[str, float], *, temperature: Annotated[float, between(1e-3, 1e3)] = 2.0, **kwargs
    ):
        super().__init__(weights, **kwargs)
        self.temperature = temperature
        self.register_buffer("dwa", torch.ones(len(self.tasks)))
        self.epoch_losses: list[torch.Tensor] = []  # mean task losses of past epochs

    def combine(self, loss: torch.Tensor) -> torch.Tensor:
        return (self.weight * (self.dwa * loss)).sum()

    def factors(self) -> torch.Tensor:
        return self.weight * self.dwa

    @torch.no_grad()
    def end_epoch(self, mean_losses: dict[str, float]) -> None:
        self.epoch_losses.append(torch.tensor([mean_losses[t] for t in self.tasks], dtype=torch.float32))
        if len(self.epoch_losses) >= 2:
            ratio = self.epoch_losses[-1] / self.epoch_losses[-2]
            lam = len(self.tasks) * torch.softmax(ratio / self.temperature, dim=0)
            self.dwa.copy_(lam.to(self.dwa.device))


@register("famo")
class FAMO(LossWeighting):
    """Fast Adaptive Multitask Optimization (Liu, Liu, Sun & Liu, NeurIPS 2023), as in the
    authors' code: task logits ``xi``, ``z = softmax(xi)``, and the loss ``c * sum z[t] *
    log(loss[t])`` with ``c = 1 / sum(z[t] / loss[t])`` held constant, so the step follows
    ``sum (z[t] / loss[t]) * grad loss[t]`` normalised to a convex combination. After each
    optimizer step, :meth:`after_step` takes the same batch's losses again and moves ``xi``
    (Adam; loss.famo.lr and loss.famo.weight_decay, the authors' 0.025 and 0.001) so that the task
    whose log loss fell least gets more weight: all tasks improve at the same rate. Static
    weights multiply ``z``. One extra forward pass per step; no per-task gradients."""

    needs_losses_after_step = True

    def __init__(
        self,
        weights: dict[str, float],
        *,
        lr: Annotated[float, between(1e-6, 10.0)] = 0.025,
        weight_decay: Annotated[float, between(0.0, 1.0)] = 0.001,
        **kwargs,
    ):
        super().__init__(weights, **kwargs)
        self.lr = lr
        self.weight_decay = weight_decay
        # Not an nn.Parameter: the model's optimizer must not see it; FAMO has its own rule.
        self.register_buffer("famo_logits", torch.zeros(len(self.tasks)))
        self.register_buffer("famo_factor", torch.ones(len(self.tasks)))  # for factors()
        # Made at the first update, over the buffer as it is then (after any .to(device)).
        self._optimizer: torch.optim.Optimizer | None = None
        self._last: torch.Tensor | None = None

    def combine(self, loss: torch.Tensor) -> torch.Tensor:
        # Cross-entropy's lower bound is 0; the authors' 1e-8 keeps the log finite.
        bounded = loss + 1e-8
        seen = bounded.detach() if self.sync is None else self.sync(bounded.detach())
        z = self.weight * torch.softmax(self.famo_logits, 0)
        c = 1 / (z / seen).sum()
        self.famo_factor.copy_(c * z / seen)
        self._last = seen
        if self.sync is None:
            return (c * z * bounded.log()).sum()
        # Several processes: the gradient of log(loss) taken at the whole batch's loss,
        # c z / L * grad(L_share), so that DDP's mean over processes is one process's step.
        return (c * z * bounded / seen).sum()

    def factors(self) -> torch.Tensor:
        return self.famo_factor.clone()

    @torch.no_grad()
    def after_step(self, losses: dict[str, torch.Tensor]) -> None:
        """The same batch's task losses after the optimizer step: updates the task logits."""
        new = self._stack(losses)
        if self.normalize:  # on the scale combine() saw; no update of the running magnitude
            new = new / self.magnitude
        new = new + 1e-8
        if self.sync is not None:
            new = self.sync(new)
        delta = self._last.log() - new.log()  # how much each task's log loss fell
        # The gradient of softmax(xi) . delta with respect to xi, in closed form: J^T delta with
        # J = diag(z) - z z^T, i.e. z * (delta - z . delta).
        z = torch.softmax(self.famo_logits, 0)
        self.famo_logits.grad = z * (delta - (z * delta).sum())
        if self._optimizer is None:
            self._optimizer = torch.optim.Adam([self.famo_logits], lr=self.lr, weight_decay=self.weight_decay)
        self._optimizer.step()

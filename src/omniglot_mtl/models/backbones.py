"""Backbones: image (N, 1, S, S) in [0, 1] -> features (N, F), with the width F in ``.features``.

A backbone is a callable ``f(image_size) -> nn.Module`` (a function or an ``nn.Module`` class),
registered under its ``model.backbone`` name with ``@register("name")``; the heads of both
models are sized from its ``.features``. An image size it cannot take, it refuses with a
``ValueError`` saying why: the params check builds it (on torch's meta device, allocating
nothing) with ``data.image_size`` before any stage runs.
"""

from collections.abc import Callable

import torch
from torch import nn

SEED_FEATURES = 128  # width of the seed backbone's image features, as in the notebook

BACKBONES: dict[str, Callable[[int], nn.Module]] = {}


def register(name: str):
    """Decorator: make ``factory(image_size) -> nn.Module`` the backbone ``model.backbone: name``."""

    def add(factory: Callable[[int], nn.Module]) -> Callable[[int], nn.Module]:
        if name in BACKBONES:
            raise ValueError(f"backbone {name!r} is registered twice")
        BACKBONES[name] = factory
        return factory

    return add


def build_backbone(name: str, image_size: int) -> nn.Module:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r} (known: {', '.join(BACKBONES)})")
    backbone = BACKBONES[name](image_size)
    if not isinstance(getattr(backbone, "features", None), int):
        raise TypeError(f"backbone {name!r} must say its output width in .features (an int)")
    return backbone


class ChannelsLastLinear(nn.Module):
    """``nn.Linear`` over a feature map flattened in (c, h, w) order, computed in a faster layout.

    The map arrives channels-last, so flattening it in (h, w, c) order is a free view, and the
    weight is stored as (in, out) in that order. On a CPU this avoids two layout conversions per
    step and makes the weight gradient a ~3x faster GEMM (``x.T @ grad`` instead of
    ``grad.T @ x``). ``state_dict`` still shows ``nn.Linear``'s (out, in) weight in (c, h, w)
    order, so checkpoints are interchangeable with the notebook's ``nn.Sequential``.
    """

    def __init__(self, channels: int, height: int, width: int, out_features: int):
        super().__init__()
        self.map_shape = (channels, height, width)
        self.in_features, self.out_features = channels * height * width, out_features
        linear = nn.Linear(channels * height * width, out_features)  # the notebook's init
        self.weight = nn.Parameter(self._from_linear(linear.weight.detach()))
        self.bias = linear.bias
        self.register_state_dict_post_hook(self._export_weight)
        self.register_load_state_dict_pre_hook(self._import_weight)

    def _from_linear(self, w: torch.Tensor) -> torch.Tensor:  # (out, c*h*w) -> (h*w*c, out)
        c, h, w_ = self.map_shape
        return w.reshape(-1, c, h, w_).permute(2, 3, 1, 0).reshape(h * w_ * c, -1).contiguous()

    def _to_linear(self, w: torch.Tensor) -> torch.Tensor:  # (h*w*c, out) -> (out, c*h*w)
        c, h, w_ = self.map_shape
        return w.reshape(h, w_, c, -1).permute(3, 2, 0, 1).reshape(-1, c * h * w_).contiguous()

    @staticmethod
    def _export_weight(module, state_dict, prefix, local_metadata) -> None:
        state_dict[prefix + "weight"] = module._to_linear(state_dict[prefix + "weight"])

    @staticmethod
    def _import_weight(module, state_dict, prefix, *args) -> None:
        key = prefix + "weight"
        # Checkpoints hold nn.Linear's (out, in) layout; anything else is left to load_state_dict.
        if key in state_dict and state_dict[key].shape == (module.out_features, module.in_features):
            state_dict[key] = module._from_linear(state_dict[key])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, x.permute(0, 2, 3, 1).flatten(1), self.weight)


class _ExpELU(torch.autograd.Function):
    """ELU (alpha 1) as ``exp(min(x, 0)) - 1 + max(x, 0)``, with ELU's own gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clamp(max=0).exp_().sub_(1).add_(x.clamp(min=0))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return grad * y.clamp(max=0).add_(1)  # 1 where x > 0, exp(x) = y + 1 elsewhere


class ELU(nn.ELU):
    """``nn.ELU()`` that is fast on CPUs too.

    PyTorch's CPU ELU computes ``expm1`` one element at a time: 2.8 ms for a 32 x 16 x 32 x 32
    map, a quarter of the training step on real Omniglot (whose white background drives half the
    channels negative), against 0.2 ms for the vectorised ``exp``. Here the negative side is
    ``exp(x) - 1`` (within 1e-7 of ``expm1``), in float32 only: in bfloat16 (``train.precision:
    bf16``) ``exp(x)`` rounds to 1 for small negative ``x``, so ``exp(x) - 1`` loses every digit
    (it came out exactly 0 for half of the inputs in (-1e-2, 0)). Elsewhere (GPUs, bf16, float64)
    it is ``nn.ELU``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and x.dtype == torch.float32 and self.alpha == 1.0:
            return _ExpELU.apply(x)
        return super().forward(x)


@register("seed")
def seed_backbone(image_size: int) -> nn.Sequential:
    """The notebook's image layer for an S x S input: Conv2d(1, 16, 3, padding=1) -> MaxPool2d(2)
    -> ELU -> Flatten -> Linear(16 * (S/2)^2, 128), with the notebook's state_dict keys.

    It runs channels-last: PyTorch's CPU max-pool is several times faster on channels-last maps
    than on NCHW ones, and :class:`ChannelsLastLinear` takes the map without a layout copy.
    """
    half = image_size // 2
    backbone = nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=3, padding=1).to(memory_format=torch.channels_last),
        nn.MaxPool2d(kernel_size=2),
        ELU(),
        nn.Identity(),  # was nn.Flatten; ChannelsLastLinear flattens, and the keys stay 0.* and 4.*
        ChannelsLastLinear(16, half, half, SEED_FEATURES),
    )
    backbone.features = SEED_FEATURES
    return backbone


@register("convnet")
class ConvNet(nn.Module):
    """A VGG-style network for small drawings: four blocks of a 3x3 convolution, batch norm and
    ReLU, each ending in a 2x2 max-pool; the last map, flattened, is the feature vector.

    Widths double per block (32, 64, 128, 256): cheap where the maps are large, wide where they
    are small. At 32 x 32 the last map is 2 x 2 x 256, 1,024 features: flattening it keeps
    where the strokes are, which measured better than global average pooling (same cost).
    Images are inverted first (ink 1, paper 0), so that zero padding is paper. Channels-last,
    like the seed backbone: oneDNN's CPU convolutions and pooling are fastest in that layout.
    """

    widths = (32, 64, 128, 256)

    def __init__(self, image_size: int):
        super().__init__()
        if image_size < 2 ** len(self.widths):
            raise ValueError(f"must be >= 16 for its four 2x2 poolings, got {image_size}")
        layers: list[nn.Module] = []
        c_in = 1
        for width in self.widths:
            layers += [
                nn.Conv2d(c_in, width, kernel_size=3, padding=1, bias=False),  # BN adds the bias
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            c_in = width
        self.blocks = nn.Sequential(*layers).to(memory_format=torch.channels_last)
        side = image_size // 2 ** len(self.widths)
        self.features = c_in * side * side

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = (1 - image).contiguous(memory_format=torch.channels_last)
        return self.blocks(x).flatten(1)

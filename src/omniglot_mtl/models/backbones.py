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


@register("seed")
def seed_backbone(image_size: int) -> nn.Sequential:
    """The notebook's image layer for an S x S input: Conv2d(1, 16, 3, padding=1) -> MaxPool2d(2)
    -> ELU -> Flatten -> Linear(16 * (S/2)^2, 128), its layers and state_dict keys.

    Plain layers: under ``cpu.portable`` (the default) a channels-last variant with a transposed
    Linear weight and an exp-based ELU, kept until commit e30b099, made a training step of the
    default multi-output model slower, 44 ms against 38 ms for these (2-core Intel Xeon, three
    runs of 60 steps each in a scratch timing; faster only with ``cpu.portable: false``, 17-20
    against 22-32 ms).
    """
    backbone = nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=3, padding=1),
        nn.MaxPool2d(kernel_size=2),
        nn.ELU(),
        nn.Flatten(),
        nn.Linear(16 * (image_size // 2) ** 2, SEED_FEATURES),
    )
    backbone.features = SEED_FEATURES
    return backbone


@register("convnet")
class ConvNet(nn.Module):
    """A VGG-style network for small drawings: four blocks of a 3x3 convolution, batch norm and
    ReLU, each ending in a 2x2 max-pool; the last map, flattened, is the feature vector.

    Widths 16, 64, 128, 256: narrow where the maps are large, wide where they are small. The
    first block's batch norm, ReLU and pooling are bound by memory traffic on its 32 x 32 maps:
    16 channels there, not 32, made the recipe's training step about 1.1x as fast for accuracy
    within the seed spread on three sets (docs/results.md, "At a glance" and "The recipes from
    nothing"). At 32 x 32 the last map is 2 x 2 x 256, 1,024 features: flattening it keeps where
    the strokes are, which measured better than global average pooling (same cost).
    Images are inverted first (ink 1, paper 0), so that zero padding is paper. Channels-last:
    oneDNN's CPU convolutions and pooling, which run where ``cpu.portable`` is off (as the
    recipes set it), are fastest in that layout.
    """

    widths = (16, 64, 128, 256)

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

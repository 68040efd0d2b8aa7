"""The notebook's two models, sized from the index maps, on any backbone of
:mod:`omniglot_mtl.models.backbones`.

Each model says which batch fields it reads (``inputs``) and which tasks it predicts
(``tasks``); ``forward`` returns ``{task: logits}``. Losses live outside the model.
"""

from dataclasses import asdict, dataclass

import torch
from torch import nn

from omniglot_mtl.core.tasks import ALPHABET, CHARACTER
from omniglot_mtl.models.backbones import build_backbone


@dataclass(frozen=True)
class ModelConfig:
    kind: str  # "multi_input" | "multi_output"
    n_alphabets: int
    n_characters: int
    image_size: int = 64
    backbone: str = "seed"
    alphabet_hidden: int = 0  # multi-output only: params.yaml's model.alphabet_hidden

    @classmethod
    def from_params(
        cls, kind: str, model, n_alphabets: int, n_characters: int, image_size: int
    ) -> "ModelConfig":
        """The ``kind`` model that params.yaml's ``model`` section (a params.Model) asks for. The
        multi-input model has no alphabet head, so its config says 0 whatever the param."""
        hidden = model.alphabet_hidden if kind == "multi_output" else 0
        return cls(kind, n_alphabets, n_characters, image_size, model.backbone, hidden)

    def to_dict(self) -> dict:
        return asdict(self)


def one_hot(index: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    # scatter_ instead of F.one_hot: F.one_hot checks the range on the host, a device sync.
    return torch.zeros(index.shape[0], n, dtype=dtype, device=index.device).scatter_(1, index[:, None], 1.0)


class MultiInputNet(nn.Module):
    """image + one-hot alphabet -> character (the alphabet is given)."""

    inputs = ("image", ALPHABET)
    tasks = (CHARACTER,)

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_alphabets = config.n_alphabets
        self.image_layer = build_backbone(config.backbone, config.image_size)
        self.alphabet_layer = nn.Sequential(nn.Linear(config.n_alphabets, 8), nn.ELU())
        self.classifier = nn.Sequential(nn.Linear(self.image_layer.features + 8, config.n_characters))

    def forward(self, image: torch.Tensor, alphabet: torch.Tensor) -> dict[str, torch.Tensor]:
        x_alphabet = self.alphabet_layer(one_hot(alphabet, self.n_alphabets, image.dtype))
        x = torch.cat((self.image_layer(image), x_alphabet), dim=1)
        return {CHARACTER: self.classifier(x)}


class MultiOutputNet(nn.Module):
    """image -> (alphabet, character), two heads on shared image features.

    The character head is linear. The alphabet head is too by default (the notebook's), or
    ``Linear -> ReLU -> Linear`` with ``config.alphabet_hidden`` units between. An alphabet is a
    union of some 30 characters that look nothing alike, which a linear read-out of features
    trained to tell characters apart separates slowly: with 1,024 hidden units the convnet's
    8-epoch recipe reads 2 points more test alphabets over three seeds (docs/results.md, "Time
    to accuracy"). The same layer in a character head trained slower and scored lower.
    """

    inputs = ("image",)
    tasks = (ALPHABET, CHARACTER)

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.image_layer = build_backbone(config.backbone, config.image_size)
        width = self.image_layer.features
        hidden = config.alphabet_hidden
        if hidden:
            self.classifier_alpha = nn.Sequential(
                nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, config.n_alphabets)
            )
        else:
            self.classifier_alpha = nn.Linear(width, config.n_alphabets)
        self.classifier_char = nn.Linear(width, config.n_characters)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.image_layer(image)
        return {ALPHABET: self.classifier_alpha(features), CHARACTER: self.classifier_char(features)}


MODELS = {"multi_input": MultiInputNet, "multi_output": MultiOutputNet}
MODEL_KINDS = tuple(MODELS)


def build_model(config: ModelConfig) -> nn.Module:
    return MODELS[config.kind](config)

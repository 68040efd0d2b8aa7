"""docs/extending.md's promise: a backbone or a loss weighting method is one class, registered
with one decorator, and the one training loop trains with it."""

from typing import Annotated

import pytest
import torch
from torch import nn

from omniglot_mtl.core.errors import ParamError
from omniglot_mtl.core.packed import load_split, read_maps
from omniglot_mtl.core.params import Train, between, from_dict
from omniglot_mtl.models import backbones
from omniglot_mtl.models.networks import ModelConfig, build_model
from omniglot_mtl.training.check import check_registered
from omniglot_mtl.training.loop import fit
from omniglot_mtl.weighting import methods as weighting


@pytest.fixture
def registries():
    """Registries as they were after the test: the toys are registered by this module only."""
    saved = dict(backbones.BACKBONES), dict(weighting.METHODS)
    yield
    for registry, before in zip((backbones.BACKBONES, weighting.METHODS), saved, strict=True):
        registry.clear()
        registry.update(before)


def test_a_toy_backbone_and_weighting_method_from_outside_the_package_train_through_fit(data, registries):
    @backbones.register("tiny_mlp")
    class TinyMLP(nn.Module):
        def __init__(self, image_size: int):
            super().__init__()
            self.features = 16
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(image_size * image_size, 16), nn.ReLU())

        def forward(self, image):
            return self.net(image)

    @weighting.register("max")
    class MaxLoss(weighting.LossWeighting):
        """Train on the worst task only (a min-max weighting)."""

        def combine(self, loss):
            self.worst = torch.argmax(self.weight * loss.detach())
            return (self.weight * loss)[self.worst]

        def factors(self):
            return torch.nn.functional.one_hot(self.worst, len(self.tasks)).float() * self.weight

    alphabets, characters = read_maps(data / "index")
    torch.manual_seed(0)
    model = build_model(ModelConfig("multi_output", len(alphabets), len(characters), 24, "tiny_mlp"))
    assert isinstance(model.image_layer, TinyMLP)
    method = weighting.make_weighting({"alphabet": 1.0, "character": 1.0}, "max")
    records = []
    train, val = load_split(data / "packed", "train"), load_split(data / "packed", "val")
    result = fit(
        model, method, train, val, Train(epochs=2, batch_size=8, lr=0.01), 0, lambda e, r: records.append(r)
    )
    assert result.best_epoch in (1, 2) and len(records) == 2
    # The curves show the method's own factors: one task at a time gets the whole weight.
    assert sorted(records[-1][f"weight/{t}"] for t in ("alphabet", "character")) == [0.0, 1.0]
    assert records[1]["train/loss/character"] < records[0]["train/loss/character"]


def test_a_name_registered_twice_is_refused(registries):
    with pytest.raises(ValueError, match="backbone 'seed' is registered twice"):
        backbones.register("seed")(lambda size: None)
    with pytest.raises(ValueError, match="method 'dwa' is registered twice"):
        weighting.register("dwa")(weighting.LossWeighting)


def test_a_new_methods_hyperparameter_is_checked_by_its_annotation(registries):
    """A hyperparameter is a keyword-only argument annotated as params.yaml's fields are: the
    params check validates loss.<method>.<name> by that annotation, strictly, in one line."""

    @weighting.register("capped")
    class Capped(weighting.LossWeighting):
        def __init__(self, weights, *, cap: Annotated[float, between(0.5, 2.0)] = 1.0, **kwargs):
            super().__init__(weights, **kwargs)
            self.cap = cap

    def checked(section: dict) -> None:
        check_registered(from_dict({"loss": {"method": "capped", "capped": section}}))

    checked({"cap": 2})  # an integer is a number
    for section, message in (
        ({"cap": 3}, "loss.capped.cap: must be between 0.5 and 2, got 3"),
        ({"cap": "2"}, "loss.capped.cap: must be a number, got '2'"),
        ({"cap": True}, "loss.capped.cap: must be a number, got True"),
        ({"cpa": 1.0}, "loss.capped.cpa: unknown key; did you mean cap? (known: cap)"),
    ):
        with pytest.raises(ParamError) as err:
            checked(section)
        assert str(err.value) == f"params.yaml: {message}"

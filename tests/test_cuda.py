"""The CUDA path, on a tiny synthetic set. It needs an NVIDIA GPU: CI has none, so these run
where one is (`bash benchmarks/gpu_check.sh DATA_DIR` runs them first), and are skipped elsewhere."""

import pytest
import torch

from omniglot_mtl.core.devices import configure_cuda
from omniglot_mtl.core.packed import load_split
from omniglot_mtl.core.params import Augment, Train
from omniglot_mtl.models.networks import ModelConfig, build_model
from omniglot_mtl.training.loop import fit
from omniglot_mtl.weighting.methods import make_weighting

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

# A schedule, weight decay and bf16: what a captured step must read afresh at each replay.
RECIPE = {
    "precision": "bf16",
    "optimizer": "adamw",
    "weight_decay": 0.05,
    "schedule": "cosine",
    "warmup_epochs": 1,
}
AUGMENT = Augment(rotation=8, shear=6, scale=0.08, shift=0.06)


def trained(data, capture: bool | None, method: str = "static", **train) -> dict[str, torch.Tensor]:
    device = torch.device("cuda")
    configure_cuda(device, deterministic=True)
    torch.manual_seed(0)
    splits = [load_split(data / "packed", name).to(device) for name in ("train", "val")]
    model = build_model(ModelConfig("multi_output", 3, 12, 24)).to(device)
    weighting = make_weighting({"alphabet": 1.0, "character": 1.0}, method, False, None).to(device)
    # 72 training images in batches of 10: 7 replays and one short batch run as written, per epoch.
    cfg = Train(**({"epochs": 3, "batch_size": 10, "lr": 0.003} | train))
    fit(model, weighting, *splits, cfg, seed=0, capture=capture)
    return {k: v.cpu() for k, v in model.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("train", [{}, RECIPE], ids=["notebook", "recipe"])
def test_a_captured_step_trains_to_the_eager_steps_bytes(data, train):
    eager = trained(data, capture=False, **train)
    assert same(trained(data, capture=True, **train), eager)
    assert not same(trained(data, capture=True, **(train | {"lr": 0.002})), eager)  # it can fail


def test_captured_training_with_augmentation_is_deterministic_and_draws_as_eager(data):
    first = trained(data, capture=True, augment=AUGMENT, **RECIPE)
    assert same(trained(data, capture=True, augment=AUGMENT, **RECIPE), first)
    # The graph's draws advance with each replay as the eager ones do: the same distortions.
    assert same(trained(data, capture=False, augment=AUGMENT, **RECIPE), first)


def test_famo_trains_eagerly_and_capture_refuses_it(data):
    assert same(trained(data, None, "famo"), trained(data, False, "famo"))
    with pytest.raises(ValueError, match="capture: needs"):
        trained(data, capture=True, method="famo")

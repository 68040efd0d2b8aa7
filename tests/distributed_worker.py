"""Run by tests/test_distributed.py under PyTorch's launcher (torchrun): trains on the packed data
in DATA with every loss weighting, and saves what this process ended with to OUT/<method>_<rank>.pt.

    python -m torch.distributed.run --standalone --nproc-per-node 2 distributed_worker.py DATA OUT
"""

import sys
from pathlib import Path

import torch

from omniglot_mtl.core.packed import load_split, read_maps
from omniglot_mtl.core.params import Augment, Train
from omniglot_mtl.models.networks import ModelConfig, build_model
from omniglot_mtl.training.distributed import close_world, init_world
from omniglot_mtl.training.loop import fit
from omniglot_mtl.weighting.methods import make_weighting

SETUPS = {  # method, normalize, backbone: every kind of state a process could drift on
    "static": ("static", False, "seed"),
    "normalize": ("static", True, "seed"),
    "uncertainty": ("uncertainty", False, "seed"),
    "dwa": ("dwa", False, "seed"),
    "famo": ("famo", False, "seed"),
    "convnet": ("static", False, "convnet"),  # batch norm's running statistics, augmentation
}


def main(data: Path, out: Path) -> None:
    torch.set_num_threads(1)
    world = init_world(torch.device("cpu"))
    alphabets, characters = read_maps(data / "index")
    train, val = load_split(data / "packed", "train"), load_split(data / "packed", "val")
    for name, (method, normalize, backbone) in SETUPS.items():
        torch.manual_seed(0)
        size = train.images.shape[-1]
        model = build_model(ModelConfig("multi_output", len(alphabets), len(characters), size, backbone))
        weighting = make_weighting({"alphabet": 1.0, "character": 2.0}, method, normalize)
        augment = Augment(rotation=10, shift=0.1) if backbone == "convnet" else Augment()
        cfg = Train(epochs=3, batch_size=8, lr=0.003, augment=augment)
        records = []
        result = fit(model, weighting, train, val, cfg, 0, lambda epoch, r, log=records: log.append(r), world)
        torch.save(
            {
                "best": result.best_state,
                "last": model.state_dict(),
                "weighting": weighting.state_dict(),
                "records": records,
                "world": (world.rank, world.size),
            },
            out / f"{name}_{world.rank}.pt",
        )
    close_world(world)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))

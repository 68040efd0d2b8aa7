"""``omniglot-mtl-fingerprint``: does this CPU compute the committed results' bytes?

    omniglot-mtl-fingerprint            # compare with the committed values; exit 1 if any differs
    omniglot-mtl-fingerprint --write    # record this CPU's values (after a change meant to move them)
    omniglot-mtl-fingerprint --expected other.json  # against another CPU's values

Under ``cpu.portable`` (as the training stages run), each operation of the default training
step is computed on fixed inputs at the default models' shapes (batch 32, 64 x 64 drawings,
8 alphabets, 96 characters) and its result hashed, then three steps of each default model end
to end. ``fingerprint.json``, beside this file, holds what the CPU that wrote the committed
``dvc.lock`` printed, and docs/reproducibility.md every CPU compared. Where a fresh clone's
``dvc repro`` rewrites ``dvc.lock``, the lines marked ``differs`` name the operations this CPU
computes otherwise.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

from omniglot_mtl.core.environment import PORTABLE_THREADS, apply_cpu_portable, cpu_model
from omniglot_mtl.core.tasks import CHARACTER

EXPECTED = Path(__file__).with_name("fingerprint.json")
BATCH, SIZE, ALPHABETS, CHARACTERS = 32, 64, 8, 96


def digest(*tensors) -> str:
    sha = hashlib.sha256()
    for t in tensors:
        sha.update(t.detach().contiguous().numpy().tobytes())
    return sha.hexdigest()[:16]


def operations() -> dict[str, str]:
    """The hash of each operation's outputs (and gradients), by name."""
    import torch
    import torch.nn.functional as F

    from omniglot_mtl.core.params import Train
    from omniglot_mtl.models.networks import ModelConfig, build_model
    from omniglot_mtl.training.loop import OneTask, make_optimizer

    g = torch.Generator().manual_seed(0)

    def rand(*shape, scale=1.0, grad=False):
        return (torch.randn(*shape, generator=g) * scale).requires_grad_(grad)

    found = {}
    image = torch.rand(BATCH, 1, SIZE, SIZE, generator=g)
    kernel, bias = rand(16, 1, 3, 3, scale=0.3, grad=True), rand(16, scale=0.1, grad=True)
    conv = F.conv2d(image, kernel, bias, padding=1)
    conv.backward(rand(*conv.shape))
    found["conv2d"] = digest(conv)
    found["conv2d.grad_weight"] = digest(kernel.grad, bias.grad)
    maps = rand(BATCH, 16, SIZE, SIZE, grad=True)
    pooled = F.max_pool2d(maps, 2)
    pooled.backward(rand(*pooled.shape))
    found["max_pool2d"] = digest(pooled, maps.grad)
    pre = rand(BATCH, 16, SIZE // 2, SIZE // 2, grad=True)
    elu = F.elu(pre)
    elu.backward(rand(*elu.shape))
    found["elu"] = digest(elu, pre.grad)
    flat, weight = rand(BATCH, 16 * 32 * 32, grad=True), rand(16 * 32 * 32, 128, scale=0.01, grad=True)
    out = torch.addmm(rand(128), flat, weight)
    out.backward(rand(*out.shape))
    found["addmm"] = digest(out, flat.grad, weight.grad)
    logits = rand(BATCH, CHARACTERS, grad=True)
    loss = F.cross_entropy(logits, torch.randint(0, CHARACTERS, (BATCH,), generator=g))
    loss.backward()
    found["cross_entropy"] = digest(loss, logits.grad)
    for kind in ("multi_input", "multi_output"):
        torch.manual_seed(0)
        model = build_model(ModelConfig(kind, ALPHABETS, CHARACTERS, SIZE))
        # The default params' optimizer, as the training loop makes it (no loss weighting's own).
        adam = make_optimizer(model, OneTask(CHARACTER), Train(), torch.device("cpu"))
        batch = {
            "image": torch.rand(BATCH, 1, SIZE, SIZE, generator=g),
            "alphabet": torch.randint(0, ALPHABETS, (BATCH,), generator=g),
            "character": torch.randint(0, CHARACTERS, (BATCH,), generator=g),
        }
        for _ in range(3):
            adam.zero_grad()
            logits = model(*(batch[name] for name in model.inputs))
            sum(F.cross_entropy(logits[task], batch[task]) for task in model.tasks).backward()
            adam.step()
        found[f"{kind}.3_adam_steps"] = digest(*model.parameters())
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip("`"))
    ap.add_argument("--write", action="store_true", help="write this CPU's values to the expected file")
    ap.add_argument(
        "--expected", type=Path, default=EXPECTED, help="another CPU's file (default: %(default)s)"
    )
    args = ap.parse_args()
    apply_cpu_portable(True)
    import torch

    torch.set_num_threads(PORTABLE_THREADS)
    found = operations()
    if args.write:
        made = {"cpu": cpu_model(), "torch": torch.__version__, **found}
        args.expected.write_text(json.dumps(made, indent=1) + "\n")
        print(f"wrote {args.expected}")
        return
    expected = json.loads(args.expected.read_text())
    print(f"this CPU: {cpu_model()}, torch {torch.__version__}")
    print(f"committed: {expected['cpu']}, torch {expected['torch']}")
    differ = [name for name in found if found[name] != expected.get(name)]
    for name, value in found.items():
        print(f"{name:28} {value}  {'differs' if name in differ else 'same'}")
    if differ:
        sys.exit(f"this CPU computes {len(differ)} of {len(found)} operations otherwise: {', '.join(differ)}")
    print("this CPU computes the committed bytes")

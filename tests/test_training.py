"""The training loop and the training stage, on a tiny synthetic set."""

import dataclasses
import json
import math
import os
import resource
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from conftest import ROOT, run_stage

from omniglot_mtl.core.devices import available_devices
from omniglot_mtl.core.errors import InputError
from omniglot_mtl.core.packed import load_split
from omniglot_mtl.core.params import Params, Split, from_dict
from omniglot_mtl.core.tasks import CHARACTER
from omniglot_mtl.data.index import index_and_pack
from omniglot_mtl.data.synthetic import generate
from omniglot_mtl.models.checkpoints import load_checkpoint
from omniglot_mtl.training.loop import OneTask
from omniglot_mtl.training.train import train_model
from omniglot_mtl.weighting.methods import from_params


def params(**overrides) -> Params:
    raw = {"device": "cpu", "train": {"epochs": 3, "batch_size": 8, "lr": 0.003}} | overrides
    return from_dict(raw)


def train(
    data: Path,
    out: Path,
    kind: str,
    p: Params,
    recorded=("seed", "device", "train", "model", "loss"),
    cwd: Path | None = None,
):
    paths = (data / "packed", data / "index", out / f"{kind}.pt", out / f"metrics_{kind}")
    loss = OneTask(CHARACTER) if kind == "multi_input" else from_params(p.loss)
    with pytest.MonkeyPatch.context() as patch:
        # Outside this repository: DVCLive signals each epoch to VS Code in the DVC project it is
        # run from, one file that two test processes training at once would race to remove.
        patch.chdir(cwd or data)
        return train_model(p, kind, loss, *paths, recorded=recorded)


def test_multi_output_training_writes_checkpoint_and_curves(data, tmp_path):
    result = train(data, tmp_path, "multi_output", params())
    model, ckpt = load_checkpoint(tmp_path / "multi_output.pt")
    raw = torch.load(tmp_path / "multi_output.pt", weights_only=True)
    assert raw["config"] == {
        "kind": "multi_output",
        "n_alphabets": 3,
        "n_characters": 12,
        "image_size": 24,
        "backbone": "seed",
        "alphabet_hidden": 0,
    }
    assert list(raw["alphabets"]) == ["Synthetic_01", "Synthetic_02", "Synthetic_03"]
    assert len(raw["characters"]) == 12 and raw["params"]["train"]["epochs"] == 3
    assert sorted(raw["params"]) == ["device", "loss", "model", "seed", "train"]  # as recorded=, no data.*
    env = raw["environment"]  # what decides the bytes, and nothing else of the machine
    assert env["torch"] == torch.__version__ and env["device"] == "cpu"
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and "cpu" not in env
    assert env["threads"] == torch.get_num_threads() == 2  # cpu.portable: auto is 2 on every machine
    assert raw["best_epoch"] == result.best_epoch and raw["val_accuracy"] == result.best_val
    for k, v in result.best_state.items():
        assert torch.equal(model.state_dict()[k], v)

    assert sorted(p.name for p in (tmp_path / "metrics_multi_output").iterdir()) == ["metrics.json", "plots"]
    metrics = json.loads((tmp_path / "metrics_multi_output" / "metrics.json").read_text())
    assert metrics["step"] == 3 and metrics["best_epoch"] == result.best_epoch  # step: the last epoch
    assert set(metrics["val"]["accuracy"]) == {"alphabet", "character"}
    curve = (
        tmp_path / "metrics_multi_output" / "plots" / "metrics" / "val" / "accuracy" / "character.tsv"
    ).read_text()
    assert curve.splitlines()[0] == "step\tcharacter" and len(curve.splitlines()) == 4
    assert [line.split("\t")[0] for line in curve.splitlines()[1:]] == ["1", "2", "3"]  # epochs
    weights = (
        tmp_path / "metrics_multi_output" / "plots" / "metrics" / "weight" / "alphabet.tsv"
    ).read_text()
    assert [line.split("\t")[1] for line in weights.splitlines()[1:]] == ["1.0", "1.0", "1.0"]
    # Training did something: the best epoch is better than chance on both tasks.
    assert result.best_val["alphabet"] > 1 / 3 and result.best_val["character"] > 3 / 12


def test_alphabet_hidden_gives_the_multi_output_alphabet_head_a_hidden_layer_and_the_checkpoint_keeps_it(
    data, tmp_path
):
    p = params(model={"alphabet_hidden": 16}, train={"epochs": 1, "batch_size": 8})
    for kind in ("multi_output", "multi_input"):
        train(data, tmp_path, kind, p)
    model, ckpt = load_checkpoint(tmp_path / "multi_output.pt")
    assert ckpt["config"]["alphabet_hidden"] == 16 and ckpt["params"]["model"]["alphabet_hidden"] == 16
    head = model.classifier_alpha
    assert [type(m) for m in head] == [torch.nn.Linear, torch.nn.ReLU, torch.nn.Linear]
    assert (head[0].out_features, head[2].in_features, head[2].out_features) == (16, 16, 3)
    assert isinstance(model.classifier_char, torch.nn.Linear)  # the character head stays linear
    # The multi-input model has no alphabet head: its config says so whatever the param.
    _, ckpt = load_checkpoint(tmp_path / "multi_input.pt")
    assert ckpt["config"]["alphabet_hidden"] == 0


def test_cpu_training_is_reproducible(data, tmp_path):
    # With the recipe's augmentation: its draws are seeded too.
    augment = {"rotation": 12, "shear": 10, "scale": 0.1, "shift": 0.06}
    p = params(train={"epochs": 3, "batch_size": 8, "lr": 0.003, "augment": augment})
    a = train(data, tmp_path / "a", "multi_input", p)
    b = train(data, tmp_path / "b", "multi_input", p)
    assert a.best_val == b.best_val and a.best_epoch == b.best_epoch
    assert all(torch.equal(a.best_state[k], b.best_state[k]) for k in a.best_state)
    assert (tmp_path / "a" / "metrics_multi_input" / "metrics.json").read_text() == (
        tmp_path / "b" / "metrics_multi_input" / "metrics.json"
    ).read_text()
    assert (tmp_path / "a" / "multi_input.pt").read_bytes() == (
        tmp_path / "b" / "multi_input.pt"
    ).read_bytes()
    c = train(data, tmp_path / "c", "multi_input", dataclasses.replace(p, seed=1))
    assert not all(torch.equal(a.best_state[k], c.best_state[k]) for k in a.best_state)


def test_uncertainty_logs_learned_log_variances(data, tmp_path):
    train(data, tmp_path, "multi_output", params(loss={"method": "uncertainty"}))
    metrics = json.loads((tmp_path / "metrics_multi_output" / "metrics.json").read_text())
    assert set(metrics["log_var"]) == {"alphabet", "character"} and metrics["log_var"]["alphabet"] != 0.0
    w = metrics["weight"]
    assert w["character"] == pytest.approx(
        0.5 * torch.exp(torch.tensor(-metrics["log_var"]["character"])).item(), rel=1e-5
    )


def test_bf16_trains_to_similar_accuracy(data, tmp_path):
    fp32 = train(data, tmp_path / "a", "multi_output", params())
    bf16 = train(
        data,
        tmp_path / "b",
        "multi_output",
        params(train={"epochs": 3, "batch_size": 8, "lr": 0.003, "precision": "bf16"}),
    )
    for task in ("alphabet", "character"):
        assert abs(fp32.best_val[task] - bf16.best_val[task]) < 0.15
    recorded = {name: torch.load(tmp_path / name / "multi_output.pt", weights_only=True) for name in "ab"}
    assert recorded["a"]["precision"] == "fp32" and recorded["b"]["precision"] == "bf16"
    # auto: what this machine computes natively, recorded as such (the params keep "auto").
    train(data, tmp_path / "c", "multi_output", params(train={"epochs": 1, "precision": "auto"}))
    auto = torch.load(tmp_path / "c" / "multi_output.pt", weights_only=True)
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert (
        auto["precision"] == ("bf16" if native else "fp32") and auto["params"]["train"]["precision"] == "auto"
    )


def test_damaged_checkpoint_is_one_clear_error(tmp_path):
    (tmp_path / "m.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=r"m.pt: not a checkpoint \(a checkpoint is a zip archive"):
        load_checkpoint(tmp_path / "m.pt")
    # A zip, but not ours: no model config inside.
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(InputError) as err:
        load_checkpoint(tmp_path / "other.pt")
    assert (
        str(err.value)
        == f"{tmp_path / 'other.pt'}: not a checkpoint of this project (a torch file without its keys)"
    )


def test_missing_device_fails_the_stage_at_once(tmp_path):
    # cuda:99 exists on no machine, so this holds with or without a GPU.
    (tmp_path / "params.yaml").write_text("device: cuda:99\n")
    result = run_stage("train_multi_output.py", tmp_path)
    assert result.returncode == 1
    here = ", ".join(available_devices())  # cpu, and a GPU machine's cuda, cuda:0, ...
    expected = f"error: params.yaml: device: 'cuda:99' is not available here; available: auto, {here}"
    assert result.stderr.startswith(expected)
    assert len(result.stderr.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_training_in_a_repository_without_a_commit_says_what_to_do(data, tmp_path):
    from conftest import git

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    with pytest.raises(
        InputError, match=r"^git: Empty git repo; commit once \(git add -A && git commit\) before training$"
    ):
        train(data, repo, "multi_input", params(), cwd=repo)
    assert sorted(p.name for p in repo.iterdir()) == [".dvc", ".dvcignore", ".git"]


def test_cosine_schedule_on_hand_computed_numbers():
    from omniglot_mtl.training.loop import lr_factor

    # 2 warm-up steps of 10: 1/2, 2/2, then cos from 1 down to 0 over the remaining 8.
    factors = [lr_factor(s, total_steps=10, warmup_steps=2) for s in range(10)]
    assert factors[:3] == [0.5, 1.0, 1.0]
    assert factors[4] == pytest.approx(0.5 * (1 + math.cos(math.pi * 2 / 8)))
    assert factors[6] == pytest.approx(0.5)
    assert factors[9] == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 8)))
    assert lr_factor(0, total_steps=4, warmup_steps=0) == 1.0


def test_adamw_decays_weights_but_not_biases_norms_or_learned_loss_weights():
    from omniglot_mtl.models.networks import ModelConfig, build_model
    from omniglot_mtl.training.loop import make_optimizer
    from omniglot_mtl.weighting.methods import make_weighting

    model = build_model(ModelConfig("multi_output", 3, 5, 16, "convnet"))
    weighting = make_weighting({"alphabet": 1.0, "character": 1.0}, "uncertainty")
    cfg = params(train={"optimizer": "adamw", "weight_decay": 0.05}).train
    decayed, kept = make_optimizer(model, weighting, cfg, torch.device("cpu")).param_groups
    assert decayed["weight_decay"] == 0.05 and kept["weight_decay"] == 0.0
    assert {id(p) for p in decayed["params"]} == {
        id(p) for name, p in model.named_parameters() if name.endswith("weight") and p.ndim > 1
    }
    assert any(p is weighting.log_var for p in kept["params"])
    assert isinstance(make_optimizer(model, weighting, params().train, torch.device("cpu")), torch.optim.Adam)


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_lr_follows_the_schedule_during_training(data, tmp_path, monkeypatch, optimizer):
    from omniglot_mtl.training.muon import MuonAdamW

    seen = []
    kind = {"adamw": torch.optim.AdamW, "muon": MuonAdamW}[optimizer]
    real_step = kind.step

    def step(self, *args, **kwargs):
        seen.append([g["lr"] for g in self.param_groups])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(kind, "step", step)
    cfg = {"epochs": 2, "batch_size": 8, "lr": 0.01, "optimizer": optimizer, "schedule": "cosine"}
    cfg |= {"muon_lr": 0.04} if optimizer == "muon" else {}
    train(
        data, tmp_path, "multi_input", params(model={"backbone": "convnet"}, train=cfg | {"warmup_epochs": 1})
    )
    # Every group's rate (muon's kernels: 0.04) follows the same factor.
    peaks = [0.04, 0.01, 0.01] if optimizer == "muon" else [0.01, 0.01]
    factors = [[lr / peak for lr, peak in zip(lrs, peaks, strict=True)] for lrs in seen]
    assert all(f == pytest.approx([f[0]] * len(f)) for f in factors)
    seen = [f[0] * 0.01 for f in factors]
    steps = len(seen) // 2  # 2 epochs of 12 * 6 = 72 training images in batches of 8: 9 steps each
    assert len(seen) == 18 and steps == 9
    assert seen[:2] == pytest.approx([0.01 / 9, 0.02 / 9]) and seen[8] == pytest.approx(0.01)
    assert seen[-1] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 8 / 9)))


def test_convnet_recipe_learns_the_synthetic_set_better_than_the_seed_network(tmp_path):
    # 8 alphabets x 8 characters, 3 epochs each: validation accuracy 0.39 / 0.28 (alphabet /
    # character) for the seed network, 0.85 / 0.89 for the convnet, 0.91 / 0.94 with muon.
    root = tmp_path / "data"
    generate(root / "raw" / "synthetic", seed=0, alphabets=8, characters=8, drawers=20)
    index_and_pack(
        {"synthetic": root / "raw" / "synthetic"},
        Split((15, 16, 17), (18, 19, 20)),
        32,
        root / "index",
        root / "packed",
    )
    seed = train(root, tmp_path / "seed", "multi_output", params(train={"epochs": 3}))
    recipe = {
        "epochs": 3,
        "batch_size": 32,
        "lr": 0.003,
        "optimizer": "adamw",
        "weight_decay": 0.05,
        "schedule": "cosine",
        "warmup_epochs": 1,
        "label_smoothing": 0.1,
        "augment": {"rotation": 12, "shear": 10, "scale": 0.1, "shift": 0.06},
    }
    convnet = train(
        root, tmp_path / "convnet", "multi_output", params(model={"backbone": "convnet"}, train=recipe)
    )
    with_muon = recipe | {"optimizer": "muon", "muon_lr": 0.025}  # recipes/convnet.yaml's optimizer
    muon = train(
        root, tmp_path / "muon", "multi_output", params(model={"backbone": "convnet"}, train=with_muon)
    )
    for task in ("alphabet", "character"):
        assert convnet.best_val[task] > seed.best_val[task] + 0.1
        assert muon.best_val[task] > seed.best_val[task] + 0.1
    raw = torch.load(tmp_path / "convnet" / "multi_output.pt", weights_only=True)
    assert raw["config"]["backbone"] == "convnet"


def test_famo_moves_its_task_weights_during_training(data, tmp_path):
    train(data, tmp_path, "multi_output", params(loss={"method": "famo"}))
    curves = tmp_path / "metrics_multi_output" / "plots" / "metrics" / "weight"
    weights = {
        task: [float(line.split("\t")[1]) for line in (curves / f"{task}.tsv").read_text().splitlines()[1:]]
        for task in ("alphabet", "character")
    }
    assert len(weights["alphabet"]) == 3 and len(set(weights["alphabet"])) == 3
    # Both tasks keep a share of the step (softmax weights are never 0).
    assert all(a > 0 and c > 0 for a, c in zip(weights["alphabet"], weights["character"], strict=True))


def test_the_multi_input_model_is_validated_within_its_given_alphabet(data, tmp_path):
    """The epoch (and the views) are chosen by the score evaluate reports: the character within
    the alphabet the model is told, not over all characters."""
    from omniglot_mtl.models.inference import character_alphabet, predict

    # After one epoch the model still answers outside the given alphabet.
    result = train(data, tmp_path, "multi_input", params(train={"epochs": 1, "batch_size": 8, "lr": 0.003}))
    model, ckpt = load_checkpoint(tmp_path / "multi_input.pt")
    val = load_split(data / "packed", "val")
    logits = predict(model, val)["character"]
    table = character_alphabet(ckpt["alphabets"], ckpt["characters"])
    within = logits.masked_fill(table[None, :] != val.labels["alphabet"][:, None], float("-inf"))
    right = within.argmax(1) == val.labels["character"]
    assert right.sum() > (logits.argmax(1) == val.labels["character"]).sum()  # here it scores more
    assert result.best_val == ckpt["val_accuracy"] == {"character": right.float().mean().item()}


def fit_directly(data: Path, weighting, epochs: int = 3, monkeypatch=None):
    """``fit`` on the synthetic set's multi-output model; returns (result, records, snapshots)."""
    from omniglot_mtl.core.packed import load_split, read_maps
    from omniglot_mtl.models.networks import ModelConfig, build_model
    from omniglot_mtl.training.loop import fit

    alphabets, characters = read_maps(data / "index")
    torch.manual_seed(0)
    model = build_model(ModelConfig("multi_output", len(alphabets), len(characters), image_size=24))
    records, snapshots = [], []

    def on_epoch(epoch, record):
        records.append(record)
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})

    cfg = params(train={"epochs": epochs, "batch_size": 8, "lr": 0.003}).train
    train_split, val = load_split(data / "packed", "train"), load_split(data / "packed", "val")
    result = fit(model, weighting, train_split, val, cfg, seed=0, on_epoch=on_epoch)
    return result, records, snapshots


def test_best_epoch_is_the_highest_mean_validation_accuracy_and_the_earliest_on_ties(data, monkeypatch):
    from omniglot_mtl.training import loop as training
    from omniglot_mtl.weighting.methods import LossWeighting

    scripted = iter(
        [
            {"alphabet": 0.5, "character": 0.5},
            {"alphabet": 0.6, "character": 0.4},  # the same mean as epoch 1: not better
            {"alphabet": 0.7, "character": 0.5},  # best
            {"alphabet": 0.5, "character": 0.7},  # a tie with epoch 3: the earlier one stays
            {"alphabet": 0.9, "character": 0.2},
        ]
    )
    monkeypatch.setattr(training, "accuracy", lambda *args: next(scripted))
    result, records, snapshots = fit_directly(data, LossWeighting({"alphabet": 1.0, "character": 1.0}), 5)
    assert result.best_epoch == 3 and result.best_val == {"alphabet": 0.7, "character": 0.5}
    assert all(torch.equal(result.best_state[k], v) for k, v in snapshots[2].items())
    assert not all(torch.equal(result.best_state[k], v) for k, v in snapshots[3].items())


def test_best_epoch_follows_the_loss_weights_not_an_untrained_head(data, monkeypatch):
    from omniglot_mtl.training import loop as training
    from omniglot_mtl.weighting.methods import LossWeighting

    scripted = iter(
        [
            {"alphabet": 0.9, "character": 0.5},  # the alphabet head is not trained (weight 0)
            {"alphabet": 0.1, "character": 0.6},  # best by character accuracy, the one trained
            {"alphabet": 0.8, "character": 0.55},
        ]
    )
    monkeypatch.setattr(training, "accuracy", lambda *args: next(scripted))
    result, _, _ = fit_directly(data, LossWeighting({"alphabet": 0.0, "character": 1.0}), 3)
    assert result.best_epoch == 2
    # Unequal weights: 0.25 * a + 0.75 * c -> 0.6, 0.475, 0.6125: epoch 3.
    scripted = iter(
        [
            {"alphabet": 0.6, "character": 0.6},
            {"alphabet": 0.1, "character": 0.6},
            {"alphabet": 0.35, "character": 0.7},
        ]
    )
    result, _, _ = fit_directly(data, LossWeighting({"alphabet": 1.0, "character": 3.0}), 3)
    assert result.best_epoch == 3


def test_dwa_weights_through_fit_follow_the_logged_losses(data):
    from omniglot_mtl.weighting.methods import make_weighting

    _, records, _ = fit_directly(data, make_weighting({"alphabet": 1.0, "character": 1.0}, "dwa"))
    tasks = ("alphabet", "character")
    assert [records[0][f"weight/{t}"] for t in tasks] == [1.0, 1.0]
    for before, now in zip(records, records[1:], strict=False):
        # From the end of the second epoch: 2 * softmax(r / 2), r = this epoch's loss / the last's.
        ratios = torch.tensor([now[f"train/loss/{t}"] / before[f"train/loss/{t}"] for t in tasks])
        expected = (2 * torch.softmax(ratios / 2, 0)).tolist()
        assert [now[f"weight/{t}"] for t in tasks] == pytest.approx(expected, rel=1e-5)
        assert expected[0] != pytest.approx(1.0, abs=1e-4)  # the losses fell at different rates


def test_normalize_through_fit_divides_by_the_running_mean_of_each_loss(data):
    from omniglot_mtl.weighting.methods import LossWeighting

    weighting = LossWeighting({"alphabet": 2.0, "character": 1.0}, normalize=True)
    seen = []
    forward = weighting.forward

    def spy(losses):
        seen.append(torch.stack([losses[t].detach() for t in weighting.tasks]))
        return forward(losses)

    weighting.forward = spy
    _, records, _ = fit_directly(data, weighting)
    steps = len(seen) // 3
    magnitude = seen[0]
    for i, loss in enumerate(seen):
        magnitude = loss if i == 0 else 0.9 * magnitude + 0.1 * loss
        if (i + 1) % steps == 0:  # the weights logged at the end of each epoch
            record = records[i // steps]
            expected = (torch.tensor([2.0, 1.0]) / magnitude).tolist()
            assert [record["weight/alphabet"], record["weight/character"]] == pytest.approx(
                expected, rel=1e-5
            )


def fsize_limit(limit: int = 64 << 10):
    """A child process whose writes fail past ``limit`` bytes per file (EFBIG, "File too large"),
    as they fail on a full disk (ENOSPC): a fault a test can make without filling a disk."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize(
    "script, args, output",
    [("train_multi_output.py", [], "models/multi_output.pt"), ("index.py", [], "data/packed")],
)
def test_a_failed_write_is_one_line_naming_the_output_and_leaves_nothing(
    data, tmp_path, script, args, output
):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"device": "cpu", "train": {"epochs": 1}}))
    if script == "train_multi_output.py":
        (tmp_path / "data").mkdir()
        for name in ("packed", "index"):
            (tmp_path / "data" / name).symlink_to(data / name)
    done = subprocess.run(
        [sys.executable, str(ROOT / "stages" / script), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        preexec_fn=fsize_limit(),
    )
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == f"error: {output}: File too large"
    assert len([line for line in done.stderr.splitlines() if not line.startswith("warning")]) == 1
    # No output, whole or partial, and no temporary file (the input data/ of train.py aside).
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(tmp_path / "data")]
    assert written == [tmp_path / "params.yaml"] and not any((tmp_path / "data").rglob(".*")), written


def test_min_steps_trains_more_epochs_where_the_set_is_small(data, tmp_path):
    """train.min_steps is a floor in optimizer steps: one epoch asked for, a floor of two
    epochs' steps and one more: three epochs trained, as the curves, the summary and the
    checkpoint say, with params.yaml's values recorded as given."""
    steps = math.ceil(len(load_split(data / "packed", "train")) / 8)
    cfg = {"epochs": 1, "batch_size": 8, "lr": 0.003, "min_steps": 2 * steps + 1}
    result = train(data, tmp_path, "multi_input", params(train=cfg))
    metrics = json.loads((tmp_path / "metrics_multi_input" / "metrics.json").read_text())
    raw = torch.load(tmp_path / "multi_input.pt", weights_only=True)
    assert result.epochs == metrics["epochs"] == metrics["step"] == raw["epochs"] == 3
    assert raw["params"]["train"]["epochs"] == 1 and raw["params"]["train"]["min_steps"] == 2 * steps + 1
    cfg["min_steps"] = steps  # a floor one epoch already reaches changes nothing
    assert train(data, tmp_path / "again", "multi_input", params(train=cfg)).epochs == 1


def test_a_diverged_run_writes_no_checkpoint(data, tmp_path):
    # The largest learning rate and weight decay the params check takes: the loss is 4e27 in
    # epoch 1 and NaN in epoch 2.
    train_cfg = {"epochs": 2, "batch_size": 8, "lr": 10.0, "optimizer": "adamw", "weight_decay": 1.0}
    with pytest.raises(InputError, match=r"^training diverged: the mean training loss of epoch 2 is "):
        train(data, tmp_path, "multi_input", params(train=train_cfg))
    assert not (tmp_path / "multi_input.pt").exists() and not (tmp_path / "metrics_multi_input").exists()


def test_a_busy_machine_is_named_in_one_line_and_an_idle_one_is_not(monkeypatch):
    """The note reads the load average, which our own training holds at about one per thread."""
    from omniglot_mtl.training import train as stage

    for load, expected in ((2.1, None), (2.4, None), (3.2, "load average 3.2 on 2 CPUs")):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, 0.0, 0.0))
        note = stage.busy_note(cpus=2)
        assert note is None if expected is None else (expected in note and "train.threads: 1" in note)


FAULTS_PROBE = """
import ctypes, resource, sys, torch
from omniglot_mtl.core.environment import M_MMAP_THRESHOLD, keep_freed_memory
libc = ctypes.CDLL(None)
assert libc.prctl(41, 1, 0, 0, 0) == 0  # PR_SET_THP_DISABLE: one fault per 4 KB page
# glibc's starting threshold, held fixed: every block of 128 KB or more is mapped afresh
assert libc.mallopt(M_MMAP_THRESHOLD, 128 << 10)
if sys.argv[1] == "keep":
    assert keep_freed_memory()
x = torch.ones(64, 32, 32, 32)  # 8 MB (2,048 pages): the convnet's first map at batch 64

def step():  # four such maps alive at once, then all freed, as in a training step
    maps = [x * i for i in range(4)]
    del maps

step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's allocator: a no-op elsewhere")
def test_freed_cpu_memory_is_reused_not_faulted_in_again():
    def faults(mode: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", FAULTS_PROBE, mode], capture_output=True, text=True, check=True
        )
        return int(out.stdout)

    # Mapped afresh, every page of every map faults in again (819,600 in 5 of 5 runs at commit
    # 5ed1fee). Kept, the heap grows a few maps past the first step's peak while its layout
    # settles, then faults nothing (0 to 12,289 in 70 runs then). Both start from a fixed
    # threshold because glibc's default raises its threshold as maps are freed and then trims
    # the heap or not depending on its layout, which would let a no-op pass.
    kept, mapped = faults("keep"), faults("mapped")
    assert mapped >= 100 * 4 * 2048
    assert kept * 10 < mapped


def test_a_training_stage_keeps_freed_memory_before_it_trains(monkeypatch):
    # The probe above shows what keep_freed_memory does; this, that a training stage asks for it
    # before its first step (its steps are where the page faults were).
    from omniglot_mtl.training import train as stage

    calls = []
    monkeypatch.setattr(stage, "keep_freed_memory", lambda: calls.append("keep freed memory"))

    def train_model(*args, **kwargs):
        calls.append("train")
        return SimpleNamespace(rank=1)  # not rank 0's result: train_stage prints nothing

    monkeypatch.setattr(stage, "train_model", train_model)
    stage.train_stage(params(), "multi_output", torch.nn.Identity(), project=ROOT)
    assert calls == ["keep freed memory", "train"]

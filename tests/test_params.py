import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from omniglot_mtl.core.devices import resolve_device, resolve_precision
from omniglot_mtl.core.errors import InputError, ParamError
from omniglot_mtl.core.params import Params, as_dict, from_dict, load_params
from omniglot_mtl.training.check import check_registered
from omniglot_mtl.weighting.methods import METHODS, hyperparameters

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_project_params_are_the_documented_defaults():
    params = load_params(ROOT / "params.yaml")
    assert dataclasses.replace(params, loss=dataclasses.replace(params.loss, methods={})) == Params()
    # Each method's section says its constructor's defaults.
    for method, given in params.loss.methods.items():
        defaults = {name: p.default for name, p in hyperparameters(METHODS[method]).items()}
        assert given == defaults, method
    assert params.data.split.val_drawers == (15, 16, 17)
    assert params.train.batch_size == 32 and params.train.lr == 0.001 and params.train.epochs == 10
    assert params.loss.weights == {"alphabet": 1.0, "character": 1.0}


def test_as_dict_round_trips_through_yaml():
    plain = as_dict(Params())
    assert plain["data"]["split"]["test_drawers"] == [18, 19, 20]
    assert yaml.safe_load(yaml.safe_dump(plain)) == plain


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "data: {split: {val_drawers: [15, 16], test_drawers: [16, 17]}}",
            "data.split: drawer(s) [16] listed in both",
        ),
        ("train: {lr: -1}", "train.lr: must be > 0, got -1"),
        ("train: {epochs: ten}", "train.epochs: must be an integer, got 'ten'"),
        ("train: {batch_size: true}", "train.batch_size: must be an integer, got True"),
        ("trian: {epochs: 2}", "trian: unknown key; did you mean train? (known: cpu, cuda, data, device, "),
        ("loss: {char_wieght: 2}", "loss.char_wieght: unknown key; did you mean char_weight? (known: "),
        ("loss: {methods: {dwa: {temperature: 3}}}", "loss.methods: not a loss weighting method"),
        ("loss: {method: magic}", "loss.method: must be one of ['static', "),  # the registered methods
        ("loss: {method: dwaa}", "loss.method: must be one of ['static', "),
        ("loss: {method: dwaa}", "got 'dwaa'; did you mean 'dwa'?"),
        ("data: {sets: [background, extra]}", "data.sets: must list some of"),
        ("data: {source: omniglot, sets: [evaluation, evaluation]}", "data.sets: must list some of"),
        ("data: {sets: [evaluation]}", "data.sets: ['evaluation'] does not apply to source synthetic"),
        (
            "data: {source: ../omniglot/images_background}",
            "data.source: must be one of ['synthetic', 'omniglot', 'folder'], got "
            "'../omniglot/images_background'; for a folder, set data.source: folder and "
            "data.folder: ../omniglot/images_background",
        ),
        ("data: {source: folder, folder: ''}", "data.folder: is empty"),
        ("data: {image_size: 20000}", "data.image_size: must be between 8 and 256, got 20000"),
        ("data: {image_size: 4}", "data.image_size: must be between 8 and 256, got 4"),
        ("seed: 18446744073709551616", "seed: must be between 0 and 2^64 - 1 (what torch and numpy take)"),
        ("seed: -1", "seed: must be between 0 and 2^64 - 1"),
        ("data: {synthetic: {seed: -3}}", "data.synthetic.seed: must be between 0 and 2^64 - 1"),
        ("loss: {alpha_weight: .inf}", "loss.alpha_weight: must be a finite number, got inf"),
        ("loss: {char_weight: 1.0e+30}", "loss.char_weight: must be 0 or between 1e-06 and 1e+06, got 1e+30"),
        ("loss: {alpha_weight: -1}", "loss.alpha_weight: must be 0 or between 1e-06 and 1e+06, got -1"),
        ("device: gpu", "device: 'gpu' is not available here; available: auto, cpu"),  # GPUs after
        (
            "data: {synthetic: {alphabets: 1000, characters: 1000}}",
            "data.synthetic: 20,000,000 drawings of 64^2 bytes would hold 76 GiB in memory; at most 8 GiB",
        ),
        ("train: {lr: .nan}", "train.lr: must be a finite number, got nan"),
        ("train: {lr: 1.0e+300}", "train.lr: must be <= 10, got 1e+300"),
        ("train: {optimizer: adamw, weight_decay: 1.0e+300}", "train.weight_decay: must be <= 1, got 1e+300"),
        ("loss: {dwa: {temperature: 0}}", "loss.dwa.temperature: must be between 0.001 and 1000, got 0"),
        ("loss: {dwa: {temperature: warm}}", "loss.dwa.temperature: must be a number, got 'warm'"),
        ("loss: {famo: {weight_decay: -1}}", "loss.famo.weight_decay: must be between 0 and 1, got -1"),
        (
            "loss: {dwa: {temprature: 1}}",
            "loss.dwa.temprature: unknown key; did you mean temperature? (known: temperature)",
        ),
        ("loss: {dwaa: {temperature: 1}}", "loss.dwaa: not a loss weighting method; did you mean dwa?"),
        ("loss: {static: {x: 1}}", "loss.static.x: unknown key (known: none)"),
        ("data: {split: {val_drawers: 15}}", "data.split.val_drawers: must be a list, got 15"),
        ("loss: {alpha_weight: 0, char_weight: 0}", "loss: alpha_weight and char_weight are both 0"),
        ("model: {backbone: no_such_net}", "model.backbone: must be one of ['seed', "),  # the registered ones
        ("model: {backbone: convnett}", "got 'convnett'; did you mean 'convnet'?"),
        ("model: {alphabet_hidden: -1}", "model.alphabet_hidden: must be between 0 and 65536, got -1"),
        ("model: {alphabet_hidden: 70000}", "model.alphabet_hidden: must be between 0 and 65536, got 70000"),
        ("model: {alphabet_hidden: 1.5}", "model.alphabet_hidden: must be an integer, got 1.5"),
        (
            "model: {backbone: convnet}\ndata: {image_size: 12}",
            "data.image_size: must be >= 16 for its four 2x2 poolings, got 12 (model.backbone: convnet)",
        ),
        ("train: {optimizer: sgd}", "train.optimizer: must be one of ['adam', 'adamw', 'muon'], got 'sgd'"),
        ("train: {weight_decay: 0.1}", "train.weight_decay: needs optimizer: adamw or muon"),
        ("train: {optimizer: muon}", "train.muon_lr: must be > 0 and <= 1 with optimizer: muon, got 0"),
        ("train: {optimizer: muon, muon_lr: 2}", "train.muon_lr: must be > 0 and <= 1 with optimizer: muon"),
        ("train: {optimizer: adamw, muon_lr: 0.02}", "train.muon_lr: needs optimizer: muon (or muon_lr: 0)"),
        ("train: {optimizer: adamw, weight_decay: -1}", "train.weight_decay: must be >= 0, got -1"),
        ("train: {schedule: step}", "train.schedule: must be one of ['constant', 'cosine'], got 'step'"),
        ("train: {warmup_epochs: 1}", "train.warmup_epochs: needs schedule: cosine"),
        (
            "train: {schedule: cosine, epochs: 5, warmup_epochs: 6}",
            "train.warmup_epochs: must be between 0 and epochs (5), got 6",
        ),
        ("train: {label_smoothing: 1}", "train.label_smoothing: must be < 1, got 1"),
        ("train: {augment: {rotation: -5}}", "train.augment.rotation: must be between 0 and 180, got -5"),
        ("train: {augment: {scale: 0.9}}", "train.augment.scale: must be between 0 and 0.5, got 0.9"),
        ("train: {augment: {shift: x}}", "train.augment.shift: must be a number, got 'x'"),
        ("train: {augment: {flip: true}}", "train.augment.flip: unknown key"),
    ],
)
def test_bad_values_name_their_key(tmp_path, text, message):
    with pytest.raises(ParamError) as err:  # as the params check stage reads the file
        check_registered(load_params(write(tmp_path, text)))
    assert str(err.value).startswith("params.yaml: ")
    assert message in str(err.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    with pytest.raises(InputError, match="not valid YAML"):
        load_params(write(tmp_path, "data: [unclosed"))


def test_device_that_is_not_there_fails_listing_what_is(monkeypatch):
    # Pretend to be a machine with neither CUDA nor MPS, whatever this one has.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(
        ParamError, match=r"^params.yaml: device: 'cuda' is not available here; available: auto, cpu$"
    ):
        resolve_device("cuda")
    with pytest.raises(ParamError, match="'gpu' is not available here"):
        resolve_device("gpu")


def test_the_params_check_asks_the_registries_themselves(monkeypatch):
    """Backbones and weighting methods are defined once, where they are registered: the params
    check takes their names from the registries, a backbone's size rule from its constructor and
    a method's hyperparameters from its constructor's keyword-only arguments."""
    from omniglot_mtl.core import params
    from omniglot_mtl.models import backbones
    from omniglot_mtl.models.inference import autocast
    from omniglot_mtl.training.loop import make_optimizer
    from omniglot_mtl.training.muon import MuonAdamW
    from omniglot_mtl.weighting import methods as weighting

    def odd_only(size):
        if size % 2 == 0:
            raise ValueError(f"must be odd, got {size}")
        return backbones.seed_backbone(size)

    monkeypatch.setitem(backbones.BACKBONES, "odd_only", odd_only)
    assert check_registered(from_dict({"model": {"backbone": "odd_only"}, "data": {"image_size": 9}})) is None
    with pytest.raises(
        ParamError, match=r"data.image_size: must be odd, got 10 \(model.backbone: odd_only\)$"
    ):
        check_registered(from_dict({"model": {"backbone": "odd_only"}, "data": {"image_size": 10}}))
    # Every method with hyperparameters has its section in params.yaml, named as its constructor
    # names them (the registry, not a list here, says which methods there are).
    tuned = {name: list(weighting.hyperparameters(m)) for name, m in weighting.METHODS.items()}
    sections = load_params(ROOT / "params.yaml").loss.methods
    assert {name: hyper for name, hyper in tuned.items() if hyper} == {
        m: list(v) for m, v in sections.items()
    }
    assert {"static", "uncertainty", "dwa", "famo"} <= set(tuned)
    with pytest.raises(ValueError, match="unknown loss weighting method 'magic'"):
        weighting.make_weighting({"alphabet": 1.0}, "magic")
    model = torch.nn.Linear(2, 2)
    kinds = set()
    for optimizer in params.OPTIMIZERS:
        cfg = params.Train(optimizer=optimizer, muon_lr=0.01 if optimizer == "muon" else 0.0)
        kinds.add(type(make_optimizer(model, weighting.LossWeighting({"a": 1.0}), cfg, torch.device("cpu"))))
    assert kinds == {torch.optim.Adam, torch.optim.AdamW, MuonAdamW}
    dtypes = set()
    for precision in params.PRECISIONS:
        resolved = resolve_precision(precision, torch.device("cpu"))
        with autocast(torch.device("cpu"), resolved):
            dtypes.add(model(torch.ones(1, 2)).dtype)
    assert dtypes == {torch.float32, torch.bfloat16}
    with pytest.raises(ValueError, match="precision 'auto': resolve it to fp32 or bf16 first"):
        autocast(torch.device("cpu"), "auto")


def test_precision_auto_is_what_the_machine_computes_natively(monkeypatch, capsys):
    from omniglot_mtl.core import devices

    cpu = torch.device("cpu")
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(devices, "native_bf16", lambda device, native=native: native)
        assert resolve_precision("auto", cpu) == expected and resolve_precision("fp32", cpu) == "fp32"
    assert capsys.readouterr().err == ""
    # bf16 asked for where it is emulated: it runs, after one line that names the cost and the fix.
    assert resolve_precision("bf16", cpu) == "bf16"
    assert capsys.readouterr().err == (
        "warning: train.precision: bf16 is emulated on this CPU (no AVX512-BF16 or AMX), about 12x "
        "slower than fp32; set train.precision: auto (or fp32)\n"
    )
    monkeypatch.setenv("LOCAL_RANK", "1")  # another process of the same machine says nothing
    assert resolve_precision("bf16", cpu) == "bf16" and capsys.readouterr().err == ""

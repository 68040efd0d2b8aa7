"""Stage evaluate: its numbers agree with a recount done by hand from the checkpoints."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import documented
from PIL import Image
from test_fuzz import png as png_header

from omniglot_mtl.core.errors import InputError
from omniglot_mtl.core.params import Split, from_dict
from omniglot_mtl.core.tasks import CHARACTER
from omniglot_mtl.data.index import index_and_pack
from omniglot_mtl.data.synthetic import generate
from omniglot_mtl.evaluation.evaluate import write_evaluation
from omniglot_mtl.evaluation.predict import main as predict_main
from omniglot_mtl.evaluation.predict import predict_files
from omniglot_mtl.models.checkpoints import load_checkpoint
from omniglot_mtl.models.inference import READ_OUTS, alphabet_log_probs, choose_read_out, shifted
from omniglot_mtl.training.loop import OneTask
from omniglot_mtl.training.train import choose_views, train_model
from omniglot_mtl.weighting.methods import from_params


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    generate(root / "raw" / "synthetic", seed=2, alphabets=3, characters=5, drawers=7)
    index_and_pack(
        {"synthetic": root / "raw" / "synthetic"}, Split((6,), (7,)), 20, root / "index", root / "packed"
    )
    params = from_dict({"device": "cpu", "train": {"epochs": 3, "batch_size": 8, "lr": 0.003}})
    paths = {}
    for kind in ("multi_input", "multi_output"):
        paths[kind] = root / f"{kind}.pt"
        loss = OneTask(CHARACTER) if kind == "multi_input" else from_params(params.loss)
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(root)  # outside this repository, as tests/test_training.py's train() says
            train_model(params, kind, loss, root / "packed", root / "index", paths[kind], root / f"m_{kind}")
    metrics = write_evaluation(
        paths, root / "packed", root / "index", torch.device("cpu"), root / "evaluate.json", root / "plots"
    )
    return root, paths, metrics


def test_metrics_agree_with_a_recount(trained):
    root, paths, metrics = trained
    assert json.loads((root / "evaluate.json").read_text()) == metrics
    test = np.load(root / "packed" / "test.npz")
    images = torch.from_numpy(test["images"]).float().div(255).unsqueeze(1)
    alpha, char = torch.from_numpy(test["alphabet"]), torch.from_numpy(test["character"])
    assert metrics["test_images"] == len(char) == 15

    mi, mi_ckpt = load_checkpoint(paths["multi_input"])
    mo, ckpt = load_checkpoint(paths["multi_output"])
    # This recount reads each drawing alone, as these models chose (the views' recount:
    # test_evaluate_and_predict_read_a_model_through_its_views).
    assert mi_ckpt["views"] == ckpt["views"] == 1
    with torch.no_grad():
        char_mi = mi(images, alpha)["character"]
        out = mo(images)
    # The multi-input model is read out within the alphabet it is given.
    char_alphabet = char_alphabet_of(ckpt)
    char_mi = char_mi.masked_fill(char_alphabet[None, :] != alpha[:, None], float("-inf"))

    def acc(logits, target):
        return round((logits.argmax(1) == target).float().mean().item(), 6)

    def top5(logits, target):
        return round((logits.topk(5, 1).indices == target[:, None]).any(1).float().mean().item(), 6)

    assert metrics["multi_input"]["character"]["accuracy"] == acc(char_mi, char)
    assert metrics["multi_input"]["character"]["top5"] == top5(char_mi, char)
    assert metrics["multi_output"]["alphabet"]["accuracy"] == acc(out["alphabet"], alpha)
    assert metrics["multi_output"]["character"]["accuracy"] == acc(out["character"], char)
    assert metrics["multi_output"]["character"]["top5"] == top5(out["character"], char)
    # Every test character has one drawing here, so macro- and micro-averaged accuracy agree.
    assert (
        metrics["multi_output"]["character"]["macro_accuracy"]
        == metrics["multi_output"]["character"]["accuracy"]
    )

    agree = char_alphabet[out["character"].argmax(1)] == out["alphabet"].argmax(1)
    assert metrics["multi_output"]["consistency"] == round(agree.float().mean().item(), 6)

    # The alphabet from both heads: its read-out chosen on the validation drawers by training,
    # each read-out recounted there, then the chosen one scored on the test drawers.
    val = np.load(root / "packed" / "val.npz")
    with torch.no_grad():
        out_val = mo(torch.from_numpy(val["images"]).float().div(255).unsqueeze(1))
    on_val = {
        r: acc(p, torch.from_numpy(val["alphabet"])) for r, p in both_heads_by_hand(out_val, ckpt).items()
    }
    assert ckpt["alphabet_read_out_val_accuracy"] == on_val
    assert ckpt["alphabet_read_out"] == max(READ_OUTS, key=on_val.__getitem__)  # the head first on ties
    chosen = both_heads_by_hand(out, ckpt)[ckpt["alphabet_read_out"]]
    both = metrics["multi_output"]["alphabet_both_heads"]
    assert both["accuracy"] == acc(chosen, alpha) and both["read_out"] == ckpt["alphabet_read_out"]
    images = pd.read_csv(root / "plots" / "per_image" / "multi_output.csv")
    assert images["alphabet_both_heads_predicted"].tolist() == chosen.argmax(1).tolist()
    assert images["alphabet_both_heads"].tolist() == images["alphabet"].tolist()

    per_alphabet = pd.read_csv(root / "plots" / "character_accuracy_per_alphabet.csv")
    assert list(per_alphabet.columns) == ["alphabet", "model", "accuracy"]
    hits = (char_mi.argmax(1) == char).float()
    for a in range(3):
        row = per_alphabet[
            (per_alphabet["model"] == "multi_input") & (per_alphabet["alphabet"] == f"Synthetic_0{a + 1}")
        ]
        assert row["accuracy"].item() == pytest.approx(hits[alpha == a].mean().item(), abs=1e-6)

    confusion = pd.read_csv(root / "plots" / "alphabet_confusion.csv")
    names = list(ckpt["alphabets"])
    assert confusion["actual"].tolist() == [names[i] for i in alpha.tolist()]
    assert confusion["predicted"].tolist() == [names[i] for i in out["alphabet"].argmax(1).tolist()]


def both_heads_by_hand(out: dict[str, torch.Tensor], ckpt: dict) -> dict[str, torch.Tensor]:
    """Each read-out's alphabet probabilities, from the two heads' logits, one character at a time."""
    head, chars = out["alphabet"].softmax(1), out["character"].softmax(1)
    summed = torch.zeros_like(head)
    for name, j in ckpt["characters"].items():
        summed[:, ckpt["alphabets"][name.split("/")[0]]] += chars[:, j]
    product = head * summed
    return {"head": head, "characters": summed, "product": product / product.sum(1, keepdim=True)}


def test_alphabet_read_outs_by_hand():
    # Two alphabets: characters 0, 1 in alphabet 0 and 2 in alphabet 1.
    char_to_alpha = torch.tensor([0, 0, 1])
    logits = {"alphabet": torch.tensor([[0.0, 0.0]]), "character": torch.tensor([[1.0, 1.0, 2.0]]).log()}
    # character probabilities 1/4, 1/4, 1/2: summed per alphabet 1/2, 1/2; the head's 1/2, 1/2.
    for read_out in ("head", "characters", "product"):
        probs = alphabet_log_probs(logits, char_to_alpha, read_out).exp()
        assert probs[0].tolist() == pytest.approx([0.5, 0.5])
    logits["alphabet"] = torch.tensor([[3.0, 1.0]]).log()  # the head: 3/4, 1/4
    logits["character"] = torch.tensor([[1.0, 1.0, 8.0]]).log()  # summed: 1/5, 4/5
    summed = alphabet_log_probs(logits, char_to_alpha, "characters").exp()[0]
    assert summed.tolist() == pytest.approx([0.2, 0.8])
    # product: 3/20 and 4/20, renormalised to 3/7 and 4/7
    product = alphabet_log_probs(logits, char_to_alpha, "product").exp()[0]
    assert product.tolist() == pytest.approx([3 / 7, 4 / 7])
    # Chosen by accuracy on the labels given; the head wins a tie.
    assert choose_read_out(logits, torch.tensor([1]), char_to_alpha) == (
        "characters",
        {"head": 0.0, "characters": 1.0, "product": 1.0},
    )
    assert choose_read_out(logits, torch.tensor([0]), char_to_alpha)[0] == "head"


def views_by_hand(images: np.ndarray) -> list[torch.Tensor]:
    """The drawing and its four one-pixel shifts (down, up, right, left), white paper coming in."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)), constant_values=255)
    side = images.shape[-1]
    crops = [padded[:, 1 - dy : 1 - dy + side, 1 - dx : 1 - dx + side] for dy, dx in VIEW_SHIFTS]
    return [torch.from_numpy(np.ascontiguousarray(c)).float().div(255).unsqueeze(1) for c in crops]


VIEW_SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))


def char_alphabet_of(ckpt: dict) -> torch.Tensor:
    return torch.tensor([ckpt["alphabets"][name.split("/")[0]] for name in ckpt["characters"]])


def mean_log_probs(model, images: np.ndarray, alphabet=None, views=5) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        outs = [model(v) if alphabet is None else model(v, alphabet) for v in views_by_hand(images)[:views]]
    return {t: torch.stack([o[t].log_softmax(1) for o in outs]).mean(0) for t in outs[0]}


def test_training_keeps_the_views_where_they_score_more_validation_drawings(trained):
    root, paths, _ = trained
    val = np.load(root / "packed" / "val.npz")
    images, alpha = val["images"], torch.from_numpy(val["alphabet"])
    labels = {"alphabet": alpha, "character": torch.from_numpy(val["character"])}
    for kind, path in paths.items():
        model, ckpt = load_checkpoint(path)
        given = alpha if kind == "multi_input" else None
        alone, out = mean_log_probs(model, images, given, views=1), mean_log_probs(model, images, given)
        if kind == "multi_input":  # validation reads it as the test does: within its alphabet
            outside = char_alphabet_of(ckpt)[None, :] != alpha[:, None]
            for logits in (alone, out):
                logits["character"] = logits["character"].masked_fill(outside, float("-inf"))
        drawing_alone = {t: (alone[t].argmax(1) == labels[t]).float().mean().item() for t in alone}
        assert ckpt["val_accuracy"] == drawing_alone  # the best epoch's, as training scored it
        by_hand = {t: (out[t].argmax(1) == labels[t]).float().mean().item() for t in out}
        assert ckpt["views_val_accuracy"] == by_hand
        weighting = OneTask(CHARACTER) if kind == "multi_input" else from_params(from_dict({}).loss)
        assert ckpt["views"] == choose_views(by_hand, ckpt["val_accuracy"], weighting)


def test_views_are_chosen_by_the_score_that_chose_the_epoch():
    one = OneTask(CHARACTER)
    assert choose_views({"character": 0.5}, {"character": 0.4}, one) == 5
    assert choose_views({"character": 0.4}, {"character": 0.4}, one) == 1  # the drawing alone on a tie
    assert choose_views({"character": 0.3}, {"character": 0.4}, one) == 1
    # Characters weighted 3: (0.9 + 3 * 0.1) / 4 = 0.3 loses to (0.1 + 3 * 0.4) / 4 = 0.325,
    # though the unweighted mean would keep the views (0.5 against 0.25).
    weighted = from_params(from_dict({"loss": {"char_weight": 3.0}}).loss)
    assert (
        choose_views({"alphabet": 0.9, "character": 0.1}, {"alphabet": 0.1, "character": 0.4}, weighted) == 1
    )
    assert (
        choose_views({"alphabet": 0.1, "character": 0.5}, {"alphabet": 0.1, "character": 0.4}, weighted) == 5
    )


def test_a_view_moves_the_drawing_one_pixel_and_brings_in_paper():
    drawing = torch.ones(1, 1, 3, 3)
    drawing[0, 0, 1, 1] = 0.0  # one ink pixel in the middle of white paper
    for (down, right), ink in {(1, 0): (2, 1), (-1, 0): (0, 1), (0, 1): (1, 2), (0, -1): (1, 0)}.items():
        expected = torch.ones(1, 1, 3, 3)
        expected[0, 0, ink[0], ink[1]] = 0.0
        assert torch.equal(shifted(drawing, down, right), expected)
    assert torch.equal(shifted(drawing, 0, 0), drawing)
    assert shifted(drawing, 0, 0) is drawing  # no copy: the drawing alone reads the same bytes


def test_evaluate_and_predict_read_a_model_through_its_views(trained, tmp_path):
    """Both checkpoints set to read the views (the fixture's chose the drawing alone, which
    test_metrics_agree_with_a_recount recounts): evaluate and predict agree with a recount."""
    root, paths, _ = trained
    viewed = {}
    for kind, original in paths.items():
        ckpt = torch.load(original, weights_only=True)
        viewed[kind] = tmp_path / f"{kind}.pt"
        torch.save(ckpt | {"views": 5}, viewed[kind])
    device = torch.device("cpu")
    metrics = write_evaluation(
        viewed, root / "packed", root / "index", device, tmp_path / "e.json", tmp_path / "p"
    )
    test = np.load(root / "packed" / "test.npz")
    alphabet, character = torch.from_numpy(test["alphabet"]), torch.from_numpy(test["character"])

    def acc(logits, target):
        return round((logits.argmax(1) == target).float().mean().item(), 6)

    mo, ckpt = load_checkpoint(viewed["multi_output"])
    out = mean_log_probs(mo, test["images"])
    assert metrics["multi_output"]["alphabet"]["accuracy"] == acc(out["alphabet"], alphabet)
    assert metrics["multi_output"]["character"]["accuracy"] == acc(out["character"], character)
    chosen = both_heads_by_hand(out, ckpt)[ckpt["alphabet_read_out"]]
    assert metrics["multi_output"]["alphabet_both_heads"]["accuracy"] == acc(chosen, alphabet)
    mi, _ = load_checkpoint(viewed["multi_input"])
    char_alphabet = char_alphabet_of(ckpt)
    outside = char_alphabet[None, :] != alphabet[:, None]
    within = mean_log_probs(mi, test["images"], alphabet)["character"].masked_fill(outside, float("-inf"))
    assert metrics["multi_input"]["character"]["accuracy"] == acc(within, character)

    manifest = pd.read_csv(root / "index" / "test.csv")
    files = [root / "raw" / p for p in manifest["path"][:3]]
    names = list(ckpt["characters"])
    for i, result in enumerate(predict_files(viewed["multi_output"], files, top=3)):
        shown = result["predictions"]["character"]
        expected = out["character"][i].softmax(0).topk(3)
        assert [name for name, _ in shown] == [names[j] for j in expected.indices]
        assert [p for _, p in shown] == pytest.approx(expected.values.tolist(), abs=1e-4)
    (shown,) = predict_files(viewed["multi_input"], files[:1], alphabet=manifest["alphabet"][0], top=2)
    expected = within[0].softmax(0).topk(2)
    assert [name for name, _ in shown["predictions"]["character"]] == [names[j] for j in expected.indices]


def test_checkpoint_from_other_data_is_refused(trained, tmp_path):
    root, paths, _ = trained
    other = tmp_path / "index"
    other.mkdir()
    (other / "alphabets.json").write_text('{"Other": 0}')
    (other / "characters.json").write_text('{"Other/character01": 0}')
    with pytest.raises(InputError, match=r"multi_input.pt: trained on other index maps"):
        write_evaluation(
            paths, root / "packed", other, torch.device("cpu"), tmp_path / "e.json", tmp_path / "p"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


def test_predict_cli_ranks_like_the_model(trained, capsys):
    root, paths, _ = trained
    manifest = pd.read_csv(root / "index" / "test.csv")
    files = [root / "raw" / p for p in manifest["path"][:3]]
    results = predict_files(paths["multi_output"], files, top=3)
    mo, ckpt = load_checkpoint(paths["multi_output"])
    test = np.load(root / "packed" / "test.npz")
    with torch.no_grad():
        out = mo(torch.from_numpy(test["images"][:3]).float().div(255).unsqueeze(1))
    names = list(ckpt["characters"])
    for i, result in enumerate(results):
        assert result["image"] == str(files[i])
        ranked = result["predictions"]["character"]
        assert [name for name, _ in ranked] == [names[j] for j in out["character"][i].topk(3).indices]
        expected = out["character"][i].softmax(0).topk(3).values.tolist()
        assert [p for _, p in ranked] == pytest.approx(expected, abs=1e-4)
        assert len(result["predictions"]["alphabet"]) == 3
        by_hand = both_heads_by_hand({t: v[i : i + 1] for t, v in out.items()}, ckpt)[
            ckpt["alphabet_read_out"]
        ][0]
        shown = dict(result["predictions"]["alphabet_both_heads"])
        alphabets = list(ckpt["alphabets"])
        assert shown == pytest.approx(
            {alphabets[j]: by_hand[j].item() for j in by_hand.topk(3).indices}, abs=1e-4
        )
    predict_main(
        [str(paths["multi_input"]), str(files[0]), "--alphabet", manifest["alphabet"][0], "--top", "2"]
    )
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{files[0]}: character: ") and line.count("%") == 2
    # README's two lines, as written, with its placeholders filled in.
    fill = {
        "models/multi_output.pt": str(paths["multi_output"]),
        "models/multi_input.pt": str(paths["multi_input"]),
        "some_drawing.png": str(files[0]),
        "Latin": manifest["alphabet"][0],
    }
    predict_main(documented("omniglot-mtl-predict models/multi_output.pt some_drawing.png --top 3", fill)[1:])
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{files[0]}: alphabet: ") and line.count("%") == 9
    assert [row.split(": ")[1] for row in line.splitlines()] == [
        "alphabet",
        "character",
        "alphabet_both_heads",
    ]
    predict_main(
        documented("omniglot-mtl-predict models/multi_input.pt some_drawing.png --alphabet Latin", fill)[1:]
    )
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{files[0]}: character: ") and line.count("%") == 5  # --top: 5 by default


def test_predict_multi_input_answers_within_the_alphabet_named_as_people_type_it(trained):
    """The model is told the alphabet: every answer lies in it (evaluate reads it out so too:
    test_metrics_agree_with_a_recount). The name matches in any case, with spaces for
    underscores; a near miss gets a "did you mean"."""
    root, paths, _ = trained
    files = [root / "raw" / p for p in pd.read_csv(root / "index" / "test.csv")["path"][:4]]
    for typed in ("Synthetic_02", "synthetic 02", "SYNTHETIC-02"):
        results = predict_files(paths["multi_input"], files, alphabet=typed, top=10)
        for result in results:
            names = [name for name, _ in result["predictions"]["character"]]
            assert len(names) == 5 and all(name.startswith("Synthetic_02/") for name in names)
            assert sum(p for _, p in result["predictions"]["character"]) == pytest.approx(1, abs=1e-3)
    with pytest.raises(
        InputError, match=r"'Synthetc_2' is not an alphabet of .*; did you mean 'Synthetic_02'\?"
    ):
        predict_files(paths["multi_input"], files, alphabet="Synthetc_2")


def test_predict_reads_a_transparent_export_and_a_photo_as_the_plain_drawing(trained, tmp_path):
    """A drawing app's black ink on a transparent canvas, and the drawing photographed sideways
    (EXIF orientation 6), get the plain PNG's answers, to the last digit."""
    root, paths, _ = trained
    plain = root / "raw" / pd.read_csv(root / "index" / "test.csv")["path"][0]
    grey = Image.open(plain).convert("L")
    black = Image.new("L", grey.size, 0)
    Image.merge("RGBA", (black, black, black, Image.eval(grey, lambda v: 255 - v))).save(tmp_path / "app.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    grey.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "photo.png", exif=exif)
    results = predict_files(paths["multi_output"], [plain, tmp_path / "app.png", tmp_path / "photo.png"])
    assert results[1]["predictions"] == results[0]["predictions"] == results[2]["predictions"]


def test_predict_reports_a_bad_image_and_classifies_the_others(trained, tmp_path, capsys):
    root, paths, _ = trained
    good = next((root / "raw").rglob("*.png"))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    missing = tmp_path / "missing.png"
    bomb = tmp_path / "bomb.png"  # a header that declares 9,000 x 9,000 1-bit pixels, nothing more
    bomb.write_bytes(png_header(9000, 9000))
    with pytest.raises(SystemExit) as err:
        predict_main(
            [
                str(paths["multi_output"]),
                str(missing),
                str(good),
                str(broken),
                str(bomb),
                "--json",
                "--top",
                "1",
            ]
        )
    assert err.value.code == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"error: {missing}: no such file",
        f"error: {broken}: cannot decode as an image (Truncated File Read)",
        f"error: {bomb}: declares 9000 x 9000 pixels; a drawing is at most 4096 pixels a side "
        "(Omniglot's are 105 x 105)",
    ]
    shown = json.loads(captured.out)
    assert [entry["image"] for entry in shown] == [str(missing), str(good), str(broken), str(bomb)]
    assert shown[0] == {"image": str(missing), "error": f"{missing}: no such file"}
    assert set(shown[1]) == {"image", "alphabet", "character", "alphabet_both_heads"}
    (best,) = shown[1]["character"]
    assert set(best) == {"name", "probability"} and 0 < best["probability"] <= 1
    assert predict_files(paths["multi_output"], [good], top=1)[0]["predictions"]["character"][0] == (
        best["name"],
        best["probability"],
    )


@pytest.mark.parametrize(
    "make_args, message",
    [
        (
            lambda p, img: [str(p["multi_output"]), str(img), "--top", "0"],
            "error: --top: must be >= 1, got 0",
        ),
        (
            lambda p, img: [str(p["multi_output"]), str(img), "--top", "-1"],
            "error: --top: must be >= 1, got -1",
        ),
        (
            lambda p, img: [str(p["multi_output"]), str(img), "--alphabet", "Synthetic_01"],
            "is a multi-output model, which predicts the alphabet; leave --alphabet out",
        ),
        (
            lambda p, img: [str(p["multi_input"]), str(img), "--alphabet", "Latin"],
            "error: --alphabet: 'Latin' is not an alphabet of ",
        ),
        (
            lambda p, img: [str(p["multi_input"]), str(img)],
            "is a multi-input model, which needs the alphabet; name one of: Synthetic_01, Synthetic_02,",
        ),
        (
            lambda p, img: [str(img), str(img)],
            "not a checkpoint (a checkpoint is a zip archive written by torch.save)",
        ),
    ],
)
def test_predict_refuses_what_concerns_every_image_in_one_line(trained, make_args, message):
    root, paths, _ = trained
    image = next((root / "raw").rglob("*.png"))
    with pytest.raises(SystemExit) as err:
        predict_main(make_args(paths, image))
    text = str(err.value)
    assert text.startswith("error: ") and message in text and "\n" not in text
    if "--alphabet" in text and "multi-output" not in text:  # the known ones, a few at most
        known = list(load_checkpoint(paths["multi_input"])[1]["alphabets"])
        assert len(known) > 1 and text.endswith("name one of: " + ", ".join(known[:5]))
    assert "weights_only" not in text


def test_a_checkpoint_holding_code_is_refused_without_pytorchs_advice(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"config": Path("x")}, path)  # any object that is not a tensor or a container
    with pytest.raises(InputError) as err:
        load_checkpoint(path)
    assert str(err.value) == (
        f"{path}: not a checkpoint of this project (it holds objects other than tensors and plain "
        "containers, which are not loaded)"
    )


def test_macro_accuracy_averages_the_classes_that_have_test_images():
    from omniglot_mtl.evaluation.evaluate import task_metrics

    target = torch.tensor([0, 0, 0, 1])  # class 2 has no test image
    # Every image called class 0: 3 of 4 right, but class 1's recall is 0.
    logits = torch.tensor([[3.0, 1, 0]] * 4)
    assert task_metrics(logits, target) == {"accuracy": 0.75, "top5": 1.0, "macro_accuracy": 0.5}
    # Class 1's image called class 2: the same recalls, and class 2 (never a target) does not
    # count (torchmetrics' macro average would say 0.333333 here).
    logits[3] = torch.tensor([0.0, 1, 3])
    assert task_metrics(logits, target) == {"accuracy": 0.75, "top5": 1.0, "macro_accuracy": 0.5}
    # Top-5 of 3 classes is top-3: always right; top-1 by another order of scores.
    logits = torch.tensor([[0.0, 1, 3], [3, 1, 0], [1, 3, 0], [0, 3, 1]])
    assert task_metrics(logits, target) == {"accuracy": 0.5, "top5": 1.0, "macro_accuracy": 0.666667}


def test_top5_counts_a_class_ranked_fifth_and_not_one_ranked_sixth():
    from omniglot_mtl.evaluation.evaluate import task_metrics

    scores = torch.tensor([6.0, 5, 4, 3, 2, 1, 0])  # class c ranked c + 1
    logits = scores.repeat(3, 1)
    # Ranked 5th, 6th and 1st: two of three in the top 5, one of three on top.
    assert task_metrics(logits, torch.tensor([4, 5, 0])) == {
        "accuracy": 0.333333,
        "top5": 0.666667,
        "macro_accuracy": 0.333333,
    }


def test_predict_over_a_folder_agrees_with_the_evaluate_stage(trained, capsys):
    """Every test drawing, given as a folder and as a quoted glob: the share whose top
    character is right is the evaluate stage's test accuracy."""
    root, paths, metrics = trained
    manifest = pd.read_csv(root / "index" / "test.csv")
    truth = dict(zip((str(root / "raw" / p) for p in manifest["path"]), manifest["character"], strict=True))
    folder = root / "test_drawings"
    folder.mkdir(exist_ok=True)
    for path in truth:  # the test drawings alone, in a folder of their own
        target = folder / Path(path).relative_to(root / "raw")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(Path(path).read_bytes())
    for given in ([str(folder)], [str(folder / "**" / "*.png")]):
        predict_main([str(paths["multi_output"]), *given, "--json", "--top", "1"])
        shown = json.loads(capsys.readouterr().out)
        assert len(shown) == len(truth) == metrics["test_images"]
        right = sum(
            e["character"][0]["name"] == truth[str(root / "raw" / Path(e["image"]).relative_to(folder))]
            for e in shown
        )
        assert round(right / len(shown), 6) == metrics["multi_output"]["character"]["accuracy"]


def test_each_way_a_checkpoint_can_be_wrong_says_which(trained, tmp_path):
    _, paths, _ = trained
    good = torch.load(paths["multi_output"], weights_only=True)
    cases = [
        ({**good, "format": 1}, "checkpoint format 1; this version of the project reads format 4"),
        (
            {**good, "state_dict": {k: v[:1] for k, v in good["state_dict"].items()}},
            "its weights do not fit the multi_output model its config describes (Error(s) in loading",
        ),
        ({**good, "config": {**good["config"], "backbone": "resnet"}}, "backbone 'resnet' is not known"),
        ({k: v for k, v in good.items() if k != "config"}, "not a checkpoint of this project (a torch file"),
        ({**good, "views": 3}, "views 3: 1 or 5"),
    ]
    for i, (checkpoint, message) in enumerate(cases):
        path = tmp_path / f"{i}.pt"
        torch.save(checkpoint, path)
        with pytest.raises(InputError) as err:
            load_checkpoint(path)
        assert str(err.value).startswith(f"{path}: {message}"), str(err.value)
        assert "\n" not in str(err.value)

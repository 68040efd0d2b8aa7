"""omniglot-mtl-compare's statistics on hand-computed cases, and its test-set check. The command
itself runs over real `dvc exp` runs in tests/test_pipeline.py."""

import math

import pandas as pd
import pytest

from omniglot_mtl.core.errors import InputError
from omniglot_mtl.experiments import stats
from omniglot_mtl.experiments.compare import Run, compare, same_images


def answers(both: int, only_a: int, only_b: int, neither: int) -> tuple[list[int], list[int]]:
    a = [1] * both + [1] * only_a + [0] * only_b + [0] * neither
    b = [1] * both + [0] * only_a + [1] * only_b + [0] * neither
    return a, b


def test_mcnemar_exact_p_value_by_hand():
    # 8 discordant images, 1 favours A and 7 favour B: P(X <= 1 | n=8, 1/2) = (1 + 8) / 256,
    # two-sided 18 / 256.
    test = stats.mcnemar(*answers(both=10, only_a=1, only_b=7, neither=5))
    assert (test.only_a, test.only_b) == (1, 7)
    assert test.p_value == pytest.approx(18 / 256, rel=1e-12)
    assert test.accuracy_a == pytest.approx(11 / 23) and test.accuracy_b == pytest.approx(17 / 23)
    assert test.change == pytest.approx(6 / 23)


def test_mcnemar_without_discordant_images_or_with_an_even_split_is_p_1():
    assert stats.mcnemar(*answers(both=4, only_a=0, only_b=0, neither=2)).p_value == 1.0
    assert stats.mcnemar(*answers(both=4, only_a=5, only_b=5, neither=2)).p_value == 1.0


def test_mcnemar_large_counts_match_the_binomial_sum():
    test = stats.mcnemar(*answers(both=900, only_a=40, only_b=70, neither=300))
    n = 110
    tail = sum(math.comb(n, k) for k in range(41)) / 2**n
    assert test.p_value == pytest.approx(2 * tail, rel=1e-9)


def test_mcnemar_refuses_answers_of_different_lengths():
    with pytest.raises(ValueError, match="two equal"):
        stats.mcnemar([1, 0], [1, 0, 1])


def test_seed_groups_mean_sd_and_welch_interval_by_hand():
    a = stats.Group((0.30, 0.32, 0.34))
    b = stats.Group((0.34, 0.36, 0.38))
    assert (a.mean, a.sd) == (pytest.approx(0.32), pytest.approx(0.02))
    diff = stats.difference(a, b)
    # Equal spreads and sizes: Welch's degrees of freedom are 2 (n - 1) = 4; t(0.975, 4) = 2.776445;
    # se = sqrt(2 * 0.02^2 / 3) = 0.0163299.
    half = 2.776445 * math.sqrt(2 * 0.02**2 / 3)
    assert (diff.difference, diff.low, diff.high) == (
        pytest.approx(0.04),
        pytest.approx(0.04 - half, abs=1e-6),
        pytest.approx(0.04 + half, abs=1e-6),
    )
    assert not diff.exceeds_spread  # -0.0053 .. 0.0853
    far = stats.difference(a, stats.Group((0.40, 0.42, 0.44)))
    assert far.low == pytest.approx(0.10 - half, abs=1e-6) and far.exceeds_spread


def test_seed_groups_without_spread():
    same = stats.difference(stats.Group((0.5, 0.5)), stats.Group((0.6, 0.6)))
    assert (same.low, same.high) == (pytest.approx(0.1), pytest.approx(0.1)) and same.exceeds_spread
    with pytest.raises(ValueError, match="two seeds"):
        stats.difference(stats.Group((0.5,)), stats.Group((0.6, 0.7)))


def per_image(paths, true, predicted) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image": range(len(paths)),
            "path": paths,
            "character": true,
            "character_predicted": predicted,
            "character_correct": [int(t == p) for t, p in zip(true, predicted, strict=True)],
        }
    )


def test_runs_tested_on_other_images_are_refused():
    paths = ["s/A/character01/0001_18.png", "s/A/character02/0002_18.png"]
    first = {"multi_input": per_image(paths, [0, 1], [0, 0])}
    same = {"multi_input": per_image(paths, [0, 1], [1, 1])}
    answers = same_images({"main": first, "exp": same}, "exp")
    assert list(answers) == ["multi_input.character"] and list(answers["multi_input.character"]) == [0, 1]
    others = {
        "another image": {
            "multi_input": per_image([paths[0], "s/A/character02/0003_18.png"], [0, 1], [0, 1])
        },
        "other index maps": {"multi_input": per_image(paths, [1, 0], [1, 0])},
        "another model": {"multi_output": per_image(paths, [0, 1], [0, 1])},
    }
    for name, frames in others.items():
        with pytest.raises(InputError) as refused:
            same_images({"main": first, name: frames}, name)
        assert str(refused.value) == (
            f"main and {name} were tested on different images (their test paths or true classes "
            "differ: other data or index maps); compare runs of one data set"
        )


def run(name: str, seed: int, alpha: float, char: float, alphabet: float, character: float) -> Run:
    """A multi-output run on 20 test images, its accuracy per task given."""

    def answers(accuracy: float) -> pd.Series:
        right = round(20 * accuracy)
        return pd.Series([1] * right + [0] * (20 - right))

    params = {"seed": float(seed), "loss.alpha_weight": alpha, "loss.char_weight": char}
    correct = {"multi_output.alphabet": answers(alphabet), "multi_output.character": answers(character)}
    return Run(name, name, params, {}, correct)


def test_delta_m_against_single_task_baselines_by_hand():
    runs = [
        run("mt0", 0, 1.0, 1.0, alphabet=0.60, character=0.50),
        run("mt1", 1, 1.0, 1.0, alphabet=0.70, character=0.45),
        run("alphabet-only0", 0, 1.0, 0.0, alphabet=0.50, character=0.05),
        run("alphabet-only1", 1, 1.0, 0.0, alphabet=0.50, character=0.05),
        run("character-only0", 0, 0.0, 1.0, alphabet=0.05, character=0.50),
        run("character-only1", 1, 0.0, 1.0, alphabet=0.05, character=0.50),
    ]
    (row,) = compare(runs)["delta_m"]  # the baselines have none of their own
    # Seed 0: alphabet (0.60 - 0.50) / 0.50 = +0.2, character 0 -> Δm 0.10. Seed 1: alphabet
    # +0.4, character (0.45 - 0.50) / 0.50 = -0.1 -> Δm 0.15. Mean 0.125; sd 0.0353553, se 0.025,
    # t(0.975, 1) = 12.7062047 -> half-width 0.3176551.
    assert row["group"] == "loss.alpha_weight=1 loss.char_weight=1" and row["seeds"] == [0, 1]
    assert row["per_task"] == {"alphabet": pytest.approx(0.3), "character": pytest.approx(-0.05)}
    assert row["delta_m"] == pytest.approx(0.125)
    assert (row["low"], row["high"]) == (pytest.approx(0.125 - 0.3176551), pytest.approx(0.125 + 0.3176551))
    assert not row["exceeds_spread"]
    # Without the character-only baseline there is no Δm; with other seeds, one line says why.
    assert compare(runs[:4])["delta_m"] == []
    with pytest.raises(
        InputError, match=r"Δm pairs each seed with its single-task baselines of the same seed"
    ):
        compare([*runs[:5], run("character-only2", 2, 0.0, 1.0, alphabet=0.05, character=0.50)])


def test_a_leftover_single_seed_run_is_left_out_unless_named(capsys):
    """Two settings over two seeds and one stray single-seed experiment: the stray is left out
    with a note, and the rest compared; named by the user, it is refused instead."""
    runs = [
        run("a0", 0, 1.0, 1.0, 0.50, 0.40),
        run("a1", 1, 1.0, 1.0, 0.55, 0.45),
        run("b0", 0, 1.0, 2.0, 0.50, 0.50),
        run("b1", 1, 1.0, 2.0, 0.55, 0.55),
        run("stray", 0, 1.0, 3.0, 0.60, 0.60),
    ]
    result = compare(runs)
    assert [g["runs"] for g in result["groups"]] == [["a0", "a1"], ["b0", "b1"]]
    assert result["mode"] == "seeds"
    assert capsys.readouterr().err == (
        "note: loss.char_weight=3: one seed, so no spread to compare against; left out\n"
    )
    with pytest.raises(InputError, match=r"^loss.char_weight=3: one seed, so no spread"):
        compare(runs, named=True)

"""A procedural, Omniglot-like data set, so that every stage runs on a fresh offline machine.

Each alphabet has a stroke style of its own (which stroke shapes it uses, how thick, on which
grid its strokes start, which directions its lines take); each character is a few strokes in
that style; each of the drawers has habits (slant, size, pen width) and every drawing jitters
the strokes again. Everything is drawn from ``numpy`` generators seeded by ``(seed, what, ...)``,
so the same seed gives byte-identical PNGs on every machine.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE = 105  # Omniglot's image size
STROKE_KINDS = ("line", "arc", "curve", "hook")


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, *key])


@dataclass(frozen=True)
class AlphabetStyle:
    kind_probs: np.ndarray  # over STROKE_KINDS
    width: float  # pen width in pixels at 105x105
    grid: int  # stroke starts snap to a grid x grid lattice
    directions: int  # line directions are multiples of pi / directions
    strokes: tuple[int, int]  # inclusive range of strokes per character


def alphabet_style(seed: int, a: int) -> AlphabetStyle:
    rng = _rng(seed, 1, a)
    return AlphabetStyle(
        kind_probs=rng.dirichlet(np.full(len(STROKE_KINDS), 0.6)),
        width=float(rng.uniform(2.0, 6.0)),
        grid=int(rng.integers(3, 6)),
        directions=int(rng.choice([2, 3, 4, 6])),
        strokes=(int(rng.integers(2, 4)), int(rng.integers(3, 6))),
    )


def character_strokes(seed: int, a: int, c: int, style: AlphabetStyle) -> list[np.ndarray]:
    """The strokes of one character, each an (n, 2) polyline in the unit square."""
    rng = _rng(seed, 2, a, c)
    lo, hi = sorted(style.strokes)
    strokes = []
    for _ in range(int(rng.integers(lo, hi + 1))):
        g = style.grid
        start = (rng.integers(0, g, size=2) + 0.5) / g * 0.7 + 0.15
        kind = STROKE_KINDS[rng.choice(len(STROKE_KINDS), p=style.kind_probs)]
        length = rng.uniform(0.25, 0.55)
        angle = rng.integers(0, 2 * style.directions) * math.pi / style.directions
        direction = np.array([math.cos(angle), math.sin(angle)])
        t = np.linspace(0.0, 1.0, 12)[:, None]
        if kind == "line":
            pts = start + t * length * direction
        elif kind == "arc":
            radius = length / 2
            sweep = rng.uniform(0.8, 1.9) * math.pi
            phi = angle + t[:, 0] * sweep
            pts = start + radius * np.stack([np.cos(phi) - math.cos(angle), np.sin(phi) - math.sin(angle)], 1)
        elif kind == "curve":  # quadratic Bezier with a bent middle
            end = start + length * direction
            bend = (rng.uniform(-0.5, 0.5) * length) * np.array([-direction[1], direction[0]])
            mid = (start + end) / 2 + bend
            pts = (1 - t) ** 2 * start + 2 * (1 - t) * t * mid + t**2 * end
        else:  # hook: a line with a short turn at its end
            corner = start + length * direction
            turn = angle + rng.choice([-1, 1]) * math.pi * 2 / 3
            end = corner + 0.4 * length * np.array([math.cos(turn), math.sin(turn)])
            pts = np.concatenate(
                [start + t[:6] / t[5] * (corner - start), corner + t[1:7] / t[6] * (end - corner)]
            )
        strokes.append(np.clip(pts, 0.05, 0.95))
    return strokes


def drawer_habits(seed: int, d: int) -> tuple[float, float, float]:
    """(slant, scale, extra pen width) of drawer ``d``, the same for every character."""
    rng = _rng(seed, 3, d)
    return float(rng.normal(0, 0.15)), float(rng.normal(1.0, 0.06)), float(rng.choice([-1.0, 0.0, 1.0]))


def draw(strokes: list[np.ndarray], style: AlphabetStyle, habits, rng: np.random.Generator) -> Image.Image:
    """Render one drawing: drawer habits plus per-drawing jitter; black strokes on white, 1 bit."""
    slant, scale, extra_width = habits
    rot = rng.normal(0, math.radians(7))
    cos, sin = math.cos(rot), math.sin(rot)
    affine = np.array([[cos, -sin], [sin, cos]]) @ np.array([[1.0, slant], [0.0, 1.0]]) * scale
    shift = rng.normal(0, 0.04, size=2)
    img = Image.new("L", (SIZE, SIZE), 255)
    pen = ImageDraw.Draw(img)
    width = max(1, round(style.width + extra_width + rng.normal(0, 0.5)))
    for stroke in strokes:
        if rng.random() < 0.04:  # drawers now and then leave a stroke out
            continue
        wobble = np.cumsum(rng.normal(0, 0.008, size=stroke.shape), axis=0) + rng.normal(0, 0.03, size=2)
        pts = (stroke - 0.5 + wobble) @ affine.T + 0.5 + shift
        pen.line([tuple(p) for p in pts * SIZE], fill=0, width=width, joint="curve")
    return img.convert("1", dither=Image.Dither.NONE)


def generate(out: Path, seed: int, alphabets: int, characters: int, drawers: int) -> int:
    """Write the set into ``out/<Alphabet>/<characterNN>/<id>_<drawer>.png``; return the count."""
    out = Path(out)
    habits = [drawer_habits(seed, d) for d in range(1, drawers + 1)]
    char_id = 0
    for a in range(alphabets):
        style = alphabet_style(seed, a)
        for c in range(characters):
            char_id += 1
            strokes = character_strokes(seed, a, c, style)
            folder = out / f"Synthetic_{a + 1:02d}" / f"character{c + 1:02d}"
            folder.mkdir(parents=True)
            for d in range(1, drawers + 1):
                img = draw(strokes, style, habits[d - 1], _rng(seed, 4, a, c, d))
                img.save(folder / f"{char_id:04d}_{d:02d}.png", optimize=False)
    return char_id * drawers

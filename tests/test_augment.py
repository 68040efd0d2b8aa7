"""Batch augmentation: exact geometry, seeded per-image draws within their ranges."""

import torch

from omniglot_mtl.core.params import Augment
from omniglot_mtl.training.augment import affine_theta, augment_generator, random_affine, warp

ZERO, ONE = torch.zeros(1), torch.ones(1)


def dot(size: int, row: int, col: int) -> torch.Tensor:
    """A white (1, 1, size, size) image with one black pixel."""
    img = torch.ones(1, 1, size, size)
    img[0, 0, row, col] = 0
    return img


def ink_at(img: torch.Tensor) -> list[list[int]]:
    return (img[0, 0] < 0.5).nonzero().tolist()


def test_identity_leaves_images_as_they_are():
    img = torch.rand(3, 1, 12, 12)
    theta = affine_theta(torch.zeros(3), torch.zeros(3), torch.ones(3), torch.zeros(3), torch.zeros(3))
    assert torch.allclose(warp(img, theta), img, atol=1e-6, rtol=0)


def test_shift_moves_content_by_whole_pixels_and_brings_in_paper():
    img = dot(8, row=1, col=2)
    right = warp(img, affine_theta(ZERO, ZERO, ONE, torch.tensor([0.25]), ZERO))  # 2 of 8 pixels
    assert ink_at(right) == [[1, 4]] and right[0, 0, :, :2].eq(1).all()
    down = warp(img, affine_theta(ZERO, ZERO, ONE, ZERO, torch.tensor([-0.125])))  # 1 pixel up
    assert ink_at(down) == [[0, 2]]


def test_rotation_by_90_degrees_is_a_quarter_turn_clockwise():
    img = torch.rand(1, 1, 8, 8)
    out = warp(img, affine_theta(torch.tensor([90.0]), ZERO, ONE, ZERO, ZERO))
    # Pixel centres land on pixel centres: the same values, moved (y points down on screen).
    assert torch.allclose(out, torch.rot90(img, k=-1, dims=(2, 3)), atol=1e-5)


def test_scale_grows_the_drawing_about_the_centre():
    img = torch.ones(1, 1, 16, 16)
    img[0, 0, 6:10, 6:10] = 0  # a 4x4 black square in the middle
    out = warp(img, affine_theta(ZERO, ZERO, torch.tensor([2.0]), ZERO, ZERO))
    assert ink_at(out) == [[r, c] for r in range(4, 12) for c in range(4, 12)]


def test_draws_are_seeded_and_within_range():
    cfg = Augment(rotation=15, shear=10, scale=0.1, shift=0.1)
    images = torch.rand(64, 1, 20, 20)
    a = random_affine(images, cfg, augment_generator(0, torch.device("cpu")))
    b = random_affine(images, cfg, augment_generator(0, torch.device("cpu")))
    c = random_affine(images, cfg, augment_generator(1, torch.device("cpu")))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == images.shape and a.min() >= 0 and a.max() <= 1
    # Each image gets its own draw: no two distorted copies of the same image are alike.
    same = random_affine(images[:1].expand(8, -1, -1, -1), cfg, augment_generator(0, torch.device("cpu")))
    assert len({tuple(x.flatten().tolist()) for x in same}) == 8


def test_ranges_bound_the_distortion():
    # Only a shift of at most 1 pixel in 10: a single dot moves by at most one pixel per axis.
    cfg = Augment(shift=0.1)
    img = dot(10, 5, 5).expand(32, -1, -1, -1)
    out = random_affine(img, cfg, augment_generator(3, torch.device("cpu")))
    darkest = out.flatten(1).argmin(1)
    rows, cols = darkest // 10, darkest % 10
    assert (rows - 5).abs().max() <= 1 and (cols - 5).abs().max() <= 1
    assert (rows != 5).any() and (cols != 5).any()

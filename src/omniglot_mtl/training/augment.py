"""Label-preserving augmentation of whole batches on the training device.

Each image gets its own random rotation, shear, scale and shift, applied as one affine
resampling of the batch (``affine_grid`` + ``grid_sample``): no per-sample Python, no PIL, and
on a GPU no copy to the host. The draws come from a generator of their own, so they are the
same on every run with the same seed and do not disturb the shuffling or the initial weights.
"""

import numpy as np
import torch
import torch.nn.functional as F

from omniglot_mtl.core.params import Augment


def augment_generator(seed: int, device: torch.device, process: int = 0) -> torch.Generator:
    """A generator for the draws, seeded from ``seed`` but independent of other streams of it.

    Each process of a distributed run (``process`` = its rank) draws its own stream.
    """
    entropy = [seed, 0xA06] if process == 0 else [seed, 0xA06, process]  # rank 0: one process's
    state = int(np.random.SeedSequence(entropy).generate_state(1)[0])
    return torch.Generator(device=device).manual_seed(state)


def random_affine(images: torch.Tensor, cfg: Augment, generator: torch.Generator) -> torch.Tensor:
    """``images`` (N, 1, S, S) in [0, 1], white paper, each distorted within ``cfg``'s ranges."""
    n, device = images.shape[0], images.device

    def uniform(half_range: float) -> torch.Tensor:  # (n,) in [-half_range, half_range]
        return (torch.rand(n, generator=generator, device=device) * 2 - 1) * half_range

    rotation, shear = uniform(cfg.rotation), uniform(cfg.shear)
    scale, shift_x, shift_y = 1 + uniform(cfg.scale), uniform(cfg.shift), uniform(cfg.shift)
    return warp(images, affine_theta(rotation, shear, scale, shift_x, shift_y))


def affine_theta(
    rotation: torch.Tensor,
    shear: torch.Tensor,
    scale: torch.Tensor,
    shift_x: torch.Tensor,
    shift_y: torch.Tensor,
) -> torch.Tensor:
    """(N, 2, 3) matrices for ``warp``: rotation and horizontal shear in degrees, scale as a
    factor, shifts as fractions of the image side (positive: content moves right / down).

    ``affine_grid`` maps output positions to input positions, so this is the inverse of the
    distortion: content is rotated by ``rotation`` (clockwise on screen, since y points down),
    sheared, scaled by ``scale`` about the centre, then shifted.
    """
    a, s = torch.deg2rad(rotation), torch.deg2rad(shear)
    cos, sin, tan = a.cos(), a.sin(), s.tan()
    # forward = shift o rotation o shear o scale; its inverse, in affine_grid's coordinates
    # where the image spans [-1, 1] (so a shift of 1 image side is 2).
    inv_linear = (
        torch.stack([torch.stack([cos + tan * sin, sin - tan * cos], -1), torch.stack([-sin, cos], -1)], -2)
        / scale[:, None, None]
    )
    # rotation R(a) = [[cos, -sin], [sin, cos]], shear H = [[1, tan], [0, 1]]:
    # (R H)^-1 = H^-1 R^-1 = [[1, -tan], [0, 1]] @ [[cos, sin], [-sin, cos]]
    shift = torch.stack([shift_x, shift_y], -1)[..., None] * 2
    return torch.cat([inv_linear, -inv_linear @ shift], dim=-1)


def warp(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample ``images`` (white paper) through ``theta``; what comes in from outside is paper."""
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    # Resample the ink (1 - image), so that the zeros grid_sample pads with are paper.
    ink = F.grid_sample(1 - images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return 1 - ink

"""Training-time labels derived from a sample's own images: where the garment shows on the body.

The placement network (`tryon_renderer.placement`) predicts a garment *silhouette* on the person
and a three-way composition (keep person / warped garment / rendered). Datasets only carry the
try-on mask (the region that changes). Inside it, the pixels whose target colour is one of the
garment photo's foreground colours are where the garment is visible; the rest of the mask is
rendered (skin a dress uncovers, for example). For VITON-HD the mask is the garment itself, so the
silhouette is (almost) the whole mask. These labels exist only while training: serving needs no
parser or mask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from tryon_renderer.placement import PlacementTryOnNet

# Colour distance (max over channels, [-1, 1] units) below which a target pixel "is" a garment
# colour: 0.12 is about 15 of 255 levels, enough for resampling blur, far below distinct colours.
COLOUR_MATCH = 0.12
# Garment foreground colours compared per sample (evenly spaced over the foreground pixels).
MAX_PALETTE = 256
KEEP, GARMENT, RENDER = 0, 1, 2


def garment_palette(garment: Tensor, max_colours: int = MAX_PALETTE) -> Tensor:
    """(K, 3) foreground colours of one (3, H, W) garment photo (K may be 0)."""
    from tryon_renderer.placement import garment_foreground

    fg = garment_foreground(garment[None])[0, 0] > 0.5
    colours = garment.permute(1, 2, 0)[fg]
    if colours.shape[0] > max_colours:
        idx = torch.linspace(0, colours.shape[0] - 1, max_colours).long()
        colours = colours[idx]
    return colours


def silhouette_labels(target: Tensor, garment: Tensor, mask: Tensor) -> Tensor:
    """(N, 1, H, W) in {0, 1}: mask pixels whose target colour matches a garment colour."""
    out = torch.zeros_like(mask)
    for i in range(target.shape[0]):
        palette = garment_palette(garment[i])
        if palette.shape[0] == 0:
            continue
        pixels = target[i].permute(1, 2, 0).reshape(-1, 1, 3)
        distance = (pixels - palette[None]).abs().amax(dim=2).amin(dim=1)
        match = (distance < COLOUR_MATCH).reshape(target.shape[2:]).to(mask.dtype)
        out[i, 0] = match * mask[i, 0]
    return out


def composition_labels(silhouette: Tensor, mask: Tensor) -> Tensor:
    """(N, H, W) int64 class per pixel: KEEP outside the mask, GARMENT on it, RENDER elsewhere."""
    labels = torch.full(mask[:, 0].shape, KEEP, dtype=torch.int64)
    labels[mask[:, 0] > 0.5] = RENDER
    labels[silhouette[:, 0] > 0.5] = GARMENT
    return labels


def placement_targets(silhouette: Tensor) -> Tensor:
    """(N, 4) centre x, y and spread x, y of where the garment shows (the silhouette labels)."""
    from tryon_renderer.placement import coordinate_maps, shape_moments

    mean, std = shape_moments(silhouette.float(), coordinate_maps(silhouette).float())
    return torch.cat([mean, std], dim=1)


@torch.no_grad()
def fit_placement(
    net: PlacementTryOnNet, person: Tensor, category: Tensor, targets: Tensor, valid: Tensor
) -> int:
    """Least-squares start for the placement head: figure moments -> garment moments, per category.

    A linear regression solved exactly on the training set, so training begins with the garment
    roughly in place and gradient descent refines it. Categories with fewer than 5 usable
    samples keep their identity start. Returns the number of categories fitted.
    """
    from tryon_renderer.placement import coordinate_maps, figure_moments

    head = net.placement
    figure = figure_moments(person, coordinate_maps(person))
    features = torch.cat([figure, torch.ones_like(figure[:, :1])], dim=1).double()
    fitted = 0
    for c in range(head.weight.shape[0]):
        rows = (category == c) & valid
        if int(rows.sum()) < 5:
            continue
        solution = torch.linalg.lstsq(features[rows], targets[rows].double()).solution  # (5, 4)
        head.weight[c] = solution.T.to(head.weight.dtype)
        fitted += 1
    return fitted

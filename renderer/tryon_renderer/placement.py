"""A parser-free try-on network that places the garment from the figure's shape moments.

Why this design: the serving API takes a person photo and a garment photo only, so the network
itself has to find where the garment goes, and it has to learn that from a few hundred examples
in about a minute of CPU. It works in three steps, all inside `forward`:

1. Placement. The person's figure and the garment are found on their plain backgrounds (the
   figure against each row's border colour, the garment against the photo's border colour). The
   centre and spread (first and second moments along x and y) of the figure give the body's
   position and size; a learned linear map per category turns them into the centre and spread the
   garment should have on the body (a T-shirt sits higher and narrower than a dress). Matching
   those to the garment photo's own moments gives an axis-aligned affine warp: exact when the
   garment appears scaled and shifted on the body, a coarse alignment otherwise.
2. Warp. The garment and its foreground are warped with `grid_sample`; the warped foreground is
   where the garment is shown, with the garment photo's own sharp outline.
3. Composition. A small U-Net (person, warped garment, where it is shown, category, coordinates)
   predicts per pixel whether to keep the person and a rendered colour for the rest (skin a
   dress uncovers, for example). Output: ``shown * warped + (1 - shown) * (keep * person +
   (1 - keep) * rendered)``, so head, arms, legs and background are copied from the photo.

No normalisation across the batch (GroupNorm is per sample) and only per-sample reductions, so a
request's result never depends on what else is in its micro-batch. Same contract as every
served model: ``forward(person, garment, category)`` on (B, 3, H, W) tensors in [-1, 1], output
(B, 3, H, W) in [-1, 1]; H and W divisible by ``2 ** levels``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - conventional alias
from torch import Tensor, nn

from .netconfig import NetworkConfig

PLACEMENT_ARCH = "tryon-place-v1"
# Garment foreground: a channel differs from the border colour by more than FG_LOW (in [-1, 1]
# units; 0.03 is about 4 of 255 levels), fully foreground at FG_HIGH.
FG_LOW, FG_HIGH = 0.03, 0.06
# Start with "keep the person" wherever the garment is not shown.
KEEP_PERSON_BIAS = 6.0
EPS = 1e-6


# The shared hyper-parameters under this architecture's historical name.
PlacementConfig = NetworkConfig


def _block(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    """Two 3x3 convolutions with GroupNorm (per sample: batch-independent) and LeakyReLU."""
    groups = 4 if out_ch % 4 == 0 else 1
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1),
        nn.GroupNorm(groups, out_ch),
        nn.LeakyReLU(0.1, inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1),
        nn.GroupNorm(groups, out_ch),
        nn.LeakyReLU(0.1, inplace=True),
    )


HEAD_CHANNELS = 1 + 3  # keep-person logit, rendered RGB


class PlacementUNet(nn.Module):
    """U-Net: person, warped garment, shown, category, coordinates -> keep logit, rendered RGB.

    One set of output channels per category, the sample's own category selected afterwards: each
    garment type gets its own output layer instead of having to learn the conditioning.
    """

    def __init__(self, config: PlacementConfig) -> None:
        super().__init__()
        w = config.base_width
        widths = [w * min(2**i, 4) for i in range(config.levels + 1)]
        in_ch = 3 + 3 + 1 + config.num_categories + 2
        self.stem = _block(in_ch, widths[0])
        self.down = nn.ModuleList(
            _block(widths[i], widths[i + 1], stride=2) for i in range(config.levels)
        )
        self.up = nn.ModuleList(
            _block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(config.levels))
        )
        self.num_categories = config.num_categories
        self.head = nn.Conv2d(widths[0], HEAD_CHANNELS * config.num_categories, 3, padding=1)
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            assert self.head.bias is not None
            self.head.bias.zero_()
            self.head.bias[0::HEAD_CHANNELS] = KEEP_PERSON_BIAS

    def forward(self, x: Tensor, category: Tensor) -> Tensor:
        """(B, HEAD_CHANNELS, H, W): the output channels of each sample's category."""
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for up in self.up:
            skip = skips.pop()
            y = up(torch.cat([F.interpolate(y, size=skip.shape[2:], mode="nearest"), skip], 1))
        out: Tensor = self.head(y).unflatten(1, (self.num_categories, HEAD_CHANNELS))
        index = category.long().view(-1, 1, 1, 1, 1).expand(-1, 1, *out.shape[2:])
        return out.gather(1, index).squeeze(1)


def coordinate_maps(like: Tensor) -> Tensor:
    """(B, 2, H, W) pixel-centre coordinates in [-1, 1] (x, y), grid_sample's convention."""
    batch, _, height, width = like.shape
    ys = (torch.arange(height, device=like.device, dtype=like.dtype) * 2 + 1) / height - 1
    xs = (torch.arange(width, device=like.device, dtype=like.dtype) * 2 + 1) / width - 1
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y])[None].expand(batch, 2, height, width)


def garment_foreground(garment: Tensor) -> Tensor:
    """(B, 1, H, W) in [0, 1]: pixels that differ from the garment photo's border colour."""
    border = torch.cat(
        [garment[:, :, 0], garment[:, :, -1], garment[:, :, :, 0], garment[:, :, :, -1]], dim=2
    )
    background = border.median(dim=2).values[:, :, None, None]
    diff = (garment - background).abs().amax(dim=1, keepdim=True)
    return ((diff - FG_LOW) / (FG_HIGH - FG_LOW)).clamp(0.0, 1.0)


def person_foreground(person: Tensor) -> Tensor:
    """(B, 1, H, W) in [0, 1]: pixels that differ from their row's background colour.

    The background of each row is the mean of its two leftmost and two rightmost pixels, which
    follows studio backdrops with a vertical gradient.
    """
    row_bg = torch.cat([person[..., :2], person[..., -2:]], dim=3).mean(dim=3, keepdim=True)
    diff = (person - row_bg).abs().amax(dim=1, keepdim=True)
    return ((diff - FG_LOW) / (FG_HIGH - FG_LOW)).clamp(0.0, 1.0)


def shape_moments(weights: Tensor, coords: Tensor) -> tuple[Tensor, Tensor]:
    """Centre (B, 2) and spread (B, 2) of a (B, 1, H, W) weight map along x and y."""
    total = weights.sum(dim=(2, 3)).clamp_min(EPS)  # (B, 1)
    mean = (weights * coords).sum(dim=(2, 3)) / total
    var = (weights * (coords - mean[:, :, None, None]) ** 2).sum(dim=(2, 3)) / total
    return mean, (var + EPS).sqrt()


def moment_grid(placement: Tensor, foreground: Tensor, coords: Tensor) -> tuple[Tensor, Tensor]:
    """Sampling grid mapping the placement (B, 4: centre x, y, spread x, y) onto the garment's.

    Returns the grid (B, H, W, 2) and the affine parameters (B, 4): scale x, scale y, shift x,
    shift y, so that ``garment_xy = scale * person_xy + shift``.
    """
    p_mean, p_std = placement[:, :2], placement[:, 2:].abs().clamp_min(1e-3)
    g_mean, g_std = shape_moments(foreground, coords)
    scale = g_std / p_std
    shift = g_mean - scale * p_mean
    grid = coords * scale[:, :, None, None] + shift[:, :, None, None]
    return grid.permute(0, 2, 3, 1), torch.cat([scale, shift], dim=1)


class PlacementHead(nn.Module):
    """Per category, a linear map from the figure's moments to the garment's place on the body."""

    def __init__(self, num_categories: int) -> None:
        super().__init__()
        # (C, 4, 5): [centre x, centre y, spread x, spread y, 1] -> placement; starts at identity.
        weight = torch.zeros(num_categories, 4, 5)
        weight[:, :, :4] = torch.eye(4)
        self.weight = nn.Parameter(weight)

    def forward(self, figure: Tensor, category: Tensor) -> Tensor:
        """(B, 4) figure moments -> (B, 4) placement moments."""
        features = torch.cat([figure, torch.ones_like(figure[:, :1])], dim=1)
        return torch.einsum("boi,bi->bo", self.weight[category.long()], features)


def figure_moments(person: Tensor, coords: Tensor) -> Tensor:
    """(B, 4): centre x, centre y, spread x, spread y of the person's figure."""
    mean, std = shape_moments(person_foreground(person).float(), coords.float())
    return torch.cat([mean, std], dim=1)


class PlacementTryOnNet(nn.Module):
    """Figure moments -> placement -> affine warp -> composition; `forward` is the contract."""

    arch_name = PLACEMENT_ARCH

    def __init__(self, config: PlacementConfig | None = None) -> None:
        super().__init__()
        self.config = config or PlacementConfig()
        self.placement = PlacementHead(self.config.num_categories)
        self.unet = PlacementUNet(self.config)
        # Serving may run the U-Net alone in bf16/fp16 (see tryon_renderer.precision); the
        # placement, warp and blending stay fp32 because their thresholds are not bf16-safe.
        self.composition_dtype: torch.dtype | None = None

    def _compose(self, x: Tensor, category: Tensor) -> Tensor:
        if self.composition_dtype is None:
            out: Tensor = self.unet(x, category)
            return out
        with torch.autocast(x.device.type, dtype=self.composition_dtype):
            reduced: Tensor = self.unet(x, category)
        return reduced.float()

    def forward_with_aux(
        self, person: Tensor, garment: Tensor, category: Tensor
    ) -> dict[str, Tensor]:
        """Full forward pass with the intermediates training supervises."""
        coords = coordinate_maps(person)
        figure = figure_moments(person, coords)
        placement = self.placement(figure, category)
        foreground = garment_foreground(garment)
        grid, affine = moment_grid(placement, foreground.float(), coords.float())
        grid = grid.to(garment.dtype)
        warped = F.grid_sample(
            garment, grid, mode="bilinear", padding_mode="border", align_corners=False
        )
        # The garment's own outline, carried by the same warp, decides where it is shown.
        shown = F.grid_sample(
            foreground.to(garment.dtype),
            grid,
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        )
        onehot = F.one_hot(category.long(), self.config.num_categories).to(person.dtype)
        cat_map = onehot[:, :, None, None].expand(-1, -1, *person.shape[2:])
        heads = self._compose(torch.cat([person, warped, shown, cat_map, coords], dim=1), category)
        keep = torch.sigmoid(heads[:, :1])
        rendered = torch.tanh(heads[:, 1:4])
        rest = keep * person + (1.0 - keep) * rendered
        image = shown * warped + (1.0 - shown) * rest
        return {
            "image": image,
            "warped": warped,
            "shown": shown,
            "keep_logit": heads[:, :1],
            "rendered": rendered,
            "figure": figure,
            "placement": placement,
            "affine": affine,
            "mask": 1.0 - (1.0 - shown) * keep,
        }

    def forward(self, person: Tensor, garment: Tensor, category: Tensor) -> Tensor:
        return self.forward_with_aux(person, garment, category)["image"]

"""A small virtual try-on network in the fast warping family (PF-AFN / DM-VTON style).

Why this shape: parser-free appearance-flow networks are the fastest published try-on designs,
which suits a latency-bound serving path. The network has two parts:

1. Appearance-flow warping. Two light feature pyramids (person, garment). Starting at the
   coarsest level, a flow estimator looks at the person features next to the garment features
   warped by the current flow and predicts a residual flow. Flows are in normalised grid
   coordinates, so they can be upsampled between levels without rescaling. The final flow warps
   the garment image onto the person.
2. Composition generator. A small U-Net takes the person, the warped garment and a one-hot
   category map and predicts a rendered RGB image and a blend mask; the output is
   ``mask * warped_garment + (1 - mask) * rendered``.

Contract (see contract.py): ``forward(person, garment, category)`` with person/garment of shape
(B, 3, H, W) in [-1, 1], category int64 (B,), returns (B, 3, H, W) in [-1, 1]. H and W must be
divisible by ``2 ** levels``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - conventional alias
from torch import Tensor, nn

from .netconfig import NetworkConfig
from .placement import PLACEMENT_ARCH, PlacementConfig, PlacementTryOnNet

ARCH_NAME = "tryon-afn-v1"
# Every architecture the renderer can rebuild from a stored version (older versions keep loading).
ARCHITECTURES: tuple[str, ...] = (ARCH_NAME, PLACEMENT_ARCH)
FAILURE_MODES = ("nan", "blank", "unloadable")
# "unloadable" models fail to build in every renderer: what an export for a newer architecture
# looks like. The renderer exits on them (CrashLoopBackOff) instead of retrying forever.
OUTPUT_FAILURE_MODES = ("nan", "blank")


# The shared hyper-parameters under this architecture's historical name.
TryOnConfig = NetworkConfig


def _conv(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv + LeakyReLU; no normalisation so batch size never changes the result."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1),
        nn.LeakyReLU(0.1, inplace=True),
    )


class FeaturePyramid(nn.Module):
    """Stride-2 encoder returning one feature map per level, finest first."""

    def __init__(self, width: int, levels: int) -> None:
        super().__init__()
        chans = [width * min(2**i, 4) for i in range(levels)]
        stages: list[nn.Module] = []
        in_ch = 3
        for out_ch in chans:
            stages.append(nn.Sequential(_conv(in_ch, out_ch, stride=2), _conv(out_ch, out_ch)))
            in_ch = out_ch
        self.stages = nn.ModuleList(stages)
        self.channels = chans

    def forward(self, x: Tensor) -> list[Tensor]:
        feats: list[Tensor] = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class FlowHead(nn.Module):
    """Predicts a residual flow (2 channels) from person and warped-garment features."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(2 * channels, channels), _conv(channels, channels))
        self.out = nn.Conv2d(channels, 2, 3, padding=1)
        # Start at the identity warp so an untrained network passes the garment through.
        nn.init.zeros_(self.out.weight)
        if self.out.bias is not None:
            nn.init.zeros_(self.out.bias)

    def forward(self, person_feat: Tensor, garment_feat: Tensor) -> Tensor:
        flow: Tensor = self.out(self.body(torch.cat([person_feat, garment_feat], dim=1)))
        return flow


def identity_grid(like: Tensor) -> Tensor:
    """Sampling grid (B, H, W, 2) of the identity transform for a feature map."""
    batch, _, height, width = like.shape
    theta = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=like.dtype, device=like.device)
    return F.affine_grid(
        theta.unsqueeze(0).expand(batch, 2, 3), [batch, 1, height, width], align_corners=False
    )


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """Backward-warp `image` by a flow in normalised coordinates (B, 2, H, W)."""
    grid = identity_grid(image) + flow.permute(0, 2, 3, 1).to(image.dtype)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)


class AppearanceFlow(nn.Module):
    """Coarse-to-fine appearance-flow estimation between person and garment pyramids."""

    def __init__(self, config: TryOnConfig) -> None:
        super().__init__()
        self.person_enc = FeaturePyramid(config.base_width, config.levels)
        self.garment_enc = FeaturePyramid(config.base_width, config.levels)
        self.heads = nn.ModuleList(FlowHead(c) for c in self.person_enc.channels)

    def forward(self, person: Tensor, garment: Tensor) -> Tensor:
        p_feats = self.person_enc(person)
        g_feats = self.garment_enc(garment)
        flow: Tensor | None = None
        for level in reversed(range(len(p_feats))):
            p_feat, g_feat = p_feats[level], g_feats[level]
            if flow is None:
                flow = p_feat.new_zeros(p_feat.shape[0], 2, *p_feat.shape[2:])
            else:
                flow = F.interpolate(flow, size=p_feat.shape[2:], mode="bilinear")
            flow = flow + self.heads[level](p_feat, warp(g_feat, flow))
        assert flow is not None
        return F.interpolate(flow, size=person.shape[2:], mode="bilinear")


class CompositionGenerator(nn.Module):
    """Small U-Net predicting a rendered image and a blend mask."""

    def __init__(self, config: TryOnConfig) -> None:
        super().__init__()
        w = config.base_width
        in_ch = 6 + config.num_categories
        self.enc1 = _conv(in_ch, w)
        self.enc2 = _conv(w, 2 * w, stride=2)
        self.enc3 = _conv(2 * w, 4 * w, stride=2)
        self.dec2 = _conv(4 * w + 2 * w, 2 * w)
        self.dec1 = _conv(2 * w + w, w)
        self.head = nn.Conv2d(w, 4, 3, padding=1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(torch.cat([F.interpolate(e3, size=e2.shape[2:]), e2], dim=1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, size=e1.shape[2:]), e1], dim=1))
        out = self.head(d1)
        return torch.tanh(out[:, :3]), torch.sigmoid(out[:, 3:4])


class TryOnNet(nn.Module):
    """Warp-then-compose try-on network; `forward` follows the model contract."""

    arch_name = ARCH_NAME

    def __init__(self, config: TryOnConfig | None = None) -> None:
        super().__init__()
        self.config = config or TryOnConfig()
        self.flow = AppearanceFlow(self.config)
        self.generator = CompositionGenerator(self.config)

    def forward_with_aux(
        self, person: Tensor, garment: Tensor, category: Tensor
    ) -> dict[str, Tensor]:
        """Full forward pass with intermediates (flow, warped garment, mask) for training."""
        flow = self.flow(person, garment)
        warped = warp(garment, flow)
        onehot = F.one_hot(category.long(), self.config.num_categories).to(person.dtype)
        cat_map = onehot[:, :, None, None].expand(-1, -1, *person.shape[2:])
        rendered, mask = self.generator(torch.cat([person, warped, cat_map], dim=1))
        image = mask * warped + (1.0 - mask) * rendered
        return {"image": image, "warped": warped, "mask": mask, "flow": flow, "rendered": rendered}

    def forward(self, person: Tensor, garment: Tensor, category: Tensor) -> Tensor:
        return self.forward_with_aux(person, garment, category)["image"]


class FaultyOutput(nn.Module):
    """Wraps a model and corrupts its output, so rollback paths can be tested end to end.

    mode "nan" returns NaN everywhere; mode "blank" returns a uniform grey image.
    """

    def __init__(self, inner: nn.Module, mode: str) -> None:
        super().__init__()
        if mode not in OUTPUT_FAILURE_MODES:
            raise ValueError(f"failure mode must be one of {OUTPUT_FAILURE_MODES}, got {mode!r}")
        self.inner = inner
        self.mode = mode

    def forward(self, person: Tensor, garment: Tensor, category: Tensor) -> Tensor:
        out: Tensor = self.inner(person, garment, category)
        if self.mode == "nan":
            return torch.full_like(out, float("nan"))
        return torch.zeros_like(out)


# The networks this package can package and rebuild (both follow the model contract).
TryOnNetwork = TryOnNet | PlacementTryOnNet


def build_network(name: str, config: dict[str, Any]) -> TryOnNetwork:
    """A fresh network of a known architecture (`ARCHITECTURES`) from its stored config."""
    if name == ARCH_NAME:
        return TryOnNet(TryOnConfig.from_dict(config))
    if name == PLACEMENT_ARCH:
        return PlacementTryOnNet(PlacementConfig.from_dict(config))
    raise ValueError(f"unknown architecture {name!r}, expected one of {list(ARCHITECTURES)}")


def build_model(arch: dict[str, Any], state_dict: dict[str, Tensor] | None = None) -> nn.Module:
    """Rebuild a model from its stored architecture description (and weights, if given)."""
    name = str(arch.get("name"))
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}, expected one of {list(ARCHITECTURES)}")
    failure_mode = arch.get("failure_mode")
    if failure_mode == "unloadable":
        raise ValueError("this model was exported as deliberately unloadable (failure_mode)")
    net = build_network(name, arch.get("config", {}))
    if state_dict is not None:
        net.load_state_dict(state_dict)
    return FaultyOutput(net, str(failure_mode)) if failure_mode else net

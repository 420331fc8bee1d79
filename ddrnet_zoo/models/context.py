"""Context modules on the low-resolution branch: DAPPM (paper Sec. III-C), PPM/SPP and none (Table X)."""

from __future__ import annotations

from typing import Callable, Dict, Sequence, Tuple

import torch
from torch import nn

from ..errors import InputError
from .layers import NormActConv, resize_to

__all__ = ["DAPPM", "PPM", "ContextProjection", "CONTEXT_MODULES", "build_context"]


class DAPPM(nn.Module):
    """Deep Aggregation Pyramid Pooling Module (Eq. 2, Fig. 5).

    ``scales[0]`` is a 1x1 conv of the input; ``scales[1:4]`` average-pool with kernel/stride
    5/2, 9/4 and 17/8 (exponential strides) and ``scales[4]`` pools globally, each followed
    by a 1x1 conv. Each pooled scale is upsampled and added to the previous scale's output,
    then fused by a 3x3 conv (``fuse``): the hierarchical-residual aggregation. All five
    are concatenated and compressed by a 1x1 conv, plus a 1x1 projection shortcut. Every
    conv is preceded by BN and ReLU (BN-ReLU-Conv order).
    """

    POOLS: Tuple[Tuple[int, int, int], ...] = ((5, 2, 2), (9, 4, 4), (17, 8, 8))

    def __init__(self, in_chs: int, branch_chs: int, out_chs: int, device=None, dtype=None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        scales = [NormActConv(in_chs, branch_chs, 1, **dd)]
        for k, s, p in self.POOLS:
            scales.append(nn.Sequential(nn.AvgPool2d(k, s, p), NormActConv(in_chs, branch_chs, 1, **dd)))
        scales.append(nn.Sequential(nn.AdaptiveAvgPool2d(1), NormActConv(in_chs, branch_chs, 1, **dd)))
        self.scales = nn.ModuleList(scales)
        self.fuse = nn.ModuleList(NormActConv(branch_chs, branch_chs, 3, **dd) for _ in range(len(scales) - 1))
        self.compression = NormActConv(branch_chs * len(scales), out_chs, 1, **dd)
        self.shortcut = NormActConv(in_chs, out_chs, 1, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [self.scales[0](x)]
        for scale, fuse in zip(self.scales[1:], self.fuse):
            outs.append(fuse(resize_to(scale(x), x) + outs[-1]))
        return self.compression(torch.cat(outs, dim=1)) + self.shortcut(x)


class PPM(nn.Module):
    """Pyramid pooling (PSPNet bins 1, 2, 3, 6; SwiftNet's BN-ReLU-Conv "SPP" form), for Table X.

    The input (1x1 conv) and four adaptively pooled levels (1x1 conv each, upsampled) are
    concatenated and fused by a 1x1 conv: the context sizes of Table IV's PPM column.
    The paper names SwiftNet's SPP but gives no widths; ours match DAPPM's branch width.
    """

    def __init__(
        self,
        in_chs: int,
        branch_chs: int,
        out_chs: int,
        bins: Sequence[int] = (6, 3, 2, 1),
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.bins = tuple(bins)
        self.scales = nn.ModuleList(
            [NormActConv(in_chs, branch_chs, 1, **dd)]
            + [nn.Sequential(nn.AdaptiveAvgPool2d(b), NormActConv(in_chs, branch_chs, 1, **dd)) for b in self.bins]
        )
        self.compression = NormActConv(branch_chs * (len(self.bins) + 1), out_chs, 1, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [self.scales[0](x)] + [resize_to(scale(x), x) for scale in self.scales[1:]]
        return self.compression(torch.cat(outs, dim=1))


class ContextProjection(nn.Module):
    """No context module (Table X, first row): a BN-ReLU-1x1 projection to the head width only."""

    def __init__(self, in_chs: int, branch_chs: int, out_chs: int, device=None, dtype=None) -> None:
        super().__init__()
        del branch_chs  # no branches; the signature matches the other context modules
        self.shortcut = NormActConv(in_chs, out_chs, 1, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x)


CONTEXT_MODULES: Dict[str, Callable[..., nn.Module]] = {
    "dappm": DAPPM,
    "ppm": PPM,
    "spp": PPM,
    "none": ContextProjection,
}


def build_context(name: str, in_chs: int, branch_chs: int, out_chs: int, device=None, dtype=None) -> nn.Module:
    """Build the context module ``name`` (``dappm``, ``ppm``/``spp`` or ``none``)."""
    key = str(name).lower()
    if key not in CONTEXT_MODULES:
        raise InputError(f"unknown context module {name!r}; choose one of: {', '.join(CONTEXT_MODULES)}")
    return CONTEXT_MODULES[key](in_chs, branch_chs, out_chs, device=device, dtype=dtype)

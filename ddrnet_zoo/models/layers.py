"""Building blocks shared by the DDRNet backbone, context modules and heads."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from timm.layers import BatchNormAct2d, ConvNormAct
from torch import nn

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "NormActConv",
    "make_stage",
    "resize_to",
    "check_image_batch",
]


def resize_to(x: torch.Tensor, like: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """Bilinear resize (``align_corners=False``, as the paper's code) to the size of ``like``.

    Sizes come from tensors, never from Python arithmetic on the input size, so traced
    and exported graphs stay valid for every input size.
    """
    size = like.shape[-2:] if isinstance(like, torch.Tensor) else like
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def check_image_batch(x: torch.Tensor, in_chans: int, min_size: int, what: str = "input") -> None:
    """Raise a clear error unless ``x`` is a float NCHW batch of ``in_chans`` channels, at least ``min_size``.

    The checks are skipped while tracing for TorchScript (the shapes there are symbolic).
    """
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor of shape (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        hint = " (add a batch dimension with x.unsqueeze(0))" if x.ndim == 3 else ""
        raise ValueError(f"{what} must be a 4-D tensor (N, C, H, W), got {x.ndim}-D shape {tuple(x.shape)}{hint}")
    if not x.is_floating_point():
        raise TypeError(
            f"{what} must be a floating-point tensor, got {x.dtype}; convert images with "
            f"x.float() / 255 and normalise with the model's mean/std"
        )
    if x.shape[1] != in_chans:
        raise ValueError(
            f"{what} has {x.shape[1]} channels but the model expects {in_chans} "
            f"(shape {tuple(x.shape)}; build the model with in_chans={x.shape[1]} or convert the images)"
        )
    h, w = x.shape[-2], x.shape[-1]
    if h < min_size or w < min_size:
        raise ValueError(
            f"{what} size {h}x{w} is below the minimum {min_size}x{min_size} for this model "
            f"(its deepest features are at 1/{min_size} of the input); resize or pad the image"
        )


class NormActConv(nn.Module):
    """Pre-activation unit BN -> ReLU -> Conv (the order DAPPM and the heads use, after SwiftNet)."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 1,
        bias: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.bn = BatchNormAct2d(in_chs, **dd)
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, padding=kernel_size // 2, bias=bias, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.bn(x))


def _shortcut(in_chs: int, out_chs: int, stride: int, dd: dict) -> Optional[nn.Module]:
    if stride == 1 and in_chs == out_chs:
        return None
    return ConvNormAct(in_chs, out_chs, 1, stride=stride, apply_act=False, **dd)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convolutions); the closing ReLU is optional.

    DDRNet leaves it off on the last block of every stage: the branch output is summed
    with the other branch first (Eq. 1) and the ReLU comes after the sum.
    """

    expansion = 1

    def __init__(
        self, in_chs: int, out_chs: int, stride: int = 1, final_act: bool = True, device=None, dtype=None
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.conv1 = ConvNormAct(in_chs, out_chs, 3, stride=stride, **dd)
        self.conv2 = ConvNormAct(out_chs, out_chs, 3, apply_act=False, **dd)
        self.downsample = _shortcut(in_chs, out_chs, stride, dd)
        self.final_act = final_act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.conv2(self.conv1(x)) + shortcut
        return F.relu(x) if self.final_act else x


class Bottleneck(nn.Module):
    """ResNet bottleneck (1x1, 3x3, 1x1) with expansion 2, as the DDRNet "RBB" blocks."""

    expansion = 2

    def __init__(
        self, in_chs: int, mid_chs: int, stride: int = 1, final_act: bool = True, device=None, dtype=None
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        out_chs = mid_chs * self.expansion
        self.conv1 = ConvNormAct(in_chs, mid_chs, 1, **dd)
        self.conv2 = ConvNormAct(mid_chs, mid_chs, 3, stride=stride, **dd)
        self.conv3 = ConvNormAct(mid_chs, out_chs, 1, apply_act=False, **dd)
        self.downsample = _shortcut(in_chs, out_chs, stride, dd)
        self.final_act = final_act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.conv3(self.conv2(self.conv1(x))) + shortcut
        return F.relu(x) if self.final_act else x


def make_stage(in_chs: int, out_chs: int, depth: int, stride: int = 1, device=None, dtype=None) -> nn.Sequential:
    """A stage of ``depth`` basic blocks; every block but the last ends with ReLU (as the original)."""
    blocks = []
    for i in range(depth):
        blocks.append(
            BasicBlock(
                in_chs if i == 0 else out_chs,
                out_chs,
                stride=stride if i == 0 else 1,
                final_act=(i < depth - 1) or depth == 1,
                device=device,
                dtype=dtype,
            )
        )
    return nn.Sequential(*blocks)

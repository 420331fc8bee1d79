"""Building blocks shared by the DDRNet backbone, context modules and heads."""

from __future__ import annotations

import numbers
from typing import Optional

import torch
import torch.fx
import torch.nn.functional as F
from timm.layers import BatchNormAct2d, ConvNormAct
from torch import nn

from ..errors import InputError
from ..text import brief

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "NormActConv",
    "make_stage",
    "resize_to",
    "check_image_batch",
    "check_count",
    "input_checks_apply",
]


def resize_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear resize (``align_corners=False``, as the paper's code) to the spatial size of ``like``.

    Sizes come from tensors, never from Python arithmetic on the input size, so traced
    and exported graphs stay valid for every input size.
    """
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


def _is_compiling() -> bool:
    is_compiling = getattr(torch.compiler, "is_compiling", None)  # torch >= 2.3
    return bool(is_compiling()) if is_compiling is not None else bool(torch._dynamo.is_compiling())


def _is_fx_tracing() -> bool:
    trace = torch.fx._symbolic_trace
    return bool(getattr(trace, "is_fx_symbolic_tracing", trace.is_fx_tracing)())  # the former: torch >= 2.5


def input_checks_apply(x: object) -> bool:
    """Whether eager input checks should run: not under TorchScript scripting or tracing, torch.fx
    symbolic tracing, or torch.compile / torch.export (dynamo), where shapes and values are symbolic."""
    if torch.jit.is_scripting() or torch.jit.is_tracing():
        return False
    if isinstance(x, torch.fx.Proxy) or _is_fx_tracing():
        return False
    return not _is_compiling()


def check_image_batch(
    x: torch.Tensor, in_chans: int, min_size: int, what: str = "input", check_finite: bool = False
) -> None:
    """Raise a clear error unless ``x`` is a float NCHW batch of ``in_chans`` channels, at least ``min_size``.

    With ``check_finite``, NaN and Inf values are refused too (one device sync; never on the meta
    device). Every check steps aside under scripting, tracing and compiling (:func:`input_checks_apply`).
    """
    if not input_checks_apply(x):
        return
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{what} must be a torch.Tensor of shape (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        hint = " (add a batch dimension with x.unsqueeze(0))" if x.ndim == 3 else ""
        raise InputError(f"{what} must be a 4-D tensor (N, C, H, W), got {x.ndim}-D shape {tuple(x.shape)}{hint}")
    if not x.is_floating_point():
        raise InputError(
            f"{what} must be a floating-point tensor, got {x.dtype}; convert images with "
            f"x.float() / 255 and normalise with the model's mean/std"
        )
    if x.shape[1] != in_chans:
        if x.shape[-1] == in_chans:
            raise InputError(
                f"{what} has shape {tuple(x.shape)}, which looks like channels-last NHWC; the model expects "
                f"(N, {in_chans}, H, W): use x.permute(0, 3, 1, 2)"
            )
        raise InputError(
            f"{what} has {x.shape[1]} channels but the model expects {in_chans} "
            f"(shape {tuple(x.shape)}; build the model with in_chans={x.shape[1]} or convert the images)"
        )
    h, w = x.shape[-2], x.shape[-1]
    if h < min_size or w < min_size:
        raise InputError(
            f"{what} size {h}x{w} is below the minimum {min_size}x{min_size} for this model "
            f"(its deepest features are at 1/{min_size} of the input); resize or pad the image"
        )
    if check_finite and x.device.type != "meta" and not bool(torch.isfinite(x).all()):
        num_nan = int(torch.isnan(x).sum())
        num_inf = int(torch.isinf(x).sum())
        found = " and ".join(f"{n} {kind}" for n, kind in ((num_nan, "NaN"), (num_inf, "Inf")) if n)
        values = "value" if num_nan + num_inf == 1 else "values"
        raise InputError(
            f"{what} contains {found} {values} (of {x.numel()}); the outputs would be NaN. Check the data "
            f"pipeline (corrupt images, division by a zero std, overflow in float16), or build the model "
            f"with check_finite=False to skip this check"
        )


def check_count(name: str, value: object, minimum: int) -> int:
    """``value`` as an int, or an InputError unless it is an integer (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        what = "a non-negative int (0 for none)" if minimum == 0 else f"an int >= {minimum}"
        raise InputError(f"{name} must be {what}, got {brief(value)}")
    return int(value)


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
    with the other branch first (Eq. 1) and the ReLU comes after the sum. ``first_dilation``
    (of the first conv) and ``dilation`` serve ``output_stride`` as in timm's dilated ResNets.
    """

    expansion = 1

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        final_act: bool = True,
        dilation: int = 1,
        first_dilation: Optional[int] = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        first_dilation = first_dilation or dilation
        self.conv1 = ConvNormAct(in_chs, out_chs, 3, stride=stride, dilation=first_dilation, **dd)
        self.conv2 = ConvNormAct(out_chs, out_chs, 3, dilation=dilation, apply_act=False, **dd)
        self.downsample = _shortcut(in_chs, out_chs, stride, dd)
        self.final_act = final_act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.conv2(self.conv1(x)) + shortcut
        return F.relu(x) if self.final_act else x


class Bottleneck(nn.Module):
    """ResNet bottleneck (1x1, 3x3, 1x1) with expansion 2, as the DDRNet "RBB" blocks.

    ``dilation`` is that of the 3x3 conv (``output_stride``).
    """

    expansion = 2

    def __init__(
        self,
        in_chs: int,
        mid_chs: int,
        stride: int = 1,
        final_act: bool = True,
        dilation: int = 1,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        out_chs = mid_chs * self.expansion
        self.conv1 = ConvNormAct(in_chs, mid_chs, 1, **dd)
        self.conv2 = ConvNormAct(mid_chs, mid_chs, 3, stride=stride, dilation=dilation, **dd)
        self.conv3 = ConvNormAct(mid_chs, out_chs, 1, apply_act=False, **dd)
        self.downsample = _shortcut(in_chs, out_chs, stride, dd)
        self.final_act = final_act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.conv3(self.conv2(self.conv1(x))) + shortcut
        return F.relu(x) if self.final_act else x


def make_stage(
    in_chs: int,
    out_chs: int,
    depth: int,
    stride: int = 1,
    dilation: int = 1,
    first_dilation: Optional[int] = None,
    device=None,
    dtype=None,
) -> nn.Sequential:
    """A stage of ``depth`` basic blocks; every block but the last ends with ReLU (as the original).

    ``first_dilation`` is the first conv's (the stage input's dilation), ``dilation`` every later conv's.
    """
    blocks = []
    for i in range(depth):
        blocks.append(
            BasicBlock(
                in_chs if i == 0 else out_chs,
                out_chs,
                stride=stride if i == 0 else 1,
                final_act=(i < depth - 1) or depth == 1,
                dilation=dilation,
                first_dilation=first_dilation if i == 0 else dilation,
                device=device,
                dtype=dtype,
            )
        )
    return nn.Sequential(*blocks)

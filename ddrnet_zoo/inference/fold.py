"""Deployment form: fold every BatchNorm that directly follows a convolution into that convolution.

What folds (exactly, in eval mode):

* every timm ``ConvNormAct`` unit (the whole backbone: stem, basic blocks, bottlenecks,
  shortcuts, bilateral fusions): ``conv -> bn`` becomes one conv with bias; the ReLU that
  timm's ``BatchNormAct2d`` applies stays, as a plain activation;
* in each :class:`~ddrnet_zoo.models.SegmentationHead`, ``classifier.bn`` follows
  ``conv.conv`` directly (BN-ReLU-Conv units in a row), so it folds into ``conv.conv``;
* any ``nn.Sequential`` with a ``Conv2d`` immediately followed by a ``BatchNorm2d``.

What stays: the BN of a BN-ReLU-Conv (pre-activation) unit whose input is not the output of
one convolution used only by it: every BN of DAPPM / PPM (their inputs are shared by several
branches, pooled, or concatenated), and ``head.conv.bn`` / ``aux_head.conv.bn`` (their input
is a sum of branches). A BN in front of a ReLU cannot move into the *next* conv. With
``fold_head_input=True`` the BN at the main head's input is also folded, backwards, into the
convolutions whose sum it normalises (exact because bilinear resizing is linear and preserves
constants); this changes the backbone's intermediate features, not the model's logits.

Folding uses :func:`torch.nn.utils.fusion.fuse_conv_bn_weights`, computed in float64 and
cast back, so the folded model matches the original to float32 rounding (about 1e-6).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import List, Tuple

import torch
from timm.layers import BatchNormAct2d, ConvNormAct
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from ..errors import InputError
from ..models.segmentation import DDRNetSegmentation, SegmentationHead

__all__ = ["FoldReport", "fold_batchnorm", "batchnorm_names", "max_relative_error"]


@dataclass
class FoldReport:
    """What :func:`fold_batchnorm` did: ``(bn_name, conv_name)`` pairs folded and BN modules left."""

    folded: List[Tuple[str, str]] = field(default_factory=list)
    remaining: List[str] = field(default_factory=list)

    @property
    def num_folded(self) -> int:
        return len(self.folded)

    @property
    def num_remaining(self) -> int:
        return len(self.remaining)

    def summary(self) -> str:
        """One line: counts and the names of the BNs that remain."""
        left = ", ".join(self.remaining) if self.remaining else "none"
        return f"folded {self.num_folded} BatchNorm layers into convolutions; {self.num_remaining} remain: {left}"


def batchnorm_names(model: nn.Module) -> List[str]:
    """Qualified names of every BatchNorm module in ``model``."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _activation_after(bn: nn.BatchNorm2d) -> nn.Module:
    """What remains of a (timm ``BatchNormAct2d``) BN once its affine part has moved into a conv."""
    if isinstance(bn, BatchNormAct2d):
        parts = [m for m in (bn.drop, bn.act) if not isinstance(m, nn.Identity)]
        if not parts:
            return nn.Identity()
        return parts[0] if len(parts) == 1 else nn.Sequential(*parts)
    return nn.Identity()


def _check_foldable(bn: nn.BatchNorm2d, name: str) -> None:
    if not bn.track_running_stats or bn.running_mean is None or bn.running_var is None:
        raise InputError(f"{name}: BatchNorm without running statistics cannot be folded")


def _fused_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A copy of ``conv`` whose weight and bias include ``bn`` (computed in float64)."""
    if conv.out_channels != bn.num_features:
        raise InputError(f"conv has {conv.out_channels} output channels but the BN {bn.num_features} features")
    fused = copy.deepcopy(conv)
    if fused.bias is None:
        fused.bias = nn.Parameter(torch.zeros(conv.out_channels, device=conv.weight.device, dtype=conv.weight.dtype))
    w, b = fuse_conv_bn_weights(
        conv.weight.detach().double(),
        None if conv.bias is None else conv.bias.detach().double(),
        bn.running_mean.double(),
        bn.running_var.double(),
        bn.eps,
        None if bn.weight is None else bn.weight.detach().double(),
        None if bn.bias is None else bn.bias.detach().double(),
    )
    with torch.no_grad():
        fused.weight.copy_(w.to(conv.weight.dtype))
        fused.bias.copy_(b.to(fused.bias.dtype))
    fused.weight.requires_grad_(conv.weight.requires_grad)
    fused.bias.requires_grad_(conv.weight.requires_grad)
    return fused


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _fold_head_input(model: nn.Module, report: FoldReport) -> None:
    """Fold ``head.conv.bn`` of a DAPPM/PPM segmentation model backwards into the convs summed into it.

    The head's input is ``resize(context(low)) + high_res`` where ``high_res`` is the high-res
    bottleneck's ``conv3(...) + downsample(...)`` and the context output ends in convs
    (DAPPM: ``compression + shortcut``; PPM: ``compression``; none: ``shortcut``). A per-channel
    affine ``s*v + t`` of that sum is ``resize(s*c) + s*h + t``: scale every summed conv by
    ``s`` and add ``t`` once (to ``conv3``'s bias).
    """
    if not isinstance(model, DDRNetSegmentation):
        raise InputError("fold_head_input=True needs a DDRNetSegmentation model")
    bn = model.head.conv.bn
    if not isinstance(bn, nn.BatchNorm2d):
        return  # already folded
    _check_foldable(bn, "head.conv.bn")
    bottleneck = model.backbone.high_res_bottleneck
    if bottleneck.final_act:
        raise InputError("the high-resolution bottleneck ends with ReLU; head.conv.bn cannot be folded into it")
    targets = [("backbone.high_res_bottleneck.conv3.conv", bottleneck.conv3.conv)]
    if bottleneck.downsample is not None:
        targets.append(("backbone.high_res_bottleneck.downsample.conv", bottleneck.downsample.conv))
    for attr in ("compression", "shortcut"):
        unit = getattr(model.context, attr, None)
        if unit is not None:
            targets.append((f"context.{attr}.conv", unit.conv))
    for name, conv in targets:
        if not isinstance(conv, nn.Conv2d):
            raise InputError(f"{name} is {type(conv).__name__}, expected Conv2d")
    with torch.no_grad():
        inv_std = torch.rsqrt(bn.running_var.double() + bn.eps)
        gamma = torch.ones_like(inv_std) if bn.weight is None else bn.weight.double()
        beta = torch.zeros_like(inv_std) if bn.bias is None else bn.bias.double()
        scale = gamma * inv_std
        shift = beta - bn.running_mean.double() * scale
        for i, (_, conv) in enumerate(targets):
            w = conv.weight.double() * scale.view(-1, 1, 1, 1)
            conv.weight.copy_(w.to(conv.weight.dtype))
            if conv.bias is not None:
                conv.bias.copy_((conv.bias.double() * scale + (shift if i == 0 else 0)).to(conv.bias.dtype))
            elif i == 0:
                conv.bias = nn.Parameter(shift.to(conv.weight.dtype), requires_grad=conv.weight.requires_grad)
    model.head.conv.bn = _activation_after(bn)
    report.folded.append(("head.conv.bn", ", ".join(name for name, _ in targets)))


def fold_batchnorm(model: nn.Module, inplace: bool = False, fold_head_input: bool = False) -> nn.Module:
    """Fold every BatchNorm that directly follows a convolution into it; returns the model in eval mode.

    The result computes the same eval-mode function (within float rounding) with fewer
    layers; it is meant for inference only. ``model.fold_report`` (a :class:`FoldReport`)
    lists the folded pairs and the BatchNorms that remain (see the module docstring for
    which and why). With ``inplace=False`` (default) ``model`` is left untouched.

    Args:
        model: any module; DDRNet backbones and segmentation models fold completely except
            for their pre-activation BNs.
        inplace: modify ``model`` itself instead of a deep copy.
        fold_head_input: also fold the main head's input BN backwards (segmentation models;
            exact for the logits, but the backbone's ``high_res`` features change scale).
    """
    if not isinstance(model, nn.Module):
        raise InputError(f"model must be an nn.Module, got {type(model).__name__}")
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()

    report = FoldReport()
    for prefix, module in list(model.named_modules()):
        if isinstance(module, ConvNormAct):
            bn = module.bn
            if isinstance(bn, nn.BatchNorm2d) and isinstance(module.conv, nn.Conv2d):
                _check_foldable(bn, _join(prefix, "bn"))
                module.conv = _fused_conv(module.conv, bn)
                module.bn = _activation_after(bn)
                report.folded.append((_join(prefix, "bn"), _join(prefix, "conv")))
        elif isinstance(module, SegmentationHead):
            bn, conv = module.classifier.bn, module.conv.conv
            if isinstance(bn, nn.BatchNorm2d) and isinstance(conv, nn.Conv2d):
                _check_foldable(bn, _join(prefix, "classifier.bn"))
                module.conv.conv = _fused_conv(conv, bn)
                module.classifier.bn = _activation_after(bn)
                report.folded.append((_join(prefix, "classifier.bn"), _join(prefix, "conv.conv")))
        elif isinstance(module, nn.Sequential):
            children = list(module.named_children())
            for (cname, conv), (bname, bn) in zip(children, children[1:]):
                if isinstance(conv, nn.Conv2d) and type(bn) in (nn.BatchNorm2d, BatchNormAct2d):
                    _check_foldable(bn, _join(prefix, bname))
                    setattr(module, cname, _fused_conv(conv, bn))
                    setattr(module, bname, _activation_after(bn))
                    report.folded.append((_join(prefix, bname), _join(prefix, cname)))
    if fold_head_input:
        _fold_head_input(model, report)
    report.remaining = batchnorm_names(model)
    model.fold_report = report
    return model


def max_relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max|a - b| / max|b|`` in float64 (the error measure used for folding and export checks)."""
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))

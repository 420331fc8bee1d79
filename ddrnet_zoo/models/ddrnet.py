"""DDRNet dual-resolution backbones (paper Sec. III-B, Tables I and II) in timm's model registry.

One definition serves every variant; a variant is a :class:`DDRNetArch` (data).

Layout (strides relative to the input)::

    stem            two 3x3 stride-2 convs (conv1 and the first conv of conv2)     1/4
    stage2          basic blocks of conv2                                          1/4
    stage3          basic blocks of conv3                                          1/8
    bilateral[k]    conv4 (one or two fusions) and conv5_1: a low_res stage,
                    a high_res stage and a bilateral_fusion (Eq. 1, Fig. 3)        1/8 and 1/16, 1/32
    high_res_bottleneck / low_res_bottleneck   the "RBB" blocks                   1/8 and 1/32 (1/64)
    final_fusion    conv5_2's high-to-low fusion (classification only)             1/32
    conv_head       conv5_2's 1x1 conv, then global pool and fc
"""

from dataclasses import asdict, dataclass, fields
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import ConvNormAct, create_classifier, get_device_dtype
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._builder import resolve_pretrained_cfg
from timm.models._features import FeatureInfo, feature_take_indices
from timm.models._manipulate import checkpoint
from torch import nn

from ..errors import InputError
from ..io import CheckpointError
from ..layouts import detect_layout, original_keys, read_shapes, unwrap_state_dict
from ..published import HF_HUB_ORG, PUBLISHED_HUB_IDS, check_published
from ..text import brief, listing
from .layers import Bottleneck, check_count, check_image_batch, make_stage, resize_to

__all__ = [
    "DDRNet",
    "DDRNetArch",
    "DualResolutionFeatures",
    "DualResolutionFeatureNet",
    "DilationPlan",
    "HUB_WEIGHT_TAGS",
    "MODEL_ARCHS",
    "OUTPUT_STRIDES",
    "arch_dict",
    "arch_from_dict",
    "checkpoint_filter_fn",
    "create_ddrnet",
    "pretrained_hub_id",
]


@dataclass(frozen=True)
class DDRNetArch:
    """Architecture of one DDRNet variant.

    Channel widths follow the paper from one number, ``width`` (the stem width; ``planes``
    in the original code): high-resolution branch ``2*width``, low-resolution branch
    ``4*width`` in conv4 and ``8*width`` in conv5_1, bottlenecks ``4*width`` (high) and
    ``16*width`` (low).
    """

    width: int
    depths: Tuple[int, int, int, int]
    """Residual blocks in conv2, conv3, conv4 and conv5_1 (each branch of conv4/conv5_1)."""
    conv4_fusions: int = 1
    """Bilateral fusions inside conv4; DDRNet-39 splits conv4 in two and fuses after each half."""
    head_width: int = 1024
    """Width of conv5_2's 1x1 convolution before global pooling (classification)."""
    seg_head_width: int = 64
    """Width of the 3x3 convolution in the segmentation and auxiliary heads (paper Sec. III-D)."""
    context_width: int = 128
    """Width of each DAPPM / PPM branch."""

    def __post_init__(self) -> None:
        if self.depths[2] % self.conv4_fusions:
            raise InputError(f"conv4 depth {self.depths[2]} does not split into {self.conv4_fusions} fusions")

    @property
    def high_width(self) -> int:
        """Channels of the high-resolution branch."""
        return 2 * self.width

    @property
    def high_out_width(self) -> int:
        """Channels of the high-resolution branch after its bottleneck (== context output width)."""
        return 4 * self.width

    @property
    def low_out_width(self) -> int:
        """Channels of the low-resolution branch after its bottleneck."""
        return 16 * self.width


MODEL_ARCHS: Dict[str, DDRNetArch] = {
    # Table I
    "ddrnet23_slim": DDRNetArch(width=32, depths=(2, 2, 2, 2), head_width=1024, seg_head_width=64),
    "ddrnet23": DDRNetArch(width=64, depths=(2, 2, 2, 2), head_width=2048, seg_head_width=128),
    # Table II
    "ddrnet39": DDRNetArch(width=64, depths=(3, 4, 6, 3), conv4_fusions=2, head_width=2048, seg_head_width=256),
    # Table VII "DDRNet-39 1.5x" (70.2M params, 303.0 GFLOPs at 1024x1024): the paper gives no
    # configuration. A grid search (docs/architecture.md) finds width 96 (1.5 x 64) with DAPPM
    # width 96 and head width 192 closest: 70.11M (-0.12%) and 304.64 GFLOPs (+0.54%).
    "ddrnet39_1_5x": DDRNetArch(
        width=96, depths=(3, 4, 6, 3), conv4_fusions=2, head_width=3072, seg_head_width=192, context_width=96
    ),
}


class DualResolutionFeatures(NamedTuple):
    """The two branch outputs as the segmentation model consumes them (before activation)."""

    high_res: torch.Tensor
    """High-resolution branch after its bottleneck, 1/8 of the input, ``4*width`` channels."""
    low_res: torch.Tensor
    """Low-resolution branch after its bottleneck, 1/32 (classification) or 1/64 (segmentation mode)."""
    aux: Optional[torch.Tensor] = None
    """High-resolution branch after the conv4 fusion (input of the auxiliary head), when asked for."""


class DilationPlan:
    """Strides of a branch that turn into dilations once ``output_stride`` is reached (timm's dilated ResNets).

    Each :meth:`step` asks for a stride and returns ``(stride, first_dilation, dilation)``: the stride
    to use, the dilation of the conv that would have strided and that of the convs after it.
    """

    def __init__(self, reduction: int, output_stride: Optional[int]) -> None:
        self.reduction = reduction
        self.dilation = 1
        self.output_stride = output_stride

    def step(self, stride: int) -> Tuple[int, int, int]:
        first_dilation = self.dilation
        if stride > 1 and self.output_stride is not None and self.reduction * stride > self.output_stride:
            self.dilation *= stride
            stride = 1
        else:
            self.reduction *= stride
        return stride, first_dilation, self.dilation


def high_to_low_chain(
    high_chs: int, low_chs: int, num_halvings: int, output_stride: Optional[int] = None, device=None, dtype=None
) -> nn.Sequential:
    """Stride-2 3x3 convs from the high branch (1/8) down to a low branch ``2**num_halvings`` coarser.

    Widths double at each step and end at ``low_chs``; ReLU between steps, none at the end.
    Past ``output_stride`` a step keeps the resolution and dilates instead.
    """
    chain, chs = [], high_chs
    plan = DilationPlan(8, output_stride)
    for i in range(num_halvings):
        out = low_chs // 2 ** (num_halvings - 1 - i)
        stride, dilation, _ = plan.step(2)
        chain.append(
            ConvNormAct(
                chs,
                out,
                3,
                stride=stride,
                dilation=dilation,
                apply_act=i < num_halvings - 1,
                device=device,
                dtype=dtype,
            )
        )
        chs = out
    return nn.Sequential(*chain)


class BilateralFusion(nn.Module):
    """Bilateral fusion (Eq. 1, Fig. 3): each branch adds the other, resampled.

    High-to-low: a chain of stride-2 3x3 convs (one per halving). Low-to-high: a 1x1
    compression conv, then bilinear upsampling. Both read the pre-fusion branch outputs;
    the ReLU of Eq. 1 is applied by the consumer of the fused maps. Pruning may remove a
    direction whose result no requested feature uses (``None``; that branch passes through).
    """

    def __init__(
        self,
        high_chs: int,
        low_chs: int,
        num_halvings: int,
        output_stride: Optional[int] = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.high_to_low = high_to_low_chain(high_chs, low_chs, num_halvings, output_stride, **dd)
        self.low_to_high = ConvNormAct(low_chs, high_chs, 1, apply_act=False, **dd)

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        fused_low = low
        if self.high_to_low is not None:
            fused_low = low + self.high_to_low(F.relu(high))
        fused_high = high
        if self.low_to_high is not None:
            fused_high = high + resize_to(self.low_to_high(F.relu(low)), high)
        return fused_high, fused_low


class BilateralStage(nn.Module):
    """One dual-resolution stage: a ``low_res`` and a ``high_res`` stage of basic blocks, then a fusion.

    ``low_plan`` (a :class:`DilationPlan`) places the low branch: its stride or dilation.
    """

    def __init__(
        self,
        low_in: int,
        low_out: int,
        high_chs: int,
        depth: int,
        low_stride: int,
        low_reduction: int,
        low_plan: Optional[DilationPlan] = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        low_plan = low_plan or DilationPlan(low_reduction // low_stride, None)
        output_stride = low_plan.output_stride
        stride, first_dilation, dilation = low_plan.step(low_stride)
        self.low_res = make_stage(
            low_in, low_out, depth, stride=stride, dilation=dilation, first_dilation=first_dilation, **dd
        )
        self.high_res = make_stage(high_chs, high_chs, depth, **dd)
        num_halvings = (low_reduction // 8).bit_length() - 1
        self.bilateral_fusion = BilateralFusion(high_chs, low_out, num_halvings, output_stride, **dd)

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Both branches (inputs before their ReLU) through their blocks, then fused."""
        low = self.low_res(F.relu(low))
        high = self.high_res(F.relu(high))
        return self.bilateral_fusion(high, low)


# Order in which the five pyramid levels are computed (the high branch's 1/8 output comes last
# but one, after conv5_1): used for early stopping and pruning.
_LEVEL_ORDER = (0, 1, 3, 2, 4)
OUTPUT_STRIDES = (8, 16, 32)


def _position(level: int) -> int:
    """Position of pyramid level ``level`` in the order of computation (a loop, for TorchScript)."""
    order: List[int] = [0, 1, 3, 2, 4]  # _LEVEL_ORDER as a list literal
    for i, computed in enumerate(order):
        if computed == level:
            return i
    return len(order) - 1


class DDRNet(nn.Module):
    """Deep Dual-resolution Network backbone and ImageNet classifier.

    Args:
        arch: the variant's architecture (see :data:`MODEL_ARCHS`).
        num_classes: classifier outputs (0 for none).
        in_chans: input channels.
        global_pool: timm pooling type for the classifier.
        drop_rate: dropout before the classifier.
        segmentation_mode: configure the two bottlenecks as the original segmentation code
            does: the low-resolution bottleneck has stride 2 (features at 1/64, the input of
            DAPPM) and neither bottleneck ends with ReLU. Weights have the same shapes in
            both modes. The classifier (conv5_2) cannot run in this mode.
        output_stride: deepest stride of the low-resolution branch, 8, 16 or 32 (as timm's
            dilated CNNs; default: no dilation, 1/32, or 1/64 in segmentation mode). Strides
            past it become dilations; weights are unchanged and ``feature_info`` follows.
        check_finite: refuse inputs with NaN or Inf in eager eval-mode forwards (costs a device
            sync per forward; skipped in training mode and under scripting, tracing and
            compiling). ``False`` skips it.
    """

    def __init__(
        self,
        arch: DDRNetArch,
        num_classes: int = 1000,
        in_chans: int = 3,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        segmentation_mode: bool = False,
        output_stride: Optional[int] = None,
        check_finite: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        if not isinstance(arch, DDRNetArch):
            raise InputError(f"arch must be a DDRNetArch, got {type(arch).__name__}")
        num_classes = check_count("num_classes", num_classes, 0)
        in_chans = check_count("in_chans", in_chans, 1)
        if output_stride is not None and output_stride not in OUTPUT_STRIDES:
            raise InputError(
                f"output_stride must be one of {OUTPUT_STRIDES} (or None for the undilated network), "
                f"got {output_stride!r}"
            )
        self.arch = arch
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.segmentation_mode = segmentation_mode
        self.output_stride = output_stride
        self.check_finite = bool(check_finite)
        self.grad_checkpointing = False
        c, hc = arch.width, arch.high_width

        self.stem = nn.Sequential(
            ConvNormAct(in_chans, c, 3, stride=2, bias=True, **dd),
            ConvNormAct(c, c, 3, stride=2, bias=True, **dd),
        )
        self.stage2 = make_stage(c, c, arch.depths[0], **dd)
        self.stage3 = make_stage(c, hc, arch.depths[1], stride=2, **dd)

        low_plan = DilationPlan(8, output_stride)  # the low branch leaves stage3 at 1/8
        stages = []
        conv4_depth = arch.depths[2] // arch.conv4_fusions
        for k in range(arch.conv4_fusions):
            stages.append(
                BilateralStage(hc if k == 0 else 4 * c, 4 * c, hc, conv4_depth, 2 if k == 0 else 1, 16, low_plan, **dd)
            )
        self.num_conv4_stages = arch.conv4_fusions
        conv4_reduction = low_plan.reduction
        stages.append(BilateralStage(4 * c, 8 * c, hc, arch.depths[3], 2, 32, low_plan, **dd))
        self.bilateral_stages = nn.ModuleList(stages)

        bottleneck_act = not segmentation_mode
        self.high_res_bottleneck = Bottleneck(hc, hc, final_act=bottleneck_act, **dd)
        stride, dilation, _ = low_plan.step(2 if segmentation_mode else 1)
        self.low_res_bottleneck = Bottleneck(
            8 * c, 8 * c, stride=stride, dilation=dilation, final_act=bottleneck_act, **dd
        )
        self.low_res_reduction = low_plan.reduction
        # conv5_2: high-to-low fusion into the 1/32 branch, then a 1x1 conv to head_width
        self.final_fusion = high_to_low_chain(arch.high_out_width, arch.low_out_width, 2, output_stride, **dd)
        self.conv_head = ConvNormAct(arch.low_out_width, arch.head_width, 1, **dd)
        self.num_features = self.head_hidden_size = arch.head_width
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool, **dd)
        self.head_drop = nn.Dropout(drop_rate)

        self.feature_info = [
            dict(num_chs=c, reduction=2, module="stem.0", branch="stem"),
            dict(num_chs=c, reduction=4, module="stage2", branch="stem"),
            dict(num_chs=arch.high_out_width, reduction=8, module="high_res_bottleneck", branch="high_res"),
            dict(
                num_chs=4 * c,
                reduction=conv4_reduction,
                module=f"bilateral_stages.{self.num_conv4_stages - 1}",
                branch="low_res",
            ),
            dict(
                num_chs=arch.low_out_width,
                reduction=self.low_res_reduction,
                module="low_res_bottleneck" if segmentation_mode else "final_fusion",
                branch="low_res",
            ),
        ]
        self._pruned_after = None  # pyramid level after which the network was pruned (an int), None: complete
        self._pruned_to_dual = False  # prune_to_dual: forward_dual only
        self.init_weights()

    # ------------------------------------------------------------------ init / timm API
    def init_weights(self) -> None:
        """Kaiming-normal convolutions, unit BN (the original code's initialisation)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m.weight.device.type != "meta":
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict:
        """Parameter groups in depth order, for layer-wise learning-rate decay (timm convention)."""
        if coarse:
            bilateral = r"^bilateral_stages\.(\d+)"
        else:
            bilateral = [
                (r"^bilateral_stages\.(\d+)\.(?:low_res|high_res)\.(\d+)", None),
                (r"^bilateral_stages\.(\d+)\.bilateral_fusion", (99999,)),
            ]
        return dict(
            stem=r"^stem",
            stage2=r"^stage2" if coarse else r"^stage2\.(\d+)",
            stage3=r"^stage3" if coarse else r"^stage3\.(\d+)",
            bilateral_stages=bilateral,
            bottlenecks=r"^(?:high_res|low_res)_bottleneck",
            head=r"^(?:final_fusion|conv_head)",
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each stage in the backward pass instead of storing its activations."""
        self.grad_checkpointing = enable

    def _checkpointing(self) -> bool:
        """Whether this forward recomputes stages in backward: checkpointing on and gradients enabled.

        Call sites keep ``not torch.jit.is_scripting() and`` literally before it: TorchScript skips a branch only
        on that literal, and ``checkpoint`` cannot be scripted.
        """
        return self.grad_checkpointing and torch.is_grad_enabled()

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """Replace the classifier with one for ``num_classes`` outputs (0 removes it).

        The new modules take the model's device, dtype and train/eval mode.
        """
        num_classes = check_count("num_classes", num_classes, 0)
        dd = get_device_dtype(self)
        self.num_classes = num_classes
        if global_pool is None:
            global_pool = self.global_pool.pool_type
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool, **dd)
        self.global_pool.train(self.training)
        self.fc.train(self.training)

    @property
    def min_input_size(self) -> int:
        """Smallest accepted input height/width: one pixel at the deepest stride."""
        return max(self.low_res_reduction, 8)

    # ------------------------------------------------------------------ forward
    @torch.jit.unused
    def _check_input(self, x: torch.Tensor) -> None:
        # training skips the finiteness check: it syncs with the host every step, and the loss shows bad data anyway
        check_image_batch(x, self.in_chans, self.min_input_size, check_finite=self.check_finite and not self.training)

    def _forward_levels(
        self, x: torch.Tensor, take: List[int], stop: int
    ) -> Tuple[Dict[int, torch.Tensor], Optional[torch.Tensor], Optional[torch.Tensor], Optional[torch.Tensor]]:
        """Run the network up to position ``stop`` of ``_LEVEL_ORDER``, collecting the levels in ``take``.

        Levels are after ReLU. Returns ``(levels, high, low, aux)`` where ``high``/``low`` are the
        branch outputs after the bottlenecks (pre-activation; ``stop >= 3``) and ``aux`` the high
        branch after conv4 (``stop >= 2``).
        """
        if not torch.jit.is_scripting():
            self._check_input(x)
        levels: Dict[int, torch.Tensor] = {}
        s = self.stem[0](x)
        if 0 in take:
            levels[0] = s
        if stop == 0:
            return levels, None, None, None
        s = self.stem[1](s)
        if not torch.jit.is_scripting() and self._checkpointing():
            s = checkpoint(self.stage2, s)
        else:
            s = self.stage2(s)
        if 1 in take:
            levels[1] = F.relu(s)
        if stop == 1:
            return levels, None, None, None
        if not torch.jit.is_scripting() and self._checkpointing():
            high = checkpoint(self.stage3, F.relu(s))
        else:
            high = self.stage3(F.relu(s))
        low = high
        aux: Optional[torch.Tensor] = None
        for k, stage in enumerate(self.bilateral_stages):
            if not torch.jit.is_scripting() and self._checkpointing():
                high, low = checkpoint(stage, high, low)
            else:
                high, low = stage(high, low)
            if k == self.num_conv4_stages - 1:
                aux = high
                if 3 in take:
                    levels[3] = F.relu(low)
        if stop == 2:
            return levels, None, None, aux
        if not torch.jit.is_scripting() and self._checkpointing():
            high = checkpoint(self.high_res_bottleneck, F.relu(high))
            low = checkpoint(self.low_res_bottleneck, F.relu(low))
        else:
            high = self.high_res_bottleneck(F.relu(high))
            low = self.low_res_bottleneck(F.relu(low))
        if 2 in take:
            levels[2] = F.relu(high)
        if 4 in take:
            if self.segmentation_mode:
                levels[4] = F.relu(low)
            elif not torch.jit.is_scripting() and self._checkpointing():
                levels[4] = F.relu(low + checkpoint(self.final_fusion, F.relu(high)))
            else:
                levels[4] = F.relu(low + self.final_fusion(F.relu(high)))
        return levels, high, low, aux

    def forward_dual(self, x: torch.Tensor, return_aux: bool = False) -> DualResolutionFeatures:
        """The two branches after their bottlenecks, as the segmentation model consumes them."""
        if not torch.jit.is_scripting() and self._pruned_after is not None and not self._pruned_to_dual:
            raise RuntimeError(
                f"this model was pruned to pyramid levels up to {self._pruned_after}; use forward_intermediates"
            )
        _, high, low, aux = self._forward_levels(x, [], 3)
        assert high is not None and low is not None
        return DualResolutionFeatures(high, low, aux if return_aux else None)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Classification features: conv5_2 output (``head_width`` channels at 1/32).

        After :meth:`prune_intermediate_layers`, the features end at the last kept pyramid level.
        """
        if not torch.jit.is_scripting():
            if self.segmentation_mode:
                raise RuntimeError(
                    "forward_features/forward run the ImageNet classifier, which does not exist in "
                    "segmentation_mode (the low branch is at 1/64); use forward_dual or forward_intermediates"
                )
            if self._pruned_to_dual:
                raise RuntimeError("this backbone was pruned to forward_dual (prune_to_dual); use forward_dual")
        level = 4
        pruned = self._pruned_after
        if pruned is not None:
            level = pruned
        levels, _, _, _ = self._forward_levels(x, [level], 4 if level == 4 else _position(level))
        x = levels[level]
        if not torch.jit.is_scripting() and self._checkpointing():
            return checkpoint(self.conv_head, x)
        return self.conv_head(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global pool, dropout and the linear classifier."""
        x = self.global_pool(x)
        x = self.head_drop(x)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Optional[Union[int, List[int]]] = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """The five-level pyramid (strides 2, 4, 8, 16, 32; see ``feature_info``).

        Level 0 is the first stem conv, 1 the conv2 stage, 2 the high-resolution branch
        after its bottleneck, 3 the low-resolution branch after conv4's fusion, 4 the
        low-resolution branch after conv5_2's fusion (after its bottleneck at 1/64 in
        segmentation mode). All levels are after ReLU.
        """
        if output_fmt != "NCHW":
            raise InputError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        take_indices, _ = _take_indices(indices)
        if not intermediates_only and (self.segmentation_mode or self._pruned_to_dual):
            raise RuntimeError(
                "final classification features do not exist in segmentation_mode or after prune_to_dual; "
                "pass intermediates_only=True"
            )
        want = take_indices if intermediates_only else sorted(set(take_indices) | {4})
        last = max(_position(i) for i in want)
        if self._pruned_after is not None and last > _position(self._pruned_after):
            raise InputError(
                f"this model was pruned to pyramid levels up to {self._pruned_after}; indices {take_indices} "
                "ask for later levels"
            )
        stop = last if stop_early or self._pruned_after is not None else 4
        levels, _, _, _ = self._forward_levels(x, want, stop)
        intermediates = [levels[i] for i in take_indices]
        if intermediates_only:
            return intermediates
        return self.conv_head(levels[4]), intermediates

    def prune_to_dual(self) -> None:
        """Remove conv5_2 (final fusion, conv head, classifier): what ``forward_dual`` does not use."""
        self.final_fusion = nn.Sequential()
        self.conv_head = nn.Identity()
        self.num_features = self.head_hidden_size = self.arch.low_out_width
        self._pruned_after = 2
        self._pruned_to_dual = True
        self.reset_classifier(0, "")

    def prune_intermediate_layers(
        self,
        indices: Union[int, List[int]] = 1,
        prune_norm: bool = False,
        prune_head: bool = True,
    ) -> List[int]:
        """Remove what the requested pyramid levels do not need; returns the absolute indices.

        With ``prune_head=False`` (and the last level) conv5_2's head and the classifier stay and
        the output is unchanged; otherwise ``forward_features`` ends at the last kept level.
        """
        take_indices, _ = _take_indices(indices)
        last_level = max(take_indices, key=_position)
        last = _position(last_level)
        if self._pruned_after is not None and last > _position(self._pruned_after):
            raise InputError(f"this model was already pruned to pyramid levels up to {self._pruned_after}")
        if last < _position(4):
            self.final_fusion = nn.Sequential()
            self.low_res_bottleneck = nn.Identity()
        if last == _position(2):  # the last fused low branch feeds nothing kept
            self.bilateral_stages[-1].bilateral_fusion.high_to_low = None
        if last < _position(2):  # levels 0, 1, 3: no bottlenecks, nothing after conv4
            self.high_res_bottleneck = nn.Identity()
            del self.bilateral_stages[self.num_conv4_stages :]
        if last == _position(3) and len(self.bilateral_stages):
            self.bilateral_stages[-1].bilateral_fusion.low_to_high = None
        if last < _position(3):  # levels 0, 1: no dual-resolution part
            del self.bilateral_stages[:]
            self.stage3 = nn.Sequential()
        if last == 0:
            self.stage2 = nn.Sequential()
            self.stem[1] = nn.Identity()
        if prune_head or last_level != 4:
            # conv5_2's head and the classifier read level 4 only
            self.conv_head = nn.Identity()
            self.num_features = self.head_hidden_size = self.feature_info[last_level]["num_chs"]
            self.reset_classifier(0, "")
        self._pruned_after = last_level
        return take_indices


def _take_indices(indices: Optional[Union[int, Sequence[int]]]) -> Tuple[List[int], int]:
    """timm's index normalisation with a clear error for out-of-range indices."""
    try:
        return feature_take_indices(5, indices)
    except AssertionError as e:
        raise InputError(f"invalid pyramid indices {indices!r}: DDRNet has 5 levels (0-4). {e}") from None


class DualResolutionFeatureNet(nn.Module):
    """``features_only=True, feature_cls='dual'``: returns :class:`DualResolutionFeatures`.

    ``high_res`` at 1/8 and ``low_res`` at 1/32 (classification mode) or 1/64
    (``segmentation_mode=True``), exactly as the segmentation model consumes them.
    """

    def __init__(self, model: DDRNet, out_indices: Sequence[int] = (0, 1), return_aux: bool = False) -> None:
        super().__init__()
        if tuple(out_indices) not in ((0, 1), (0, 1, 2, 3, 4)):
            raise InputError(
                f"feature_cls='dual' returns both branches; out_indices {tuple(out_indices)} is not supported"
            )
        model.prune_to_dual()
        self.model = model
        self.return_aux = return_aux
        arch = model.arch
        self.feature_info = FeatureInfo(
            [
                dict(num_chs=arch.high_out_width, reduction=8, module="model.high_res_bottleneck"),
                dict(num_chs=arch.low_out_width, reduction=model.low_res_reduction, module="model.low_res_bottleneck"),
            ],
            out_indices=(0, 1),
        )

    def forward(self, x: torch.Tensor) -> DualResolutionFeatures:
        return self.model.forward_dual(x, return_aux=self.return_aux)


def checkpoint_filter_fn(state_dict: dict, model: nn.Module) -> Dict[str, torch.Tensor]:
    """timm ``pretrained_filter_fn``: accept classification weights in our or the original layout.

    With it, ``timm.create_model('ddrnet23_slim', pretrained=True,
    pretrained_cfg_overlay=dict(file='DDRNet23s_imagenet.pth'))`` loads the official ImageNet file.
    Unknown keys are an error; the classifier is left to timm (which drops it when ``num_classes`` changes).
    """
    sd, _ = unwrap_state_dict(state_dict)
    layout = detect_layout(sd)
    if layout == "ours":
        return sd
    if read_shapes(sd, layout)["task"] != "classification":
        raise CheckpointError(
            f"a {layout}-layout segmentation checkpoint cannot initialise a classification backbone; load it with "
            "ddrnet_zoo.load_model (or convert it with ddrnet-convert)"
        )
    expected = model.state_dict()
    mapping = original_keys(expected, model.num_conv4_stages)
    inverse = {v: k for k, v in mapping.items()}
    unexpected = [k for k in sd if k not in inverse]
    missing = [v for k, v in mapping.items() if v not in sd and not k.endswith("num_batches_tracked")]
    missing = [k for k in missing if not k.startswith("linear.")]
    if unexpected or missing:
        raise CheckpointError(
            f"{layout}-layout checkpoint does not match {type(model).__name__}: missing {listing(missing)}; "
            f"unexpected {listing(unexpected)}"
        )
    out = {inverse[k]: v for k, v in sd.items()}
    for k in mapping:
        if k.endswith("num_batches_tracked") and k not in out:
            out[k] = torch.zeros_like(expected[k], device="cpu")
    return out


def pretrained_hub_id(name: str) -> Optional[str]:
    """The Hub id of the weights of pretrained tag ``name`` (``arch.tag``, or ``arch`` for its default tag),
    published or not; None for a tag without Hub weights (``ddrnet39_1_5x``)."""
    if "." not in name:
        tags = [t for t in HUB_WEIGHT_TAGS if t.split(".", 1)[0] == name]
        name = tags[0] if tags else name
    return f"{HF_HUB_ORG}/{name}" if name in HUB_WEIGHT_TAGS else None


def _pretrained_source(variant: str, kwargs: dict) -> None:
    """``pretrained=True``: fail fast on unpublished ddrnet_zoo weights; point timm at the Hub cache for cached ones.

    A tag whose weights are not published has no weight source in its timm cfg (so that
    ``timm.list_models(pretrained=True)`` does not list it); it is given its Hub id here when the local
    Hub cache has the repository, and raises :class:`WeightsNotPublishedError` otherwise.
    """
    overlay = dict(kwargs.get("pretrained_cfg_overlay") or {})
    cfg = resolve_pretrained_cfg(variant, pretrained_cfg=kwargs.get("pretrained_cfg"), pretrained_cfg_overlay=overlay)
    cfg = cfg.to_dict()
    if cfg.get("state_dict") or cfg.get("file") or cfg.get("url") or cfg.get("source") == "local-dir":
        return
    hub_id = cfg.get("hf_hub_id")
    if not hub_id:
        hub_id = pretrained_hub_id(f"{cfg.get('architecture')}.{cfg.get('tag')}")
        if hub_id is None:
            return  # no weights anywhere: timm warns and initialises randomly, as for any of its models
    check_published(
        hub_id,
        "timm.create_model('local-dir:{folder}', pretrained=True)",
        f"the original file directly: timm.create_model({variant!r}, pretrained=True, "
        "pretrained_cfg_overlay=dict(file=PATH))",
        "without these weights: pretrained=False (pretrained_backbone=False for create_segmentation_model)",
        cache_dir=kwargs.get("cache_dir"),
    )
    if not cfg.get("hf_hub_id"):
        kwargs["pretrained_cfg_overlay"] = {**overlay, "hf_hub_id": hub_id}


def _create_ddrnet(variant: str, pretrained: bool = False, **kwargs) -> nn.Module:
    if pretrained:
        _pretrained_source(variant, kwargs)
    arch = kwargs.pop("arch", None) or MODEL_ARCHS[variant]
    if isinstance(arch, Mapping):  # model_args of a Hub config.json (custom widths)
        arch = arch_from_dict(arch)
    feature_cfg = dict(feature_cls="getter")
    if kwargs.get("features_only") and str(kwargs.get("feature_cls", "")).lower() == "dual":
        kwargs["feature_cls"] = DualResolutionFeatureNet
        kwargs.setdefault("out_indices", (0, 1))
        if "return_aux" in kwargs:
            feature_cfg["return_aux"] = kwargs.pop("return_aux")
    return build_model_with_cfg(
        DDRNet,
        variant,
        pretrained,
        arch=arch,
        feature_cfg=feature_cfg,
        pretrained_filter_fn=checkpoint_filter_fn,
        **kwargs,
    )


def create_ddrnet(variant: str, pretrained: bool = False, **kwargs) -> nn.Module:
    """Build a registered DDRNet variant (same as ``timm.create_model(variant, ...)``)."""
    if variant not in MODEL_ARCHS:
        raise InputError(f"unknown DDRNet variant {variant!r}; available: {', '.join(MODEL_ARCHS)}")
    return _create_ddrnet(variant, pretrained, **kwargs)


def _cfg(**kwargs) -> dict:
    return {
        "url": "",
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": (7, 7),
        "crop_pct": 0.875,
        "interpolation": "bilinear",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "stem.0.conv",
        "classifier": "fc",
        "license": "mit",
        "paper_ids": "arXiv:2101.06085",
        "paper_name": "Deep Dual-resolution Networks for Real-time and Accurate Semantic Segmentation of Road Scenes",
        "origin_url": "https://github.com/ydhongHIT/DDRNet",
        **kwargs,
    }


HUB_WEIGHT_TAGS = ("ddrnet23_slim.in1k", "ddrnet23.in1k", "ddrnet39.in1k")
"""Pretrained tags whose weights (the original release's ImageNet-1k weights, converted) ``scripts/push_to_hub.py``
publishes at ``HF_HUB_ORG/<tag>``; see :func:`pretrained_hub_id`."""


def _hub_cfg(name: str) -> dict:
    """The cfg of pretrained tag ``name``: with its Hub id once published (then timm lists it as pretrained).

    Unpublished, it has no weight source, as timm lists only tags whose weights can be had;
    ``pretrained=True`` then uses the local Hub cache or fails fast, saying what to do (:func:`_pretrained_source`).
    """
    hub_id = f"{HF_HUB_ORG}/{name}"
    if hub_id in PUBLISHED_HUB_IDS:
        return _cfg(hf_hub_id=hub_id)
    return _cfg(notes=(f"weights not published yet: {hub_id} (docs/weights.md)",))


default_cfgs = generate_default_cfgs(
    {
        **{name: _hub_cfg(name) for name in HUB_WEIGHT_TAGS},
        "ddrnet39_1_5x": _cfg(),
    }
)


@register_model
def ddrnet23_slim(pretrained: bool = False, **kwargs) -> DDRNet:
    """DDRNet-23-slim (Table I; 7.57M params, 0.98 GFLOPs at 224)."""
    return _create_ddrnet("ddrnet23_slim", pretrained, **kwargs)


@register_model
def ddrnet23(pretrained: bool = False, **kwargs) -> DDRNet:
    """DDRNet-23 (Table I; 28.22M params, 3.88 GFLOPs at 224)."""
    return _create_ddrnet("ddrnet23", pretrained, **kwargs)


@register_model
def ddrnet39(pretrained: bool = False, **kwargs) -> DDRNet:
    """DDRNet-39 (Table II; 40.13M params, 6.95 GFLOPs at 224)."""
    return _create_ddrnet("ddrnet39", pretrained, **kwargs)


@register_model
def ddrnet39_1_5x(pretrained: bool = False, **kwargs) -> DDRNet:
    """DDRNet-39 1.5x (Table VII), a wider DDRNet-39; configuration reconstructed from its counts."""
    return _create_ddrnet("ddrnet39_1_5x", pretrained, **kwargs)


def arch_dict(arch: DDRNetArch) -> dict:
    """A JSON-serialisable form of ``arch`` (what :func:`arch_from_dict` reads)."""
    d = asdict(arch)
    d["depths"] = list(d["depths"])
    return d


def arch_from_dict(d: Mapping[str, object]) -> DDRNetArch:
    """The :class:`DDRNetArch` of a JSON form (``config.json``'s ``arch``, timm's ``model_args``), checked.

    JSON gives any type: unknown fields, and values that are not positive integers (``depths``: four of
    them), are an :class:`InputError` before any layer is built.
    """
    if not isinstance(d, Mapping):
        raise InputError(f"arch must be a mapping of DDRNetArch fields, got {type(d).__name__}")
    known = [f.name for f in fields(DDRNetArch)]
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise InputError(f"unknown arch fields {brief(unknown)}; known: {known}")
    out = {}
    for name, value in d.items():
        if name == "depths":
            ok = isinstance(value, (list, tuple)) and len(value) == 4
            if not ok or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value):
                raise InputError(f"arch.depths must be four positive integers, got {brief(value)}")
            out[name] = tuple(int(v) for v in value)
        else:
            out[name] = check_count(f"arch.{name}", value, 1)
    return DDRNetArch(**out)

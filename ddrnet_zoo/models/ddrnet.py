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

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import ConvNormAct, create_classifier, get_device_dtype
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._features import FeatureInfo, feature_take_indices
from timm.models._manipulate import checkpoint
from torch import nn

from .layers import Bottleneck, check_image_batch, make_stage, resize_to

__all__ = [
    "DDRNet",
    "DDRNetArch",
    "DualResolutionFeatures",
    "DualResolutionFeatureNet",
    "MODEL_ARCHS",
    "create_ddrnet",
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
            raise ValueError(f"conv4 depth {self.depths[2]} does not split into {self.conv4_fusions} fusions")

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


def high_to_low_chain(high_chs: int, low_chs: int, num_halvings: int, device=None, dtype=None) -> nn.Sequential:
    """Stride-2 3x3 convs from the high branch down to a low branch ``2**num_halvings`` coarser.

    Widths double at each step and end at ``low_chs``; ReLU between steps, none at the end.
    """
    chain, chs = [], high_chs
    for i in range(num_halvings):
        out = low_chs // 2 ** (num_halvings - 1 - i)
        chain.append(ConvNormAct(chs, out, 3, stride=2, apply_act=i < num_halvings - 1, device=device, dtype=dtype))
        chs = out
    return nn.Sequential(*chain)


class BilateralFusion(nn.Module):
    """Bilateral fusion (Eq. 1, Fig. 3): each branch adds the other, resampled.

    High-to-low: a chain of stride-2 3x3 convs (one per halving). Low-to-high: a 1x1
    compression conv, then bilinear upsampling. Both read the pre-fusion branch outputs;
    the ReLU of Eq. 1 is applied by the consumer of the fused maps.
    """

    def __init__(self, high_chs: int, low_chs: int, num_halvings: int, device=None, dtype=None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.high_to_low = high_to_low_chain(high_chs, low_chs, num_halvings, **dd)
        self.low_to_high = ConvNormAct(low_chs, high_chs, 1, apply_act=False, **dd)

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        fused_low = low + self.high_to_low(F.relu(high))
        fused_high = high + resize_to(self.low_to_high(F.relu(low)), high)
        return fused_high, fused_low


class BilateralStage(nn.Module):
    """One dual-resolution stage: a ``low_res`` and a ``high_res`` stage of basic blocks, then a fusion."""

    def __init__(
        self,
        low_in: int,
        low_out: int,
        high_chs: int,
        depth: int,
        low_stride: int,
        low_reduction: int,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.low_res = make_stage(low_in, low_out, depth, stride=low_stride, **dd)
        self.high_res = make_stage(high_chs, high_chs, depth, **dd)
        num_halvings = (low_reduction // 8).bit_length() - 1
        self.bilateral_fusion = BilateralFusion(high_chs, low_out, num_halvings, **dd)


# Order in which the five pyramid levels are computed (the high branch's 1/8 output comes last
# but one, after conv5_1): used for early stopping and pruning.
_LEVEL_ORDER = (0, 1, 3, 2, 4)


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
    """

    def __init__(
        self,
        arch: DDRNetArch,
        num_classes: int = 1000,
        in_chans: int = 3,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        segmentation_mode: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        if not isinstance(arch, DDRNetArch):
            raise TypeError(f"arch must be a DDRNetArch, got {type(arch).__name__}")
        self.arch = arch
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.segmentation_mode = segmentation_mode
        self.grad_checkpointing = False
        c, hc = arch.width, arch.high_width

        self.stem = nn.Sequential(
            ConvNormAct(in_chans, c, 3, stride=2, bias=True, **dd),
            ConvNormAct(c, c, 3, stride=2, bias=True, **dd),
        )
        self.stage2 = make_stage(c, c, arch.depths[0], **dd)
        self.stage3 = make_stage(c, hc, arch.depths[1], stride=2, **dd)

        stages = []
        conv4_depth = arch.depths[2] // arch.conv4_fusions
        for k in range(arch.conv4_fusions):
            stages.append(BilateralStage(hc if k == 0 else 4 * c, 4 * c, hc, conv4_depth, 2 if k == 0 else 1, 16, **dd))
        self.num_conv4_stages = arch.conv4_fusions
        stages.append(BilateralStage(4 * c, 8 * c, hc, arch.depths[3], 2, 32, **dd))
        self.bilateral_stages = nn.ModuleList(stages)

        bottleneck_act = not segmentation_mode
        self.high_res_bottleneck = Bottleneck(hc, hc, final_act=bottleneck_act, **dd)
        self.low_res_bottleneck = Bottleneck(
            8 * c, 8 * c, stride=2 if segmentation_mode else 1, final_act=bottleneck_act, **dd
        )
        self.low_res_reduction = 64 if segmentation_mode else 32
        # conv5_2: high-to-low fusion into the 1/32 branch, then a 1x1 conv to head_width
        self.final_fusion = high_to_low_chain(arch.high_out_width, arch.low_out_width, 2, **dd)
        self.conv_head = ConvNormAct(arch.low_out_width, arch.head_width, 1, **dd)
        self.num_features = self.head_hidden_size = arch.head_width
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool, **dd)
        self.head_drop = nn.Dropout(drop_rate)

        self.feature_info = [
            dict(num_chs=c, reduction=2, module="stem.0", branch="stem"),
            dict(num_chs=c, reduction=4, module="stage2", branch="stem"),
            dict(num_chs=arch.high_out_width, reduction=8, module="high_res_bottleneck", branch="high_res"),
            dict(num_chs=4 * c, reduction=16, module=f"bilateral_stages.{self.num_conv4_stages - 1}", branch="low_res"),
            dict(
                num_chs=arch.low_out_width,
                reduction=self.low_res_reduction,
                module="low_res_bottleneck" if segmentation_mode else "final_fusion",
                branch="low_res",
            ),
        ]
        self._pruned_after: Optional[int] = None  # pyramid level after which the network was pruned
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

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """Replace the classifier with one for ``num_classes`` outputs (0 removes it)."""
        dd = get_device_dtype(self)
        self.num_classes = num_classes
        if global_pool is None:
            global_pool = self.global_pool.pool_type
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool, **dd)

    @property
    def min_input_size(self) -> int:
        """Smallest accepted input height/width: one pixel at the deepest stride."""
        return self.low_res_reduction

    # ------------------------------------------------------------------ forward
    def _run(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
            return checkpoint(module, x)
        return module(x)

    def _fuse(self, stage: BilateralStage, high: torch.Tensor, low: torch.Tensor):
        low = self._run(stage.low_res, F.relu(low))
        high = self._run(stage.high_res, F.relu(high))
        if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
            return checkpoint(stage.bilateral_fusion, high, low)
        return stage.bilateral_fusion(high, low)

    def _forward_levels(self, x: torch.Tensor, take: Sequence[int], stop_early: bool, want_dual: bool):
        """Run the network, collecting the requested pyramid levels (post-ReLU).

        Returns ``(levels, high, low, aux)`` where ``high``/``low`` are the branch outputs
        after the bottlenecks (pre-activation) and ``aux`` the high branch after conv4.
        """
        check_image_batch(x, self.in_chans, self.min_input_size)
        levels: Dict[int, torch.Tensor] = {}
        remaining = set(take)

        def tap(idx: int, t: torch.Tensor) -> bool:
            if idx in remaining:
                levels[idx] = t
                remaining.discard(idx)
            return stop_early and not remaining and not want_dual

        s = self.stem[0](x)
        if tap(0, s):
            return levels, None, None, None
        s = self._run(self.stage2, self.stem[1](s))
        if tap(1, F.relu(s)):
            return levels, None, None, None
        low = high = self._run(self.stage3, F.relu(s))
        aux = None
        for k, stage in enumerate(self.bilateral_stages):
            high, low = self._fuse(stage, high, low)
            if k == self.num_conv4_stages - 1:
                aux = high
                if tap(3, F.relu(low)):
                    return levels, None, None, aux
        high = self._run(self.high_res_bottleneck, F.relu(high))
        low = self._run(self.low_res_bottleneck, F.relu(low))
        if tap(2, F.relu(high)):
            return levels, high, low, aux
        if 4 in remaining:
            if self.segmentation_mode:
                levels[4] = F.relu(low)
            else:
                levels[4] = F.relu(low + self._run(self.final_fusion, F.relu(high)))
        return levels, high, low, aux

    def forward_dual(self, x: torch.Tensor, return_aux: bool = False) -> DualResolutionFeatures:
        """The two branches after their bottlenecks, as the segmentation model consumes them."""
        _, high, low, aux = self._forward_levels(x, (), stop_early=False, want_dual=True)
        return DualResolutionFeatures(high, low, aux if return_aux else None)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Classification features: conv5_2 output (``head_width`` channels at 1/32)."""
        if self.segmentation_mode:
            raise RuntimeError(
                "forward_features/forward run the ImageNet classifier, which does not exist in "
                "segmentation_mode (the low branch is at 1/64); use forward_dual or forward_intermediates"
            )
        if self._pruned_after is not None and self._pruned_after < 4:
            raise RuntimeError(
                f"this model was pruned to pyramid levels up to {self._pruned_after}; use forward_intermediates"
            )
        levels, _, _, _ = self._forward_levels(x, (4,), stop_early=False, want_dual=False)
        return self._run(self.conv_head, levels[4])

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
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        take_indices, _ = _take_indices(indices)
        if not intermediates_only and self.segmentation_mode:
            raise RuntimeError(
                "final classification features do not exist in segmentation_mode; pass intermediates_only=True"
            )
        want = take_indices if intermediates_only else sorted(set(take_indices) | {4})
        levels, _, _, _ = self._forward_levels(x, want, stop_early=stop_early and intermediates_only, want_dual=False)
        intermediates = [levels[i] for i in take_indices]
        if intermediates_only:
            return intermediates
        return self._run(self.conv_head, levels[4]), intermediates

    def prune_to_dual(self) -> None:
        """Remove conv5_2 (final fusion, conv head, classifier): what ``forward_dual`` does not use."""
        self.final_fusion = nn.Sequential()
        self.conv_head = nn.Identity()
        self.num_features = self.head_hidden_size = self.arch.low_out_width
        self._pruned_after = 2
        self.reset_classifier(0, "")

    def prune_intermediate_layers(
        self,
        indices: Union[int, List[int]] = 1,
        prune_norm: bool = False,
        prune_head: bool = True,
    ) -> List[int]:
        """Remove what the requested pyramid levels do not need; returns the absolute indices."""
        take_indices, _ = _take_indices(indices)
        last = max(_LEVEL_ORDER.index(i) for i in take_indices)
        last_level = _LEVEL_ORDER[last]
        if last_level != 4:
            self.final_fusion = nn.Sequential()
        if 4 not in take_indices:
            self.low_res_bottleneck = nn.Identity()
        if last < _LEVEL_ORDER.index(2):  # levels 0, 1, 3 only: no bottlenecks
            self.high_res_bottleneck = nn.Identity()
        if last < _LEVEL_ORDER.index(3):  # levels 0, 1: no dual-resolution part
            del self.bilateral_stages[:]
            self.stage3 = nn.Sequential()
        if last == 0:
            self.stage2 = nn.Sequential()
            self.stem[1] = nn.Identity()
        # conv_head and classifier are only reachable through forward_features
        self.conv_head = nn.Identity()
        self.num_features = self.head_hidden_size = self.feature_info[last_level]["num_chs"]
        self._pruned_after = last_level
        self.reset_classifier(0, "")
        return take_indices


def _take_indices(indices: Optional[Union[int, Sequence[int]]]) -> Tuple[List[int], int]:
    """timm's index normalisation with a clear error for out-of-range indices."""
    try:
        return feature_take_indices(5, indices)
    except AssertionError as e:
        raise ValueError(f"invalid pyramid indices {indices!r}: DDRNet has 5 levels (0-4). {e}") from None


class DualResolutionFeatureNet(nn.Module):
    """``features_only=True, feature_cls='dual'``: returns :class:`DualResolutionFeatures`.

    ``high_res`` at 1/8 and ``low_res`` at 1/32 (classification mode) or 1/64
    (``segmentation_mode=True``), exactly as the segmentation model consumes them.
    """

    def __init__(self, model: DDRNet, out_indices: Sequence[int] = (0, 1), return_aux: bool = False) -> None:
        super().__init__()
        if tuple(out_indices) not in ((0, 1), (0, 1, 2, 3, 4)):
            raise ValueError(
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


def _checkpoint_filter_fn(state_dict: dict, model: nn.Module) -> dict:
    """timm pretrained filter: also accept the original release's ImageNet layout (see ddrnet_zoo.convert)."""
    from ..convert import checkpoint_filter_fn

    return checkpoint_filter_fn(state_dict, model)


def _create_ddrnet(variant: str, pretrained: bool = False, **kwargs) -> nn.Module:
    arch = kwargs.pop("arch", None) or MODEL_ARCHS[variant]
    if isinstance(arch, dict):  # model_args of a Hub config.json (custom widths)
        arch = DDRNetArch(**{k: tuple(v) if k == "depths" else v for k, v in arch.items()})
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
        pretrained_filter_fn=_checkpoint_filter_fn,
        **kwargs,
    )


def create_ddrnet(variant: str, pretrained: bool = False, **kwargs) -> nn.Module:
    """Build a registered DDRNet variant (same as ``timm.create_model(variant, ...)``)."""
    if variant not in MODEL_ARCHS:
        raise ValueError(f"unknown DDRNet variant {variant!r}; available: {', '.join(MODEL_ARCHS)}")
    return _create_ddrnet(variant, pretrained, **kwargs)


HF_HUB_ORG = "ddrnet-zoo"


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


default_cfgs = generate_default_cfgs(
    {
        # ImageNet-1k weights of the original release, converted (published by scripts/push_to_hub.py)
        "ddrnet23_slim.in1k": _cfg(hf_hub_id=f"{HF_HUB_ORG}/ddrnet23_slim.in1k"),
        "ddrnet23.in1k": _cfg(hf_hub_id=f"{HF_HUB_ORG}/ddrnet23.in1k"),
        "ddrnet39.in1k": _cfg(hf_hub_id=f"{HF_HUB_ORG}/ddrnet39.in1k"),
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
    """A JSON-serialisable form of ``arch``."""
    d = asdict(arch)
    d["depths"] = list(d["depths"])
    return d

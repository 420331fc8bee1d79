"""The DDRNet family through timm's API: registry, classification, features_only, segmentation, bad input."""

from __future__ import annotations

import pytest
import timm
import torch
from conftest import TINY_ARCH_23, TINY_ARCH_39

import ddrnet_zoo
import ddrnet_zoo.models.ddrnet as ddrnet_module
from ddrnet_zoo.flops import count_params
from ddrnet_zoo.models import DDRNet, DDRNetSegmentation, create_segmentation_model
from ddrnet_zoo.models.ddrnet import HUB_WEIGHT_TAGS, pretrained_hub_id
from ddrnet_zoo.published import PUBLISHED_HUB_IDS

VARIANTS = ["ddrnet23_slim", "ddrnet23", "ddrnet39"]


def tiny(arch=TINY_ARCH_23, **kw) -> DDRNet:
    return timm.create_model("ddrnet23_slim", arch=arch, **kw)


def tiny_seg(arch=TINY_ARCH_23, **kw) -> DDRNetSegmentation:
    return create_segmentation_model("ddrnet23_slim", arch=arch, **kw)


# ----------------------------------------------------------------------------- registry / classification


def test_registry_lists_variants():
    assert set(timm.list_models("ddrnet*")) == {*VARIANTS, "ddrnet39_1_5x"}
    cfg = timm.get_pretrained_cfg("ddrnet23_slim.in1k")
    assert cfg.first_conv == "stem.0.conv" and cfg.classifier == "fc" and cfg.input_size == (3, 224, 224)
    assert cfg.license == "mit" and "2101.06085" in cfg.paper_ids


def test_pretrained_listing_names_only_weights_that_can_be_had(monkeypatch):
    """timm lists a tag as pretrained only once its weights are published (issue 22, point 1)."""
    published = {tag for tag in HUB_WEIGHT_TAGS if pretrained_hub_id(tag) in PUBLISHED_HUB_IDS}
    assert set(timm.list_models("ddrnet*", pretrained=True)) == published
    assert set(timm.list_pretrained("ddrnet*")) == published
    for tag in HUB_WEIGHT_TAGS:
        cfg = timm.get_pretrained_cfg(tag)
        assert cfg.tag == "in1k" and pretrained_hub_id(tag) == f"ddrnet-zoo/{tag}"
        if tag not in published:  # no weight source, and a note of where the weights will be
            assert not cfg.has_weights
            assert cfg.notes == (f"weights not published yet: ddrnet-zoo/{tag} (docs/weights.md)",)
    assert pretrained_hub_id("ddrnet39") == "ddrnet-zoo/ddrnet39.in1k" and pretrained_hub_id("ddrnet39_1_5x") is None
    # once its id is published, the tag's cfg carries it, and timm counts it as weights
    monkeypatch.setattr(ddrnet_module, "PUBLISHED_HUB_IDS", frozenset({"ddrnet-zoo/ddrnet23.in1k"}))
    cfgs = timm.models.generate_default_cfgs({t: ddrnet_module._hub_cfg(t) for t in HUB_WEIGHT_TAGS})
    assert cfgs["ddrnet23"].is_pretrained and cfgs["ddrnet23"].cfgs["in1k"].hf_hub_id == "ddrnet-zoo/ddrnet23.in1k"
    assert not cfgs["ddrnet39"].is_pretrained


@pytest.mark.parametrize("name,params", [("ddrnet23_slim", 7.57), ("ddrnet23", 28.22), ("ddrnet39", 40.13)])
def test_classification_params_match_table_iii(name, params):
    with torch.device("meta"):
        model = timm.create_model(name)
    assert count_params(model) / 1e6 == pytest.approx(params, abs=0.005)
    assert model.feature_info[-1]["reduction"] == 32


def test_create_model_kwargs_and_head_api():
    model = tiny(num_classes=7, in_chans=1, drop_rate=0.25).eval()
    x = torch.randn(2, 1, 64, 96)
    assert model(x).shape == (2, 7)
    assert model.get_classifier().out_features == 7 and model.head_drop.p == 0.25
    feats = model.forward_features(x)
    assert feats.shape == (2, TINY_ARCH_23.head_width, 2, 3)
    assert model.forward_head(feats, pre_logits=True).shape == (2, model.num_features)
    torch.testing.assert_close(model.forward_head(feats), model(x))
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)
    model.reset_classifier(0)
    assert model(x).shape == (2, TINY_ARCH_23.head_width)


def test_group_matcher_covers_every_parameter_in_depth_order():
    model = timm.create_model("ddrnet39", arch=TINY_ARCH_39)
    groups = timm.models.group_parameters(model, model.group_matcher())
    names = [n for group in groups.values() for n in group]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())
    order = list(groups.values())
    assert order[0][0].startswith("stem") and order[-1] == ["fc.weight", "fc.bias"]
    coarse = timm.models.group_parameters(model, model.group_matcher(coarse=True))
    assert len(coarse) < len(groups)


def test_grad_checkpointing_gives_the_same_gradients():
    model = tiny(num_classes=4).train()
    x = torch.randn(2, 3, 64, 64)
    grads = []
    for enable in (False, True):
        model.zero_grad()
        model.set_grad_checkpointing(enable)
        torch.manual_seed(0)
        model(x).square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-5, atol=1e-6, msg=n)


# ----------------------------------------------------------------------------- features


def test_features_only_pyramid():
    model = timm.create_model("ddrnet23_slim", features_only=True)
    assert model.feature_info.reduction() == [2, 4, 8, 16, 32]
    assert model.feature_info.channels() == [32, 32, 128, 128, 512]
    feats = model(torch.randn(1, 3, 128, 160))
    assert [tuple(f.shape) for f in feats] == [
        (1, 32, 64, 80),
        (1, 32, 32, 40),
        (1, 128, 16, 20),
        (1, 128, 8, 10),
        (1, 512, 4, 5),
    ]
    assert all((f >= 0).all() for f in feats)  # post-ReLU
    assert not hasattr(model.model, "fc") or model.model.num_classes == 0


def test_features_match_forward_intermediates_and_prune_only_what_is_unused():
    full = tiny().eval()
    x = torch.randn(1, 3, 96, 128)
    final, inter = full.forward_intermediates(x)
    torch.testing.assert_close(final, full.forward_features(x))
    for out_indices in [(0, 1), (2, 3), (1, 4), (3,), (0, 1, 2, 3, 4)]:
        feat = tiny(features_only=True, out_indices=out_indices).eval()
        feat.model.load_state_dict(full.state_dict(), strict=False)
        outs = feat(x)
        assert feat.feature_info.reduction() == [[2, 4, 8, 16, 32][i] for i in out_indices]
        for i, o in zip(out_indices, outs):
            torch.testing.assert_close(o, inter[i])
    # pruning removes the unused parts: levels 0-1 need only the stem and conv2
    small = tiny(features_only=True, out_indices=(0, 1))
    assert count_params(small) < count_params(full) / 20


@pytest.mark.parametrize("bad", [(5,), (0, 7), (-6,), 6])
def test_invalid_out_indices(bad):
    with pytest.raises(ValueError, match="out of range|invalid pyramid indices"):
        tiny(features_only=True, out_indices=bad)


def test_dual_resolution_features_both_modes():
    x = torch.randn(1, 3, 128, 256)
    cls = tiny(features_only=True, feature_cls="dual").eval()
    high, low, aux = cls(x)
    assert high.shape == (1, 4 * 8, 16, 32) and low.shape == (1, 16 * 8, 4, 8) and aux is None
    assert cls.feature_info.reduction() == [8, 32]
    seg = tiny(features_only=True, feature_cls="dual", segmentation_mode=True, return_aux=True).eval()
    high, low, aux = seg(x)
    assert low.shape == (1, 128, 2, 4) and aux.shape == (1, 16, 16, 32)
    assert seg.feature_info.reduction() == [8, 64]
    # one set of weights loads into both forms, without shape changes
    seg.model.load_state_dict(cls.model.state_dict())


def test_imagenet_weights_load_into_segmentation_mode():
    cls = tiny(num_classes=1000)
    seg_mode = tiny(segmentation_mode=True, num_classes=1000)
    seg_mode.load_state_dict(cls.state_dict())  # strict, same shapes
    with pytest.raises(RuntimeError, match="segmentation_mode"):
        seg_mode(torch.randn(1, 3, 128, 128))


@pytest.mark.parametrize("name", ["ddrnet23_slim", "ddrnet39"])
def test_constructable_on_meta_device(name):
    with torch.device("meta"):
        feat = timm.create_model(name, features_only=True)
        seg = create_segmentation_model(name, num_classes=19)
    assert all(p.device.type == "meta" for p in list(feat.parameters()) + list(seg.parameters()))
    assert feat.feature_info.channels()[-1] == ddrnet_zoo.MODEL_ARCHS[name].low_out_width


# ----------------------------------------------------------------------------- segmentation


def test_segmentation_outputs_named_in_train_plain_in_eval():
    model = tiny_seg(num_classes=5)
    x = torch.randn(2, 3, 128, 192)
    out = model.train()(x)
    assert set(out) == {"out", "aux"}
    assert out["out"].shape == out["aux"].shape == (2, 5, 128, 192)
    logits = model.eval()(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 5, 128, 192)
    no_aux = tiny_seg(num_classes=5, aux_head=False).train()
    assert set(no_aux(x)) == {"out"}


@pytest.mark.parametrize("size", [(513, 513), (257, 321), (64, 64), (360, 480)])
def test_segmentation_any_input_size(size):
    model = tiny_seg(num_classes=3).eval()
    x = torch.randn(1, 3, *size)
    assert model(x).shape == (1, 3, *size)
    model.upsample_logits = False
    h, w = size
    ceil8 = lambda v: -(-v // 8)  # noqa: E731 - the high branch is at ceil(size / 8)
    assert model(x).shape == (1, 3, ceil8(h), ceil8(w))


@pytest.mark.parametrize("context", ["dappm", "ppm", "spp", "none", "DAPPM"])
def test_context_variants(context):
    model = tiny_seg(num_classes=4, context=context).eval()
    assert model(torch.randn(1, 3, 128, 128)).shape == (1, 4, 128, 128)


def test_context_ablation_costs_increase_none_ppm_dappm():
    counts = [count_params(create_segmentation_model("ddrnet23_slim", context=c)) for c in ("none", "ppm", "dappm")]
    assert counts[0] < counts[1] < counts[2]


def test_segmentation_params_match_table_v():
    model = create_segmentation_model("ddrnet23_slim", num_classes=19, aux_head=False)
    assert count_params(model, exclude_norm=True) / 1e6 == pytest.approx(5.7, rel=0.005)
    head = model.head.conv.conv
    assert head.kernel_size == (3, 3) and head.out_channels == 64


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "x,error,match",
    [
        (torch.randn(3, 128, 128), ValueError, "4-D tensor.*unsqueeze"),
        (torch.randn(1, 1, 3, 128, 128), ValueError, "4-D tensor"),
        (torch.randn(1, 4, 128, 128), ValueError, "4 channels but the model expects 3"),
        (torch.randint(0, 255, (1, 3, 128, 128), dtype=torch.uint8), TypeError, "floating-point.*uint8"),
        (torch.randn(1, 3, 48, 128), ValueError, "48x128 is below the minimum 64x64"),
    ],
)
def test_bad_input_is_named(x, error, match):
    model = tiny_seg(num_classes=3).eval()
    with pytest.raises(error, match=match):
        model(x)


def test_classification_minimum_size_is_32():
    model = tiny().eval()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 1000)
    with pytest.raises(ValueError, match="minimum 32x32"):
        model(torch.randn(1, 3, 31, 64))


def test_unknown_names_are_named():
    with pytest.raises(ValueError, match="unknown DDRNet model 'ddrnet50'.*ddrnet23_slim"):
        create_segmentation_model("ddrnet50")
    with pytest.raises(ValueError, match="unknown context module 'aspp'.*dappm"):
        create_segmentation_model("ddrnet23_slim", context="aspp")
    with pytest.raises(ValueError, match="unknown DDRNet variant"):
        ddrnet_zoo.create_ddrnet("resnet50")
    with pytest.raises(RuntimeError, match="Unknown model"):
        timm.create_model("ddrnet24")
    with pytest.raises(ValueError, match="num_classes"):
        tiny_seg(num_classes=0)

"""Tracing, scripting, compiling, output_stride, input checks, argument validation and consumers of timm encoders."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
import warnings

import pytest
import timm
import torch
from conftest import REPO, TINY_ARCH_23, TINY_ARCH_39
from timm.models import get_notrace_functions, get_notrace_modules
from torchvision.models.feature_extraction import create_feature_extractor

import ddrnet_zoo
from ddrnet_zoo.models import DDRNet, create_segmentation_model
from ddrnet_zoo.published import PUBLISHED_HUB_IDS, WeightsNotPublishedError


def tiny(arch=TINY_ARCH_23, **kw) -> DDRNet:
    return timm.create_model("ddrnet23_slim", arch=arch, **kw)


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- tracing / scripting / compiling


@pytest.mark.parametrize("arch", [TINY_ARCH_23, TINY_ARCH_39], ids=["23", "39"])
def test_torchscript_script_and_trace_match_eager(arch):
    model = tiny(arch).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notices
        expected = model(x)
        close(torch.jit.script(model)(x), expected)
        traced = torch.jit.trace(model, x)
        close(traced(x), expected)
        other = torch.randn(2, 3, 96, 64)
        close(traced(other), model(other))


def test_fx_symbolic_trace_and_timm_fx_features():
    model = tiny().eval()
    x = torch.randn(1, 3, 64, 64)
    expected = model(x)
    graph_model = torch.fx.symbolic_trace(model)
    close(graph_model(x), expected)
    tracer_kwargs = dict(leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions())
    extractor = create_feature_extractor(model, return_nodes=["fc"], tracer_kwargs=tracer_kwargs)
    close(extractor(x)["fc"], expected)
    fx_features = timm.create_model(
        "ddrnet23_slim", arch=TINY_ARCH_23, features_only=True, feature_cls="fx", out_indices=(1, 2, 4)
    ).eval()
    assert [f.shape[1] for f in fx_features(x)] == fx_features.feature_info.channels()


def test_torch_export_and_compile_run_without_input_checks():
    model = tiny().eval()
    x = torch.randn(1, 3, 64, 64)
    expected = model(x)
    exported = torch.export.export(model, (x,))
    close(exported.module()(x), expected)
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    close(compiled(x), expected)


def test_segmentation_model_traces_and_exports():
    model = create_segmentation_model("ddrnet23_slim", arch=TINY_ARCH_23, num_classes=5).eval()
    x = torch.randn(1, 3, 64, 64)
    expected = model(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        close(torch.jit.trace(model, x)(x), expected)
    close(torch.fx.symbolic_trace(model, concrete_args={"return_aux": None})(x), expected)
    close(torch.export.export(model, (x,)).module()(x), expected)


# ----------------------------------------------------------------------------- timm API contract pieces


def test_reset_classifier_keeps_device_dtype_and_mode():
    model = tiny().eval().to(torch.float64)
    model.reset_classifier(4)
    assert all(not m.training for m in model.modules())
    assert model.fc.weight.dtype == torch.float64 and model.fc.out_features == 4
    model.train()
    model.reset_classifier(2, "max")
    assert all(m.training for m in model.modules())


def test_prune_head_false_keeps_output_and_pruned_features_end_at_tap():
    model = tiny().eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        taps = model.forward_intermediates(x, intermediates_only=True)
        kept = copy.deepcopy(model)
        kept.prune_intermediate_layers([4], prune_head=False)
        close(kept(x), expected)
    for level in range(5):
        pruned = copy.deepcopy(model)
        pruned.prune_intermediate_layers([level], prune_norm=True)
        with torch.no_grad():
            close(pruned.forward_features(x), taps[level])
        pruned.train()
        pruned.forward_features(x).sum().backward()
        unused = [n for n, p in pruned.named_parameters() if p.grad is None]
        assert not unused, f"pruned to level {level}, unused parameters: {unused}"
        if level != 4:
            with pytest.raises(ValueError, match=f"pruned to pyramid levels up to {level}"):
                pruned.forward_intermediates(x, indices=[4], intermediates_only=True)


# ----------------------------------------------------------------------------- output_stride


@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_output_stride_dilates_the_low_branch(output_stride):
    full = tiny(arch=TINY_ARCH_39).eval()
    model = tiny(arch=TINY_ARCH_39, output_stride=output_stride).eval()
    assert model.state_dict().keys() == full.state_dict().keys()
    assert all(t.shape == full.state_dict()[k].shape for k, t in model.state_dict().items())
    features = timm.create_model(
        "ddrnet23_slim", arch=TINY_ARCH_39, features_only=True, output_stride=output_stride
    ).eval()
    reductions = features.feature_info.reduction()
    assert reductions == [2, 4, 8, min(16, output_stride), output_stride]
    x = torch.randn(1, 3, 64, 96)
    outs = features(x)
    assert [tuple(o.shape[-2:]) for o in outs] == [(64 // r, 96 // r) for r in reductions]
    assert model(x).shape == (1, 1000)


def test_output_stride_32_is_the_undilated_network():
    model = tiny().eval()
    same = tiny(output_stride=32).eval()
    same.load_state_dict(model.state_dict())
    x = torch.randn(1, 3, 64, 64)
    close(same(x), model(x))


def test_output_stride_in_segmentation_mode():
    seg = create_segmentation_model("ddrnet23_slim", arch=TINY_ARCH_23, num_classes=3, output_stride=16).eval()
    assert seg.backbone.low_res_reduction == 16
    assert seg(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)


@pytest.mark.parametrize("bad", [4, 24, 64, "16"])
def test_output_stride_must_be_8_16_or_32(bad):
    with pytest.raises(ValueError, match="output_stride must be one of"):
        tiny(output_stride=bad)


# ----------------------------------------------------------------------------- input checks and arguments


@pytest.mark.parametrize("value,kind", [(float("nan"), "NaN"), (float("inf"), "Inf"), (float("-inf"), "Inf")])
def test_non_finite_input_is_refused_with_an_opt_out(value, kind):
    x = torch.randn(1, 3, 64, 64)
    x[0, 1, 5, 7] = value
    model = tiny().eval()
    with pytest.raises(ValueError, match=rf"contains 1 {kind} value \(of .*check_finite=False"):
        model(x)
    seg = create_segmentation_model("ddrnet23_slim", arch=TINY_ARCH_23, num_classes=3).eval()
    with pytest.raises(ValueError, match=kind):
        seg(x)
    assert torch.isnan(tiny(check_finite=False).eval()(x)).all() or value != float("nan")
    quiet = create_segmentation_model("ddrnet23_slim", arch=TINY_ARCH_23, num_classes=3, check_finite=False).eval()
    assert quiet(x).shape == (1, 3, 64, 64)
    model.check_finite = False  # the attribute switches it too
    assert model(x).shape == (1, 1000)


def test_nan_and_inf_both_named():
    x = torch.randn(1, 3, 64, 64)
    x[0, 0, 0, :2] = float("nan")
    x[0, 0, 1, 0] = float("inf")
    with pytest.raises(ValueError, match="contains 2 NaN and 1 Inf values"):
        tiny().eval()(x)


def test_channels_last_input_is_told_to_permute():
    with pytest.raises(ValueError, match=r"looks like channels-last NHWC.*x\.permute\(0, 3, 1, 2\)"):
        tiny().eval()(torch.randn(1, 64, 96, 3))


@pytest.mark.parametrize("name", ["num_classes", "in_chans"])
@pytest.mark.parametrize("bad", [-3, 2.5, True, "10"])
def test_num_classes_and_in_chans_are_validated(name, bad):
    with pytest.raises(ValueError, match=rf"{name} must be"):
        tiny(**{name: bad})


def test_zero_in_chans_refused_zero_classes_accepted():
    with pytest.raises(ValueError, match="in_chans must be an int >= 1"):
        tiny(in_chans=0)
    assert tiny(num_classes=0).eval()(torch.randn(1, 3, 64, 64)).shape == (1, TINY_ARCH_23.head_width)
    with pytest.raises(ValueError, match="num_classes must be"):
        tiny().reset_classifier(-1)


# ----------------------------------------------------------------------------- unpublished weights fail fast

_OFFLINE_SCRIPT = """
import time, timm, ddrnet_zoo
from ddrnet_zoo.models import create_segmentation_model
from ddrnet_zoo.published import WeightsNotPublishedError
calls = {
    "timm": lambda: timm.create_model("ddrnet23_slim", pretrained=True),
    "timm_tag": lambda: timm.create_model("ddrnet39.in1k", pretrained=True),
    "pretrained_backbone": lambda: create_segmentation_model("ddrnet23_slim", pretrained_backbone=True),
    "load_model": lambda: ddrnet_zoo.load_model("ddrnet-zoo/ddrnet23_slim.cityscapes"),
}
for name, call in calls.items():
    start = time.perf_counter()
    try:
        call()
    except WeightsNotPublishedError as e:
        print(name, round(time.perf_counter() - start, 3), str(e).replace("\\n", " / "), sep="|")
"""


def _offline_env(tmp_path) -> dict:
    env = dict(os.environ, HF_HUB_CACHE=str(tmp_path / "hub"), HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def test_unpublished_weights_fail_fast_with_what_to_do(tmp_path):
    """The real loading paths, offline, with an empty Hub cache: a clear error, at once."""
    assert "ddrnet-zoo/ddrnet23_slim.in1k" not in PUBLISHED_HUB_IDS
    out = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT], env=_offline_env(tmp_path), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    lines = dict((ln.split("|", 1)[0], ln.split("|")[1:]) for ln in out.stdout.splitlines())
    assert set(lines) == {"timm", "timm_tag", "pretrained_backbone", "load_model"}
    for name, (seconds, message) in lines.items():
        assert float(seconds) < 2.0, f"{name} took {seconds}s"
        assert "not published on the Hugging Face Hub yet" in message and "ddrnet-convert" in message
    assert "pretrained=False" in lines["timm"][1] and "ddrnet-zoo/ddrnet23_slim.in1k" in lines["timm"][1]
    assert "ddrnet-zoo/ddrnet39.in1k" in lines["timm_tag"][1]
    assert "load_model('hub/ddrnet23_slim.cityscapes')" in lines["load_model"][1]


def test_unpublished_weights_cli_message(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ddrnet_zoo.predict",
            "-m",
            "ddrnet-zoo/ddrnet23_slim.cityscapes",
            "-o",
            str(tmp_path / "out"),
            str(tmp_path),
        ],
        env=_offline_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "not published on the Hugging Face Hub yet" in out.stderr + out.stdout
    assert "Traceback" not in out.stderr


def test_pretrained_false_needs_no_hub():
    start = time.perf_counter()
    tiny(pretrained=False)
    assert time.perf_counter() - start < 5.0
    assert isinstance(WeightsNotPublishedError("x"), ddrnet_zoo.io.CheckpointError)


# ----------------------------------------------------------------------------- consumers


def test_segmentation_models_pytorch_encoders():
    smp = pytest.importorskip("segmentation_models_pytorch")
    x = torch.randn(1, 3, 64, 64)
    for cls in (smp.Unet, smp.FPN, smp.DeepLabV3Plus):
        model = cls(encoder_name="tu-ddrnet23_slim", encoder_weights=None, classes=2).eval()
        with torch.no_grad():
            assert model(x).shape == (1, 2, 64, 64), cls.__name__


def test_timm_suite_runner_skips_clearly_offline(tmp_path):
    env = dict(os.environ, DDRNET_TIMM_SUITE_CACHE=str(tmp_path), PIP_NO_INDEX="1", PIP_FIND_LINKS="")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    runner = REPO / "tests" / "timm_suite" / "run_timm_suite.py"
    out = subprocess.run([sys.executable, str(runner)], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("SKIPPED: timm's model test suite was not run: pip could not download")

"""Deployment form: BatchNorm folding (exactness, what folds, what remains) and the runtime options."""

from __future__ import annotations

import pytest
import timm
import torch
from conftest import TINY_ARCH_23, TINY_ARCH_39
from safetensors.torch import load_file
from torch import nn

import ddrnet_zoo
from ddrnet_zoo import create_segmentation_model
from ddrnet_zoo.inference import batchnorm_names, fold_batchnorm, max_relative_error, optimize_for_inference

DAPPM_BNS = [
    "context.scales.0.bn",
    "context.scales.1.1.bn",
    "context.scales.2.1.bn",
    "context.scales.3.1.bn",
    "context.scales.4.1.bn",
    "context.fuse.0.bn",
    "context.fuse.1.bn",
    "context.fuse.2.bn",
    "context.fuse.3.bn",
    "context.compression.bn",
    "context.shortcut.bn",
]


def randomise_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random running statistics, affine parameters and conv biases, as the reference models have."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.25)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)
            elif isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
    return model.eval()


def tiny(arch=TINY_ARCH_23, **kwargs) -> nn.Module:
    return randomise_batchnorm(create_segmentation_model("ddrnet23", num_classes=5, arch=arch, **kwargs))


@pytest.mark.parametrize("arch", [TINY_ARCH_23, TINY_ARCH_39], ids=["23", "39"])
@pytest.mark.parametrize("context", ["dappm", "ppm", "none"])
def test_folded_model_matches_within_1e5(arch, context):
    model = tiny(arch, context=context)
    folded = fold_batchnorm(model)
    x = torch.randn(2, 3, 128, 192)
    with torch.no_grad():
        ref = model(x, return_aux=True)
        out = folded(x, return_aux=True)
        eval_out = folded(x)
    assert max_relative_error(out["out"], ref["out"]) < 1e-5
    assert max_relative_error(out["aux"], ref["aux"]) < 1e-5
    assert max_relative_error(eval_out, out["out"]) < 1e-5  # public eval forward: logits at the input size
    assert eval_out.shape == (2, 5, 128, 192)
    # folding changed the model: without the BN statistics the output would be far off
    assert max_relative_error(out["out"], create_segmentation_model("ddrnet23", 5, arch=arch).eval()(x)) > 0.1


@pytest.mark.parametrize("variant", ["23", "39"])
def test_folded_reference_model_reproduces_original_outputs(reference_dir, variant):
    model = ddrnet_zoo.load_model(
        reference_dir / f"official_seg_ddrnet{variant}_tiny.weights.safetensors", upsample_logits=False
    )
    io = load_file(str(reference_dir / f"official_seg_ddrnet{variant}_tiny.io.safetensors"))
    folded = fold_batchnorm(model)
    with torch.no_grad():
        out = folded(io["input"], return_aux=True)
    assert max_relative_error(out["out"], io["output"]) < 1e-5
    assert max_relative_error(out["aux"], io["aux_output"]) < 1e-5


@pytest.mark.parametrize(
    "variant,num_bn,num_folded",
    [("ddrnet23_slim", 57, 44), ("ddrnet23", 57, 44), ("ddrnet39", 85, 72), ("ddrnet39_1_5x", 85, 72)],
)
def test_what_folds_and_what_remains(variant, num_bn, num_folded):
    with torch.device("meta"):
        model = create_segmentation_model(variant)
    assert len(batchnorm_names(model)) == num_bn
    folded = fold_batchnorm(model, inplace=True)
    report = folded.fold_report
    assert report.num_folded == num_folded
    # every BN that follows a conv is gone: the whole backbone, and the heads' classifier BNs
    assert not [n for n in batchnorm_names(folded) if n.startswith("backbone.")]
    assert ("head.classifier.bn", "head.conv.conv") in report.folded
    assert ("aux_head.classifier.bn", "aux_head.conv.conv") in report.folded
    # what remains: the pre-activation BNs whose input is shared, pooled or a sum
    assert report.remaining == DAPPM_BNS + ["head.conv.bn", "aux_head.conv.bn"]
    assert report.remaining == batchnorm_names(folded)
    assert "13 remain" in report.summary()


def test_fold_head_input_is_exact_and_leaves_only_dappm():
    model = tiny()
    folded = fold_batchnorm(model, fold_head_input=True)
    assert folded.fold_report.remaining == DAPPM_BNS + ["aux_head.conv.bn"]
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        assert max_relative_error(folded(x), model(x)) < 1e-5
        assert max_relative_error(folded(x, return_aux=True)["aux"], model(x, return_aux=True)["aux"]) < 1e-5


def test_fold_keeps_activations_and_leaves_the_original_alone():
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_batchnorm(model)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert len(batchnorm_names(model)) == 57
    # a ConvNormAct with ReLU keeps it as a plain module; one without gets Identity
    assert isinstance(folded.backbone.stem[0].bn, nn.ReLU)
    assert isinstance(folded.backbone.stage2[0].conv2.bn, nn.Identity)
    assert isinstance(folded.head.classifier.bn, nn.ReLU)
    assert folded.backbone.stage2[0].conv1.conv.bias is not None
    assert not folded.training


def test_fold_classification_backbone():
    model = randomise_batchnorm(timm.create_model("ddrnet23_slim", arch=TINY_ARCH_23, num_classes=10))
    folded = fold_batchnorm(model)
    assert batchnorm_names(folded) == []
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert max_relative_error(folded(x), model(x)) < 1e-5


def test_fold_refuses_bn_without_running_stats():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False))
    with pytest.raises(ValueError, match="running statistics"):
        fold_batchnorm(model)
    with pytest.raises(TypeError, match="nn.Module"):
        fold_batchnorm("model")


def test_sequential_conv_bn_folds():
    model = randomise_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()))
    folded = fold_batchnorm(model)
    assert isinstance(folded[1], nn.Identity) and folded.fold_report.folded == [("1", "0")]
    x = torch.randn(1, 3, 8, 8)
    assert max_relative_error(folded(x), model(x)) < 1e-5


@pytest.mark.parametrize(
    "options",
    [
        dict(fold=False),
        dict(),
        dict(channels_last=True),
        dict(channels_last=True, fold_head_input=True),
    ],
    ids=["unfolded", "folded", "channels_last", "head_input"],
)
def test_optimize_for_inference_fp32_is_exact(options):
    model = tiny()
    fast = optimize_for_inference(model, **options)
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        ref = model(x)
    out = fast(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert max_relative_error(out, ref) < 1e-5
    assert fast.min_input_size == 64 and fast.num_classes == 5


@pytest.mark.parametrize("half_weights", [False, True], ids=["autocast", "weights"])
def test_bf16_is_close(half_weights):
    model = tiny()
    fast = optimize_for_inference(model, precision="bf16", half_weights=half_weights, channels_last=True)
    x = torch.randn(1, 3, 96, 128)
    out = fast(x)
    assert out.dtype == torch.bfloat16
    with torch.no_grad():
        assert max_relative_error(out.float(), model(x)) < 0.05


def test_compile_path_captures_one_graph_with_freezing():
    """The deployed model compiles to one graph (no graph breaks), with inductor's freezing on for CPU.

    A recording backend stands in for inductor (a cold inductor compile takes ~40 s on 2 cores);
    scripts/benchmark_inference.py runs the real one and reports its error against eager.
    """
    model = tiny()
    x = torch.randn(1, 3, 64, 96)
    seen = []

    def backend(graph_module, example_inputs):
        import torch._inductor.config as inductor_config

        seen.append(inductor_config.freezing)
        return graph_module.forward

    fast = optimize_for_inference(model, channels_last=True, compile="default", compile_backend=backend)
    assert "compiled(default, freezing)" in fast.options.describe()
    seconds = fast.warmup(x)
    assert seen == [True]  # one graph, compiled while freezing was on
    assert fast.compile_seconds == {(1, 3, 64, 96): seconds}
    with torch.no_grad():
        assert max_relative_error(fast(x), model(x)) < 1e-5
    unfrozen = optimize_for_inference(model, compile="default", compile_backend=backend, freezing=False)
    unfrozen(x)
    assert seen == [True, False]


def test_runtime_option_errors():
    model = tiny()
    with pytest.raises(ValueError, match="precision"):
        optimize_for_inference(model, precision="fp8")
    with pytest.raises(ValueError, match="half_weights"):
        optimize_for_inference(model, half_weights=True)
    with pytest.raises(ValueError, match="compile"):
        optimize_for_inference(model, compile="fastest")
    with pytest.raises(ValueError, match="cuda"):
        optimize_for_inference(model, cuda_graphs=True)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            optimize_for_inference(model, device="cuda")

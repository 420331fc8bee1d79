"""Export: ONNX with dynamic batch/height/width checked in onnxruntime, torch.export and TorchScript at other sizes."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY_ARCH_23
from test_fold import randomise_batchnorm

from ddrnet_zoo import create_segmentation_model
from ddrnet_zoo.export import main as export_main
from ddrnet_zoo.inference import export_onnx, export_program, export_torchscript, max_relative_error, verify_onnx

onnx = pytest.importorskip("onnx", reason="ONNX export needs the 'onnx' extra: pip install 'ddrnet_zoo[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="needs the 'onnx' extra: pip install 'ddrnet_zoo[onnx]'")
pytest.importorskip("onnxscript", reason="the dynamo ONNX exporter needs onnxscript ('onnx' extra)")

# not multiples of 8 (the original code fails on these), CamVid's size, and the minimum
SIZES = [(360, 480), (257, 321), (513, 513), (64, 64)]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = randomise_batchnorm(create_segmentation_model("ddrnet23", num_classes=5, arch=TINY_ARCH_23))
    m.dataset["class_names"] = [f"class{i}" for i in range(5)]
    return m


@pytest.fixture(scope="module")
def dynamo_onnx(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    return export_onnx(model, path, exporter="dynamo", example_size=(256, 384), verify_sizes=SIZES)


def _dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_dynamo_onnx_matches_pytorch_at_every_size(dynamo_onnx, model):
    assert dynamo_onnx.exporter == "dynamo" and dynamo_onnx.fallback_reason is None
    assert set(dynamo_onnx.errors) == {f"2x{h}x{w}" for h, w in SIZES}
    assert max(dynamo_onnx.errors.values()) < 1e-4
    # batch 1 and 3 also run (dynamic batch), against the *unfolded* model
    errors = verify_onnx(dynamo_onnx.path, model, [(257, 321)], batch=1)
    errors.update(verify_onnx(dynamo_onnx.path, model, [(96, 200)], batch=3))
    assert max(errors.values()) < 1e-4


def test_onnx_graph_has_dynamic_axes_and_the_main_output_only(dynamo_onnx):
    proto = onnx.load(str(dynamo_onnx.path))
    onnx.checker.check_model(proto)
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert inp.name == "images" and out.name == "logits"
    batch, chans, height, width = _dims(inp)
    assert chans == 3 and all(isinstance(d, str) and d for d in (batch, height, width))
    assert _dims(out)[1] == 5
    names = [t.name for t in proto.graph.initializer]
    assert names and not [n for n in names if "aux_head" in n]  # the auxiliary head is not exported
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["config"])["dataset"]["class_names"] == [f"class{i}" for i in range(5)]
    # BN folded: only the 12 pre-activation BNs of DAPPM and the head remain as BatchNormalization nodes
    assert len(dynamo_onnx.remaining_batchnorms) == 12
    assert sum(n.op_type == "BatchNormalization" for n in proto.graph.node) <= 12


def test_torchscript_onnx_exporter_also_works(model, tmp_path):
    result = export_onnx(model, tmp_path / "ts.onnx", exporter="torchscript", verify_sizes=[(257, 321)])
    assert result.exporter == "torchscript"
    assert max(result.errors.values()) < 1e-4


def test_labels_output(model, tmp_path):
    result = export_onnx(model, tmp_path / "labels.onnx", exporter="torchscript", output="labels", verify_sizes=None)
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, 100, 130)
    labels = session.run(None, {"images": x.numpy()})[0]
    assert labels.shape == (2, 100, 130)
    with torch.no_grad():
        expected = model(x).argmax(1).numpy()
    assert (labels == expected).mean() > 0.999


def test_torch_export_program_runs_at_other_sizes(model, tmp_path):
    result = export_program(model, tmp_path / "tiny.pt2", example_size=(256, 384))
    program = torch.export.load(str(result.path)).module()
    for shape in ((1, 3, 257, 321), (3, 3, 64, 64)):
        x = torch.randn(shape)
        with torch.no_grad():
            assert max_relative_error(program(x), model(x)) < 1e-5
    with pytest.raises(Exception, match="64"):  # the dynamic range starts at the model's minimum input
        program(torch.randn(1, 3, 32, 64))


def test_torchscript_trace_runs_at_other_sizes(model, tmp_path):
    result = export_torchscript(model, tmp_path / "tiny.ts", example_size=(256, 384))
    with pytest.warns(FutureWarning):  # torch.jit is deprecated upstream; still loadable
        traced = torch.jit.load(str(result.path))
    x = torch.randn(2, 3, 257, 321)
    with torch.no_grad():
        assert max_relative_error(traced(x), model(x)) < 1e-5


def test_export_cli(tmp_path, capsys):
    out = tmp_path / "slim.onnx"
    argv = ["--architecture", "ddrnet23_slim", "--num-classes", "3", "--random-init", "-o", str(out)]
    assert export_main([*argv, "--exporter", "torchscript", "--verify", "65x97"]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and "torchscript exporter" in text and "1x65x97" not in text and "2x65x97" in text
    assert not list(tmp_path.glob(".*.tmp"))  # nothing half-written left behind


def test_export_cli_errors(tmp_path, capsys):
    assert export_main(["-m", str(tmp_path / "missing"), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "missing" in capsys.readouterr().err
    assert export_main(["-o", str(tmp_path / "x.onnx")]) == 2
    assert "--model" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_example_below_minimum_size_is_refused(model, tmp_path):
    with pytest.raises(ValueError, match="minimum input 64"):
        export_torchscript(model, tmp_path / "x.ts", example_size=(32, 64))

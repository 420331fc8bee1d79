"""Deployment on a CPU: INT8 quantization (ddrnet-export --quantize), ONNX files in ddrnet-predict and ddrnet-eval,
video in and out, and every bad input of these as one line with exit status 2."""

from __future__ import annotations

import json
import re
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch
from conftest import TINY_ARCH_23
from PIL import Image
from test_fold import randomise_batchnorm
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

import ddrnet_zoo
from ddrnet_zoo import create_segmentation_model
from ddrnet_zoo.evaluate import main as eval_main
from ddrnet_zoo.export import main as export_main
from ddrnet_zoo.hub import save_pretrained
from ddrnet_zoo.inference import Predictor, max_relative_error
from ddrnet_zoo.inference.benchmark import build_modes, build_original_runner, build_ort_runner
from ddrnet_zoo.inference.onnx_model import load_onnx_model
from ddrnet_zoo.inference.quantize import calibration_images, compare_onnx
from ddrnet_zoo.predict import main as predict_main

onnx = pytest.importorskip("onnx", reason="needs the 'onnx' extra: pip install 'ddrnet_zoo[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="needs the 'onnx' extra: pip install 'ddrnet_zoo[onnx]'")


def _scene(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth image with a few regions (calibration and prediction data alike, not white noise)."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, (xx + yy) / (h + w)], -1) * 255
    for _ in range(3):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(h // 6, h // 2)
        base[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(0, 256, 3)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny CamVid-like model (11 classes, BN statistics randomised) in the Hub folder format."""
    torch.manual_seed(0)
    model = randomise_batchnorm(create_segmentation_model("ddrnet23", num_classes=11, arch=TINY_ARCH_23))
    model.dataset["name"] = "camvid"
    return save_pretrained(model, tmp_path_factory.mktemp("hub") / "tiny", model_card=False)


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(_scene(rng, 72, 96)).save(root / f"f{i}.png")
    return root


@pytest.fixture(scope="module")
def onnx_files(model_dir, frames, tmp_path_factory):
    """(fp32, int8) ONNX files of the tiny model; INT8 calibrated on 4 of the 8 frames."""
    out = tmp_path_factory.mktemp("onnx")
    fp32, int8 = out / "tiny.onnx", out / "tiny.int8.onnx"
    common = ["-m", str(model_dir), "--exporter", "torchscript", "--no-verify"]
    assert export_main([*common, "-o", str(fp32)]) == 0
    argv = [*common, "-o", str(int8), "--quantize", "int8", "--calibration", str(frames), "--calibration-count", "4"]
    assert export_main(argv) == 0
    return fp32, int8


def _error_line(capsys, prog: str) -> str:
    """The one-line error of a CLI that exited with status 2."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(f"{prog}: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------------------------------------- quantization


def test_int8_file_is_quantized_keeps_the_classifier_float_and_follows_fp32(onnx_files, frames):
    fp32, int8 = onnx_files
    proto = onnx.load(str(int8))
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("QuantizeLinear") > 20 and ops.count("DequantizeLinear") > 40
    # the classifier conv and the final resize read float tensors, not dequantized int8 ones
    producers = {o: n for n in proto.graph.node for o in n.output}
    resize = producers[proto.graph.output[0].name]
    assert resize.op_type == "Resize"
    classifier = producers[resize.input[0]]
    assert classifier.op_type == "Conv"
    weight = next(t for t in proto.graph.initializer if t.name == classifier.input[1])
    assert weight.data_type == onnx.TensorProto.FLOAT
    # every other conv takes int8 weights through a DequantizeLinear
    convs = [n for n in proto.graph.node if n.op_type == "Conv" and n is not classifier]
    assert convs and all(producers[c.input[1]].op_type == "DequantizeLinear" for c in convs)
    meta = {p.key: p.value for p in proto.metadata_props}
    details = json.loads(meta["quantization"])
    assert details["calibration_images"] == 4 and details["float_nodes"] == ["Conv", "Resize"]
    assert json.loads(meta["config"])["num_classes"] == 11  # the float file's metadata is kept
    # INT8 follows fp32 on the frames not used for calibration
    held_out = [f for f in sorted(frames.glob("*.png")) if f not in calibration_images(frames, 4)]
    assert len(held_out) == 4
    agreement = compare_onnx(fp32, int8, held_out, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
    assert agreement.pixel_agreement > 0.9
    assert agreement.max_abs_error < 0.25 * agreement.max_abs_logit


def test_export_prints_the_agreement(model_dir, frames, tmp_path, capsys, caplog):
    out = tmp_path / "m.int8.onnx"
    argv = ["-m", str(model_dir), "-o", str(out), "--exporter", "torchscript", "--verify", "72x96"]
    argv += ["--quantize", "int8", "--calibration", str(frames), "--calibration-count", "3"]
    assert export_main([*argv, "--calibration-method", "percentile"]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out} (onnx INT8, QDQ" in text
    assert "calibrated on 3 images" in text and "(percentile, " in text and "kept in float32: Conv, Resize" in text
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["quantization"])["calibration_method"] == "percentile"
    assert "float32 onnxruntime vs PyTorch at 2x72x96" in text
    match = re.search(r"INT8 vs float32 on 5 held-out images: argmax agrees on ([\d.]+)% of pixels", text)
    assert match and float(match.group(1)) > 90
    assert out.is_file() and not list(tmp_path.glob(".*.tmp"))
    assert not [r for r in caplog.records if "is out-of-range for weight" in r.getMessage()]  # no library noise


def test_quantization_bad_input(model_dir, frames, tmp_path, capsys):
    base = ["-m", str(model_dir), "--no-verify", "--exporter", "torchscript"]
    out = tmp_path / "q.onnx"
    empty = tmp_path / "empty"
    empty.mkdir()
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "notes.txt").write_text("no images here")
    cases = [
        (["--calibration", str(tmp_path / "missing")], "calibration folder .*missing does not exist; give a folder"),
        (["--calibration", str(empty)], "calibration folder .*empty is empty; give a folder of representative"),
        (["--calibration", str(texts)], "calibration folder .*texts holds no images \\(.png"),
        ([], "--quantize int8 needs --calibration DIR"),
        (["--calibration", str(frames), "--calibration-count", "0"], "--calibration-count must be at least 1"),
    ]
    for extra, message in cases:
        assert export_main([*base, "-o", str(out), "--quantize", "int8", *extra]) == 2
        assert re.search(message, _error_line(capsys, "ddrnet-export")), message
    pt2 = tmp_path / "q.pt2"
    assert export_main([*base, "-o", str(pt2), "--quantize", "int8", "--calibration", str(frames)]) == 2
    assert "writes ONNX, but" in _error_line(capsys, "ddrnet-export") and not pt2.exists()
    assert export_main([*base, "-o", str(out), "--calibration", str(frames)]) == 2
    assert "--calibration is used by --quantize int8 only" in _error_line(capsys, "ddrnet-export")
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))  # nothing written, nothing half-written


# ---------------------------------------------------------------------------------------------- ONNX prediction


def test_onnx_prediction_matches_pytorch(model_dir, onnx_files, frames, tmp_path, capsys):
    fp32, int8 = onnx_files
    torch_out, onnx_out, int8_out = tmp_path / "torch", tmp_path / "onnx", tmp_path / "int8"
    assert predict_main(["-m", str(model_dir), str(frames), "-o", str(torch_out), "--workers", "0"]) == 0
    capsys.readouterr()
    assert predict_main(["-m", str(fp32), str(frames), "-o", str(onnx_out), "--workers", "0"]) == 0
    captured = capsys.readouterr()
    assert "predict: 100%" in captured.err  # the same progress bar
    assert "predicted 8 images in" in captured.out and "onnxruntime" in captured.out
    assert predict_main(["-m", str(int8), str(frames), "-o", str(int8_out), "--workers", "0", "--no-progress"]) == 0
    assert "int8" in capsys.readouterr().out
    agree = []
    for f in sorted(frames.glob("*.png")):
        ref = np.asarray(Image.open(torch_out / "labels" / f.name))
        got = np.asarray(Image.open(onnx_out / "labels" / f.name))
        assert (ref == got).mean() > 0.999 and len(np.unique(ref)) > 1
        for kind in ("color", "overlay"):
            suffix = ".jpg" if kind == "overlay" else ".png"
            assert (onnx_out / kind / (f.stem + suffix)).is_file()
        agree.append((np.asarray(Image.open(int8_out / "labels" / f.name)) == ref).mean())
    assert np.mean(agree) > 0.9


def test_onnx_model_api_and_tta(onnx_files, model_dir):
    model = load_onnx_model(onnx_files[0])
    assert model.num_classes == 11 and model.min_input_size == 64 and model.precision == "fp32"
    assert model.dataset["name"] == "camvid"
    # its threads do not spin between runs (they would take the cores from frame decoding and encoding)
    assert model.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    x = torch.randn(2, 3, 70, 90)
    with torch.no_grad():
        ref = ddrnet_zoo.load_model(model_dir).eval()(x)
    assert torch.allclose(model(x), ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())
    image = np.random.default_rng(0).integers(0, 256, (80, 100, 3), dtype=np.uint8)
    tta = dict(scales=(0.8, 1.0), flip=True)
    expected = Predictor(ddrnet_zoo.load_model(model_dir), device="cpu", **tta).predict(image)
    assert (Predictor(model, **tta).predict(image) == expected).mean() > 0.999
    with pytest.raises(ValueError, match="minimum input 64"):
        model(torch.randn(1, 3, 32, 96))
    with pytest.raises(ValueError, match="runs in onnxruntime as stored: leave out compile and precision"):
        Predictor(model, compile="default")


def test_onnx_prediction_bad_input(onnx_files, frames, tmp_path, capsys):
    fp32 = str(onnx_files[0])
    out = tmp_path / "out"
    for flags, message in (
        (["--compile", "default"], "--compile default: PyTorch-only, not for the ONNX file"),
        (["--precision", "bf16"], "--precision bf16: PyTorch-only"),
        (["--num-classes", "19"], "predicts 11 classes, not --num-classes 19"),
    ):
        assert predict_main(["-m", fp32, str(frames), "-o", str(out), *flags]) == 2
        assert message in _error_line(capsys, "ddrnet-predict")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf")
    assert predict_main(["-m", str(broken), str(frames), "-o", str(out)]) == 2
    assert "onnxruntime cannot load it as a model" in _error_line(capsys, "ddrnet-predict")
    labels = tmp_path / "labels.onnx"
    argv = ["--architecture", "ddrnet23_slim", "--num-classes", "3", "--random-init", "--exporter", "torchscript"]
    assert export_main([*argv, "--no-verify", "--output", "labels", "-o", str(labels)]) == 0
    capsys.readouterr()
    assert predict_main(["-m", str(labels), str(frames), "-o", str(out)]) == 2
    assert "export again without --output labels" in _error_line(capsys, "ddrnet-predict")
    assert not out.exists()


def test_onnx_evaluation_scores_like_pytorch(camvid_root, model_dir, onnx_files, tmp_path, capsys):
    """ddrnet-eval scores an ONNX file with the same evaluator: the fp32 export gets PyTorch's mIoU."""
    results = {}
    for name, source in (("torch", model_dir), ("onnx", onnx_files[0]), ("int8", onnx_files[1])):
        out = tmp_path / f"{name}.json"
        argv = ["--checkpoint", str(source), f"--data.root={camvid_root}", "--set", "data.max_samples=3"]
        assert eval_main([*argv, "--output", str(out), "--no-progress"]) == 0
        results[name] = json.loads(out.read_text())
    text = capsys.readouterr().out
    assert "in onnxruntime" in text and "int8" in text
    assert results["onnx"]["images"] == results["torch"]["images"] == 3
    assert results["onnx"]["miou"] == pytest.approx(results["torch"]["miou"], abs=1e-4)
    assert results["onnx"]["pixel_acc"] == pytest.approx(results["torch"]["pixel_acc"], abs=1e-4)
    assert results["int8"]["pixel_acc"] == pytest.approx(results["torch"]["pixel_acc"], abs=0.1)
    assert eval_main(["--checkpoint", str(onnx_files[0]), f"--data.root={camvid_root}", "--amp", "bf16"]) == 2
    assert "--amp bf16 does not apply to an ONNX file" in _error_line(capsys, "ddrnet-eval")


# ---------------------------------------------------------------------------------------------- video


def _write_video(path, frames, rate=Fraction(25, 2)):
    av = pytest.importorskip("av", reason="video needs the 'video' extra: pip install 'ddrnet_zoo[video]'")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _read_video(path):
    av = pytest.importorskip("av")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate
        return [f.to_ndarray(format="rgb24") for f in container.decode(stream)], rate


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "drive.mp4"
    rng = np.random.default_rng(1)
    _write_video(path, [_scene(rng, 72, 96) for _ in range(6)])
    return path


def test_video_in_and_out(model_dir, video, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["-m", str(model_dir), str(video), "-o", str(out), "--batch-size", "4"]
    assert predict_main([*argv, "--save", "overlay", "color", "label"]) == 0
    captured = capsys.readouterr()
    assert "frame/s]" in captured.err  # the progress bar counts frames per second
    summary = r"predicted video .*drive.mp4: 6 frames in [\d.]+ s \([\d.]+ frames/s at 12.5 frames/s input"
    assert re.search(summary, captured.out)
    decoded, _ = _read_video(video)
    model = ddrnet_zoo.load_model(model_dir)
    predictor = Predictor(model, device="cpu")
    labels = [np.asarray(Image.open(out / "labels" / "drive" / f"{i:06d}.png")) for i in range(6)]
    assert sorted(p.name for p in (out / "labels" / "drive").iterdir())[-1] == "000005.png"
    for frame, lab in zip(decoded, labels):
        assert (predictor.predict(frame) == lab).mean() > 0.999  # label frames = predictions of the decoded frames
    overlay_frames, rate = _read_video(out / "overlay" / "drive.mp4")
    assert rate == Fraction(25, 2) and len(overlay_frames) == 6  # the input's frame rate, every frame
    expected = (0.5 * decoded[2].astype(np.float32) + 0.5 * predictor.palette[labels[2]].astype(np.float32)).round()
    assert np.abs(overlay_frames[2].astype(np.float32) - expected).mean() < 6  # lossy H.264
    color_frames, _ = _read_video(out / "color" / "drive.mp4")
    assert np.abs(color_frames[3].astype(np.float32) - predictor.palette[labels[3]]).mean() < 6
    assert not list(out.rglob(".*.tmp"))


def test_video_default_output_and_odd_size(model_dir, tmp_path, capsys):
    av = pytest.importorskip("av")
    odd = tmp_path / "odd.mkv"
    with av.open(str(odd), "w") as container:  # 4:4:4 allows an odd size
        stream = container.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 97, 71, "yuv444p"
        for i in range(3):
            frame = np.full((71, 97, 3), 40 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    out = tmp_path / "out"
    assert predict_main(["-m", str(model_dir), str(odd), "-o", str(out), "--no-progress"]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["overlay", "overlay/odd.mp4"]
    frames, rate = _read_video(out / "overlay" / "odd.mp4")
    assert len(frames) == 3 and rate == 10 and frames[0].shape == (72, 98, 3)  # padded to even by one row/column


def test_video_bad_input(model_dir, video, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    assert predict_main(["-m", str(model_dir), str(corrupt), "-o", str(out)]) == 2
    assert "corrupt.mp4: not a readable video" in _error_line(capsys, "ddrnet-predict")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(video.read_bytes()[:600])
    assert predict_main(["-m", str(model_dir), str(truncated), "-o", str(out)]) == 2
    assert "truncated.mp4: " in _error_line(capsys, "ddrnet-predict")
    av = pytest.importorskip("av")
    audio = tmp_path / "audio.mkv"  # a container without a video stream
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    assert predict_main(["-m", str(model_dir), str(video), str(audio), "-o", str(out)]) == 2
    assert "audio.mkv: the file has no video stream" in _error_line(capsys, "ddrnet-predict")
    assert not out.exists()  # every video is checked before any work
    # --keep-going: the bad videos are skipped and listed, the good one is written, exit status 1
    argv = ["-m", str(model_dir), str(corrupt), str(video), "-o", str(out), "--keep-going", "--no-progress"]
    assert predict_main(argv) == 1
    captured = capsys.readouterr()
    assert "corrupt.mp4: not a readable video" in captured.err and "1 video could not be read" in captured.err
    assert (out / "overlay" / "drive.mp4").is_file() and not (out / "overlay" / "corrupt.mp4").exists()
    out = tmp_path / "out2"
    monkeypatch.setitem(sys.modules, "av", None)  # PyAV not installed
    assert predict_main(["-m", str(model_dir), str(video), "-o", str(out)]) == 2
    line = _error_line(capsys, "ddrnet-predict")
    assert line.endswith("video input and output needs the 'av' package: pip install 'ddrnet_zoo[video]'")
    assert not out.exists()


# ---------------------------------------------------------------------------------------------- benchmark rows


def test_benchmark_original_code_and_int8_rows(frames, tmp_path):
    """The benchmark's reference row computes the model's main output the original code's way (1/8 logits, auxiliary
    head too, upsampled after), and its INT8 row runs the ddrnet-export --quantize file."""
    model = randomise_batchnorm(create_segmentation_model("ddrnet23", num_classes=5, arch=TINY_ARCH_23)).eval()
    x = torch.randn(1, 3, 96, 128)
    cpu = torch.device("cpu")
    modes = build_modes(["default"])
    original = build_original_runner(modes["original"], model, x, cpu, warmup=0)
    with torch.no_grad():
        reference = model(x)
    assert max_relative_error(original.output(), reference) < 1e-5
    assert model.upsample_logits  # the runner worked on a copy
    calibration = sorted(frames.glob("*.png"))[:2]
    int8 = build_ort_runner(modes["onnxruntime-int8"], model, x, cpu, 1, 0, tmp_path, calibration)
    out = int8.output()
    assert out.shape == reference.shape and (out.argmax(1) == reference.argmax(1)).float().mean() > 0.8
    profile = int8.op_profile()  # where the INT8 time goes, from onnxruntime's profiler
    ops = {r["op"]: r for r in profile}
    assert "QLinearConv" in ops and "Conv" in ops  # integer convolutions; the float classifier kept float
    assert sum(r["share"] for r in profile) == pytest.approx(1.0)
    assert all(r["ms_per_run"] > 0 and r["nodes"] >= 1 for r in profile)
    assert not list(tmp_path.glob("profile_*"))  # the trace file is read and removed
    with pytest.raises(ValueError, match="--calibration DIR"):
        build_ort_runner(modes["onnxruntime-int8"], model, x, cpu, 1, 0, tmp_path, None)

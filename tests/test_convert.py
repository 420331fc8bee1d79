"""Converters: every reference checkpoint reproduces the original code's outputs; layouts round-trip exactly.

Reference files: ../shared/reference (tiny models built by the authors' code, in the original and
MMSegmentation layouts, with their inputs and outputs).
"""

from __future__ import annotations

import json
import pickle
import sys
import types
from pathlib import Path

import pytest
import timm
import torch
from conftest import model_of
from safetensors.torch import load_file, save_file

from ddrnet_zoo.convert import (
    convert_checkpoint,
    convert_state_dict,
    export_state_dict,
    original_key_map,
    to_mmseg_state_dict,
    to_original_state_dict,
)
from ddrnet_zoo.convert.cli import main as convert_main
from ddrnet_zoo.convert.loading import load_model
from ddrnet_zoo.io import CheckpointError
from ddrnet_zoo.layouts import read_checkpoint
from ddrnet_zoo.models import MODEL_ARCHS, checkpoint_filter_fn, create_segmentation_model

# (checkpoint file, io file, layout, task, depths)
CASES = [
    ("official_cls_ddrnet23_tiny.weights.safetensors", "official_cls_ddrnet23_tiny", "original", "classification"),
    ("official_cls_ddrnet23_tiny.imagenet_format.pth", "official_cls_ddrnet23_tiny", "original", "classification"),
    ("official_cls_ddrnet39_tiny.weights.safetensors", "official_cls_ddrnet39_tiny", "original", "classification"),
    ("official_seg_ddrnet23_tiny.weights.safetensors", "official_seg_ddrnet23_tiny", "original", "segmentation"),
    ("official_seg_ddrnet23_tiny.cityscapes_format.pth", "official_seg_ddrnet23_tiny", "original", "segmentation"),
    ("official_seg_ddrnet39_tiny.weights.safetensors", "official_seg_ddrnet39_tiny", "original", "segmentation"),
    ("mmseg_seg_ddrnet23_tiny.weights.safetensors", "official_seg_ddrnet23_tiny", "mmseg", "segmentation"),
]
TOL = 1e-5


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def outputs(model, x: torch.Tensor):
    with torch.no_grad():
        if hasattr(model, "aux_head"):
            out = model(x, return_aux=True)
            return [out["out"], out["aux"]]
        return [model(x)]


def reference_errors(model, reference_dir: Path, io_name: str):
    io = load_file(str(reference_dir / f"{io_name}.io.safetensors"))
    wanted = [io["output"]] + ([io["aux_output"]] if "aux_output" in io else [])
    return [rel_err(o, w) for o, w in zip(outputs(model, io["input"]), wanted)]


def assert_state_dicts_equal(a, b):
    assert set(a) == set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def converted_models(reference_dir):
    return {f: convert_checkpoint(reference_dir / f, upsample_logits=False) for f, *_ in CASES}


# ---------------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("filename,io_name,layout,task", CASES, ids=[c[0] for c in CASES])
def test_reference_case_converts_and_reproduces_outputs(
    converted_models, reference_dir, filename, io_name, layout, task
):
    converted = converted_models[filename]
    cases = json.loads((reference_dir / "cases.json").read_text())
    case = cases[io_name]
    assert converted.source_layout == layout
    assert converted.task == task
    args = converted.model_args
    assert args["arch"]["width"] == case["planes"] and list(args["arch"]["depths"]) == case["layers"]
    assert args["num_classes"] == case["num_classes"]
    assert args.get("aux_head", False) == (task == "segmentation")
    # every source tensor mapped or explicitly ignored
    n_source = cases[filename.split(".")[0]]["num_tensors"]
    assert len(converted.state_dict) == n_source + (2 if layout == "mmseg" else 0)
    if filename.endswith("cityscapes_format.pth"):
        assert converted.ignored_keys == ["loss.criterion.weight"]
    errors = reference_errors(model_of(converted), reference_dir, io_name)
    print(f"\n{filename}: rel. max-abs error {', '.join(f'{e:.2e}' for e in errors)}")
    assert all(e <= TOL for e in errors), errors


def test_mmseg_stem_bias_fold_is_reversed_exactly(converted_models):
    mm = converted_models["mmseg_seg_ddrnet23_tiny.weights.safetensors"]
    assert sorted(mm.filled_keys) == ["backbone.stem.0.conv.bias", "backbone.stem.1.conv.bias"]
    for k in mm.filled_keys:
        assert torch.count_nonzero(mm.state_dict[k]) == 0


@pytest.mark.parametrize(
    "name,architecture",
    [
        ("official_cls_ddrnet23_slim", "ddrnet23_slim"),
        ("official_cls_ddrnet23", "ddrnet23"),
        ("official_cls_ddrnet39", "ddrnet39"),
        ("official_seg_ddrnet23_slim_aux", "ddrnet23_slim"),
        ("official_seg_ddrnet23_aux", "ddrnet23"),
        ("official_seg_ddrnet39_aux", "ddrnet39"),
    ],
)
def test_full_size_official_keys_map_completely(reference_dir, name, architecture):
    shapes = json.loads((reference_dir / "official_full_size_state_dict_shapes.json").read_text())[name]
    # the checkpoint (shapes only) converts with no flags to the registered variant, nothing left over
    source = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    converted = convert_state_dict(source, name=name)
    seg = "_seg_" in name
    assert converted.model_args["architecture"] == architecture and converted.model_args["arch"] is None
    assert converted.model_args["num_classes"] == (19 if seg else 1000)
    assert converted.filled_keys == [] and converted.ignored_keys == []
    # our full-size model (meta device) maps every key to exactly the official key set, same shapes
    with torch.device("meta"):
        if seg:
            model = create_segmentation_model(architecture, num_classes=19, aux_head=True)
        else:
            model = timm.create_model(architecture)
    mapping = original_key_map(model)
    ours = model.state_dict()
    assert sorted(mapping.values()) == sorted(shapes)
    assert all(list(ours[k].shape) == shapes[v] for k, v in mapping.items())
    assert converted.config is None or converted.config["arch"] is None


# ---------------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("filename", [c[0] for c in CASES if c[2] == "original"])
def test_ours_original_ours_is_bit_exact(converted_models, reference_dir, filename):
    converted = converted_models[filename]
    model = model_of(converted)
    original = to_original_state_dict(model)
    # exporting gives back the reference file itself, bit for bit (num_batches_tracked included)
    source = read_checkpoint(reference_dir / filename).state_dict
    source = {k[len("model.") :] if k.startswith("model.") else k: v for k, v in source.items()}
    source.pop("loss.criterion.weight", None)
    assert_state_dicts_equal(original, source)
    back = model_of(convert_state_dict(original, name="roundtrip"))
    assert_state_dicts_equal(back.state_dict(), model.state_dict())


def test_prefixed_original_export_matches_cityscapes_format(converted_models, reference_dir):
    model = model_of(converted_models["official_seg_ddrnet23_tiny.cityscapes_format.pth"])
    exported = export_state_dict(model, "original", prefix="model.")
    source = read_checkpoint(reference_dir / "official_seg_ddrnet23_tiny.cityscapes_format.pth").state_dict
    source.pop("loss.criterion.weight")
    assert_state_dicts_equal(exported, source)


def test_mmseg_export_reproduces_mmseg_file_and_round_trips(converted_models, reference_dir):
    mmseg_ref = load_file(str(reference_dir / "mmseg_seg_ddrnet23_tiny.weights.safetensors"))
    # official -> ours -> mmseg folds the stem biases exactly as MMSegmentation's own file
    official = model_of(converted_models["official_seg_ddrnet23_tiny.weights.safetensors"])
    assert_state_dicts_equal(to_mmseg_state_dict(official), mmseg_ref)
    # mmseg -> ours -> mmseg -> ours: bit-exact (our stem biases are zero after the first step)
    from_mmseg = model_of(converted_models["mmseg_seg_ddrnet23_tiny.weights.safetensors"])
    assert_state_dicts_equal(to_mmseg_state_dict(from_mmseg), mmseg_ref)
    again = model_of(convert_state_dict(to_mmseg_state_dict(from_mmseg)))
    assert_state_dicts_equal(again.state_dict(), from_mmseg.state_dict())
    # ours (nonzero stem biases) -> mmseg -> ours: every tensor MMSegmentation can hold is bit-exact,
    # the bias moves into the running mean (rm - b, exactly), and the outputs agree
    back = model_of(convert_state_dict(to_mmseg_state_dict(official), upsample_logits=False))
    a, b = official.state_dict(), back.state_dict()
    for k in a:
        if k in ("backbone.stem.0.conv.bias", "backbone.stem.1.conv.bias"):
            assert torch.count_nonzero(b[k]) == 0 and torch.count_nonzero(a[k]) > 0
        elif k in ("backbone.stem.0.bn.running_mean", "backbone.stem.1.bn.running_mean"):
            assert torch.equal(b[k], a[k] - a[k.replace("bn.running_mean", "conv.bias")])
        else:
            assert torch.equal(a[k], b[k]), k
    x = torch.randn(1, 3, 128, 192)
    for o1, o2 in zip(outputs(official, x), outputs(back, x)):
        assert rel_err(o2, o1) < TOL


def test_mmseg_layout_refuses_what_mmseg_cannot_hold(converted_models):
    seg39 = model_of(converted_models["official_seg_ddrnet39_tiny.weights.safetensors"])
    with pytest.raises(ValueError, match="no DDRNet-39"):
        to_mmseg_state_dict(seg39)
    cls = model_of(converted_models["official_cls_ddrnet23_tiny.weights.safetensors"])
    with pytest.raises(ValueError, match="segmentation models only"):
        to_mmseg_state_dict(cls)


# ---------------------------------------------------------------------------------------------- timm
def test_timm_loads_the_original_imagenet_file_through_its_filter(converted_models, reference_dir):
    arch = converted_models["official_cls_ddrnet23_tiny.imagenet_format.pth"].model_args["arch"]
    path = reference_dir / "official_cls_ddrnet23_tiny.imagenet_format.pth"
    overlay = dict(file=str(path), num_classes=10)  # the file's class count (timm drops a classifier that differs)
    model = timm.create_model("ddrnet23_slim", pretrained=True, arch=arch, pretrained_cfg_overlay=overlay).eval()
    (err,) = reference_errors(model, reference_dir, "official_cls_ddrnet23_tiny")
    assert err <= TOL
    # a segmentation checkpoint cannot initialise a classifier: a clear error, not a partial load
    seg = read_checkpoint(reference_dir / "official_seg_ddrnet23_tiny.weights.safetensors").state_dict
    with pytest.raises(CheckpointError, match="segmentation checkpoint"):
        checkpoint_filter_fn(seg, model)


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_converts_exports_and_refuses(tmp_path, reference_dir, capsys):
    mmseg = reference_dir / "mmseg_seg_ddrnet23_tiny.weights.safetensors"
    out = tmp_path / "hub"
    assert convert_main([str(mmseg), str(out), "--no-upsample-logits"]) == 0
    assert {p.name for p in out.iterdir()} == {"model.safetensors", "config.json", "README.md"}
    model = load_model(out)
    errors = reference_errors(model, reference_dir, "official_seg_ddrnet23_tiny")
    assert all(e <= TOL for e in errors)
    # export our folder to the original layout; it converts back to the same model
    original = tmp_path / "orig.pth"
    assert convert_main([str(out), str(original), "--to", "original", "--prefix", "model."]) == 0
    assert all(k.startswith("model.") for k in torch.load(original, weights_only=True))
    assert_state_dicts_equal(load_model(original, upsample_logits=False).state_dict(), model.state_dict())
    mm_file = tmp_path / "mm.safetensors"
    assert convert_main([str(original), str(mm_file), "--to", "mmseg"]) == 0
    assert_state_dicts_equal(load_file(str(mm_file)), load_file(str(mmseg)))
    # a weights file alone, in our layout
    weights = tmp_path / "weights.safetensors"
    assert convert_main([str(mmseg), str(weights)]) == 0
    assert_state_dicts_equal(load_file(str(weights)), model.state_dict())
    # --check writes nothing
    assert convert_main([str(mmseg), "--check"]) == 0
    capsys.readouterr()
    # refusals: existing output, wrong class count, another variant; one line each, exit status 2
    assert convert_main([str(mmseg), str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert convert_main([str(mmseg), str(tmp_path / "x"), "--num-classes", "19"]) == 2
    assert "wrong class count" in capsys.readouterr().err
    assert convert_main([str(mmseg), str(tmp_path / "y"), "--model", "ddrnet23"]) == 2
    err = capsys.readouterr().err
    assert "not a ddrnet23" in err and "width: checkpoint 8, ddrnet23 64" in err
    assert convert_main([str(mmseg), str(tmp_path / "z"), "--dataset", "cityscapes"]) == 2
    assert "19" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists() and not (tmp_path / "z").exists()


def test_cli_classification_folder_loads_in_timm(tmp_path, reference_dir):
    out = tmp_path / "cls39"
    assert convert_main([str(reference_dir / "official_cls_ddrnet39_tiny.weights.safetensors"), str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "ddrnet39" and config["num_classes"] == 10
    assert config["model_args"]["arch"]["width"] == 8
    model = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    (err,) = reference_errors(model, reference_dir, "official_cls_ddrnet39_tiny")
    assert err <= TOL


# ---------------------------------------------------------------------------------------------- bad input
def _save_reference_copy(reference_dir: Path, tmp_path: Path, edit) -> Path:
    sd = load_file(str(reference_dir / "official_seg_ddrnet23_tiny.weights.safetensors"))
    edit(sd)
    path = tmp_path / "edited.safetensors"
    save_file(sd, str(path))
    return path


def test_missing_and_unexpected_keys_are_listed(tmp_path, reference_dir):
    path = _save_reference_copy(reference_dir, tmp_path, lambda sd: sd.pop("layer3_.1.conv2.weight"))
    with pytest.raises(CheckpointError, match=r"edited\.safetensors.*missing keys: layer3_\.1\.conv2\.weight"):
        convert_checkpoint(path)
    path = _save_reference_copy(reference_dir, tmp_path, lambda sd: sd.update({"extra.weight": torch.ones(2)}))
    with pytest.raises(CheckpointError, match=r"unexpected keys: extra\.weight"):
        convert_checkpoint(path)


def test_shape_mismatch_is_reported(tmp_path, reference_dir):
    def widen(sd):
        sd["layer3_.1.conv2.weight"] = torch.zeros(16, 16, 1, 1)

    with pytest.raises(CheckpointError, match=r"shape mismatches.*layer3_\.1\.conv2\.weight \(16, 16, 1, 1\)"):
        convert_checkpoint(_save_reference_copy(reference_dir, tmp_path, widen))


def test_truncated_corrupt_and_empty_files(tmp_path, reference_dir):
    data = (reference_dir / "official_seg_ddrnet23_tiny.weights.safetensors").read_bytes()
    cases = {
        "truncated.safetensors": data[: len(data) // 2],
        "header_only.safetensors": data[:6],
        "corrupt.safetensors": b"\x00" * 64 + data[64:200],
        "truncated.pth": (reference_dir / "official_cls_ddrnet23_tiny.imagenet_format.pth").read_bytes()[:5000],
        "garbage.pth": b"this is not a checkpoint" * 10,
        "empty.pth": b"",
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(CheckpointError, match=str(path).replace(".", r"\.")):
            convert_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        convert_checkpoint(tmp_path / "nope.pth")


class _Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_refused_naming_the_object(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"conv1.0.weight": torch.ones(1)}, "payload": _Exploit()}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pth: refused: .*\n  the objects: builtins\.print"):
        read_checkpoint(path)
    assert "this must never run" not in capsys.readouterr().out
    with pytest.raises(CheckpointError, match="builtins.print"):
        load_model(path)


def test_training_metadata_objects_are_placeholders_not_code(tmp_path, reference_dir, monkeypatch):
    """MMSegmentation checkpoints carry mmengine's HistoryBuffer in 'message_hub': read with inert placeholders."""

    class HistoryBuffer:  # stands for mmengine.logging.history_buffer.HistoryBuffer when saving
        def __init__(self):
            self._log_history = [1.0, 2.0]

    HistoryBuffer.__module__, HistoryBuffer.__qualname__ = "mmengine.logging.history_buffer", "HistoryBuffer"
    for name in ("mmengine", "mmengine.logging", "mmengine.logging.history_buffer"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules["mmengine.logging.history_buffer"].HistoryBuffer = HistoryBuffer
    weights = load_file(str(reference_dir / "mmseg_seg_ddrnet23_tiny.weights.safetensors"))
    path = tmp_path / "mmseg_training.pth"
    torch.save({"meta": {"epoch": 3}, "state_dict": weights, "message_hub": {"loss": HistoryBuffer()}}, path)
    for name in ("mmengine", "mmengine.logging", "mmengine.logging.history_buffer"):
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(pickle.UnpicklingError):  # plain weights_only refuses it ...
        torch.load(path, weights_only=True)
    converted = convert_checkpoint(path, upsample_logits=False)  # ... we read the weights
    assert converted.placeholder_globals == ["mmengine.logging.history_buffer.HistoryBuffer"]
    assert converted.metadata_keys == ["message_hub", "meta"]
    assert converted.source_layout == "mmseg"
    assert_state_dicts_equal(to_mmseg_state_dict(model_of(converted)), weights)


def test_not_a_ddrnet_checkpoint(tmp_path):
    path = tmp_path / "resnet.safetensors"
    save_file(timm.create_model("resnet10t").state_dict(), str(path))
    with pytest.raises(CheckpointError, match=r"resnet\.safetensors: not a DDRNet checkpoint"):
        convert_checkpoint(path)


def test_asserted_variant_and_classes(reference_dir):
    path = reference_dir / "official_cls_ddrnet23_tiny.weights.safetensors"
    with pytest.raises(CheckpointError, match="not a ddrnet23_slim"):
        convert_checkpoint(path, model_name="ddrnet23_slim")
    with pytest.raises(CheckpointError, match="wrong class count: the checkpoint has 10 classes, 1000"):
        convert_checkpoint(path, num_classes=1000)
    with pytest.raises(CheckpointError, match="layout"):
        convert_checkpoint(path, layout="mmseg")
    assert MODEL_ARCHS["ddrnet23_slim"].width == 32  # the assertion above compares against this


def test_in_memory_api_unwraps_training_checkpoints(reference_dir, converted_models):
    """A DDP-wrapped training checkpoint of the original code: {'state_dict': {'module.model.*', 'module.loss.*'}}."""
    pth = torch.load(reference_dir / "official_seg_ddrnet23_tiny.cityscapes_format.pth", weights_only=True)
    wrapped = {"epoch": 484, "best_mIoU": 0.5, "state_dict": {f"module.{k}": v for k, v in pth.items()}}
    state_dict, config = convert_state_dict(wrapped, dataset=None)
    assert config["architecture"] == "ddrnet23_slim" and config["arch"]["width"] == 8 and config["num_classes"] == 5
    reference = converted_models["official_seg_ddrnet23_tiny.cityscapes_format.pth"].state_dict
    assert set(state_dict) == set(reference)
    assert all(torch.equal(state_dict[k], reference[k]) for k in reference)


def test_cli_rewrites_a_hub_folder_with_a_training_size_and_logit_size(tmp_path, reference_dir):
    """A Hub folder as the source: --train-size and --upsample-logits change its description, not its weights."""
    first, second = tmp_path / "first", tmp_path / "second"
    src = reference_dir / "mmseg_seg_ddrnet23_tiny.weights.safetensors"
    assert convert_main([str(src), str(first), "--train-size", "64", "96"]) == 0
    config = json.loads((first / "config.json").read_text())
    assert config["dataset"]["train_size"] == [64, 96] and config["upsample_logits"] is True
    assert config["metadata"]["converted_from"]["layout"] == "mmseg"
    assert convert_main([str(first), str(second), "--train-size", "128", "256", "--no-upsample-logits"]) == 0
    again = json.loads((second / "config.json").read_text())
    assert again["dataset"]["train_size"] == [128, 256] and again["upsample_logits"] is False
    assert again["metadata"] == config["metadata"]
    assert_state_dicts_equal(load_file(str(second / "model.safetensors")), load_file(str(first / "model.safetensors")))

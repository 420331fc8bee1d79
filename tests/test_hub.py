"""Hub folders: save/load round trips, and the real download code paths against a local Hub cache.

This machine cannot reach the Hub. The tests lay Hub folders out in a cache directory exactly as
huggingface_hub does (``models--ORG--NAME/{blobs,snapshots/<commit>,refs/main}``, checked with
``huggingface_hub.scan_cache_dir``), set ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE=1``, and call the
real loading code: timm's ``create_model`` (default ``hf_hub_id``, ``hf-hub:``, ``local-dir:``,
``pretrained_cfg_overlay``) and ``ddrnet_zoo.load_model``, both through ``hf_hub_download``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import sys
from pathlib import Path
from typing import Dict, List

import huggingface_hub
import numpy as np
import pytest
import timm
import torch
from conftest import REPO, TINY_ARCH_23, TINY_ARCH_39, model_of
from huggingface_hub import scan_cache_dir
from huggingface_hub.file_download import repo_folder_name
from PIL import Image
from safetensors.torch import load_file, save_file

import ddrnet_zoo
from ddrnet_zoo import load_model
from ddrnet_zoo.convert import convert_checkpoint
from ddrnet_zoo.hub import build_model_card, save_pretrained, upload_folder_to_hub
from ddrnet_zoo.inference import max_relative_error
from ddrnet_zoo.io import CheckpointError
from ddrnet_zoo.models import create_segmentation_model, read_model_config
from ddrnet_zoo.models.ddrnet import pretrained_hub_id
from ddrnet_zoo.predict import main as predict_main
from ddrnet_zoo.published import PUBLISHED_HUB_IDS

ORG = "ddrnet-zoo"


def install_in_hub_cache(folder: Path, repo_id: str, cache_dir: Path, revision: str = "main") -> str:
    """Put ``folder``'s files into ``cache_dir`` as huggingface_hub's downloads do; returns the commit hash.

    Blobs are named by their etag (sha256 for LFS files such as weights, the git blob sha1 otherwise),
    snapshot files are relative symlinks to them, and ``refs/<revision>`` holds the commit hash.
    """
    repo_dir = cache_dir / repo_folder_name(repo_id=repo_id, repo_type="model")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    commit = hashlib.sha1(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()
    snapshot = repo_dir / "snapshots" / commit
    (repo_dir / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for p in files:
        data = p.read_bytes()
        if p.suffix == ".safetensors":
            etag = hashlib.sha256(data).hexdigest()
        else:
            etag = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        blob = repo_dir / "blobs" / etag
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / p.name)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / revision).write_text(commit)
    return commit


def tiny_seg_model(arch=TINY_ARCH_23, num_classes: int = 11, **kwargs):
    model = create_segmentation_model("ddrnet23_slim", num_classes=num_classes, arch=arch, **kwargs)
    with torch.no_grad():  # non-trivial BN statistics and biases, so that dropping any of them shows
        for name, t in model.state_dict().items():
            if t.is_floating_point() and ("running" in name or name.endswith("bias")):
                t.uniform_(0.1, 0.5)
    return model.eval()


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


def test_cache_layout_is_huggingface_hubs(tmp_path, hub_cache):
    folder = save_pretrained(tiny_seg_model(), tmp_path / "hub")
    commit = install_in_hub_cache(folder, f"{ORG}/tiny", hub_cache)
    info = scan_cache_dir(hub_cache)
    assert not info.warnings
    (repo,) = info.repos
    assert repo.repo_id == f"{ORG}/tiny" and repo.repo_type == "model"
    (rev,) = repo.revisions
    assert rev.commit_hash == commit and rev.refs == frozenset({"main"})
    assert {f.file_name for f in rev.files} == {"config.json", "model.safetensors", "README.md"}


# ---------------------------------------------------------------------------------------------- segmentation
def test_segmentation_save_load_round_trip_is_bit_exact(tmp_path):
    model = tiny_seg_model(TINY_ARCH_39)
    model.dataset["name"] = "camvid"
    folder = save_pretrained(model, tmp_path / "hub")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = load_model(folder)
    assert_same_weights(model, loaded)
    assert loaded.config == model.config
    assert not loaded.training
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=1e-5, atol=1e-6)
    # the config holds everything needed to rebuild the model
    config = json.loads((folder / "config.json").read_text())
    assert config["arch"]["depths"] == [3, 4, 6, 3] and config["num_classes"] == 11 and config["context"] == "dappm"


def test_segmentation_loads_through_the_hub_cache_offline(tmp_path, hub_cache):
    model = tiny_seg_model(num_classes=19, aux_head=False, dataset={"name": "cityscapes", "train_size": [1024, 1024]})
    commit = install_in_hub_cache(save_pretrained(model, tmp_path / "hub"), f"{ORG}/seg", hub_cache)
    for source, kwargs in [
        (f"{ORG}/seg", {}),
        (f"hf-hub:{ORG}/seg@main", {}),
        (f"{ORG}/seg", {"revision": commit}),
        (f"{ORG}/seg", {"cache_dir": hub_cache, "local_files_only": True}),
    ]:
        loaded = load_model(source, **kwargs)
        assert_same_weights(model, loaded)
        assert loaded.dataset["train_size"] == [1024, 1024] and loaded.config["aux_head"] is False
    assert_same_weights(model, load_model(f"hf-hub:{ORG}/seg"))
    # (another organisation: a missing ddrnet-zoo repository fails earlier, as not published; tests/test_compat.py)
    with pytest.raises(CheckpointError, match=r"(?s)someone/missing: cannot get config\.json.*\n.*HF_HUB_OFFLINE"):
        load_model("someone/missing")
    with pytest.raises(CheckpointError, match=r"seg@v2: cannot get config\.json"):
        load_model(f"{ORG}/seg", revision="v2")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="names functions by code.co_qualname (Python 3.11)")
def test_predict_reaches_a_hub_model_in_few_hops(tmp_path, hub_cache, capsys):
    """``ddrnet-predict -m ORG/NAME``: at most 6 calls deep from the CLI to the loaded weights, the source
    parsed once, the model's kind decided once; ``num_classes`` reaches the heads in 2 hops, checked once."""
    model = tiny_seg_model(num_classes=3)
    install_in_hub_cache(save_pretrained(model, tmp_path / "hub", model_card=False), f"{ORG}/hops", hub_cache)
    Image.fromarray(np.zeros((64, 80, 3), np.uint8)).save(tmp_path / "frame.png")
    package = str(Path(ddrnet_zoo.__file__).parent)
    calls: Dict[str, int] = {}
    chains: Dict[str, List[str]] = {}
    watched = {"load_state_dict_strict", "parse_source", "is_timm", "SegmentationHead.__init__"}

    def profile(frame, event, arg):
        if event != "call" or not frame.f_code.co_filename.startswith(package):
            return
        name = frame.f_code.co_qualname
        calls[name] = calls.get(name, 0) + 1
        if name in watched:
            chain, f = [], frame
            while f is not None and f.f_code.co_filename.startswith(package):
                chain.append(f.f_code.co_qualname)
                f = f.f_back
            chains[name] = chain

    sys.setprofile(profile)
    try:
        status = predict_main(["-m", f"{ORG}/hops", str(tmp_path / "frame.png"), "-o", str(tmp_path / "out")])
    finally:
        sys.setprofile(None)
    assert status == 0, capsys.readouterr().err
    chain = chains["load_state_dict_strict"]
    hops = chain[: chain.index("run") + 1][::-1]  # from ddrnet-predict's run() to the strict load
    assert hops == ["run", "load_model", "_from_hub_folder", "build_with_weights", "load_state_dict_strict"]
    assert len(hops) - 1 <= 6
    assert calls["parse_source"] == 1 and calls["HubFolder.is_timm"] == 1
    # num_classes: create_segmentation_model -> DDRNetSegmentation.__init__ (checked there) -> SegmentationHead
    calls.clear()
    sys.setprofile(profile)
    try:
        create_segmentation_model("ddrnet23_slim", num_classes=3, arch=TINY_ARCH_23, aux_head=False)
    finally:
        sys.setprofile(None)
    chain = chains["SegmentationHead.__init__"]
    assert chain[: chain.index("create_segmentation_model") + 1][::-1] == [
        "create_segmentation_model",
        "DDRNetSegmentation.__init__",
        "SegmentationHead.__init__",
    ]


def test_model_card(tmp_path):
    model = tiny_seg_model()
    model.dataset["name"] = "camvid"
    model.metadata["results"] = [
        {"metric": "mIoU", "value": 74.4, "dataset": "camvid", "split": "test", "command": "ddrnet-eval --x"}
    ]
    folder = save_pretrained(model, tmp_path / "hub", repo_id=f"{ORG}/tiny.camvid", flops_input_size=(64, 64))
    text = (folder / "README.md").read_text()
    card = huggingface_hub.ModelCard(text)
    assert card.data.license == "mit" and card.data.pipeline_tag == "image-segmentation"
    assert card.data.eval_results[0].metric_value == 74.4
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert f"| Parameters (all) | {params:.3f} M |" in text
    assert "GFLOPs at 64x64" in text
    assert "ddrnet-eval --x" in text and "arXiv:2101.06085" in text and "Hong, Yuanduo" in text
    assert f'load_model("{ORG}/tiny.camvid")' in text
    # the card's snippets run on the folder: the measurement prints the card's figures
    measure = text.split("```python\n")[1].split("```")[0].replace(f'"{ORG}/tiny.camvid"', repr(str(folder)))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(measure, {})
    assert float(printed.getvalue().split()[0]) == pytest.approx(params, abs=5e-4)
    snippet = text.split("```python\n")[2].split("```")[0].replace(f'"{ORG}/tiny.camvid"', repr(str(folder)))
    snippet = snippet.replace("512, 1024", "64, 64")
    scope: dict = {}
    exec(snippet, scope)
    assert scope["labels"].shape == (1, 64, 64)


def test_model_card_of_custom_widths_and_smoke_test_is_not_the_registered_variant(tmp_path):
    model = tiny_seg_model()  # ddrnet23_slim topology, width 8
    model.dataset["name"] = "camvid"
    model.metadata["training"] = {"smoke_test": True, "iteration": 8}
    results = [{"metric": "mIoU", "value": 12.3, "split": "val", "images": 16, "notes": "smoke"}]
    card = str(build_model_card(model, results=results))
    assert card.split("---\n\n", 1)[1].startswith("# ddrnet23_slim-w8.camvid\n")
    assert huggingface_hub.ModelCard(card).data.model_name == "ddrnet23_slim-w8.camvid"
    assert "**Smoke test, not a trained model**: a pipeline check (8 iterations on a few images)" in card
    assert "DDRNet semantic segmentation model with custom widths (width 8, depths [2, 2, 2, 2]) based on " in card
    assert "| Architecture | custom widths (width 8, depths [2, 2, 2, 2]) based on ddrnet23_slim (`arch` in " in card
    assert "| Metric | Value | Dataset | Split | Images | Command | Notes |" in card
    assert "| mIoU | 12.3 | camvid | val | 16 |  | smoke |" in card
    # config.json still names the base variant it is built from, and loads
    folder = save_pretrained(model, tmp_path / "hub")
    assert json.loads((folder / "config.json").read_text())["architecture"] == "ddrnet23_slim"
    assert load_model(folder).config["arch"]["width"] == 8
    # the registered variant keeps its plain name and no smoke banner
    plain = create_segmentation_model("ddrnet23_slim", num_classes=11)
    plain.dataset["name"] = "camvid"
    text = str(build_model_card(plain))
    assert "# ddrnet23_slim.camvid\n" in text and "Smoke test" not in text and "custom widths" not in text
    assert "| Architecture | `ddrnet23_slim` |" in text


def test_atomic_save_leaves_existing_folder_intact(tmp_path, monkeypatch):
    folder = save_pretrained(tiny_seg_model(), tmp_path / "hub")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def fail(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr("ddrnet_zoo.hub.save.build_model_card", fail)  # after the weights are written
    with pytest.raises(RuntimeError, match="interrupted"):
        save_pretrained(tiny_seg_model(num_classes=5), folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["hub"]  # no temporary folder left behind


# ---------------------------------------------------------------------------------------------- bad input
def _edit_folder(folder: Path, config=None, weights=None) -> None:
    if config is not None:
        cfg = json.loads((folder / "config.json").read_text())
        config(cfg)
        (folder / "config.json").write_text(json.dumps(cfg))
    if weights is not None:
        sd = load_file(str(folder / "model.safetensors"))
        weights(sd)
        save_file(sd, str(folder / "model.safetensors"))


def test_bad_folders_give_clear_errors(tmp_path):
    model = tiny_seg_model()
    make = lambda name: save_pretrained(model, tmp_path / name)  # noqa: E731

    folder = make("truncated")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match=r"truncated/model\.safetensors: not a readable safetensors"):
        load_model(folder)

    folder = make("corrupt_config")
    (folder / "config.json").write_text('{"architecture": "ddrnet23_sl')
    with pytest.raises(CheckpointError, match=r"corrupt_config/config\.json: not a readable JSON config"):
        load_model(folder)

    folder = make("unknown_arch")
    _edit_folder(folder, config=lambda c: c.update(architecture="ddrnet99"))
    with pytest.raises(
        CheckpointError, match=r"unknown_arch/config\.json: invalid config: unknown DDRNet model 'ddrnet99'"
    ):
        load_model(folder)

    folder = make("class_count")
    _edit_folder(folder, config=lambda c: c.update(num_classes=19))
    with pytest.raises(CheckpointError, match=r"class_count/model\.safetensors: wrong class count: .* 11 classes.* 19"):
        load_model(folder)

    folder = make("other_variant")
    _edit_folder(folder, config=lambda c: c.update(arch=None))  # config says full-size ddrnet23_slim
    with pytest.raises(CheckpointError, match=r"other_variant/model\.safetensors: .*another variant .*\n  the weights"):
        load_model(folder)

    folder = make("missing_key")
    _edit_folder(folder, weights=lambda sd: sd.pop("context.fuse.2.conv.weight"))
    with pytest.raises(CheckpointError, match=r"missing keys: context\.fuse\.2\.conv\.weight"):
        load_model(folder)
    with pytest.warns(UserWarning, match="non-strictly"):
        partial = load_model(folder, strict=False)
    assert partial.context.fuse[2].conv.weight.device.type == "cpu"

    folder = make("unexpected_key")
    _edit_folder(folder, weights=lambda sd: sd.update({"head.extra.weight": torch.ones(3)}))
    with pytest.raises(CheckpointError, match=r"unexpected keys: head\.extra\.weight"):
        load_model(folder)

    folder = make("no_aux")
    _edit_folder(folder, config=lambda c: c.update(aux_head=False))
    with pytest.raises(CheckpointError, match="has an auxiliary head: build the model with aux_head=True"):
        load_model(folder)

    with pytest.raises(CheckpointError, match="no model.safetensors"):
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "config.json").write_text((tmp_path / "no_aux" / "config.json").read_text())
        load_model(tmp_path / "empty")


def test_what_is_expected_is_checked_from_the_config_before_the_weights(tmp_path):
    folder = save_pretrained(tiny_seg_model(num_classes=3), tmp_path / "hub", model_card=False)
    (folder / "model.safetensors").unlink()  # only config.json can answer now
    with pytest.raises(CheckpointError, match="wrong class count: the model has 3 classes, 5 expected"):
        load_model(folder, num_classes=5)
    with pytest.raises(CheckpointError, match="holds a ddrnet23_slim, not a ddrnet39"):
        load_model(folder, model_name="ddrnet39")
    with pytest.raises(CheckpointError, match="holds a segmentation model, not a classification model"):
        load_model(folder, task="classification")
    with pytest.raises(CheckpointError, match=r"no model\.safetensors in this folder"):
        load_model(folder, model_name="ddrnet23_slim", num_classes=3, task="segmentation")


def test_save_refuses_a_description_edited_into_nonsense(tmp_path):
    model = tiny_seg_model()
    model.dataset["class_names"] = ["road", "car"]  # 2 names for 11 classes
    with pytest.raises(ValueError, match="2 class names for num_classes=11"):
        save_pretrained(model, tmp_path / "hub")
    assert not (tmp_path / "hub").exists()
    model.dataset["class_names"] = None
    model.metadata["when"] = object()  # not JSON
    with pytest.raises(TypeError, match="not JSON serializable"):
        save_pretrained(model, tmp_path / "hub")
    assert not (tmp_path / "hub").exists()


# ---------------------------------------------------------------------------------------------- timm
@pytest.fixture(scope="module")
def tiny_classifier(reference_dir):
    """The reference DDRNet-23 classifier (built by the original code), converted."""
    return model_of(convert_checkpoint(reference_dir / "official_cls_ddrnet23_tiny.weights.safetensors"))


def _reference_io(reference_dir):
    return load_file(str(reference_dir / "official_cls_ddrnet23_tiny.io.safetensors"))


def test_timm_default_hf_hub_id_through_the_cache(tmp_path, hub_cache):
    """``timm.create_model('ddrnet23_slim', pretrained=True)`` resolves default_cfgs' hf_hub_id (full size)."""
    source = timm.create_model("ddrnet23_slim").eval()
    with torch.no_grad():
        for name, t in source.state_dict().items():
            if t.is_floating_point() and "running" in name:
                t.uniform_(0.1, 0.5)
    hub_id = pretrained_hub_id("ddrnet23_slim")  # unpublished: not in the timm cfg, used once in the cache
    assert hub_id == f"{ORG}/ddrnet23_slim.in1k" and hub_id not in PUBLISHED_HUB_IDS
    install_in_hub_cache(save_pretrained(source, tmp_path / "hub", repo_id=hub_id), hub_id, hub_cache)
    model = timm.create_model("ddrnet23_slim", pretrained=True)
    assert_same_weights(source, model)
    assert model.pretrained_cfg["hf_hub_id"] == hub_id
    # and as the ImageNet initialisation of a segmentation backbone
    seg = create_segmentation_model("ddrnet23_slim", num_classes=19, pretrained_backbone=True)
    backbone = seg.backbone.state_dict()
    assert backbone and all(torch.equal(t, source.state_dict()[k]) for k, t in backbone.items())


def test_timm_hf_hub_local_dir_and_file(tmp_path, hub_cache, tiny_classifier, reference_dir):
    folder = save_pretrained(tiny_classifier, tmp_path / "hub", repo_id=f"{ORG}/tiny-cls")
    install_in_hub_cache(folder, f"{ORG}/tiny-cls", hub_cache)
    io = _reference_io(reference_dir)
    models = {
        "hf-hub": timm.create_model(f"hf-hub:{ORG}/tiny-cls", pretrained=True),
        "local-dir": timm.create_model(f"local-dir:{folder}", pretrained=True),
        "from_pretrained": load_model(f"{ORG}/tiny-cls"),
        "file": timm.create_model(
            "ddrnet23_slim",
            pretrained=True,
            arch=tiny_classifier.arch,
            pretrained_cfg_overlay=dict(file=str(folder / "model.safetensors"), num_classes=10),
        ),
    }
    for how, model in models.items():
        assert_same_weights(tiny_classifier, model)
        with torch.no_grad():
            out = model.eval()(io["input"])
        err = float((out - io["output"]).abs().max() / io["output"].abs().max())
        assert err <= 1e-5, (how, err)
    # a folder of our making is what timm itself writes (and reads back) for this model
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "ddrnet23_slim" and config["pretrained_cfg"]["first_conv"] == "stem.0.conv"


def test_timm_adapts_head_and_stem(tmp_path, hub_cache, tiny_classifier):
    install_in_hub_cache(save_pretrained(tiny_classifier, tmp_path / "hub"), f"{ORG}/tiny-cls", hub_cache)
    source = tiny_classifier.state_dict()
    torch.manual_seed(1)  # (seed 0 draws the reference file's own classifier init: same module order)
    head = timm.create_model(f"hf-hub:{ORG}/tiny-cls", pretrained=True, num_classes=3)
    assert head.fc.weight.shape == (3, 64) and not torch.equal(head.fc.weight[:3], source["fc.weight"][:3])
    assert all(torch.equal(t, source[k]) for k, t in head.state_dict().items() if not k.startswith("fc."))
    gray = timm.create_model(f"hf-hub:{ORG}/tiny-cls", pretrained=True, in_chans=1)
    stem = source["stem.0.conv.weight"]
    assert torch.allclose(gray.stem[0].conv.weight, stem.sum(1, keepdim=True))  # timm's adapt_input_conv
    features = timm.create_model(f"hf-hub:{ORG}/tiny-cls", pretrained=True, features_only=True, out_indices=(2,))
    assert torch.equal(features.model.stem[0].conv.weight, stem)


def test_bad_timm_folder(tmp_path, tiny_classifier):
    folder = save_pretrained(tiny_classifier, tmp_path / "hub")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:1000])
    with pytest.raises(CheckpointError, match="hub: cannot load the timm-format checkpoint"):
        load_model(folder)


# ---------------------------------------------------------------------------------------------- publishing
def _push_script():
    spec = importlib.util.spec_from_file_location("push_to_hub", REPO / "scripts" / "push_to_hub.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_push_script_dry_run_builds_a_loadable_folder(tmp_path, reference_dir, capsys):
    results = tmp_path / "results.json"
    results.write_text(json.dumps([{"metric": "mIoU", "value": 1.5, "split": "val", "command": "ddrnet-eval"}]))
    out = tmp_path / "hub"
    src = reference_dir / "official_seg_ddrnet23_tiny.cityscapes_format.pth"
    push = _push_script()
    argv = [str(src), "--repo-id", f"{ORG}/tiny", "--dry-run", "--out", str(out), "--results", str(results)]
    assert push.main(argv) == 0
    assert "nothing uploaded" in capsys.readouterr().out
    model = load_model(out, upsample_logits=False)
    assert model.metadata["results"][0]["value"] == 1.5
    assert model.metadata["converted_from"]["layout"] == "original"
    assert "| mIoU | 1.5 |" in (out / "README.md").read_text()
    io = load_file(str(reference_dir / "official_seg_ddrnet23_tiny.io.safetensors"))
    with torch.no_grad():
        assert max_relative_error(model(io["input"]), io["output"]) < 1e-5  # float32 rounding differs by CPU
    assert push.main(argv) == 2  # refuses to overwrite without --force
    assert "--force" in capsys.readouterr().err


def test_upload_refuses_incomplete_folders_and_needs_the_network(tmp_path, hub_cache):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a Hub folder"):
        upload_folder_to_hub(tmp_path / "empty", f"{ORG}/x")
    folder = save_pretrained(tiny_seg_model(), tmp_path / "hub")
    with pytest.raises(Exception, match="offline"):  # HF_HUB_OFFLINE=1: the real client refuses to connect
        upload_folder_to_hub(folder, f"{ORG}/x", token="hf_dummy")


def test_model_card_for_classifier(tiny_classifier):
    card = build_model_card(tiny_classifier, repo_id=f"{ORG}/tiny-cls")
    assert card.data.library_name == "timm" and card.data.pipeline_tag == "image-classification"
    assert f'timm.create_model("hf-hub:{ORG}/tiny-cls", pretrained=True)' in card.content
    assert ddrnet_zoo.__version__


def test_torch_hub_local_entry_points():
    """hubconf.py: torch.hub.load(repo, name, source="local") gives timm's backbones and a segmentation model."""
    for name in ddrnet_zoo.MODEL_ARCHS:
        backbone = torch.hub.load(str(REPO), name, source="local", arch=TINY_ARCH_23, num_classes=5)
        assert isinstance(backbone, ddrnet_zoo.DDRNet) and backbone.pretrained_cfg["architecture"] == name
        assert backbone.num_classes == 5
    torch.manual_seed(0)
    model = torch.hub.load(str(REPO), "ddrnet_segmentation", source="local", num_classes=3, arch=TINY_ARCH_23)
    torch.manual_seed(0)
    direct = create_segmentation_model("ddrnet23_slim", num_classes=3, arch=TINY_ARCH_23)
    assert isinstance(model, ddrnet_zoo.DDRNetSegmentation) and model.config == direct.config
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), direct.eval()(x))


# ---------------------------------------------------------------------------------------------- config.json
def test_config_json_is_the_models_arguments_and_rebuilds_it(tmp_path):
    model = tiny_seg_model(num_classes=4, context="ppm", dataset={"name": "toy", "class_names": list("abcd")})
    folder = save_pretrained(model, tmp_path / "hub", model_card=False)
    written = json.loads((folder / "config.json").read_text())
    assert written == json.loads(json.dumps(dict(model.config)))
    assert (
        written["format_version"] == 2
        and written["context"] == "ppm"
        and written["dataset"]["class_names"] == list("abcd")
    )
    rebuilt = ddrnet_zoo.DDRNetSegmentation(**read_model_config(written))
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert rebuilt.config == model.config
    # huggingface_hub's from_pretrained: keyword arguments replace the config's, weights load strictly
    mixin = ddrnet_zoo.DDRNetSegmentation.from_pretrained(folder, upsample_logits=False)
    assert mixin.upsample_logits is False and mixin.dataset == model.dataset
    assert_same_weights(model, mixin)
    with pytest.raises(TypeError):  # the view cannot be edited: the model's attributes are the description
        model.config["num_classes"] = 5


def test_format_1_configs_read_as_format_2():
    old = {
        "format_version": 1,
        "architecture": "ddrnet23_slim",
        "num_classes": 2,
        "dataset": "toy",
        "class_names": ["a", "b"],
        "palette": [[1, 2, 3], [4, 5, 6]],
        "mean": [0.5] * 3,
        "train_size": [8, 16],
    }
    args = read_model_config(old)
    assert args["dataset"] == {
        "name": "toy",
        "class_names": ["a", "b"],
        "palette": [[1, 2, 3], [4, 5, 6]],
        "mean": [0.5] * 3,
        "train_size": [8, 16],
    }
    assert "class_names" not in args and "format_version" not in args
    with torch.device("meta"):
        model = ddrnet_zoo.DDRNetSegmentation(**args)
    assert model.dataset["std"] == [0.229, 0.224, 0.225] and model.dataset["ignore_index"] == 255


@pytest.mark.parametrize(
    "change,message",
    [
        ({"format_version": 3}, "format_version 3 is not supported"),
        ({"colour": "red"}, r"unknown config fields \['colour'\]"),
        ({"num_classes": "3"}, "num_classes must be a positive integer"),
        ({"aux_head": "yes"}, "aux_head must be True or False"),
        ({"context": "aspp"}, "unknown context module 'aspp'"),
        ({"architecture": ["ddrnet23"]}, r"unknown DDRNet model \['ddrnet23'\]"),
        ({"arch": {"width": 0}}, "arch.width must be an int >= 1"),
        ({"arch": {"depth": 2}}, r"unknown arch fields \['depth'\]"),
        ({"dataset": {"class_names": ["a"]}}, "1 class names for num_classes=3"),
        ({"dataset": {"palette": [[0, 0, 256]] * 3}}, "palette entry 0 must be three integers in 0-255"),
        ({"dataset": {"mean": [0.5, 0.5]}}, r"dataset.mean needs 3 numbers"),
        ({"dataset": {"labels": []}}, r"unknown dataset fields \['labels'\]"),
        ({"metadata": []}, "metadata must be a mapping"),
    ],
)
def test_bad_config_values_are_named(change, message):
    config = {"format_version": 2, "architecture": "ddrnet23_slim", "num_classes": 3, **change}
    with pytest.raises(ValueError, match=message):
        with torch.device("meta"):
            ddrnet_zoo.DDRNetSegmentation(**read_model_config(config))


def test_a_built_backbone_is_refused_with_what_to_call_instead():
    backbone = timm.create_model("ddrnet23_slim", arch=TINY_ARCH_23, segmentation_mode=True)
    with pytest.raises(ValueError, match=r"takes the variant's name .* use create_segmentation_model\("):
        ddrnet_zoo.DDRNetSegmentation(backbone, num_classes=3)

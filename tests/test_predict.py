"""Prediction: ddrnet-predict and the Predictor API on files, folders and globs, with real outputs checked."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, TINY_ARCH_23
from PIL import Image
from test_fold import randomise_batchnorm

import ddrnet_zoo
from ddrnet_zoo import create_segmentation_model
from ddrnet_zoo.data.images import ImageReadError
from ddrnet_zoo.data.meta import CAMVID, CITYSCAPES, CITYSCAPES_LABEL_TO_TRAIN_ID
from ddrnet_zoo.hub import save_pretrained
from ddrnet_zoo.inference import (
    PAPER_SCALES,
    PaletteError,
    Predictor,
    colorize,
    find_images,
    overlay,
    resolve_palette,
    segment_logits,
)
from ddrnet_zoo.predict import main as predict_main


def _model(num_classes: int, dataset=None):
    torch.manual_seed(0)
    model = randomise_batchnorm(create_segmentation_model("ddrnet23", num_classes=num_classes, arch=TINY_ARCH_23))
    model.dataset["name"] = dataset
    return model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A CamVid-like tiny model in the Hub folder format (config.json + model.safetensors)."""
    return save_pretrained(_model(11, "camvid"), tmp_path_factory.mktemp("hub") / "tiny-camvid", model_card=False)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    arrays = {
        "a.png": rng.integers(0, 256, (96, 128, 3), dtype=np.uint8),
        "b.png": rng.integers(0, 256, (96, 128, 3), dtype=np.uint8),
        "sub/c.png": rng.integers(0, 256, (70, 90, 3), dtype=np.uint8),
        "sub/d.jpg": rng.integers(0, 256, (64, 80, 3), dtype=np.uint8),
    }
    for name, arr in arrays.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(root / name)
    (root / "notes.txt").write_text("not an image")
    return root


def expected_labels(model, image: np.ndarray, mean, std) -> np.ndarray:
    """Class indices straight from the (unfolded) model: the reference for what the CLI writes."""
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        return model(x).argmax(1)[0].numpy()


def test_cli_writes_labels_colours_and_overlays(model_dir, images, tmp_path, capsys):
    out = tmp_path / "out"
    assert predict_main(["-m", str(model_dir), str(images), "-o", str(out), "--batch-size", "2", "--workers", "0"]) == 0
    assert "predicted 4 images" in capsys.readouterr().out
    model = ddrnet_zoo.load_model(model_dir)
    dataset = model.dataset
    for name in ("a", "b", "sub/c", "sub/d"):
        suffix = ".jpg" if name == "sub/d" else ".png"
        image = np.asarray(Image.open(images / f"{name}{suffix}").convert("RGB"))
        label_png = Image.open(out / "labels" / f"{name}.png")
        assert label_png.mode == "P"  # class indices, shown in the CamVid palette by viewers
        labels = np.asarray(label_png)
        assert labels.shape == image.shape[:2]
        expected = expected_labels(model, image, dataset["mean"], dataset["std"])
        assert (labels == expected).mean() > 0.999  # folded vs unfolded: identical up to float rounding
        assert len(np.unique(labels)) > 1
        color = np.asarray(Image.open(out / "color" / f"{name}.png"))
        assert np.array_equal(color, np.asarray(CAMVID.palette, dtype=np.uint8)[labels])
        over = np.asarray(Image.open(out / "overlay" / f"{name}.jpg"))
        assert over.shape == image.shape
        blend = overlay(image, color, 0.5).astype(np.int16)
        err = np.abs(over.astype(np.int16) - blend).mean()  # JPEG (of random noise: the worst case)
        assert err < 0.5 * np.abs(over.astype(np.int16) - image).mean() and err < 12
    assert not list(out.rglob(".*.tmp"))


def test_glob_pattern_and_selected_outputs(model_dir, images, tmp_path):
    out = tmp_path / "out"
    pattern = str(images / "**" / "*.png")
    assert predict_main(["-m", str(model_dir), pattern, "-o", str(out), "--save", "label", "--no-progress"]) == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["labels/a.png", "labels/b.png", "labels/sub/c.png"]
    assert not (out / "color").exists()


def test_find_images_names_and_errors(images, tmp_path):
    found = find_images([images, images / "a.png"])
    assert [s.name for s in found] == ["a", "b", "sub/c", "sub/d"]  # duplicates dropped, folder-relative names
    with pytest.raises(FileNotFoundError, match="no such image"):
        find_images([tmp_path / "missing.png"])
    with pytest.raises(FileNotFoundError, match="matches no image"):
        find_images([str(tmp_path / "*.png")])
    with pytest.raises(FileNotFoundError, match="no images in folder"):
        find_images([tmp_path])
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(other / "a.png")
    with pytest.raises(ValueError, match="both be written as 'a'"):
        find_images([images / "a.png", other / "a.png"])


def test_unreadable_images(model_dir, images, tmp_path, capsys):
    bad_dir = tmp_path / "in"
    bad_dir.mkdir()
    (bad_dir / "broken.png").write_bytes(b"\x89PNG not really")
    Image.open(images / "a.png").save(bad_dir / "good.png")
    out = tmp_path / "out"
    assert predict_main(["-m", str(model_dir), str(bad_dir), "-o", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "broken.png" in err and "cannot be read" in err
    assert not out.exists()  # checked before anything is written
    assert predict_main(["-m", str(model_dir), str(bad_dir), "-o", str(out), "--keep-going", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "broken.png" in err and "ddrnet-predict: 1 image could not be read\n" in err
    assert (out / "labels" / "good.png").is_file() and not (out / "labels" / "broken.png").exists()


def test_summary_line_counts_in_the_right_number(model_dir, images, tmp_path, capsys):
    args = ["-m", str(model_dir), "-o", str(tmp_path / "out"), "--workers", "0", "--no-progress"]
    assert predict_main([str(images / "a.png"), *args]) == 0
    out = capsys.readouterr().out
    assert out.startswith("predicted 1 image in ") and "1 images" not in out
    assert "wrote 1 label image, 1 color image, 1 overlay image under" in out
    assert predict_main([str(images / "a.png"), str(images / "b.png"), "--save", "label", *args]) == 0
    out = capsys.readouterr().out
    assert out.startswith("predicted 2 images in ") and "wrote 2 label images under" in out


def test_error_is_not_printed_inside_the_progress_bar(model_dir, tmp_path, capsys):
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(small)
    code = predict_main(["-m", str(model_dir), str(small), "-o", str(tmp_path / "out"), "--workers", "0"])
    assert code == 2
    err = capsys.readouterr().err
    assert "predict:" in err  # the bar was shown
    lines = [line for line in err.split("\n") if "ddrnet-predict: error:" in line]
    assert len(lines) == 1
    assert lines[0].startswith("ddrnet-predict: error: image size 32x48 is below the model's minimum 64")


def test_truncated_image_is_a_clear_error(tmp_path):
    from ddrnet_zoo.data import read_image

    path = tmp_path / "cut.png"
    buf = tmp_path / "full.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf)
    path.write_bytes(buf.read_bytes()[:300])
    with pytest.raises(ImageReadError, match="cut.png"):
        read_image(path)


def test_photos_are_predicted_upright(tmp_path):
    """EXIF-rotated photos are segmented as viewers show them (the dataset reader keeps the stored grid)."""
    from test_data import write_rotated_photo

    from ddrnet_zoo.data import read_image

    write_rotated_photo(tmp_path / "portrait.jpg")
    stored = read_image(tmp_path / "portrait.jpg", exif_transpose=False)
    predictor = Predictor(_model(5), device="cpu")
    labels = predictor.predict(tmp_path / "portrait.jpg")
    assert labels.shape == (80, 64)
    assert np.array_equal(labels, predictor.predict(np.ascontiguousarray(np.rot90(stored, k=-1))))
    summary = predictor.predict_files(tmp_path / "portrait.jpg", tmp_path / "out", save=["label"], progress=False)
    assert summary.ok and Image.open(tmp_path / "out" / "labels" / "portrait.png").size == (64, 80)


def test_missing_weights_and_bad_palette(model_dir, images, tmp_path, capsys):
    assert predict_main(["-m", str(tmp_path / "nowhere"), str(images), "-o", str(tmp_path / "o")]) == 2
    assert "nowhere" in capsys.readouterr().err
    empty = tmp_path / "empty_model"
    empty.mkdir()
    (empty / "config.json").write_text((model_dir / "config.json").read_text())
    assert predict_main(["-m", str(empty), str(images), "-o", str(tmp_path / "o")]) == 2
    assert "model.safetensors" in capsys.readouterr().err
    argv = ["-m", str(model_dir), str(images), "-o", str(tmp_path / "o"), "--palette", "cityscapes"]
    assert predict_main(argv) == 2
    assert "19 colours but the model predicts 11 classes" in capsys.readouterr().err


def test_palettes(tmp_path):
    model = _model(11)
    assert np.array_equal(resolve_palette("camvid", 11), np.asarray(CAMVID.palette, np.uint8))
    assert np.array_equal(resolve_palette(None, 19, _model(19, "cityscapes").dataset), np.asarray(CITYSCAPES.palette))
    model.dataset["palette"] = [[i, i, i] for i in range(11)]
    assert resolve_palette("config", 11, model.dataset)[3].tolist() == [3, 3, 3]
    f = tmp_path / "p.json"
    f.write_text(json.dumps([[1, 2, 3]] * 11))
    assert resolve_palette(str(f), 11)[0].tolist() == [1, 2, 3]
    generated = resolve_palette(None, 7)
    assert generated.shape == (7, 3) and len({tuple(c) for c in generated.tolist()}) == 7
    with pytest.raises(PaletteError, match="11 colours but the model predicts 5"):
        resolve_palette(str(f), 5)
    with pytest.raises(PaletteError, match="unknown palette"):
        resolve_palette("pastel", 11)
    with pytest.raises(PaletteError, match="0-255"):
        resolve_palette([[0, 0, 300]], 1)
    with pytest.raises(PaletteError, match="palette has 2 colours"):
        colorize(np.array([[0, 2]]), np.zeros((2, 3), np.uint8))


def test_predictor_api_with_tta_and_resize():
    model = _model(5)
    predictor = Predictor(model, device="cpu", scales=(0.75, 1.0), flip=True)
    image = np.random.default_rng(1).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    labels = predictor.predict(image)
    assert labels.shape == (90, 120) and labels.dtype == np.int64
    x = predictor.preprocess([image])
    with torch.no_grad():
        expected = segment_logits(model, x, (0.75, 1.0), flip=True).argmax(1)[0].numpy()
    assert (labels == expected).mean() > 0.999
    assert predictor.predict(Image.fromarray(image)).shape == (90, 120)
    resized = Predictor(model, device="cpu", size=(64, 96)).predict(image)
    assert resized.shape == (90, 120)  # predicted at 64x96, resized back to the image
    with pytest.raises(ValueError, match="below the model's minimum"):
        Predictor(model, device="cpu").predict(image[:40])
    with pytest.raises(ValueError, match="minimum input"):
        Predictor(model, device="cpu", size=(32, 32))
    assert len(PAPER_SCALES) == 7


def test_cityscapes_label_ids(tmp_path, images):
    predictor = Predictor(_model(19, "cityscapes"), device="cpu")
    out = tmp_path / "out"
    predictor.predict_files(images / "a.png", out, save=["label"], label_ids=True, progress=False)
    values = set(np.unique(np.asarray(Image.open(out / "labels" / "a.png"))).tolist())
    assert values and values <= set(CITYSCAPES_LABEL_TO_TRAIN_ID)
    with pytest.raises(ValueError, match="19-class"):
        Predictor(_model(5), device="cpu").predict_files(images, out, label_ids=True)


def test_real_camvid_frame(camvid_root, model_dir, tmp_path):
    frame = sorted((camvid_root / "val").glob("*.png"))[0]
    out = tmp_path / "out"
    summary = Predictor(ddrnet_zoo.load_model(model_dir), device="cpu").predict_files(frame, out, progress=False)
    assert summary.num_images == 1 and summary.ok
    assert np.asarray(Image.open(out / "labels" / f"{frame.stem}.png")).shape == (360, 480)


def test_python_m_entry_point(model_dir, images, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "ddrnet_zoo.predict", "-m", str(model_dir), str(images / "a.png"), "-o", str(out)]
    proc = subprocess.run([*cmd, "--no-progress", "--workers", "0"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert (out / "overlay" / "a.jpg").is_file()

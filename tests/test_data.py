"""Datasets (Cityscapes, CamVid, folder), their errors, and the CPU / on-device augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddrnet_zoo.data import (
    CamVidDataset,
    CityscapesDataset,
    DatasetError,
    DeviceAugmenter,
    DeviceLoader,
    EvalTransform,
    FolderDataset,
    InMemoryDataset,
    TrainTransform,
    build_dataset,
)
from ddrnet_zoo.data.transforms import color_jitter, image_to_tensor, normalize, scale_crop_flip
from ddrnet_zoo.engine.trainer import TrainSampler
from ddrnet_zoo.errors import InputError


def write_folder_dataset(
    root: Path, n: int = 8, size=(64, 80), num_classes: int = 3, ignore: int = 255, split: str = "train", seed=0
) -> Path:
    """A small learnable dataset: the label is the brightness band of the red channel; some pixels ignored."""
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "ann").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        img = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        lbl = (img[..., 0].astype(int) * num_classes // 256).astype(np.uint8)
        lbl[rng.random(size) < 0.05] = ignore
        Image.fromarray(img).save(root / "img" / f"{split}{i}.png")
        Image.fromarray(lbl).save(root / "ann" / f"{split}{i}.png")
        lines.append(f"img/{split}{i}.png ann/{split}{i}.png")
    (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def write_cityscapes(root: Path, split: str = "train", cities=("aachen", "bonn"), size=(32, 64)) -> Path:
    rng = np.random.default_rng(1)
    for city in cities:
        for k in range(2):
            stem = f"{city}_{k:06d}_000019"
            d_img = root / "leftImg8bit" / split / city
            d_lbl = root / "gtFine" / split / city
            d_img.mkdir(parents=True, exist_ok=True)
            d_lbl.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(d_img / f"{stem}_leftImg8bit.png")
            ids = rng.choice([0, 1, 7, 8, 26, 33, 34, 255], size=size).astype(np.uint8)
            Image.fromarray(ids).save(d_lbl / f"{stem}_gtFine_labelIds.png")
    return root


# ---------------------------------------------------------------- datasets


def write_rotated_photo(path: Path, size=(64, 80)) -> np.ndarray:
    """A photo stored (H, W) = ``size`` with EXIF Orientation 6 (viewers turn it 90 degrees clockwise)."""
    pixels = np.random.default_rng(3).integers(0, 256, (*size, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    Image.fromarray(pixels).save(path, exif=exif)
    return pixels


def test_one_image_reader_with_an_explicit_exif_choice(tmp_path):
    """Datasets keep the stored pixel grid (their labels carry no EXIF); prediction turns photos upright."""
    from ddrnet_zoo.data import read_image
    from ddrnet_zoo.data.images import read_image as images_read_image

    assert images_read_image is read_image  # one decoder, exported by data
    root = write_folder_dataset(tmp_path, n=1)
    stored = write_rotated_photo(root / "img" / "train0.png")
    upright = read_image(root / "img" / "train0.png", exif_transpose=True)
    assert upright.shape == (80, 64, 3) and np.array_equal(upright, np.rot90(stored, k=-1))
    assert np.array_equal(read_image(root / "img" / "train0.png"), upright)  # the default honours EXIF
    assert np.array_equal(read_image(root / "img" / "train0.png", exif_transpose=False), stored)
    image, label = FolderDataset(root, "train", class_names=["a", "b", "c"]).load(0)
    assert np.array_equal(image, stored) and label.shape == stored.shape[:2]  # not turned: matches its label


def test_camvid_splits_and_void_mapping(camvid_root):
    train, val = CamVidDataset(camvid_root, "train"), CamVidDataset(camvid_root, "val")
    both = CamVidDataset(camvid_root, "train+val")
    assert (len(train), len(val), len(both)) == (367, 101, 468)
    assert both.num_classes == 11 and both.class_names[0] == "sky"
    image, label = train.load(0)
    raw = np.array(Image.open(train.samples[0][1]))
    assert image.shape == (360, 480, 3) and image.dtype == np.uint8 and label.shape == (360, 480)
    assert (label[raw == 11] == 255).all() and (label[raw < 11] == raw[raw < 11]).all()
    assert set(np.unique(label)) <= set(range(11)) | {255}
    assert train.name_of(0) == "0001TP_006690"
    # the shared copy is the usual SegNet one without its test split: the first line says what to set
    with pytest.raises(DatasetError) as info:
        CamVidDataset(camvid_root, "test")
    first, *rest = str(info.value).splitlines()
    assert first == (
        f"camvid: no split 'test' in {camvid_root} (it has train, val): set data.val_split or data.train_split "
        "to one of them"
    )
    assert rest[0].startswith(f"  looked for {camvid_root / 'test.txt'};")
    with pytest.raises(DatasetError, match=r"\(no list files, \*\.txt\): check data.root"):
        CamVidDataset(camvid_root / "train", "train")


def test_cityscapes_label_ids_map_to_train_ids(tmp_path):
    root = write_cityscapes(tmp_path)
    ds = CityscapesDataset(root, "train")
    assert len(ds) == 4 and ds.num_classes == 19
    image, label = ds.load(0)
    raw = np.array(Image.open(ds.samples[0][1]))
    expect = {0: 255, 1: 255, 7: 0, 8: 1, 26: 13, 33: 18, 34: 255, 255: 255}
    for k, v in expect.items():
        assert (label[raw == k] == v).all()
    assert ds.samples[0][0].name == "aachen_000000_000019_leftImg8bit.png"
    item = build_dataset("cityscapes", root, "train", EvalTransform())[1]
    assert item["image"].dtype == torch.float32 and item["label"].dtype == torch.int64


def test_cityscapes_label_ids_both_ways_from_one_table():
    from ddrnet_zoo.data import CITYSCAPES_LABEL_TO_TRAIN_ID, CITYSCAPES_TRAIN_ID_TO_LABEL_ID, train_ids_to_label_ids

    assert {CITYSCAPES_LABEL_TO_TRAIN_ID[v]: v for v in CITYSCAPES_TRAIN_ID_TO_LABEL_ID.values()} == {
        t: CITYSCAPES_TRAIN_ID_TO_LABEL_ID[t] for t in range(19)
    }
    ids = train_ids_to_label_ids(np.arange(19).reshape(1, 19))
    assert [CITYSCAPES_LABEL_TO_TRAIN_ID[int(v)] for v in ids[0]] == list(range(19))


def test_folder_dataset_ignore_and_label_map(tmp_path):
    root = write_folder_dataset(tmp_path, n=2, ignore=9)
    ds = FolderDataset(root, "train", class_names=["a", "b", "c"], ignore_index=9, name="toy")
    _, label = ds.load(0)
    raw = np.array(Image.open(ds.samples[0][1]))
    assert (label[raw == 9] == 255).all() and (label[raw != 9] == raw[raw != 9]).all()
    assert ds.info.name == "toy" and len(ds.info.palette) == 3
    # label_map renumbers (here: swap classes 0 and 2, ignore 9)
    mapped = FolderDataset(root, "train", ["a", "b", "c"], label_map={0: 2, 1: 1, 2: 0, 9: 255})
    _, lab2 = mapped.load(0)
    assert (lab2[raw == 0] == 2).all() and (lab2[raw == 9] == 255).all()
    # a list file given by path, and unlabelled lines when allowed
    (tmp_path / "unlabelled.txt").write_text("img/train0.png\n")
    ds = FolderDataset(root, str(tmp_path / "unlabelled.txt"), ["a", "b", "c"], require_labels=False)
    assert (ds.load(0)[1] == 255).all() and not ds.has_labels


def test_missing_root_and_split(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        CamVidDataset(tmp_path / "nowhere", "train")
    with pytest.raises(DatasetError, match="no dataset root"):
        build_dataset("camvid", None, "train")
    with pytest.raises(DatasetError, match="leftImg8bit/ and gtFine/"):
        CityscapesDataset(tmp_path, "train")
    with pytest.raises(DatasetError, match="unknown dataset kind"):
        build_dataset("ade20k", tmp_path, "train")
    with pytest.raises(DatasetError, match="class_names are required"):
        FolderDataset(tmp_path, "train", class_names=[])


def test_image_without_label(tmp_path):
    root = write_folder_dataset(tmp_path, n=2)
    (root / "ann" / "train1.png").unlink()
    with pytest.raises(DatasetError, match=r"train1.png has no label.*line 2"):
        FolderDataset(root, "train", ["a", "b", "c"])
    (root / "train.txt").write_text("img/train0.png\n")
    with pytest.raises(DatasetError, match="has no label; list files need 'image label' pairs"):
        FolderDataset(root, "train", ["a", "b", "c"])
    city = write_cityscapes(tmp_path / "cs")
    next((city / "gtFine" / "train" / "bonn").glob("*.png")).unlink()
    with pytest.raises(DatasetError, match="has no label"):
        CityscapesDataset(city, "train")


def test_size_mismatch(tmp_path):
    root = write_folder_dataset(tmp_path, n=1)
    Image.fromarray(np.zeros((32, 40), np.uint8)).save(root / "ann" / "train0.png")
    ds = FolderDataset(root, "train", ["a", "b", "c"])
    with pytest.raises(DatasetError, match=r"is 80x64 but its label .* is 40x32"):
        ds.load(0)


def test_label_values_outside_the_classes(tmp_path):
    root = write_folder_dataset(tmp_path, n=1)
    bad = np.zeros((64, 80), np.uint8)
    bad[0, :3] = [3, 7, 200]
    Image.fromarray(bad).save(root / "ann" / "train0.png")
    ds = FolderDataset(root, "train", ["a", "b", "c"])
    with pytest.raises(DatasetError, match=r"has values \[3, 7, 200\] of no class: .*\n.*valid raw values: 0-2, 255"):
        ds[0]
    Image.fromarray(np.zeros((64, 80, 3), np.uint8)).save(root / "ann" / "train0.png")
    with pytest.raises(DatasetError, match="not colour-coded RGB"):
        ds.load(0)
    with pytest.raises(DatasetError, match="is one of the 3 class ids"):
        FolderDataset(root, "train", ["a", "b", "c"], ignore_index=1)


# ---------------------------------------------------------------- augmentation


def _image_label(h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8), rng.integers(0, 5, (h, w)).astype(np.uint8)


def test_unit_scale_crop_is_a_plain_crop():
    image, label = _image_label()
    t = TrainTransform((32, 40), scale_range=(1.0, 1.0), flip=False, seed=5)
    for index in range(4):
        out = t(image, label, index=index)
        p = t.params(index, 0, image.shape[:2])
        oy, ox = p.offset
        assert 0 <= oy <= 16 and 0 <= ox <= 24
        ref = normalize(image_to_tensor(image))[:, oy : oy + 32, ox : ox + 40]
        torch.testing.assert_close(out["image"], ref, atol=1e-4, rtol=0)
        assert torch.equal(out["label"], torch.from_numpy(label[oy : oy + 32, ox : ox + 40]).long())


def test_flip_scale_and_padding():
    image, label = _image_label(8, 10)
    img = normalize(image_to_tensor(image)).unsqueeze(0)
    lab = torch.from_numpy(label).long().unsqueeze(0)
    # flip only
    out, out_lab = scale_crop_flip(img, lab, [1.0], [(0, 0)], [True], (8, 10))
    torch.testing.assert_close(out, img.flip(-1), atol=1e-4, rtol=0)
    assert torch.equal(out_lab, lab.flip(-1))
    # x2: labels are nearest-neighbour (each pixel repeated twice); crop larger than the image -> padding
    out, out_lab = scale_crop_flip(img, lab, [2.0], [(0, 0)], [False], (20, 24))
    assert torch.equal(out_lab[0, :16, :20], lab[0].repeat_interleave(2, 0).repeat_interleave(2, 1))
    assert (out_lab[0, 16:] == 255).all() and (out_lab[0, :, 20:] == 255).all()
    assert (out[0, :, 16:] == 0).all() and (out[0, :, :, 20:] == 0).all()
    # x0.5 of an image with 2x2 constant blocks gives the block values
    blocks = lab[0, ::2, ::2].repeat_interleave(2, 0).repeat_interleave(2, 1)[None]
    _, half = scale_crop_flip(img, blocks, [0.5], [(0, 0)], [False], (4, 5))
    assert torch.equal(half[0], lab[0, ::2, ::2])


def test_random_parameters_are_a_function_of_seed_epoch_index():
    image, label = _image_label(120, 160)
    t = TrainTransform((64, 64), scale_range=(0.5, 2.0), seed=3, image_scale=1.5)
    a, b = t(image, label, index=7, epoch=2), t(image, label, index=7, epoch=2)
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    params = [t.params(i, e, (120, 160)) for e in range(5) for i in range(40)]
    assert len({p.scale for p in params}) == len(params)  # fresh draws per (epoch, index)
    scales = np.array([p.scale for p in params]) / 1.5
    assert scales.min() >= 0.5 and scales.max() <= 2.0 and scales.min() < 0.7 and scales.max() > 1.8
    flips = np.array([p.flip for p in params])
    assert 0.3 < flips.mean() < 0.7
    for p in params:
        sh, sw = round(120 * p.scale), round(160 * p.scale)
        assert 0 <= p.offset[0] <= max(sh - 64, 0) and 0 <= p.offset[1] <= max(sw - 64, 0)


def test_device_pipeline_matches_cpu_transform(tmp_path):
    root = write_folder_dataset(tmp_path, n=5, size=(60, 90))
    ds = FolderDataset(root, "train", ["a", "b", "c"])
    kw = dict(crop_size=(48, 56), scale_range=(0.5, 2.0), image_scale=1.25, seed=11)
    cpu = TrainTransform(**kw)
    aug = DeviceAugmenter(InMemoryDataset(ds, "cpu"), **kw)
    assert aug.data.stacked
    images, labels = aug.batch([4, 0, 2], epoch=3)
    for k, i in enumerate([4, 0, 2]):
        image, label = ds.load(i)
        ref = cpu(image, label, index=i, epoch=3)
        torch.testing.assert_close(images[k], ref["image"], atol=2e-3, rtol=0)
        assert (labels[k] == ref["label"]).float().mean() > 0.999
    # the loader: (index, epoch) pairs from the training sampler, incomplete batch dropped
    sampler = TrainSampler(ds, num_replicas=1, rank=0, seed=0, chunk=2)
    sampler.set_epoch(1)
    batches = list(DeviceLoader(aug, sampler, batch_size=2))
    assert len(batches) == 2 and batches[0]["image"].shape == (2, 3, 48, 56)
    # images of different sizes are augmented one by one
    (root / "train.txt").write_text("img/train0.png ann/train0.png\n")
    write_folder_dataset(root, n=1, size=(70, 64), split="other")
    mixed = FolderDataset(root, "train+other", ["a", "b", "c"])
    mixed_aug = DeviceAugmenter(InMemoryDataset(mixed, "cpu"), **kw)
    assert not mixed_aug.data.stacked
    images, labels = mixed_aug.batch([0, 1], epoch=0)
    for k in range(2):
        image, label = mixed.load(k)
        ref = cpu(image, label, index=k, epoch=0)
        torch.testing.assert_close(images[k], ref["image"], atol=2e-3, rtol=0)


def test_train_sampler_splits_global_batches_between_processes():
    data = list(range(21))
    one = TrainSampler(data, num_replicas=1, rank=0, seed=4, chunk=4)  # 1 process, 2 micro-batches of 2
    ranks = [TrainSampler(data, num_replicas=2, rank=r, seed=4, chunk=2) for r in range(2)]
    for s in [one, *ranks]:
        s.set_epoch(3)
    full = [i for i, _ in one]
    assert len(full) == 20 and len(set(full)) == 20 and all(e == 3 for _, e in one)
    per_rank = [[i for i, _ in s] for s in ranks]
    # step t: rank 0 takes the first half of the global batch, rank 1 the second
    for t in range(5):
        assert per_rank[0][2 * t : 2 * t + 2] + per_rank[1][2 * t : 2 * t + 2] == full[4 * t : 4 * t + 4]
    ranks[0].set_start(4)
    assert [i for i, _ in ranks[0]] == per_rank[0][4:] and len(ranks[0]) == 6
    other = TrainSampler(data, num_replicas=1, rank=0, seed=4, chunk=4)
    other.set_epoch(4)
    assert [i for i, _ in other] != full


def test_color_jitter_is_affine_and_the_same_in_both_pipelines(tmp_path):
    root = write_folder_dataset(tmp_path, n=3, size=(60, 90))
    ds = FolderDataset(root, "train", ["a", "b", "c"])
    kw = dict(crop_size=(48, 56), scale_range=(0.5, 2.0), image_scale=1.25, seed=11)
    plain, jittered = TrainTransform(**kw), TrainTransform(**kw, color_jitter=0.4)
    p0, p1 = plain.params(2, 1, (60, 90)), jittered.params(2, 1, (60, 90))
    # the jitter draws after the geometry: the scale, crop and flip of every sample are unchanged
    assert (p0.scale, p0.offset, p0.flip) == (p1.scale, p1.offset, p1.flip) and p0.color is None
    assert all(0.6 <= f <= 1.4 for f in p1.color)
    image, label = ds.load(2)
    a, b = plain(image, label, index=2, epoch=1), jittered(image, label, index=2, epoch=1)
    assert torch.equal(a["label"], b["label"]) and not torch.allclose(a["image"], b["image"])
    # identity factors change nothing; the device pipeline jitters whole images and agrees with the CPU crops
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(color_jitter(x, [(1.0, 1.0, 1.0), None]), x, rtol=1e-5, atol=1e-5)
    aug = DeviceAugmenter(InMemoryDataset(ds, "cpu"), **kw, color_jitter=0.4)
    images, _ = aug.batch([2, 0], epoch=1)
    torch.testing.assert_close(images[0], b["image"], atol=2e-3, rtol=0)
    ref0 = jittered(*ds.load(0), index=0, epoch=1)
    torch.testing.assert_close(images[1], ref0["image"], atol=2e-3, rtol=0)
    # brightness 2 in 0-1 colour doubles the un-normalised image
    mean, std = torch.tensor([0.4, 0.5, 0.6]).view(3, 1, 1), torch.tensor([0.2, 0.3, 0.25]).view(3, 1, 1)
    out = color_jitter(x[:1], [(2.0, 1.0, 1.0)], mean.flatten().tolist(), std.flatten().tolist())
    torch.testing.assert_close(out[0] * std + mean, 2 * (x[0] * std + mean), rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match="color_jitter"):
        TrainTransform(**kw, color_jitter=1.5)

"""Augmentation of the paper (Sec. V-B): random scale 0.5-2.0, random crop padded with the ignore index,
horizontal flip, ImageNet mean/std normalisation.

One resampling function, :func:`scale_crop_flip`, serves the CPU data loader (one sample at a
time, in worker processes) and the on-device pipeline of :mod:`ddrnet_zoo.data.gpu` (a whole
batch in one ``grid_sample`` call). Scaling, cropping and flipping are a single affine
resampling: output pixel ``(i, j)`` of the crop reads the source image at
``((i + oy + 0.5) / s - 0.5, (j' + ox + 0.5) / s - 0.5)`` (``j' = crop_w - 1 - j`` when
flipped), which is exactly "resize by ``s`` (bilinear, ``align_corners=False``, as
``cv2.resize`` and the HRNet/DDRNet code), pad right/bottom to the crop size, crop at
``(oy, ox)``, flip" without materialising the resized image. Images are bilinear, labels
nearest; crop pixels outside the scaled image are 0 in the normalised image (the mean colour,
as the HRNet code pads after normalising) and the ignore index in the label.

The random parameters of a sample are a pure function of ``(seed, epoch, index)``
(:func:`augment_rng`), so augmentation is reproducible across worker counts, processes,
the CPU and device pipelines, and across ``--resume``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..constants import DEFAULT_MEAN, DEFAULT_STD, IGNORE_INDEX
from ..errors import InputError

__all__ = [
    "AugmentParams",
    "augment_rng",
    "sample_augment_params",
    "scale_crop_flip",
    "normalize",
    "color_jitter",
    "image_to_tensor",
    "TrainTransform",
    "EvalTransform",
]

# IGNORE_INDEX (re-exported from ddrnet_zoo.constants): the internal ignore label of every dataset
# (CamVid's void 11 and custom ignore values are mapped to it)


@dataclass(frozen=True)
class AugmentParams:
    """Random parameters of one training sample."""

    scale: float
    """Total resize factor (``image_scale`` times the random scale)."""
    offset: Tuple[int, int]
    """Top-left corner (y, x) of the crop in the scaled image."""
    flip: bool
    color: Optional[Tuple[float, float, float]] = None
    """Colour jitter factors (brightness, contrast, saturation), or None for none."""


def augment_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random generator of sample ``index`` in ``epoch`` (independent streams via ``SeedSequence``)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(index)])


def sample_augment_params(
    rng: np.random.Generator,
    image_size: Tuple[int, int],
    crop_size: Tuple[int, int],
    scale_range: Tuple[float, float] = (0.5, 2.0),
    flip: bool = True,
    image_scale: float = 1.0,
    color_jitter: float = 0.0,
) -> AugmentParams:
    """Draw scale ~ U(scale_range), a crop position uniformly inside the scaled image, a flip (p=0.5) and,
    with ``color_jitter`` > 0, brightness, contrast and saturation factors ~ U(1 - j, 1 + j)."""
    lo, hi = scale_range
    s = float(rng.uniform(lo, hi)) if hi > lo else float(lo)
    total = s * image_scale
    h, w = image_size
    ch, cw = crop_size
    sh, sw = int(round(h * total)), int(round(w * total))
    oy = int(rng.integers(0, max(sh - ch, 0) + 1))
    ox = int(rng.integers(0, max(sw - cw, 0) + 1))
    do_flip = bool(rng.random() < 0.5) if flip else False
    color = None
    if color_jitter > 0:
        b, c, t = (float(v) for v in rng.uniform(1.0 - color_jitter, 1.0 + color_jitter, size=3))
        color = (b, c, t)
    return AugmentParams(total, (oy, ox), do_flip, color)


def normalize(
    images: torch.Tensor, mean: Sequence[float] = DEFAULT_MEAN, std: Sequence[float] = DEFAULT_STD
) -> torch.Tensor:
    """uint8 (or 0-255 float) images (..., C, H, W) -> float32 ``(x / 255 - mean) / std``.

    The one normalisation of the package: the CPU transforms, the on-device augmenter and the
    :class:`~ddrnet_zoo.inference.Predictor` call it (``mean``/``std`` in 0-1, as timm's).
    """
    c = images.shape[-3]
    m = torch.tensor(mean, dtype=torch.float32, device=images.device).view(c, 1, 1) * 255.0
    s = torch.tensor(std, dtype=torch.float32, device=images.device).view(c, 1, 1) * 255.0
    return (images.float() - m) / s


def color_jitter(
    images: torch.Tensor,
    factors: Sequence[Optional[Tuple[float, float, float]]],
    mean: Sequence[float] = DEFAULT_MEAN,
    std: Sequence[float] = DEFAULT_STD,
) -> torch.Tensor:
    """Brightness, contrast and saturation jitter of normalised (N, 3, H, W) images, one factor triple per image
    (None: unchanged).

    In 0-1 colour: saturation blends with the luma (0.299 R + 0.587 G + 0.114 B), contrast scales about mid-grey
    0.5, brightness scales. Every step is affine per pixel and nothing is clipped, so the jitter commutes with
    bilinear resampling and cropping: the CPU and device pipelines, which jitter different windows, agree.
    """
    if all(f is None for f in factors):
        return images
    dev = images.device
    m = torch.tensor(mean, dtype=torch.float32, device=dev).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=dev).view(1, 3, 1, 1)
    f = torch.tensor([f if f is not None else (1.0, 1.0, 1.0) for f in factors], dtype=torch.float32, device=dev)
    b, c, t = (f[:, k].view(-1, 1, 1, 1) for k in range(3))
    x = images * s + m
    luma = (x * torch.tensor([0.299, 0.587, 0.114], device=dev).view(1, 3, 1, 1)).sum(1, keepdim=True)
    x = luma + t * (x - luma)
    x = 0.5 + c * (x - 0.5)
    x = b * x
    return (x - m) / s


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWxC uint8 array -> CxHxW uint8 tensor (no copy where possible)."""
    if image.ndim != 3:
        raise InputError(f"expected an HxWxC image array, got shape {image.shape}")
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)


def _axis_coords(
    n_out: int, offset: torch.Tensor, scale: torch.Tensor, src_offset: torch.Tensor, device
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Source coordinates (N, n_out) relative to the given source window, and output positions in scaled space."""
    pos = torch.arange(n_out, device=device, dtype=torch.float64).unsqueeze(0) + offset.unsqueeze(1)  # scaled coords
    src = (pos + 0.5) / scale.unsqueeze(1) - 0.5 - src_offset.unsqueeze(1)
    return src, pos


def scale_crop_flip(
    images: torch.Tensor,
    labels: Optional[torch.Tensor],
    scales: Sequence[float],
    offsets: Sequence[Tuple[int, int]],
    flips: Sequence[bool],
    crop_size: Tuple[int, int],
    full_size: Optional[Tuple[int, int]] = None,
    src_offsets: Optional[Sequence[Tuple[int, int]]] = None,
    ignore_index: int = IGNORE_INDEX,
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Resample a batch: scale, crop at ``offsets`` (scaled coordinates), flip; see the module doc.

    Args:
        images: (N, C, H, W) float, already normalised (padding becomes 0).
        labels: (N, H, W) integer labels, or None.
        scales, offsets, flips: per-sample parameters (:class:`AugmentParams` fields).
        crop_size: output (height, width).
        full_size: (H, W) of the whole source image when ``images`` is a window of it
            (default: ``images``' own size); pixels outside the whole image are padding.
        src_offsets: per-sample (y, x) of the window inside the whole image (default 0).
        ignore_index: label of padded pixels.

    Returns (N, C, crop_h, crop_w) images and (N, crop_h, crop_w) int64 labels.
    """
    if images.ndim != 4:
        raise InputError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    n, _, h_in, w_in = images.shape
    dev = images.device
    ch, cw = crop_size
    full_h, full_w = full_size if full_size is not None else (h_in, w_in)
    s = torch.tensor([float(v) for v in scales], dtype=torch.float64, device=dev)
    off = torch.tensor([list(o) for o in offsets], dtype=torch.float64, device=dev).reshape(n, 2)
    src_off = (
        torch.zeros(n, 2, dtype=torch.float64, device=dev)
        if src_offsets is None
        else torch.tensor([list(o) for o in src_offsets], dtype=torch.float64, device=dev).reshape(n, 2)
    )
    ys, pos_y = _axis_coords(ch, off[:, 0], s, src_off[:, 0], dev)
    xs, pos_x = _axis_coords(cw, off[:, 1], s, src_off[:, 1], dev)
    flip = torch.tensor([bool(f) for f in flips], device=dev).unsqueeze(1)
    xs = torch.where(flip, xs.flip(1), xs)
    pos_x = torch.where(flip, pos_x.flip(1), pos_x)
    # valid output pixels: their centre lies inside the scaled image
    valid_y = (pos_y + 0.5) <= full_h * s.unsqueeze(1)
    valid_x = (pos_x + 0.5) <= full_w * s.unsqueeze(1)
    valid = (valid_y.unsqueeze(2) & valid_x.unsqueeze(1)).unsqueeze(1)  # (N, 1, ch, cw)
    gy = (2 * ys + 1) / h_in - 1
    gx = (2 * xs + 1) / w_in - 1
    grid = torch.stack((gx.unsqueeze(1).expand(n, ch, cw), gy.unsqueeze(2).expand(n, ch, cw)), dim=-1).to(torch.float32)
    out = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    out = out * valid
    out_labels = None
    if labels is not None:
        lab = F.grid_sample(
            labels.unsqueeze(1).float(), grid, mode="nearest", padding_mode="border", align_corners=False
        )
        out_labels = torch.where(valid, lab, torch.full_like(lab, float(ignore_index))).squeeze(1).long()
    return out, out_labels


def _source_window(p: AugmentParams, size: Tuple[int, int], crop_size: Tuple[int, int]) -> Tuple[slice, slice]:
    """The rows/columns of the source image that a crop reads (with a margin for bilinear taps)."""
    win = []
    for o, c, n in zip(p.offset, crop_size, size):
        lo = (o + 0.5) / p.scale - 0.5
        hi = (o + c - 0.5) / p.scale - 0.5
        a = max(int(math.floor(lo)) - 1, 0)
        b = min(int(math.ceil(hi)) + 2, n)
        if b <= a:  # crop entirely in padding (cannot happen with sampled offsets); keep one pixel
            a, b = max(min(a, n - 1), 0), max(min(a, n - 1), 0) + 1
        win.append(slice(a, b))
    return win[0], win[1]


class TrainTransform:
    """CPU training augmentation: random scale, crop (ignore-padded), flip, normalise.

    Called as ``transform(image, label, index=i, epoch=e)`` with an HxWx3 uint8 array and an
    HxW integer label array (already mapped to train IDs with ``ignore_index``); returns
    ``{"image": (3, h, w) float32, "label": (h, w) int64}``. Only the source window that the
    crop reads is converted to float.

    Args:
        crop_size: (height, width) of the crops.
        scale_range: range of the uniform random scale.
        flip: random horizontal flip with probability 0.5.
        mean, std: normalisation (0-1 range, as timm).
        image_scale: a fixed factor applied on top of the random scale (e.g. 2.0 to train the
            480x360 SegNet copy of CamVid at the paper's 960x720 pixel scale).
        color_jitter: strength j of the brightness, contrast and saturation jitter (factors ~ U(1 - j, 1 + j));
            0 (the paper's recipe) for none.
        seed: base seed; parameters are a function of ``(seed, epoch, index)``.
        ignore_index: label of padding.
    """

    def __init__(
        self,
        crop_size: Tuple[int, int],
        scale_range: Tuple[float, float] = (0.5, 2.0),
        flip: bool = True,
        mean: Sequence[float] = DEFAULT_MEAN,
        std: Sequence[float] = DEFAULT_STD,
        image_scale: float = 1.0,
        seed: int = 0,
        ignore_index: int = IGNORE_INDEX,
        color_jitter: float = 0.0,
    ) -> None:
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        if not 0.0 <= color_jitter < 1.0:
            raise InputError(f"color_jitter must be in [0, 1), got {color_jitter}")
        self.color_jitter = float(color_jitter)
        if min(self.crop_size) < 1:
            raise InputError(f"crop_size must be positive, got {crop_size}")
        lo, hi = float(scale_range[0]), float(scale_range[1])
        if not 0 < lo <= hi:
            raise InputError(f"scale_range must satisfy 0 < low <= high, got {scale_range}")
        if image_scale <= 0:
            raise InputError(f"image_scale must be positive, got {image_scale}")
        self.scale_range = (lo, hi)
        self.flip = bool(flip)
        self.mean, self.std = tuple(mean), tuple(std)
        self.image_scale = float(image_scale)
        self.seed = int(seed)
        self.ignore_index = int(ignore_index)

    def params(self, index: int, epoch: int, image_size: Tuple[int, int]) -> AugmentParams:
        """The augmentation parameters of sample ``index`` in ``epoch``."""
        return sample_augment_params(
            augment_rng(self.seed, epoch, index),
            image_size,
            self.crop_size,
            self.scale_range,
            self.flip,
            self.image_scale,
            self.color_jitter,
        )

    def __call__(self, image: np.ndarray, label: np.ndarray, index: int = 0, epoch: int = 0) -> Dict[str, torch.Tensor]:
        size = (image.shape[0], image.shape[1])
        p = self.params(index, epoch, size)
        ry, rx = _source_window(p, size, self.crop_size)
        img = normalize(image_to_tensor(image[ry, rx]).unsqueeze(0), self.mean, self.std)
        img = color_jitter(img, [p.color], self.mean, self.std)
        lab = torch.from_numpy(np.ascontiguousarray(label[ry, rx]).astype(np.int64)).unsqueeze(0)
        out_img, out_lab = scale_crop_flip(
            img,
            lab,
            [p.scale],
            [p.offset],
            [p.flip],
            self.crop_size,
            full_size=size,
            src_offsets=[(ry.start, rx.start)],
            ignore_index=self.ignore_index,
        )
        return {"image": out_img[0], "label": out_lab[0]}

    def __repr__(self) -> str:
        return (
            f"TrainTransform(crop_size={self.crop_size}, scale_range={self.scale_range}, flip={self.flip}, "
            f"image_scale={self.image_scale}, color_jitter={self.color_jitter}, seed={self.seed})"
        )


class EvalTransform:
    """Evaluation: normalise the image, keep the label at full resolution (int64).

    Resizing for the model (``image_scale``, multi-scale) happens on the device in the evaluator.
    """

    def __init__(self, mean: Sequence[float] = DEFAULT_MEAN, std: Sequence[float] = DEFAULT_STD):
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, image: np.ndarray, label: np.ndarray, index: int = 0, epoch: int = 0) -> Dict[str, torch.Tensor]:
        img = normalize(image_to_tensor(image), self.mean, self.std)
        return {"image": img, "label": torch.from_numpy(np.ascontiguousarray(label).astype(np.int64))}

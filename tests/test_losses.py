"""Losses against brute-force implementations: cross-entropy, OHEM (HRNet/MMSegmentation definition), Eq. 3."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ddrnet_zoo.losses import SegmentationLoss, cross_entropy, ohem_cross_entropy

IGNORE = 255


def brute_pixel_losses(logits, target, weight=None):
    """(loss, weight, true-class probability) of every valid pixel, by explicit loops."""
    n, c, h, w = logits.shape
    out = []
    for b in range(n):
        for y in range(h):
            for x in range(w):
                t = int(target[b, y, x])
                if t == IGNORE:
                    continue
                z = [float(logits[b, k, y, x]) for k in range(c)]
                m = max(z)
                lse = m + math.log(sum(math.exp(v - m) for v in z))
                wt = 1.0 if weight is None else float(weight[t])
                out.append((wt * (lse - z[t]), wt, math.exp(z[t] - lse)))
    return out


def brute_ce(logits, target, weight=None):
    px = brute_pixel_losses(logits, target, weight)
    return sum(p[0] for p in px) / sum(p[1] for p in px)


def brute_ohem(logits, target, thresh, min_kept, weight=None):
    """The HRNet OhemCrossEntropy algorithm, written out: sort valid pixels by true-class probability,
    threshold = max(prob[min(min_kept, n - 1)], thresh), mean loss of pixels with prob < threshold."""
    px = sorted(brute_pixel_losses(logits, target, weight), key=lambda p: p[2])
    if not px:
        return 0.0
    threshold = max(px[min(min_kept, len(px) - 1)][2], thresh)
    kept = [p[0] for p in px if p[2] < threshold]
    return sum(kept) / len(kept)


def _case(seed=0, n=2, c=5, h=6, w=7, ignore_frac=0.2, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, h, w, generator=g) * scale
    target = torch.randint(0, c, (n, h, w), generator=g)
    target[torch.rand(n, h, w, generator=g) < ignore_frac] = IGNORE
    return logits, target


@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_matches_brute_force_and_torch(weighted):
    logits, target = _case(1)
    weight = torch.tensor([0.5, 1.0, 2.0, 1.5, 0.8]) if weighted else None
    ours = cross_entropy(logits, target, class_weight=weight)
    assert ours.item() == pytest.approx(brute_ce(logits, target, weight), rel=1e-5)
    ref = F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-6)


@pytest.mark.parametrize(
    "thresh,min_kept",
    [
        (0.7, 5),  # many pixels below the threshold: the threshold decides
        (0.05, 10),  # few below the threshold: the min_kept least confident pixels are kept
        (0.9, 10_000),  # min_kept above the number of valid pixels (reference quirk: the most confident is dropped)
        (1.0, 0),  # everything below 1.0 is kept
    ],
)
@pytest.mark.parametrize("weighted", [False, True])
def test_ohem_matches_brute_force(thresh, min_kept, weighted):
    logits, target = _case(2)
    weight = torch.tensor([1.2, 0.7, 1.0, 0.9, 1.1]) if weighted else None
    ours = ohem_cross_entropy(logits, target, IGNORE, thresh, min_kept, weight)
    assert ours.item() == pytest.approx(brute_ohem(logits, target, thresh, max(min_kept, 1), weight), rel=1e-5)


def test_ohem_selects_the_expected_pixels():
    # two classes; true-class probabilities set exactly through the logit gap
    probs = torch.tensor([0.05, 0.2, 0.5, 0.8, 0.95, 0.99])
    logit1 = torch.log(probs / (1 - probs))
    logits = torch.stack([torch.zeros(6), logit1]).view(1, 2, 1, 6)
    target = torch.ones(1, 1, 6, dtype=torch.long)
    per_pixel = -torch.log(probs)
    # threshold 0.9, min_kept 2: pixels with p < 0.9 are kept (4 of them)
    assert ohem_cross_entropy(logits, target, thresh=0.9, min_kept=2).item() == pytest.approx(
        per_pixel[:4].mean().item(), rel=1e-5
    )
    # threshold 0.1, min_kept 3: p_sorted[3] = 0.8 > 0.1, so the three least confident are kept
    assert ohem_cross_entropy(logits, target, thresh=0.1, min_kept=3).item() == pytest.approx(
        per_pixel[:3].mean().item(), rel=1e-5
    )
    # gradients flow only into kept pixels
    x = logits.clone().requires_grad_(True)
    ohem_cross_entropy(x, target, thresh=0.1, min_kept=3).backward()
    touched = x.grad.abs().sum(dim=(0, 1, 2)) > 0
    assert touched.tolist() == [True, True, True, False, False, False]


def test_ohem_min_kept_counts_the_whole_batch_not_per_image():
    logits, target = _case(3, n=4, ignore_frac=0.0, scale=0.1)  # all probabilities ~0.2 < thresh
    n_valid = target.numel()
    full = ohem_cross_entropy(logits, target, thresh=0.0, min_kept=n_valid // 2)
    assert full.item() == pytest.approx(brute_ohem(logits, target, 0.0, n_valid // 2), rel=1e-5)


def test_all_ignored_gives_zero_with_graph():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    target = torch.full((1, 4, 4), IGNORE)
    for loss in (ohem_cross_entropy(logits, target), cross_entropy(logits, target)):
        assert loss.item() == 0.0
        loss.backward()
        assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() == 0


def test_low_resolution_logits_are_upsampled():
    logits, target = _case(4, h=8, w=8)
    small = logits[:, :, ::2, ::2].contiguous()
    up = F.interpolate(small, size=(8, 8), mode="bilinear", align_corners=False)
    assert cross_entropy(small, target).item() == pytest.approx(cross_entropy(up, target).item(), rel=1e-6)
    assert ohem_cross_entropy(small, target).item() == pytest.approx(ohem_cross_entropy(up, target).item(), rel=1e-6)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        cross_entropy(torch.randn(3, 4, 4), torch.zeros(3, 4, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        cross_entropy(torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="class_weight"):
        cross_entropy(torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long), class_weight=[1.0, 2.0])
    with pytest.raises(ValueError, match="unknown loss type"):
        SegmentationLoss(type="dice")


@pytest.mark.parametrize("aux_type", ["ce", "same"])
def test_eq3_total_is_main_plus_weighted_aux(aux_type):
    main, target = _case(5)
    aux, _ = _case(6)
    crit = SegmentationLoss(type="ohem", aux_weight=0.4, aux_type=aux_type, ohem_thresh=0.7, ohem_min_kept=8)
    total, parts = crit({"out": main, "aux": aux}, target)
    want_main = brute_ohem(main, target, 0.7, 8)
    want_aux = brute_ohem(aux, target, 0.7, 8) if aux_type == "same" else brute_ce(aux, target)
    assert parts["loss_main"].item() == pytest.approx(want_main, rel=1e-5)
    assert parts["loss_aux"].item() == pytest.approx(want_aux, rel=1e-5)
    assert total.item() == pytest.approx(want_main + 0.4 * want_aux, rel=1e-5)
    # a plain tensor (eval output / no aux head) is the main loss alone
    only, parts = crit(main, target)
    assert only.item() == pytest.approx(want_main, rel=1e-5) and "loss_aux" not in parts


def test_defaults_are_the_reference_values():
    crit = SegmentationLoss()
    assert (crit.type, crit.ohem_thresh, crit.ohem_min_kept, crit.aux_weight, crit.aux_type) == (
        "ohem",
        0.9,
        131072,
        0.4,
        "ce",
    )
    # fewer valid pixels than min_kept: every pixel below the most confident one is kept
    logits, target = _case(7)
    np.testing.assert_allclose(
        crit.single(logits, target, "ohem").item(), brute_ohem(logits, target, 0.9, 131072), 1e-5
    )

"""Inference: test-time augmentation, prediction, deployment and export."""

from .tta import PAPER_SCALES, segment_logits

__all__ = ["PAPER_SCALES", "segment_logits"]

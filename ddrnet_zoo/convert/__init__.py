"""Checkpoint converters between ddrnet_zoo and the layouts users already have."""

from .original import original_key_map

__all__ = ["original_key_map"]

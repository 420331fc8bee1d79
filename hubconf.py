"""PyTorch Hub entry points: ``torch.hub.load(repo, "ddrnet23_slim", ...)``.

Backbones come from timm's registry (``pretrained=True`` loads the ImageNet weights through timm);
``ddrnet_segmentation`` builds a segmentation model with :func:`ddrnet_zoo.create_segmentation_model`.
Trained segmentation weights load with ``ddrnet_zoo.load_model(source)``.
"""

import timm

import ddrnet_zoo

# torch.hub checks that these import before it loads an entry point (module names, not package names)
dependencies = [
    "torch",
    "timm",
    "huggingface_hub",
    "safetensors",
    "fvcore",
    "numpy",
    "omegaconf",
    "PIL",
    "yaml",
    "tqdm",
]


def ddrnet23_slim(pretrained: bool = False, **kwargs) -> ddrnet_zoo.DDRNet:
    """DDRNet-23-slim ImageNet backbone (timm's ``ddrnet23_slim``); ``kwargs`` go to ``timm.create_model``."""
    return timm.create_model("ddrnet23_slim", pretrained=pretrained, **kwargs)


def ddrnet23(pretrained: bool = False, **kwargs) -> ddrnet_zoo.DDRNet:
    """DDRNet-23 ImageNet backbone (timm's ``ddrnet23``); ``kwargs`` go to ``timm.create_model``."""
    return timm.create_model("ddrnet23", pretrained=pretrained, **kwargs)


def ddrnet39(pretrained: bool = False, **kwargs) -> ddrnet_zoo.DDRNet:
    """DDRNet-39 ImageNet backbone (timm's ``ddrnet39``); ``kwargs`` go to ``timm.create_model``."""
    return timm.create_model("ddrnet39", pretrained=pretrained, **kwargs)


def ddrnet39_1_5x(pretrained: bool = False, **kwargs) -> ddrnet_zoo.DDRNet:
    """DDRNet-39 1.5x ImageNet backbone (timm's ``ddrnet39_1_5x``); ``kwargs`` go to ``timm.create_model``."""
    return timm.create_model("ddrnet39_1_5x", pretrained=pretrained, **kwargs)


def ddrnet_segmentation(
    model_name: str = "ddrnet23_slim", num_classes: int = 19, pretrained_backbone: bool = False, **kwargs
) -> ddrnet_zoo.DDRNetSegmentation:
    """A DDRNet segmentation model (randomly initialised heads): the arguments of
    :func:`ddrnet_zoo.create_segmentation_model` (``context``, ``aux_head``, ``upsample_logits``, ``in_chans``...)."""
    return ddrnet_zoo.create_segmentation_model(
        model_name, num_classes=num_classes, pretrained_backbone=pretrained_backbone, **kwargs
    )

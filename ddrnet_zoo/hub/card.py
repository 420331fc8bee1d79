"""The model card of a Hub folder: measured figures, usage, classes, license, citation.

Built by hand on :class:`huggingface_hub.ModelCard`/``ModelCardData``/``EvalResult`` (the card YAML):
huggingface_hub's card template has no slots for measured figures, the commands that measured
them, or a class/palette table, which this card's readers need.
"""

from __future__ import annotations

import copy
import json
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from torch import nn

from ..errors import InputError
from ..models import MODEL_ARCHS, DDRNetSegmentation, count_flops, count_params
from ..models.ddrnet import pretrained_hub_id

__all__ = ["CITATION", "MODEL_CARD_NAME", "PAPER_TITLE", "build_model_card", "is_smoke_test"]

MODEL_CARD_NAME = "README.md"

PAPER_TITLE = "Deep Dual-resolution Networks for Real-time and Accurate Semantic Segmentation of Road Scenes"
CITATION = """@article{hong2021ddrnet,
  title   = {Deep Dual-resolution Networks for Real-time and Accurate Semantic Segmentation of Road Scenes},
  author  = {Hong, Yuanduo and Pan, Huihui and Sun, Weichao and Jia, Yisong},
  journal = {arXiv preprint arXiv:2101.06085},
  year    = {2021}
}"""


def _results(config_or_results: Any) -> List[Dict[str, Any]]:
    if config_or_results is None:
        return []
    if isinstance(config_or_results, dict):
        config_or_results = [config_or_results]
    out = []
    for r in config_or_results:
        r = dict(r)
        missing = [k for k in ("metric", "value") if k not in r]
        if missing:
            raise InputError(f"result {r} lacks {missing}; each result needs 'metric' and 'value'")
        out.append(r)
    return out


def _custom_arch(model: DDRNetSegmentation) -> Optional[Tuple[str, str]]:
    """(name suffix, description) of a model whose widths/depths differ from its registered variant, else None."""
    arch, base = model.backbone.arch, MODEL_ARCHS[model.architecture]
    if arch == base:
        return None
    suffix = f"-w{arch.width}" if arch.width != base.width else "-custom"
    return suffix, f"custom widths (width {arch.width}, depths {list(arch.depths)}) based on {model.architecture}"


def is_smoke_test(config: Optional[Mapping[str, Any]]) -> bool:
    """Whether ``config`` (a model's :attr:`~ddrnet_zoo.models.DDRNetSegmentation.config`, or an ONNX file's) is
    that of a smoke-test run's export (``train.smoke_test``): not a trained model."""
    metadata = (config or {}).get("metadata") or {}
    return bool((metadata.get("training") or {}).get("smoke_test"))


def _default_repo_name(model: nn.Module) -> str:
    """``<variant>[-w<width>].<dataset>``: a model with custom widths is not named as the registered variant."""
    if isinstance(model, DDRNetSegmentation):
        name = model.dataset["name"]
        custom = _custom_arch(model)
        return f"{model.architecture}{custom[0] if custom else ''}{f'.{name}' if name else ''}"
    return model.pretrained_cfg.get("architecture", "ddrnet") if hasattr(model, "pretrained_cfg") else "ddrnet"


def _py_str(text: str) -> str:
    """A Python string literal as ruff format writes it (double quotes), for the card's code."""
    return json.dumps(text)


def _measure(
    model: nn.Module, seg: bool, flops_input_size: Optional[Tuple[int, int]], load_lines: List[str]
) -> Tuple[List[Tuple[str, str]], List[str]]:
    """Measured figures of ``model`` (rows of the card) and the code that measures them again."""
    rows = [("Parameters (all)", f"{count_params(model) / 1e6:.3f} M")]
    *imports, load = load_lines
    code = [*imports, "from ddrnet_zoo.flops import count_flops, count_params", "", load]
    code.append("print(count_params(model) / 1e6)")
    counted = copy.deepcopy(model).to("cpu").float().eval()
    if seg:  # the paper's convention (ddrnet_zoo.flops): no auxiliary head, BN folded, logits at 1/8
        counted.aux_head = None
        counted.upsample_logits = False
        rows.append(
            (
                "Parameters (conv/linear weights, no aux. head: the paper's convention)",
                f"{count_params(counted, exclude_norm=True) / 1e6:.3f} M",
            )
        )
        code += [
            "model.aux_head, model.upsample_logits = None, False  # the paper's convention",
            "print(count_params(model, exclude_norm=True) / 1e6)",
        ]
    if flops_input_size is not None:
        h, w = flops_input_size
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fvcore's tracer/jit deprecation chatter
            gflops = count_flops(counted, (1, model.in_chans, h, w), exclude_norm=seg) / 1e9
        rows.append(
            (
                f"GFLOPs at {h}x{w} (fvcore, {'BN excluded, ' if seg else ''}one multiply-add = one FLOP)",
                f"{gflops:.2f}",
            )
        )
        code.append(f"print(count_flops(model, (1, {model.in_chans}, {h}, {w}), exclude_norm={seg}) / 1e9)")
    return rows, code


_METRIC_IDS = {"miou": "mean_iou", "mean iou": "mean_iou", "top-1": "accuracy", "top1": "accuracy"}


def build_model_card(
    model: nn.Module,
    repo_id: Optional[str] = None,
    results: Optional[Sequence[Dict[str, Any]]] = None,
    flops_input_size: Optional[Tuple[int, int]] = None,
):
    """A :class:`huggingface_hub.ModelCard` for ``model``: measured figures, usage, classes, license, citation.

    Args:
        model: a DDRNetSegmentation (described by its ``config``) or a DDRNet classifier.
        repo_id: the Hub repository the card is for (used in the usage snippet).
        results: measured metrics, each ``{"metric", "value", "dataset", "split", "images", "command", "notes"}``
            (default ``model.metadata["results"]``): rendered as a table with the command that measured them.
            ``model.metadata["about"]`` (markdown), if set, opens the card: what the weights are and how
            they were made.
        flops_input_size: also measure fvcore GFLOPs at this (H, W).
    """
    seg = isinstance(model, DDRNetSegmentation)
    if seg:
        described = model.dataset
        results = _results(results if results is not None else model.metadata.get("results"))
    else:
        results = _results(results)
    name = repo_id or f"ddrnet-zoo/{_default_repo_name(model)}"
    architecture = model.architecture if seg else model.pretrained_cfg.get("architecture", "ddrnet")
    task = "image-segmentation" if seg else "image-classification"
    dataset = described["name"] if seg else ("imagenet-1k" if model.num_classes == 1000 else None)
    eval_results = [
        EvalResult(
            task_type=task,
            dataset_type=str(r.get("dataset") or dataset or "unknown"),
            dataset_name=str(r.get("dataset") or dataset or "unknown"),
            dataset_split=r.get("split"),
            metric_type=_METRIC_IDS.get(str(r["metric"]).lower(), str(r["metric"]).lower().replace(" ", "_")),
            metric_name=str(r["metric"]),
            metric_value=r["value"],
        )
        for r in results
    ]
    card_data = ModelCardData(
        license="mit",
        library_name="ddrnet_zoo" if seg else "timm",
        pipeline_tag=task,
        tags=["ddrnet", "real-time", "semantic-segmentation" if seg else "image-classification", "ddrnet_zoo"],
        datasets=[dataset] if seg and dataset else None,
        model_name=name.split("/")[-1],
        eval_results=eval_results or None,
    )
    lines = [f"# {name.split('/')[-1]}", ""]
    if seg:
        custom = _custom_arch(model)
        if is_smoke_test(model.config):
            iters = (model.metadata.get("training") or {}).get("iteration")
            run = f"{iters} iterations on a few images" if iters is not None else "a few images"
            lines += [
                f"**Smoke test, not a trained model**: a pipeline check ({run}); its results say nothing "
                "about DDRNet's accuracy.",
                "",
            ]
        about = model.metadata.get("about")
        if about:  # what these weights are, in the trainer's words (markdown), before the generic sections
            lines += [str(about).strip(), ""]
        if custom:
            what = f"DDRNet semantic segmentation model with {custom[1]}"
            arch_text = f"{custom[1]} (`arch` in config.json), not the registered variant"
        else:
            what, arch_text = f"DDRNet ({architecture}) semantic segmentation model", f"`{architecture}`"
        lines += [
            what
            + (f" for {dataset}" if dataset else "")
            + f", {model.num_classes} classes, for ddrnet_zoo (paper: [{PAPER_TITLE}]"
            "(https://arxiv.org/abs/2101.06085); original release: https://github.com/ydhongHIT/DDRNet).",
            "",
            "## Model details",
            "",
            "| | |",
            "|---|---|",
            f"| Architecture | {arch_text} |",
            f"| Context module | {model.context_name} |",
            f"| Auxiliary head | {'yes (deep supervision, training only)' if model.aux_head else 'no'} |",
            f"| Classes | {model.num_classes} |",
            f"| Input | {model.in_chans}-channel images, normalised with mean {described['mean']} and std "
            f"{described['std']} (values in 0-1) |",
        ]
        if described["train_size"]:
            lines.append(f"| Training crop (H x W) | {described['train_size'][0]} x {described['train_size'][1]} |")
        source = model.metadata.get("converted_from")
        if source:
            lines.append(
                f"| Converted from | `{source.get('file')}` ({source.get('layout')} layout, sha256 "
                f"`{str(source.get('sha256', ''))[:16]}...`) |"
            )
    else:
        lines += [
            f"DDRNet ({architecture}) image classifier / backbone for [timm](https://github.com/huggingface/"
            f"pytorch-image-models), from ddrnet_zoo (paper: [{PAPER_TITLE}](https://arxiv.org/abs/2101.06085); "
            "original release: https://github.com/ydhongHIT/DDRNet).",
            "",
            "## Model details",
            "",
            "| | |",
            "|---|---|",
            f"| Architecture | `{architecture}` |",
            f"| Classes | {model.num_classes} |",
            f"| Input | {tuple(model.pretrained_cfg.get('input_size', (3, 224, 224)))} |",
        ]
    if seg:
        load_lines = ["from ddrnet_zoo import load_model", f"model = load_model({_py_str(name)})"]
    else:
        load_lines = [
            "import timm",
            "import ddrnet_zoo",
            f"model = timm.create_model({_py_str('hf-hub:' + name)}, pretrained=True)",
        ]
    rows, code = _measure(model, seg, flops_input_size, load_lines)
    lines += ["", "## Measured figures", "", "| Figure | Value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines += ["", "Measured on these weights when the card was written; measure again with:", "", "```python"]
    lines += code + ["```"]
    if results:
        lines += [
            "",
            "## Results",
            "",
            "| Metric | Value | Dataset | Split | Images | Command | Notes |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in results:
            cmd = f"`{r['command']}`" if r.get("command") else ""
            lines.append(
                f"| {r['metric']} | {r['value']} | {r.get('dataset', dataset or '')} | {r.get('split', '')} "
                f"| {r.get('images', '')} | {cmd} | {r.get('notes', '')} |"
            )
    lines += ["", "## Usage", "", "```python"]
    if seg:
        lines += [
            "import torch",
            "from ddrnet_zoo import load_model",
            "",
            f"model = load_model({_py_str(name)})  # in eval mode",
            'mean = torch.tensor(model.dataset["mean"]).view(1, -1, 1, 1)',
            'std = torch.tensor(model.dataset["std"]).view(1, -1, 1, 1)',
            "images = torch.rand(1, 3, 512, 1024)  # RGB in 0-1, (N, C, H, W)",
            "with torch.no_grad():",
            "    logits = model((images - mean) / std)  # (N, num_classes, H, W)",
            'labels = logits.argmax(1)  # class indices into model.dataset["class_names"] and ["palette"]',
        ]
    else:
        default_id = pretrained_hub_id(architecture)  # the default tag's Hub id: the plain name loads it
        how = _py_str(architecture if default_id == name else f"hf-hub:{name}")
        lines += [
            "import timm",
            "import ddrnet_zoo  # registers the DDRNet models with timm",
            "",
            f"model = timm.create_model({how}, pretrained=True).eval()",
            "data_cfg = timm.data.resolve_data_config({}, model=model)",
            "transform = timm.data.create_transform(**data_cfg)",
            f"# as a segmentation backbone: ddrnet_zoo.create_segmentation_model({_py_str(architecture)}, "
            "pretrained_backbone=True)",
        ]
    lines += ["```"]
    if seg and described["class_names"]:
        lines += ["", "## Classes", "", "| Index | Class | Colour (RGB) |", "|---|---|---|"]
        palette = described["palette"] or [None] * model.num_classes
        for i, (n, c) in enumerate(zip(described["class_names"], palette)):
            lines.append(f"| {i} | {n} | {'' if c is None else tuple(c)} |")
    lines += [
        "",
        "## License",
        "",
        "MIT, as the original DDRNet release.",
        "",
        "## Citation",
        "",
        "```bibtex",
        CITATION,
        "```",
        "",
    ]
    content = f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(lines)
    return ModelCard(content)

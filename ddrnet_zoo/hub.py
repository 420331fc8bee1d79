"""Weights on the Hugging Face Hub: save, load and publish DDRNet models.

A Hub folder holds ``model.safetensors``, ``config.json`` and a generated model card ``README.md``.

* Segmentation models: ``config.json`` is :meth:`SegmentationConfig.to_dict` (architecture, classes,
  class names, palette, mean/std, context module, training size, dataset). Load with
  :func:`from_pretrained` (a Hub id or a local folder).
* Classification backbones: timm's own format (``architecture``, ``num_classes``, ``model_args``,
  ``pretrained_cfg``), written by :func:`timm.models.save_for_hf`; load with
  ``timm.create_model('hf-hub:ORG/NAME', pretrained=True)`` (after ``import ddrnet_zoo``) or
  :func:`from_pretrained`.

Downloads go through :func:`huggingface_hub.hf_hub_download` (its cache, ``HF_HUB_CACHE``,
``HF_HUB_OFFLINE``, tokens and revisions); uploads through ``create_repo`` + ``upload_folder``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .io import CheckpointError, atomic_directory, json_text, read_state_dict
from .published import check_published

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "MODEL_CARD_NAME",
    "CITATION",
    "save_pretrained",
    "from_pretrained",
    "push_to_hub",
    "upload_folder_to_hub",
    "build_model_card",
    "config_from_model",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MODEL_CARD_NAME = "README.md"
# files of a Hub folder that a new save replaces or drops (other files in the folder are kept)
HUB_FOLDER_FILES = (CONFIG_NAME, WEIGHTS_NAME, MODEL_CARD_NAME, "pytorch_model.bin", "model.safetensors.index.json")

PAPER_TITLE = "Deep Dual-resolution Networks for Real-time and Accurate Semantic Segmentation of Road Scenes"
CITATION = """@article{hong2021ddrnet,
  title   = {Deep Dual-resolution Networks for Real-time and Accurate Semantic Segmentation of Road Scenes},
  author  = {Hong, Yuanduo and Pan, Huihui and Sun, Weichao and Jia, Yisong},
  journal = {arXiv preprint arXiv:2101.06085},
  year    = {2021}
}"""

PathLike = Union[str, os.PathLike]


def _version() -> str:
    from . import __version__

    return __version__


# ---------------------------------------------------------------------------------------------- helpers
def _save_safetensors(state_dict: Dict[str, torch.Tensor], path: Path, metadata: Optional[Dict[str, str]] = None):
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    save_file(tensors, str(path), metadata={"format": "pt", **(metadata or {})})


def _is_segmentation(model: nn.Module) -> bool:
    from .models import DDRNetSegmentation

    return isinstance(model, DDRNetSegmentation)


def config_from_model(model: nn.Module):
    """The :class:`~ddrnet_zoo.models.SegmentationConfig` of a segmentation model (``model.config`` when set)."""
    from .convert.detect import infer_model_spec
    from .models import SegmentationConfig
    from .models.ddrnet import arch_dict

    cfg = getattr(model, "config", None)
    if cfg is not None:
        return cfg
    if not _is_segmentation(model):
        raise TypeError(f"expected a DDRNetSegmentation, got {type(model).__name__}")
    spec = infer_model_spec(model.state_dict(), "ours")
    return SegmentationConfig(
        architecture=spec.architecture,
        arch=None if spec.is_registered else arch_dict(spec.arch),
        num_classes=model.num_classes,
        context=model.context_name,
        aux_head=model.aux_head is not None,
        in_chans=model.in_chans,
        upsample_logits=model.upsample_logits,
    )


def _check_config_describes(model: nn.Module, config) -> None:
    """Refuse to write a config that would rebuild a different model than the weights belong to."""
    from .models import create_segmentation_model_from_config

    with torch.device("meta"):
        rebuilt = create_segmentation_model_from_config(config)
    want = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if want != have:
        diff = sorted(set(want) ^ set(have)) + sorted(k for k in set(want) & set(have) if want[k] != have[k])
        raise ValueError(
            f"the config ({config.architecture}, {config.num_classes} classes, context {config.context!r}, "
            f"aux_head={config.aux_head}) does not describe this model; differing tensors: {diff[:8]}"
        )


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
            raise ValueError(f"result {r} lacks {missing}; each result needs 'metric' and 'value'")
        out.append(r)
    return out


# ---------------------------------------------------------------------------------------------- model card
def _custom_arch(config) -> Optional[Tuple[str, str]]:
    """(name suffix, description) of a config whose widths/depths differ from its registered variant, else None."""
    from .models.ddrnet import MODEL_ARCHS

    if config is None or config.arch is None:
        return None
    arch, base = config.ddrnet_arch(), MODEL_ARCHS[config.architecture]
    if arch == base:
        return None
    suffix = f"-w{arch.width}" if arch.width != base.width else "-custom"
    return suffix, f"custom widths (width {arch.width}, depths {list(arch.depths)}) based on {config.architecture}"


def _smoke_test(config) -> bool:
    return bool((config.metadata.get("training") or {}).get("smoke_test")) if config is not None else False


def _default_repo_name(model: nn.Module, config) -> str:
    """``<variant>[-w<width>].<dataset>``: a model with custom widths is not named as the registered variant."""
    if config is not None:
        ds = f".{config.dataset}" if config.dataset else ""
        custom = _custom_arch(config)
        return f"{config.architecture}{custom[0] if custom else ''}{ds}"
    return model.pretrained_cfg.get("architecture", "ddrnet") if hasattr(model, "pretrained_cfg") else "ddrnet"


def _measure(
    model: nn.Module, seg: bool, flops_input_size: Optional[Tuple[int, int]], load_line: str
) -> Tuple[List[Tuple[str, str]], List[str]]:
    """Measured figures of ``model`` (rows of the card) and the code that measures them again."""
    from .flops import count_flops, count_params

    rows = [("Parameters (all)", f"{count_params(model) / 1e6:.3f} M")]
    code = ["from ddrnet_zoo.flops import count_flops, count_params", load_line, "print(count_params(model) / 1e6)"]
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
    config=None,
    repo_id: Optional[str] = None,
    results: Optional[Sequence[Dict[str, Any]]] = None,
    flops_input_size: Optional[Tuple[int, int]] = None,
):
    """A :class:`huggingface_hub.ModelCard` for ``model``: measured figures, usage, classes, license, citation.

    Args:
        model: a DDRNetSegmentation or a DDRNet classifier.
        config: the segmentation config (default ``model.config``).
        repo_id: the Hub repository the card is for (used in the usage snippet).
        results: measured metrics, each ``{"metric", "value", "dataset", "split", "images", "command", "notes"}``
            (default ``config.metadata["results"]``): rendered as a table with the command that measured them.
        flops_input_size: also measure fvcore GFLOPs at this (H, W).
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    seg = _is_segmentation(model)
    if seg:
        config = config or config_from_model(model)
        results = _results(results if results is not None else config.metadata.get("results"))
    else:
        results = _results(results)
    name = repo_id or f"ddrnet-zoo/{_default_repo_name(model, config)}"
    architecture = config.architecture if seg else model.pretrained_cfg.get("architecture", "ddrnet")
    task = "image-segmentation" if seg else "image-classification"
    dataset = config.dataset if seg else ("imagenet-1k" if model.num_classes == 1000 else None)
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
        custom = _custom_arch(config)
        if _smoke_test(config):
            iters = (config.metadata.get("training") or {}).get("iteration")
            run = f"{iters} iterations on a few images" if iters is not None else "a few images"
            lines += [
                f"**Smoke test, not a trained model**: a pipeline check ({run}); its results say nothing "
                "about DDRNet's accuracy.",
                "",
            ]
        if custom:
            what = f"DDRNet semantic segmentation model with {custom[1]}"
            arch_text = f"{custom[1]} (`arch` in config.json), not the registered variant"
        else:
            what, arch_text = f"DDRNet ({architecture}) semantic segmentation model", f"`{architecture}`"
        lines += [
            what
            + (f" for {config.dataset}" if config.dataset else "")
            + f", {config.num_classes} classes, for ddrnet_zoo (paper: [{PAPER_TITLE}]"
            "(https://arxiv.org/abs/2101.06085); original release: https://github.com/ydhongHIT/DDRNet).",
            "",
            "## Model details",
            "",
            "| | |",
            "|---|---|",
            f"| Architecture | {arch_text} |",
            f"| Context module | {config.context} |",
            f"| Auxiliary head | {'yes (deep supervision, training only)' if config.aux_head else 'no'} |",
            f"| Classes | {config.num_classes} |",
            f"| Input | {config.in_chans}-channel images, normalised with mean {list(config.mean)} and std "
            f"{list(config.std)} (values in 0-1) |",
        ]
        if config.train_size:
            lines.append(f"| Training crop (H x W) | {config.train_size[0]} x {config.train_size[1]} |")
        source = config.metadata.get("converted_from")
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
        load_line = f"from ddrnet_zoo.hub import from_pretrained; model = from_pretrained({name!r})"
    else:
        load_line = f"import timm, ddrnet_zoo; model = timm.create_model('hf-hub:{name}', pretrained=True)"
    rows, code = _measure(model, seg, flops_input_size, load_line)
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
            "from ddrnet_zoo.hub import from_pretrained",
            "",
            f"model = from_pretrained({name!r}).eval()",
            "cfg = model.config",
            "mean = torch.tensor(cfg.mean).view(1, -1, 1, 1)",
            "std = torch.tensor(cfg.std).view(1, -1, 1, 1)",
            "images = torch.rand(1, 3, 512, 1024)  # RGB in 0-1, (N, C, H, W)",
            "with torch.no_grad():",
            "    logits = model((images - mean) / std)  # (N, num_classes, H, W)",
            "labels = logits.argmax(1)  # class indices; names in cfg.class_names, colours in cfg.palette",
        ]
    else:
        default_id = model.pretrained_cfg.get("hf_hub_id") if hasattr(model, "pretrained_cfg") else None
        how = f"{architecture!r}" if default_id == name else f"'hf-hub:{name}'"
        lines += [
            "import timm",
            "import ddrnet_zoo  # registers the DDRNet models with timm",
            "",
            f"model = timm.create_model({how}, pretrained=True).eval()",
            "data_cfg = timm.data.resolve_data_config({}, model=model)",
            "transform = timm.data.create_transform(**data_cfg)",
            f"# as a segmentation backbone: ddrnet_zoo.create_segmentation_model({architecture!r}, "
            "pretrained_backbone=True)",
        ]
    lines += ["```"]
    if seg and config.class_names:
        lines += ["", "## Classes", "", "| Index | Class | Colour (RGB) |", "|---|---|---|"]
        palette = config.palette or [None] * config.num_classes
        for i, (n, c) in enumerate(zip(config.class_names, palette)):
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


# ---------------------------------------------------------------------------------------------- save
def save_pretrained(
    model: nn.Module,
    save_directory: PathLike,
    config=None,
    model_card: bool = True,
    repo_id: Optional[str] = None,
    results: Optional[Sequence[Dict[str, Any]]] = None,
    flops_input_size: Optional[Tuple[int, int]] = None,
) -> Path:
    """Write ``model`` as a Hub folder: ``model.safetensors``, ``config.json`` and ``README.md``.

    Segmentation models get ``config.json`` from ``config`` (default ``model.config``), checked
    to rebuild exactly this model; classifiers get timm's format (via ``timm.models.save_for_hf``).
    The folder is written beside ``save_directory`` and replaces it as a whole (see
    :func:`ddrnet_zoo.io.atomic_directory`): an interrupted save leaves the old folder intact, and
    weights and config always come from the same save. Other files in an existing folder (e.g.
    evaluation reports) are kept. Returns the folder.
    """
    from .models import DDRNet
    from .models.ddrnet import MODEL_ARCHS, arch_dict

    save_directory = Path(save_directory)
    if _is_segmentation(model):
        config = config or config_from_model(model)
        _check_config_describes(model, config)
        card = build_model_card(model, config, repo_id, results, flops_input_size) if model_card else None
        with atomic_directory(save_directory, replaced=HUB_FOLDER_FILES) as tmp:
            _save_safetensors(model.state_dict(), tmp / WEIGHTS_NAME)
            (tmp / CONFIG_NAME).write_text(json_text(config.to_dict()), encoding="utf-8")
            if card is not None:
                (tmp / MODEL_CARD_NAME).write_text(str(card), encoding="utf-8")
        return save_directory
    if isinstance(model, DDRNet):
        from timm.models import save_for_hf

        if not hasattr(model, "pretrained_cfg"):
            raise ValueError(
                "save a classifier built with timm.create_model (it carries the pretrained_cfg timm needs)"
            )
        if model.segmentation_mode or model._pruned_after is not None:
            raise ValueError(
                "only complete classifiers can be saved in timm's format (not a pruned/segmentation backbone)"
            )
        name = model.pretrained_cfg.get("architecture")
        custom = MODEL_ARCHS.get(name) != model.arch or "arch" in getattr(model, "_model_args", {})
        model_args = {"arch": arch_dict(model.arch)} if custom else {}  # JSON form of a DDRNetArch argument
        card = build_model_card(model, None, repo_id, results, flops_input_size) if model_card else None
        with atomic_directory(save_directory, replaced=HUB_FOLDER_FILES) as tmp:
            save_for_hf(model, str(tmp), model_args=model_args, safe_serialization=True)
            if card is not None:
                (tmp / MODEL_CARD_NAME).write_text(str(card), encoding="utf-8")
        return save_directory
    raise TypeError(f"expected a DDRNetSegmentation or a DDRNet (timm) model, got {type(model).__name__}")


# ---------------------------------------------------------------------------------------------- load
def _split_source(source: str, revision: Optional[str]) -> Tuple[Optional[Path], Optional[str], Optional[str]]:
    """(local folder, repo id, revision) of ``source``: a folder, ``local-dir:PATH``, ``hf-hub:ID[@REV]`` or ``ID``."""
    if source.startswith("local-dir:"):
        return Path(source[len("local-dir:") :]), None, None
    if source.startswith("hf-hub:"):
        source = source[len("hf-hub:") :]
    elif Path(source).is_dir():
        return Path(source), None, None
    if "@" in source:
        source, rev = source.split("@", 1)
        if revision is not None and revision != rev:
            raise ValueError(f"two revisions given: {rev!r} in the id and revision={revision!r}")
        revision = rev
    if source.count("/") != 1 or source.startswith((".", "/", "~")):
        raise FileNotFoundError(
            f"{source!r} is neither a local folder nor a Hub repository id (ORG/NAME); a folder needs "
            f"{CONFIG_NAME} and {WEIGHTS_NAME}"
        )
    return None, source, revision


def _hub_file(repo_id: str, filename: str, revision: Optional[str], cache_dir, local_files_only: bool, token) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(
            hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                token=token,
                library_name="ddrnet_zoo",
                library_version=_version(),
            )
        )
    except (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError) as e:
        where = f"{repo_id}@{revision}" if revision else repo_id
        raise CheckpointError(
            f"{where}: cannot get {filename} ({type(e).__name__}: {str(e).splitlines()[0]}). Check the repository "
            "id and revision; offline (HF_HUB_OFFLINE=1) only files already in the Hub cache can be loaded"
        ) from e


def _read_json(path: Path) -> Dict[str, Any]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not a readable JSON config (truncated or corrupt?): {e}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def from_pretrained(
    source: PathLike,
    revision: Optional[str] = None,
    cache_dir: Optional[PathLike] = None,
    map_location: Union[str, torch.device] = "cpu",
    strict: bool = True,
    local_files_only: bool = False,
    token: Optional[Union[str, bool]] = None,
    upsample_logits: Optional[bool] = None,
) -> nn.Module:
    """Load a DDRNet model from a Hub repository or a local Hub folder, in eval mode.

    Args:
        source: ``ORG/NAME`` (optionally ``hf-hub:`` prefix and ``@revision``) or a local folder
            with ``config.json`` and ``model.safetensors``.
        revision: branch, tag or commit of the Hub repository.
        cache_dir: Hub cache (default: huggingface_hub's, ``HF_HUB_CACHE``).
        map_location: device for the weights.
        strict: refuse missing/unexpected keys (shape mismatches are always refused).
        local_files_only: use only the Hub cache (also implied by ``HF_HUB_OFFLINE=1``).
        token: Hub token for private repositories.
        upsample_logits: override the config's choice (``False``: logits at 1/8, as the original code).

    Segmentation folders return a :class:`~ddrnet_zoo.models.DDRNetSegmentation` (with ``.config``);
    timm-format folders return the classifier built by ``timm.create_model``. Errors name the file:
    unreadable/corrupt config or weights, unknown architecture, missing/unexpected keys, wrong
    class count or weights of another variant.
    """
    from .convert.core import load_state_dict_strict
    from .models import SegmentationConfig, create_segmentation_model_from_config

    folder, repo_id, revision = _split_source(str(source), revision)
    if repo_id is not None:
        check_published(
            repo_id,
            "from_pretrained('{folder}'), or -m {folder} in ddrnet-predict, ddrnet-eval and ddrnet-export",
            cache_dir=None if cache_dir is None else str(cache_dir),
        )

    def fetch(filename: str) -> Path:
        if folder is not None:
            path = folder / filename
            if not path.is_file():
                raise CheckpointError(
                    f"{folder}: no {filename} in this folder (a Hub folder needs {CONFIG_NAME} "
                    f"and {WEIGHTS_NAME}; convert other checkpoints with ddrnet-convert)"
                )
            return path
        return _hub_file(repo_id, filename, revision, cache_dir, local_files_only, token)

    config_path = fetch(CONFIG_NAME)
    raw = _read_json(config_path)
    if "pretrained_cfg" in raw:  # timm's format: a classifier
        import timm

        name = (
            f"local-dir:{folder}" if folder is not None else f"hf-hub:{repo_id}" + (f"@{revision}" if revision else "")
        )
        fetch(WEIGHTS_NAME)  # clear error (and download with our arguments) before timm reads it
        try:
            model = timm.create_model(name, pretrained=True, cache_dir=cache_dir)
        except Exception as e:
            raise CheckpointError(f"{source}: cannot load the timm-format checkpoint: {e}") from e
        return model.to(map_location).eval()
    try:
        config = SegmentationConfig.from_dict(raw)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{config_path}: invalid config: {e}") from None
    if upsample_logits is not None:
        config.upsample_logits = upsample_logits
    weights_path = fetch(WEIGHTS_NAME)
    state_dict = read_state_dict(weights_path)
    # strict: build on the meta device and take the loaded tensors (no wasted initialisation);
    # non-strict: keys the file lacks keep their fresh initialisation
    with torch.device("meta") if strict else contextlib.nullcontext():
        model = create_segmentation_model_from_config(config)
    state_dict = {k: v.to(map_location) for k, v in state_dict.items()}
    load_state_dict_strict(model, state_dict, str(weights_path), strict=strict, assign=strict)
    return model.to(map_location).eval()


# ---------------------------------------------------------------------------------------------- push
def upload_folder_to_hub(
    folder: PathLike,
    repo_id: str,
    commit_message: str = "Upload DDRNet weights (ddrnet_zoo)",
    private: Optional[bool] = None,
    token: Optional[Union[str, bool]] = None,
    revision: Optional[str] = None,
    create_pr: bool = False,
):
    """Create ``repo_id`` if needed and upload a Hub folder written by :func:`save_pretrained`."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: not a Hub folder (missing {missing}); write it with save_pretrained")
    api = HfApi(token=token, library_name="ddrnet_zoo", library_version=_version())
    repo = api.create_repo(repo_id, private=private, exist_ok=True)
    return api.upload_folder(
        repo_id=repo.repo_id,
        folder_path=str(folder),
        revision=revision,
        create_pr=create_pr,
        commit_message=commit_message,
        allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, MODEL_CARD_NAME],
    )


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    config=None,
    commit_message: str = "Upload DDRNet weights (ddrnet_zoo)",
    private: Optional[bool] = None,
    token: Optional[Union[str, bool]] = None,
    revision: Optional[str] = None,
    create_pr: bool = False,
    results: Optional[Sequence[Dict[str, Any]]] = None,
    flops_input_size: Optional[Tuple[int, int]] = None,
):
    """Save ``model`` as a Hub folder (see :func:`save_pretrained`) and upload it to ``repo_id``."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_pretrained(
            model, Path(tmp) / "hub", config, repo_id=repo_id, results=results, flops_input_size=flops_input_size
        )
        return upload_folder_to_hub(folder, repo_id, commit_message, private, token, revision, create_pr)

"""Training engine: recipe configs, overrides, LR schedule, overfitting CamVid frames, bit-exact resume,
export in the Hub format and the ddrnet-eval / ddrnet-train command lines."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_data import write_folder_dataset

import ddrnet_zoo
from ddrnet_zoo import evaluate as eval_cli
from ddrnet_zoo import train as train_cli
from ddrnet_zoo.engine import ConfigError, PolyLR, list_configs, load_config, train
from ddrnet_zoo.engine.budget import TimeBudget
from ddrnet_zoo.engine.config import parse_override_args
from ddrnet_zoo.engine.trainer import Trainer
from ddrnet_zoo.models import DDRNetSegmentation, read_model_config

TINY_ARCH = "{width: 8, depths: [2, 2, 2, 2], head_width: 64, seg_head_width: 16, context_width: 16}"


@pytest.fixture
def fast_cpu():
    """Tiny models on this CPU: oneDNN's per-shape warm-up and denormal arithmetic dominate; turn both off."""
    mkldnn, denormal = torch.backends.mkldnn.enabled, torch.set_flush_denormal(True)
    torch.backends.mkldnn.enabled = False
    yield
    torch.backends.mkldnn.enabled = mkldnn
    torch.set_flush_denormal(False)
    del denormal


def synthetic_overrides(root: Path, out: Path, **extra) -> list:
    base = {
        "data.dataset": "folder",
        "data.root": str(root),
        "data.class_names": "[a, b, c]",
        "data.train_split": "train",
        "data.val_split": "train",
        "data.crop_size": "[64, 64]",
        "data.scale_range": "[0.75, 1.5]",
        "data.batch_size": 2,
        "data.num_workers": 0,
        "model.arch": TINY_ARCH,
        "model.pretrained_backbone": "false",
        "loss.ohem_min_kept": 1000,
        "loss.class_weight": "null",
        "optim.lr": 0.01,
        "train.epochs": 3,
        "train.log_interval": 1,
        "train.eval_interval": 1,
        "train.checkpoint_interval": 1,
        "train.progress": "false",
        "train.tensorboard": "false",
        "train.output_dir": str(out),
        "eval.batch_size": 2,
        "eval.num_workers": 0,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def read_csv(path: Path) -> list:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- configs


def test_packaged_configs_are_the_paper_recipes():
    assert {
        "cityscapes_ddrnet23_slim",
        "cityscapes_ddrnet23",
        "cityscapes_ddrnet39",
        "camvid_ddrnet23_slim",
        "camvid_ddrnet23",
    } <= set(list_configs())
    for name in ("ddrnet23_slim", "ddrnet23", "ddrnet39"):
        c = load_config(f"cityscapes_{name}")
        assert c.name == f"cityscapes_{name}" and c.model.name == name
        assert (c.data.dataset, tuple(c.data.crop_size), c.data.batch_size, c.train.epochs) == (
            "cityscapes",
            (1024, 1024),
            12,
            484,
        )
        assert (c.optim.lr, c.optim.momentum, c.optim.weight_decay, c.optim.poly_power) == (0.01, 0.9, 0.0005, 0.9)
        assert (c.loss.type, c.loss.ohem_thresh, c.loss.ohem_min_kept, c.loss.aux_weight) == ("ohem", 0.9, 131072, 0.4)
        assert tuple(c.data.scale_range) == (0.5, 2.0) and c.data.flip and c.model.sync_bn and c.model.aux_head
        assert len(c.loss.class_weight) == 19
    for name in ("ddrnet23_slim", "ddrnet23"):
        c = load_config(f"camvid_{name}")
        assert c.model.name == name and c.data.dataset == "camvid" and c.data.train_split == "train+val"
        assert (c.optim.lr, c.train.epochs, c.data.image_scale) == (0.001, 968, 2.0)
        # a 960x720 crop at the paper's pixel scale (the SegNet copy is 480x360, resampled x2)
        assert tuple(c.data.crop_size) == (720, 960)
        assert c.loss.type == "ohem" and c.loss.class_weight is None


def test_overrides_and_errors(tmp_path):
    c = load_config("cityscapes_ddrnet23", ["optim.lr=0.02", "data.root=/x", "data.crop_size=[512, 1024]"])
    assert (c.optim.lr, c.data.root, tuple(c.data.crop_size), c.model.name) == (0.02, "/x", (512, 1024), "ddrnet23")
    assert parse_override_args(["--optim.lr", "0.02", "--data.root=/x", "--train.amp", "bf16"]) == [
        "optim.lr=0.02",
        "data.root=/x",
        "train.amp=bf16",
    ]
    with pytest.raises(ConfigError, match=r"unknown config field optim\.lrr \(did you mean 'lr'\?\)"):
        load_config("cityscapes_ddrnet23_slim", ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="optim.lr: expected a number"):
        load_config(None, ["optim.lr=fast"])
    with pytest.raises(ConfigError, match="data.crop_size: expected 2 values"):
        load_config(None, ["data.crop_size=[1, 2, 3]"])
    with pytest.raises(ConfigError, match="train.amp must be"):
        load_config(None, ["train.amp=fp8"])
    with pytest.raises(ConfigError, match="not found"):
        load_config("no_such_recipe")
    with pytest.raises(ConfigError, match="needs a value"):
        parse_override_args(["--optim.lr"])
    # a user file inheriting from a packaged recipe
    (tmp_path / "mine.yaml").write_text("base: camvid_ddrnet23\ndata:\n  root: /data/camvid\n")
    c = load_config(tmp_path / "mine.yaml")
    assert (c.name, c.model.name, c.optim.lr, c.data.root) == ("mine", "ddrnet23", 0.001, "/data/camvid")


def test_config_files_layers_and_messages(tmp_path):
    """``base:`` files are layers: a mapping field (model.arch) is replaced, not merged; values are typed
    by the schema (ints as floats, YAML 1.2 numbers); errors name the field in the config's words."""
    (tmp_path / "a.yaml").write_text("model:\n  arch: {width: 8, depths: [2, 2, 2, 2]}\noptim:\n  lr: 1\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nmodel:\n  arch: {width: 16}\noptim:\n  weight_decay: 5e-4\n")
    c = load_config(tmp_path / "b.yaml", ["model.arch.head_width=32"])
    assert c.model.arch == {"width": 16, "head_width": 32} and c.name == "b"
    assert (c.optim.lr, c.optim.weight_decay) == (1.0, 0.0005) and isinstance(c.optim.lr, float)
    assert tuple(c.data.crop_size) == (1024, 1024)
    with pytest.raises(ConfigError, match=r"unknown config section 'optm' \(did you mean 'optim'\?\)"):
        load_config(None, ["optm.lr=1"])
    with pytest.raises(ConfigError, match="data.batch_size: expected an integer, got 'many'"):
        load_config(None, ["data.batch_size=many"])
    with pytest.raises(ConfigError, match="train.progress: expected true/false"):
        load_config(None, ["train.progress=maybe"])
    assert load_config(None, ["train.amp=fp32"]).train.amp == "fp32"  # one precision vocabulary: fp32 == none
    # OmegaConf interpolations resolve against the whole config
    assert load_config("camvid_ddrnet23", ["train.output_dir=runs/${name}"]).train.output_dir == "runs/camvid_ddrnet23"
    with pytest.raises(ConfigError, match="data.root: Interpolation key 'nope' not found"):
        load_config(None, ["data.root=${nope}"])


def test_poly_lr_with_warmup():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.01)
    sched = PolyLR(opt, max_iters=100, power=0.9, warmup_iters=10, warmup_ratio=0.1)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.001)  # warm-up starts at ratio x lr
    assert lrs[5] == pytest.approx(0.01 * (1 - 5 / 100) ** 0.9 * (1 - (1 - 5 / 10) * 0.9))
    assert lrs[50] == pytest.approx(0.01 * 0.5**0.9)
    assert lrs[99] == pytest.approx(0.01 * 0.01**0.9)
    assert opt.param_groups[0]["lr"] == 0.0
    assert set(sched.state_dict()) >= {"max_iters", "power", "last_epoch"}


@pytest.mark.parametrize("warmup_iters", [0, 25])
def test_poly_lr_is_the_papers_formula(warmup_iters):
    """lr = base * (1 - it / max) ** 0.9, times the linear warm-up factor: bit-exact without warm-up
    (the packaged recipes), within float rounding (a few ulp: another multiplication order) during it;
    a resumed scheduler continues with the same values."""
    base, max_iters, ratio = 0.01, 300, 0.1

    def paper(it: int) -> float:
        lr = base * (1 - it / max_iters) ** 0.9
        if it < warmup_iters:
            lr *= ratio + (1 - ratio) * it / warmup_iters
        return lr

    def schedule(opt):
        return PolyLR(opt, max_iters=max_iters, power=0.9, warmup_iters=warmup_iters, warmup_ratio=ratio)

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base)
    sched = schedule(opt)
    lrs, state = [], None
    for it in range(max_iters):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        if it == 99:
            state = (opt.state_dict(), sched.state_dict())
    for it, lr in enumerate(lrs):
        if it >= warmup_iters:
            assert lr == paper(it), it
        else:
            assert lr == pytest.approx(paper(it), rel=1e-15, abs=0), it
    # resume at iteration 100 in a fresh optimizer/scheduler: the same values, bit for bit
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    sched2 = schedule(opt2)
    opt2.load_state_dict(state[0])
    sched2.load_state_dict(state[1])
    resumed = []
    for _ in range(100, max_iters):
        resumed.append(opt2.param_groups[0]["lr"])
        opt2.step()
        sched2.step()
    assert resumed == lrs[100:]
    # checkpoints written before PolyLR became a LambdaLR have no "lr_lambdas": they load the same
    legacy = {k: v for k, v in state[1].items() if k != "lr_lambdas"}
    opt3 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    sched3 = schedule(opt3)
    opt3.load_state_dict(state[0])
    sched3.load_state_dict(legacy)
    sched3.step()
    assert opt3.param_groups[0]["lr"] == lrs[101]


# ---------------------------------------------------------------- training


def test_tiny_model_overfits_two_camvid_frames(camvid_root, tmp_path, fast_cpu):
    frames = tmp_path / "two.txt"  # list files may live outside the (read-only) dataset folder
    frames.write_text(
        "train/0001TP_006690.png trainannot/0001TP_006690.png\ntrain/0006R0_f02040.png trainannot/0006R0_f02040.png\n"
    )
    overrides = [
        f"data.root={camvid_root}",
        f"data.train_split={frames}",
        f"data.val_split={frames}",
        "data.image_scale=0.25",  # 120x90 for speed; scored at the labels' 480x360
        "data.crop_size=[90, 120]",
        "data.scale_range=[1.0, 1.0]",
        "data.flip=false",
        "data.batch_size=2",
        "data.max_samples=null",
        "loss.type=ce",
        "optim.lr=0.1",
        "train.max_iters=120",
        "train.eval_interval=1000",
        "train.checkpoint_interval=1000",
        "train.progress=false",
        "train.tensorboard=false",
        f"train.output_dir={tmp_path / 'run'}",
        "eval.batch_size=2",
    ]
    cfg = load_config("smoke_camvid", overrides)
    # chance level: the untrained model
    trainer = Trainer(cfg)
    before = trainer._evaluate(0)["miou"]
    results = trainer.fit()
    rows = read_csv(tmp_path / "run" / "train_log.csv")
    first, last = float(rows[0]["loss"]), float(rows[-1]["loss"])
    after = results["final"]["miou"]
    print(
        f"\noverfit 2 CamVid frames @120x90, 120 iterations: loss {first:.3f} -> {last:.3f}, "
        f"train mIoU {100 * before:.1f}% -> {100 * after:.1f}%, pixel acc {100 * results['final']['pixel_acc']:.1f}%"
    )
    assert len(rows) == 120
    assert last < 0.3 * first
    assert after > 0.3 and after > 5 * before
    assert results["final"]["pixel_acc"] > 0.7


def test_resume_is_bit_exact(tmp_path, fast_cpu):
    # Exact equality is right here: both runs execute the same kernels in this process with the same
    # thread count, so any difference is a resume bug, not rounding (this holds on every CPU).
    root = write_folder_dataset(tmp_path / "data", n=4)
    full = train(load_config(None, synthetic_overrides(root, tmp_path / "a")))
    assert full["iteration"] == 6 and not full["stopped_early"]
    # the same run interrupted mid-epoch 2 (iteration 3), then resumed with data-loader workers
    stopped = train(load_config(None, synthetic_overrides(root, tmp_path / "b", **{"train.stop_at_iter": 3})))
    assert stopped["stopped_early"] and stopped["iteration"] == 3
    assert not (tmp_path / "b" / "final").exists()
    resumed = train(load_config(None, synthetic_overrides(root, tmp_path / "b", **{"data.num_workers": 2})), "auto")
    assert resumed["iteration"] == 6
    a, b = read_csv(tmp_path / "a" / "train_log.csv"), read_csv(tmp_path / "b" / "train_log.csv")
    assert [r["iteration"] for r in b] == [str(i) for i in range(1, 7)]
    for ra, rb in zip(a, b):
        for k in ("loss", "loss_main", "loss_aux", "lr"):
            assert float(ra[k]) == float(rb[k]), (ra["iteration"], k, ra[k], rb[k])
    wa, wb = (
        load_file(tmp_path / "a" / "final" / "model.safetensors"),
        load_file(tmp_path / "b" / "final" / "model.safetensors"),
    )
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ea, eb = read_csv(tmp_path / "a" / "eval_log.csv"), read_csv(tmp_path / "b" / "eval_log.csv")
    assert [r["miou"] for r in ea] == [r["miou"] for r in eb] and len(ea) == 3
    assert full["final"]["miou"] == resumed["final"]["miou"]
    # resuming a finished run does nothing; one image per BatchNorm batch is refused up front
    again = train(load_config(None, synthetic_overrides(root, tmp_path / "b")), "auto")
    assert again["already_complete"] and again["iteration"] == 6
    with pytest.raises(ConfigError, match="1 image per process: use at least 2"):
        train(load_config(None, synthetic_overrides(root, tmp_path / "c", **{"data.batch_size": 1})))


def test_export_eval_cli_and_train_cli(tmp_path, fast_cpu, capsys):
    root = write_folder_dataset(tmp_path / "data", n=4)
    out = tmp_path / "run"
    extra = {"train.amp": "bf16", "train.channels_last": "true", "data.in_memory": "true", "train.epochs": 1}
    argv = ["--set", *synthetic_overrides(root, out, **extra)]
    assert train_cli.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    # the Hub-format export: config.json + model.safetensors that rebuild the same model
    cfg = read_model_config(json.loads((out / "final" / "config.json").read_text()))
    dataset = cfg["dataset"]
    assert (
        dataset["class_names"] == ["a", "b", "c"] and dataset["name"] == "custom" and dataset["train_size"] == [64, 64]
    )
    assert cfg["metadata"]["training"]["iteration"] == 2 and cfg["arch"]["width"] == 8
    model = DDRNetSegmentation(**cfg)
    model.load_state_dict(load_file(out / "final" / "model.safetensors"))
    loaded = ddrnet_zoo.load_model(out / "final", task="segmentation")
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(loaded.eval()(x), model.eval()(x), rtol=1e-5, atol=1e-6)
    assert (out / "best" / "model.safetensors").is_file() and (out / "last.pt").is_file()
    # ddrnet-eval on the model directory (data from the recipe stored in config.json) and on last.pt
    assert eval_cli.main(["--checkpoint", str(out / "final"), "--no-progress", "--amp", "bf16"]) == 0
    report = json.loads((out / "final.eval_train.json").read_text())  # beside the model folder, not in it
    assert not list((out / "final").glob("eval_*"))
    assert report["miou"] == pytest.approx(results["final"]["miou"], abs=1e-9)
    preds = tmp_path / "preds"
    code = eval_cli.main(
        ["--checkpoint", str(out / "last.pt"), "--scales", "0.75", "1.0", "--flip", "--no-progress", "--amp", "none",
         "--save-predictions", str(preds), "--output", str(tmp_path / "ms.json"), "--set", "data.num_workers=0"]
    )  # fmt: skip
    assert code == 0
    ms = json.loads((tmp_path / "ms.json").read_text())
    assert ms["scales"] == [0.75, 1.0] and ms["flip"] and ms["images"] == 4 and 0 <= ms["miou"] <= 1
    assert sorted(p.name for p in preds.iterdir()) == [f"train{i}.png" for i in range(4)]
    text = capsys.readouterr().out
    assert "mIoU" in text and "pixel acc" in text
    # command-line errors are reported, not raised
    assert eval_cli.main(["--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert train_cli.main(["--set", *synthetic_overrides(tmp_path / "nowhere", out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert train_cli.main(["--config", "camvid_ddrnet23", "--print-config", "--optim.lr", "0.5"]) == 0
    assert "lr: 0.5" in capsys.readouterr().out
    assert math.isfinite(results["final"]["miou"])


def test_subset_training_is_labelled_and_eval_uses_the_whole_split(tmp_path, fast_cpu, capsys):
    """A run on data.max_samples images with train.smoke_test: card and results say so; ddrnet-eval
    evaluates the whole split unless told otherwise, and reports how many images it used."""
    root = write_folder_dataset(tmp_path / "data", n=4)
    out = tmp_path / "run"
    extra = {"train.epochs": 1, "data.max_samples": 2, "train.smoke_test": "true", "data.in_memory": "true"}
    assert train_cli.main(["--set", *synthetic_overrides(root, out, **extra)]) == 0
    card = (out / "final" / "README.md").read_text()
    assert "# ddrnet23_slim-w8.custom\n" in card and "**Smoke test, not a trained model**" in card
    row = next(line for line in card.splitlines() if line.startswith("| mIoU |"))
    assert "| train | 2 |" in row and "first 2 images of the split only (data.max_samples)" in row
    assert "smoke test, not a trained model" in row and "--set data.max_samples=2`" in row
    meta = json.loads((out / "final" / "config.json").read_text())
    assert meta["architecture"] == "ddrnet23_slim" and meta["metadata"]["training"]["smoke_test"] is True
    capsys.readouterr()
    # the recipe's max_samples is not kept: all 4 images, said in one line and in the report
    assert (
        eval_cli.main(["--checkpoint", str(out / "final"), "--no-progress", "--output", str(tmp_path / "a.json")]) == 0
    )
    text = capsys.readouterr().out
    assert (
        "note: the recipe's data.max_samples=2 is ignored; evaluating all 4 images of train "
        "(pass --set data.max_samples=2 to limit)\n" in text
    )
    assert "train: 4 images, scales [1.0]" in text
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["images"] == 4 and report["max_samples"] is None
    # an explicit limit is honoured, in either spelling
    for limit in (["--set", "data.max_samples=1"], ["--data.max_samples", "1"]):
        argv = ["--checkpoint", str(out / "final"), "--no-progress", "--output", str(tmp_path / "b.json"), *limit]
        assert eval_cli.main(argv) == 0
        text = capsys.readouterr().out
        assert "note:" not in text and "train: 1 image (first 1: data.max_samples), scales" in text
        report = json.loads((tmp_path / "b.json").read_text())
        assert report["images"] == 1 and report["max_samples"] == 1


# ---------------------------------------------------------------- time budget


class _Clock:
    """A clock that the test advances by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_time_budget_plans_from_the_measured_rate():
    clock = _Clock()
    budget = TimeBudget(10.0, spent_seconds=60.0, warmup_iters=2, clock=clock)  # 600 s, 60 s used before
    assert budget.remaining() == pytest.approx(540.0)
    assert budget.plan(1) is None  # no rate yet
    for i in range(1, 13):  # 2 warm-up iterations at 5 s, then 2 s per iteration
        clock.now += 5.0 if i <= 2 else 2.0
        budget.observe(i)
    # 10 measured iterations took 20 s: 2 s each; left 600 - 60 - 30 = 510 s, reserve 3% of 600 = 18 s
    assert budget.seconds_per_iter(12) == pytest.approx(2.0)
    assert budget.plan(12) == 12 + (510 - 18) // 2
    assert budget.plan(12, ceiling=100) == 100
    budget.record_eval(20.0)  # the final evaluation's reserve follows the measured one: 1.2 x 20 + 10 s
    assert budget.reserve() == pytest.approx(34.0)
    assert budget.plan(12) == 12 + (510 - 34) // 2
    clock.now += 510 - 34
    assert budget.exhausted() and budget.plan(12) == 12
    with pytest.raises(ValueError, match="positive"):
        TimeBudget(0)


def test_time_budget_ends_the_run_with_evaluation_and_export(tmp_path, fast_cpu):
    root = write_folder_dataset(tmp_path / "data", n=4)
    extra = {
        "train.epochs": 100000,  # a ceiling the budget never reaches
        "train.time_budget_minutes": 0.2,
        "train.checkpoint_interval_minutes": 0.05,
        "train.checkpoint_interval": 100000,
        "train.eval_interval": 100000,
    }
    cfg = load_config(None, synthetic_overrides(root, tmp_path / "run", **extra))
    trainer = Trainer(cfg)
    # a clock of exactly 0.5 s per iteration: the plan is deterministic on any machine and load
    trainer.budget = TimeBudget(0.2, clock=lambda: 1000.0 + 0.5 * trainer.iteration)
    results = trainer.fit()
    rows = read_csv(tmp_path / "run" / "train_log.csv")
    # 12 s, 3% (0.36 s) kept for the final evaluation: (12 - 0.36) / 0.5 = 23.3 -> 23 iterations
    assert results["iteration"] == 23 and not results["stopped_early"]
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file() and results["final"] is not None
    # the poly schedule spans the planned run: the last step's lr is the poly lr of iteration 22 of 23
    assert int(rows[-1]["iteration"]) == 23
    assert float(rows[-1]["lr"]) == pytest.approx(0.01 * (1 - 22 / 23) ** 0.9, rel=1e-6)
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert state["iteration"] == 23 == state["max_iters"] and state["seconds_spent"] == pytest.approx(11.5)
    # resuming a finished run keeps its plan
    again = train(load_config(None, synthetic_overrides(root, tmp_path / "run", **extra)), "auto")
    assert again["already_complete"] and again["iteration"] == 23


def test_time_budget_on_the_real_clock_stops_within_it(tmp_path, fast_cpu):
    root = write_folder_dataset(tmp_path / "data", n=4)
    extra = {"train.epochs": 100000, "train.time_budget_minutes": 0.1, "train.eval_interval": 100000}
    results = train(load_config(None, synthetic_overrides(root, tmp_path / "run", **extra)))
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert not results["stopped_early"] and 0 < results["iteration"] == state["max_iters"] < 200000
    assert (tmp_path / "run" / "final" / "config.json").is_file()

"""Every fenced code block of README.md, DEVELOPERS.md and docs/*.md is checked, so a doc that lies fails CI.

Each block is its own test, ``<file>:<line of the opening fence>``:

- ``python``: executed. A file's Python blocks run in order in one namespace, in a working
  directory of stand-in inputs named as the docs name them (``_make_inputs``: tiny random models
  in the real checkpoint layouts, small images); selecting one block runs the earlier ones first,
  and a failed block fails the later ones of its file.
- ``bash``/``sh``/``console``: every command must be one this file knows. Project CLIs
  (``ddrnet-*``, ``python -m ddrnet_zoo.*``, ``torchrun -m ddrnet_zoo.*``) and ``python
  scripts/*.py`` parse with the CLI's own parser on the exact arguments; recipe names and config
  fields load through ``load_config``; model names must be registered. Cheap commands run for real:
  ``ddrnet-convert``, ``push_to_hub.py --dry-run``, ``--help``, ``--list-configs``,
  ``--print-config`` (a file's shell blocks run in order in one working directory, so an
  export can read what a conversion above it wrote; a failed block does not fail the others). Set-up
  commands are checked too: pip extras exist, pytest files and ``-k`` names exist, ``.ci/run`` exists.
- ``json`` parses; ``yaml`` parses, and a recipe snippet loads through ``load_config``;
  ``bibtex`` is one balanced entry.
- ``text`` (directory trees, pseudo-code, printed output) is not code; with an ``output-of``
  marker its lines must appear in what the command prints.

Markers, in an HTML comment on the line before the fence:
``<!-- doc-test: skip: REASON -->`` (the block cannot run in CI; the reason is required) and
``<!-- doc-test: output-of: COMMAND -->``. A block without a language, or in a language no
checker handles, fails.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import pytest
import timm
import torch
import yaml
from conftest import REPO, SHARED, TINY_ARCH_23
from PIL import Image

import ddrnet_zoo  # noqa: F401  (registers the models)
from ddrnet_zoo.engine.config import ConfigError, load_config, parse_override_args

DOC_FILES = [REPO / "README.md", REPO / "DEVELOPERS.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
MARKER = re.compile(r"^\s*<!--\s*doc-test:(?P<directive>.*?)-->\s*$")
SHELL_LANGS = ("bash", "sh", "shell", "console")
NOT_CODE = ("text",)
CHECKED_LANGS = ("python", *SHELL_LANGS, "json", "yaml", "yml", "bibtex", *NOT_CODE)

# console script -> module; kept equal to pyproject's [project.scripts] by test_cli_table_matches_pyproject
CLI_MODULES = {
    "ddrnet-train": "ddrnet_zoo.train",
    "ddrnet-eval": "ddrnet_zoo.evaluate",
    "ddrnet-predict": "ddrnet_zoo.predict",
    "ddrnet-export": "ddrnet_zoo.export",
    "ddrnet-convert": "ddrnet_zoo.convert.cli",
}
PYTHON_M_MODULES = {m: m for m in CLI_MODULES.values()} | {"ddrnet_zoo.convert": "ddrnet_zoo.convert.cli"}


class DocError(AssertionError):
    """A code block that does not do what the doc says."""


# ------------------------------------------------------------------------------------------- extraction
@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, its code and the marker before it."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    directive: Optional[str] = None  # the marker on the line before the fence, without "doc-test:"

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO) if self.path.is_relative_to(REPO) else self.path.name}:{self.line}"

    def marker(self) -> Tuple[Optional[str], str]:
        """(``"skip"``/``"output-of"``/None, argument); raises DocError on a malformed marker."""
        if self.directive is None:
            return None, ""
        kind, sep, arg = self.directive.partition(":")
        kind, arg = kind.strip(), arg.strip()
        if kind not in ("skip", "output-of") or not sep:
            raise DocError(
                f"{self.id}: unknown doc-test marker {self.directive!r}; use 'skip: REASON' or 'output-of: CMD'"
            )
        if not arg:
            raise DocError(f"{self.id}: doc-test marker '{kind}:' needs a {'reason' if kind == 'skip' else 'command'}")
        return kind, arg


def extract_blocks(path: Path, text: Optional[str] = None) -> Tuple[List[Block], List[str]]:
    """The fenced code blocks of a markdown file, and the problems found (unclosed fences, stray markers)."""
    lines = (path.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks: List[Block] = []
    problems: List[str] = []
    attached = set()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, indent = m["fence"], len(m["indent"])
        j = i + 1
        while j < len(lines) and not re.match(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[j]):
            j += 1
        if j == len(lines):
            problems.append(f"{path.name}:{i + 1}: code fence never closed")
        code = "\n".join(line[indent:] if not line[:indent].strip() else line for line in lines[i + 1 : j])
        directive = None
        if i > 0 and (mk := MARKER.match(lines[i - 1])):
            directive = mk["directive"].strip()
            attached.add(i - 1)
        info = m["info"].strip().split()
        blocks.append(Block(path, i + 1, info[0].lower() if info else "", code, directive))
        i = j + 1
    for k, line in enumerate(lines):
        if MARKER.match(line) and k not in attached:
            problems.append(f"{path.name}:{k + 1}: doc-test marker not on the line before a code fence")
    return blocks, problems


ALL_BLOCKS = [b for p in DOC_FILES for b in extract_blocks(p)[0]]
TESTED_BLOCKS = [b for b in ALL_BLOCKS if b.lang not in NOT_CODE or b.directive is not None]


# ------------------------------------------------------------------------------------------- stand-ins
def _make_inputs(root: Path, hub_folders: bool) -> None:
    """Stand-ins for the files the docs use, under the names the docs use.

    Checkpoints are tiny random models (``TINY_ARCH_23`` widths) saved in the layouts the real
    files have: the original release's Cityscapes ``.pth`` (``model.`` prefix and the training
    wrapper's ``loss.criterion.weight``) and ImageNet ``.pth`` (bare keys), and MMSegmentation's
    ``{"state_dict", "meta"}``. ``hub_folders`` adds ``hub/ddrnet23_slim.cityscapes`` as
    ``ddrnet-convert`` writes it from ``best_val_smaller.pth`` (docs/weights.md).
    """
    from ddrnet_zoo.convert import export_state_dict
    from ddrnet_zoo.convert.cli import main as convert_main
    from ddrnet_zoo.models import create_segmentation_model

    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    seg = create_segmentation_model("ddrnet23_slim", num_classes=19, arch=TINY_ARCH_23).eval()
    original = export_state_dict(seg, "original", prefix="model.")
    original["loss.criterion.weight"] = torch.ones(19)
    torch.save(original, root / "best_val_smaller.pth")
    torch.save(original, root / "some_checkpoint.pth")
    torch.save({"state_dict": export_state_dict(seg, "mmseg"), "meta": {}}, root / "mmseg_ddrnet23_slim_cityscapes.pth")
    cls = timm.create_model("ddrnet23_slim", arch=TINY_ARCH_23).eval()
    torch.save(export_state_dict(cls, "original"), root / "DDRNet23s_imagenet.pth")
    rng = np.random.default_rng(0)
    for name in ("frame.png", "img.jpg", "frames/0001.png", "frames/0002.png", "more/0003.jpg"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(root / name)
    for shipped in ("weights", "examples"):  # the repository's own model and frames, as the docs name them
        if (REPO / shipped).is_dir():
            (root / shipped).symlink_to(REPO / shipped, target_is_directory=True)
    results = [{"metric": "mIoU", "value": 0.0, "dataset": "cityscapes", "split": "val", "notes": "stand-in"}]
    (root / "results.json").write_text(json.dumps(results))
    if hub_folders:
        with _cwd(root), _captured() as out:
            rc = convert_main(["best_val_smaller.pth", "hub/ddrnet23_slim.cityscapes", "--dataset", "cityscapes"])
        if rc != 0:
            raise RuntimeError(f"building the stand-in Hub folder failed:\n{out.getvalue()}")


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


# ------------------------------------------------------------------------------------------- python
# ``print(...)  # OUTPUT`` where OUTPUT starts like a printed literal: what the line prints must begin OUTPUT
PRINTED_COMMENT = re.compile(r"^\s*print\(.*\)\s+#\s*(?P<shown>[\[({'\"\d-].*?)\s*$")


def run_python(block: Block, namespace: Dict[str, Any]) -> None:
    """Execute a Python block in ``namespace``; tracebacks point at the markdown's lines.

    A ``print(...)  # [4, 8, 16, 32]`` line's comment must be what it prints (or begin with it).
    """
    printed: Dict[int, List[str]] = {}
    filename = str(block.path)

    def doc_print(*args: Any, sep: Optional[str] = " ", end: Optional[str] = "\n", file=None, flush=False) -> None:
        caller = sys._getframe(1)
        if file is None and caller.f_code.co_filename == filename:
            printed.setdefault(caller.f_lineno, []).append((" " if sep is None else sep).join(map(str, args)))
        print(*args, sep=sep, end=end, file=file, flush=flush)

    namespace["print"] = doc_print
    try:
        exec(compile("\n" * block.line + block.code, filename, "exec"), namespace)
    finally:
        del namespace["print"]
    for lineno, line in enumerate(block.code.splitlines(), block.line + 1):
        m = PRINTED_COMMENT.match(line)
        if not m:
            continue
        got = printed.get(lineno)
        if not got:
            raise DocError(f"{block.path}:{lineno}: the comment says {m['shown']!r} but the line printed nothing")
        if not m["shown"].startswith(got[0]):
            raise DocError(f"{block.path}:{lineno}: the comment says {m['shown']!r} but the line prints {got[0]!r}")


# ------------------------------------------------------------------------------------------- shell
def shell_commands(code: str, lang: str) -> List[List[str]]:
    """The commands of a shell block as argument lists (continuations joined, comments dropped,
    ``&&``/``||``/``;``/``|`` split; for ``console``, only ``$ `` lines)."""
    if lang == "console":
        code = "\n".join(line.strip()[2:] for line in code.splitlines() if line.strip().startswith("$ "))
    commands: List[List[str]] = []
    for line in code.replace("\\\n", " ").splitlines():
        current: List[str] = []
        for token in shlex.split(line, comments=True):
            if token in ("&&", "||", ";", "|"):
                commands.append(current)
                current = []
            else:
                current.append(token)
        if current:
            commands.append(current)
    return [c for c in commands if c]


def _registered(name: Optional[str], what: str) -> None:
    if name is not None and name not in timm.list_models("ddrnet*"):
        raise DocError(f"{what}: {name!r} is not a registered model; registered: {timm.list_models('ddrnet*')}")


@contextlib.contextmanager
def _captured() -> Iterator[io.StringIO]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        yield out


def _parse(parser, args: List[str], what: str, known: bool = False):
    """``parser`` on ``args``; None when it printed help and exited 0; DocError when it rejects them."""
    with _captured() as out:
        try:
            return parser.parse_known_args(args) if known else (parser.parse_args(args), [])
        except SystemExit as e:
            if e.code == 0:
                if not out.getvalue().strip():
                    raise DocError(f"{what}: printed nothing") from None
                return None
            raise DocError(f"{what} does not parse: {out.getvalue().strip()}") from None


def _run_main(main: Callable[[List[str]], int], args: List[str], what: str) -> str:
    with _captured() as out:
        try:
            rc = main(args)
        except SystemExit as e:
            rc = e.code
    if rc not in (0, None):
        raise DocError(f"{what} exited with {rc}:\n{out.getvalue()}")
    return out.getvalue()


def check_cli(module_name: str, args: List[str], what: str) -> str:
    """Parse ``args`` with the CLI's own parser, check names and configs, run it when cheap; returns its output."""
    module = importlib.import_module(module_name)
    parsed = _parse(module.build_parser(), args, what, known=module_name in ("ddrnet_zoo.train", "ddrnet_zoo.evaluate"))
    if parsed is None:  # --help
        return ""
    ns, rest = parsed
    try:
        if module_name == "ddrnet_zoo.train":
            if ns.list_configs:
                return _run_main(module.main, args, what)
            overrides = list(ns.set) + parse_override_args(rest)
            _registered(load_config(ns.config, overrides).model.name, what)
            if ns.print_config:
                return _run_main(module.main, args, what)
        elif module_name == "ddrnet_zoo.evaluate":
            # without --config the recipe stored with the model is used: check the overrides' fields
            load_config(ns.config, list(ns.set) + parse_override_args(rest))
        elif module_name in ("ddrnet_zoo.predict", "ddrnet_zoo.export"):
            _registered(ns.model_name, what)
        elif module_name == "ddrnet_zoo.convert.cli":
            _registered(ns.model, what)
            return _run_main(module.main, args, what)
    except ConfigError as e:
        raise DocError(f"{what}: {e}") from None
    return ""


_SCRIPTS: Dict[str, ModuleType] = {}


def _script(path: str) -> ModuleType:
    file = REPO / path
    if not file.is_file():
        raise DocError(f"{path}: no such script")
    if path not in _SCRIPTS:
        spec = importlib.util.spec_from_file_location(f"_doc_script_{file.stem}", file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        _SCRIPTS[path] = module
    return _SCRIPTS[path]


def check_script(path: str, args: List[str], what: str) -> str:
    """Parse a ``scripts/*.py`` command line; ``push_to_hub.py --dry-run`` runs for real."""
    module = _script(path)
    parsed = _parse(module.build_parser(), args, what)
    if parsed is None:
        return ""
    ns = parsed[0]
    for name in getattr(ns, "variants", None) or []:
        _registered(name, what)
    _registered(getattr(ns, "model", None), what)
    if path == "scripts/push_to_hub.py" and ns.dry_run:
        return _run_main(module.main, args, what)
    return ""


def _pyproject_section(name: str) -> str:
    text = (REPO / "pyproject.toml").read_text()
    m = re.search(rf"^\[{re.escape(name)}\]\n(.*?)(?=^\[|\Z)", text, re.S | re.M)
    return m[1] if m else ""


PYTORCH_INDEX = "https://download.pytorch.org/whl/"


def check_pip(args: List[str], what: str) -> None:
    """``pip install -e .`` / ``".[extra,...]"``: the extras exist in pyproject.toml. ``--index-url`` only
    for PyTorch's own wheels (``torch``/``torchvision`` from its CPU or CUDA index)."""
    if args[:1] != ["install"]:
        raise DocError(f"{what}: only 'pip install' is checked")
    if "--index-url" in args:
        url = args[args.index("--index-url") + 1] if args.index("--index-url") + 1 < len(args) else ""
        packages = [a for a in args[1:] if not a.startswith("-") and a != url]
        if not re.fullmatch(re.escape(PYTORCH_INDEX) + r"(cpu|cu\d+)", url) or not packages:
            raise DocError(f"{what}: --index-url {url!r} is not one of PyTorch's wheel indexes ({PYTORCH_INDEX}cpu)")
        if set(packages) - {"torch", "torchvision"}:
            raise DocError(f"{what}: installs {packages} from PyTorch's index; only torch and torchvision are there")
        return
    extras_known = set(re.findall(r"^(\w+)\s*=", _pyproject_section("project.optional-dependencies"), re.M))
    for token in args[1:]:
        m = re.fullmatch(r"(?:\.|ddrnet_zoo)(?:\[([\w,]*)\])?", token)
        if m and m[1]:
            unknown = set(m[1].split(",")) - extras_known
            if unknown:
                raise DocError(f"{what}: unknown extras {sorted(unknown)}; pyproject has {sorted(extras_known)}")
        elif not m and not token.startswith("-"):
            raise DocError(f"{what}: installs {token!r}, not this package")


def check_pytest(args: List[str], what: str) -> None:
    """Test files exist and every name in ``-k`` matches a test in them."""
    files = [a for a in args if not a.startswith("-") and a.endswith(".py") or a.startswith("tests/")]
    for f in files:
        if not (REPO / f.split("::")[0]).exists():
            raise DocError(f"{what}: {f} does not exist")
    if "-k" in args:
        expr = args[args.index("-k") + 1]
        sources = [REPO / f.split("::")[0] for f in files] or sorted((REPO / "tests").glob("test_*.py"))
        names = [n for s in sources for n in re.findall(r"def (test_\w+)", s.read_text())]
        for word in set(re.findall(r"\w+", expr)) - {"and", "or", "not"}:
            if not any(word in n for n in names):
                raise DocError(f"{what}: -k {expr!r}: no test name contains {word!r}")


def check_command(argv: List[str], what: str) -> str:
    """Check one shell command (see the module doc); returns what it printed when it ran."""
    while argv and re.match(r"^[A-Za-z_]\w*=", argv[0]):  # VAR=value prefixes
        argv = argv[1:]
    prog, args = argv[0], argv[1:]
    if prog in CLI_MODULES:
        return check_cli(CLI_MODULES[prog], args, what)
    if prog in ("python", "python3"):
        if args[:2] == ["-m", "venv"]:
            return ""
        if args[:2] == ["-m", "pytest"]:
            check_pytest(args[2:], what)
            return ""
        if args[:1] == ["-m"] and len(args) > 1 and args[1] in PYTHON_M_MODULES:
            return check_cli(PYTHON_M_MODULES[args[1]], args[2:], what)
        if args and re.fullmatch(r"scripts/\w+\.py", args[0]):
            return check_script(args[0], args[1:], what)
        if args and re.fullmatch(r"tests/[\w/]+\.py", args[0]):  # test runners (their arguments go to pytest)
            if not (REPO / args[0]).is_file():
                raise DocError(f"{what}: {args[0]} does not exist")
            return ""
        raise DocError(f"{what}: unknown Python command")
    if prog == "torchrun":
        from torch.distributed.run import get_args_parser

        parsed = _parse(get_args_parser(), args, what)
        if parsed is None or not parsed[0].module or parsed[0].training_script not in PYTHON_M_MODULES:
            raise DocError(f"{what}: expected torchrun ... -m ddrnet_zoo.<cli> ...")
        return check_cli(PYTHON_M_MODULES[parsed[0].training_script], parsed[0].training_script_args, what)
    if prog in (".", "source"):
        if not (len(args) == 1 and args[0].endswith("bin/activate")):
            raise DocError(f"{what}: expected '. .venv/bin/activate'")
        return ""
    if prog == "pip":
        check_pip(args, what)
        return ""
    if prog == "pytest":
        check_pytest(args, what)
        return ""
    if prog == "ruff":
        if args[:1] not in (["check"], ["format"]):
            raise DocError(f"{what}: expected 'ruff check' or 'ruff format'")
        return ""
    if prog == "bash":
        if not args or not (REPO / args[0]).is_file():
            raise DocError(f"{what}: no script {args[:1]}")
        return ""
    raise DocError(f"{what}: unknown command {prog!r}: teach tests/test_docs.py to check it, or mark the block skip")


def check_shell(block: Block) -> str:
    """Check every command of a shell block in order; returns what the commands that ran printed."""
    if not shell_commands(block.code, block.lang):
        raise DocError(f"{block.id}: no command in this block")
    output = []
    for argv in shell_commands(block.code, block.lang):
        argv = [os.path.expandvars(a) for a in argv]
        output.append(check_command(argv, f"{block.id}: {shlex.join(argv)}"))
    return "".join(output)


# ------------------------------------------------------------------------------------------- data
def check_data(block: Block, workdir: Path) -> None:
    """json parses; yaml parses (a recipe snippet loads through load_config); bibtex is one balanced entry."""
    if block.lang == "json":
        json.loads(block.code)
    elif block.lang in ("yaml", "yml"):
        data = yaml.safe_load(block.code)
        sections = {"base", "name", "model", "data", "loss", "optim", "train", "eval"}
        if isinstance(data, dict) and set(data) <= sections:
            path = workdir / f"doc_{block.line}.yaml"
            path.write_text(block.code)
            try:
                load_config(path)
            except ConfigError as e:
                raise DocError(f"{block.id}: {e}") from None
    elif block.lang == "bibtex":
        if not re.match(r"^@\w+\{[^,\s]+,", block.code.strip()) or block.code.count("{") != block.code.count("}"):
            raise DocError(f"{block.id}: not one balanced BibTeX entry")
    else:
        raise DocError(
            f"{block.id}: no checker for ```{block.lang or '(no language)'} blocks; give the block a "
            f"language of {CHECKED_LANGS}, or mark it '<!-- doc-test: skip: REASON -->'"
        )


# ------------------------------------------------------------------------------------------- sessions
@dataclass
class DocSession:
    """One doc file read top to bottom by one kind of runner: a working directory and a namespace."""

    blocks: List[Block]
    workdir: Path
    cascade: bool  # Python: a failed block fails the later ones (they share a namespace)
    namespace: Dict[str, Any] = field(default_factory=lambda: {"__name__": "__doc__"})
    done: int = 0
    errors: Dict[str, Exception] = field(default_factory=dict)

    def run_through(self, block: Block, runner: Callable[[Block, DocSession], Any]) -> None:
        """Run the file's blocks of this kind in order (each once) up to ``block``; raise what ``block`` raised."""
        index = self.blocks.index(block)
        with _cwd(self.workdir):
            while self.done <= index:
                b = self.blocks[self.done]
                self.done += 1
                if b.marker()[0] == "skip":
                    continue
                if self.cascade and self.errors:
                    first = next(iter(self.errors))
                    self.errors[b.id] = DocError(f"{b.id}: not run: an earlier block of this file failed ({first})")
                    continue
                try:
                    runner(b, self)
                except Exception as e:
                    self.errors[b.id] = e
        if block.id in self.errors:
            raise self.errors[block.id]


@pytest.fixture(scope="session")
def stand_ins(tmp_path_factory) -> Dict[bool, Path]:
    base = tmp_path_factory.mktemp("doc_inputs")
    out = {}
    for hub in (False, True):
        _make_inputs(base / f"hub_{hub}", hub_folders=hub)
        out[hub] = base / f"hub_{hub}"
    return out


@pytest.fixture(scope="session")
def doc_sessions(stand_ins, tmp_path_factory) -> Callable[[Block], DocSession]:
    sessions: Dict[Tuple[Path, str], DocSession] = {}

    def get(block: Block) -> DocSession:
        kind = "python" if block.lang == "python" else "shell"
        key = (block.path, kind)
        if key not in sessions:
            workdir = tmp_path_factory.mktemp(f"doc_{block.path.stem}_{kind}")
            shutil.copytree(stand_ins[kind == "python"], workdir, dirs_exist_ok=True)
            same = [b for b in ALL_BLOCKS if b.path == block.path and (b.lang == "python") == (kind == "python")]
            runnable = [b for b in same if b.lang in ("python", *SHELL_LANGS)]
            sessions[key] = DocSession(runnable, workdir, cascade=kind == "python")
        return sessions[key]

    return get


@pytest.fixture
def doc_env(monkeypatch, hub_cache) -> None:
    """No network (conftest's offline, empty ``hub_cache``) and ``$DDRNET_SHARED`` for the shell blocks."""
    monkeypatch.setenv("DDRNET_SHARED", str(SHARED))


# ------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_doc_markup(path: Path) -> None:
    """Fences are closed and every doc-test marker sits on the line before a fence."""
    _, problems = extract_blocks(path)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("block", TESTED_BLOCKS, ids=lambda b: b.id)
def test_doc_block(block: Block, doc_sessions, doc_env, tmp_path) -> None:
    """The block runs, parses or loads as described in the module doc."""
    kind, arg = block.marker()
    if kind == "skip":
        pytest.skip(f"{block.id}: marked in the doc: {arg}")
    if kind == "output-of":
        check_output_of(block, arg, tmp_path)
    elif block.lang == "python":
        doc_sessions(block).run_through(block, lambda b, s: run_python(b, s.namespace))
    elif block.lang in SHELL_LANGS:
        doc_sessions(block).run_through(block, lambda b, s: check_shell(b))
    else:
        check_data(block, tmp_path)


def check_output_of(block: Block, command: str, workdir: Path) -> None:
    """Run ``command`` (a shell line this file runs for real) in ``workdir``; every line of the block
    must appear in its output (whitespace-normalised). ``$DDRNET_SHARED/reference/X`` is copied in as ``X``."""
    argv = [os.path.expandvars(a) for a in shlex.split(command)]
    reference = SHARED / "reference"
    for i, a in enumerate(argv):
        if Path(a).parent == reference:
            if not Path(a).is_file():
                pytest.skip(f"reference models not found at {reference} (set DDRNET_SHARED to the shared folder)")
            shutil.copy(a, workdir / Path(a).name)
            argv[i] = Path(a).name
    with _cwd(workdir):
        printed = check_command(argv, f"{block.id}: {command}")
    got = {" ".join(line.split()) for line in printed.splitlines()}
    missing = [line for line in block.code.splitlines() if line.strip() and " ".join(line.split()) not in got]
    if missing:
        raise DocError(
            f"{block.id}: not in the output of {command!r}:\n" + "\n".join(missing) + f"\n--- output:\n{printed}"
        )


def test_cli_table_matches_pyproject() -> None:
    """The console scripts checked here are the ones pyproject.toml installs."""
    scripts = dict(re.findall(r'^([\w-]+)\s*=\s*"([\w.]+):main"', _pyproject_section("project.scripts"), re.M))
    assert scripts == CLI_MODULES


def test_every_doc_is_found() -> None:
    """The docs are where this file looks, and they have code blocks."""
    assert (REPO / "docs" / "index.md") in DOC_FILES and len(TESTED_BLOCKS) > 30


# the checker itself must be able to fail: each of these lies must be caught
LIES = {
    "python NameError": ("python", "loss = criterion(1, 2)"),
    "unknown recipe": ("bash", "ddrnet-train --config cityscapes_ddrnet99"),
    "unknown config field": ("bash", "ddrnet-train --config smoke_camvid --data.no_such_field 1"),
    "bad override value": ("bash", "ddrnet-eval --checkpoint x --set train.epochs=many"),
    "unknown flag": ("bash", "ddrnet-predict -m hub/model img.png -o out/ --no-such-flag"),
    "unregistered model": ("bash", "ddrnet-export --architecture ddrnet99 --random-init -o x.onnx"),
    "unregistered variant in a script": ("bash", "python scripts/benchmark_train.py --variants ddrnet99"),
    "missing checkpoint": ("bash", "ddrnet-convert no_such_file.pth --check"),
    "unknown command": ("bash", "frobnicate --all"),
    "unknown pip extra": ("bash", 'pip install -e ".[dev,gpu]"'),
    "another package from PyTorch's index": ("bash", f"pip install numpy --index-url {PYTORCH_INDEX}cpu"),
    "another index": ("bash", "pip install torch --index-url https://example.org/simple"),
    "print comment not the output": ("python", "print([2, 4, 8, 16, 32][1:])  # [2, 4, 8, 16, 32]"),
    "unknown test": ("bash", "pytest tests/test_convert.py -k no_such_test"),
    "unknown recipe field in yaml": ("yaml", "base: smoke_camvid\ndata:\n  no_such_field: 1\n"),
    "broken json": ("json", '{"metric": "mIoU",}'),
    "no language": ("", "print(1)"),
    "unknown language": ("rust", "fn main() {}"),
}


@pytest.mark.parametrize("lie", LIES, ids=list(LIES))
def test_checker_catches(lie: str, stand_ins, doc_env, tmp_path) -> None:
    lang, code = LIES[lie]
    block = Block(tmp_path / "lie.md", 1, lang, code)
    session = DocSession([block], tmp_path, cascade=True)
    shutil.copytree(stand_ins[False], tmp_path, dirs_exist_ok=True)
    with pytest.raises((DocError, NameError, json.JSONDecodeError)):
        if lang == "python":
            session.run_through(block, lambda b, s: run_python(b, s.namespace))
        elif lang in SHELL_LANGS:
            session.run_through(block, lambda b, s: check_shell(b))
        else:
            check_data(block, tmp_path)


@pytest.mark.parametrize(
    "markdown",
    [
        "<!-- doc-test: skip: -->\n```python\nprint(1)\n```\n",
        "<!-- doc-test: skipp: typo -->\n```python\nprint(1)\n```\n",
        "<!-- doc-test: skip: why -->\n\n```python\nprint(1)\n```\n",
        "```python\nprint(1)\n",
    ],
    ids=["skip without reason", "unknown marker", "marker not before the fence", "unclosed fence"],
)
def test_bad_markup_is_caught(markdown: str, tmp_path) -> None:
    blocks, problems = extract_blocks(tmp_path / "bad.md", markdown)
    with pytest.raises(DocError):
        for b in blocks:
            b.marker()
        if problems:
            raise DocError("\n".join(problems))

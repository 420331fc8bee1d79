"""Run timm's own model test suite on the DDRNet models.

Usage (from the repository root; extra arguments go to pytest)::

    python tests/timm_suite/run_timm_suite.py [-x] [--durations 10]

What it does:

1. Fetches the sdist of the *installed* timm version with pip
   (``pip download --no-deps --no-binary :all: timm==VERSION``) and keeps its
   ``tests/test_models.py`` in a cache (``$DDRNET_TIMM_SUITE_CACHE``, default
   ``~/.cache/ddrnet_zoo/timm_suite/timm-VERSION``); later runs use the cache.
2. Writes a run folder beside it: timm's file with one change, ``'ddrnet'`` added to
   ``FEAT_INTER_FILTERS`` (the suite's list of model modules whose ``forward_intermediates``,
   ``features_only=True, feature_cls='getter'`` and pruning contract it tests, as it does for
   timm's own ``resnet``, ``hrnet``, ...); a ``conftest.py`` that imports ``ddrnet_zoo`` so our
   models are in timm's registry when the suite builds its parameter lists; a ``pytest.ini``.
   No exclusion list is touched.
3. Runs ``pytest test_models.py -k "ddrnet and not pretrained"``: every test timm runs for its own
   models, on every registered DDRNet model, except the two that download pretrained weights.

If the sdist cannot be fetched (offline, no index), it prints ``SKIPPED: ...`` with the reason and
exits 0; any other problem exits non-zero.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import List, Optional

import timm

HERE = Path(__file__).resolve().parent
SUITE_FILE = "tests/test_models.py"
SELECT = "ddrnet and not pretrained"
FEAT_INTER_ANCHOR = "FEAT_INTER_FILTERS = ["
PYTEST_INI = """[pytest]
# timm's markers (base, cfg, features, fxforward, timeout, ...) are documentation here
filterwarnings =
    ignore::pytest.PytestUnknownMarkWarning
"""


class SuiteUnavailable(RuntimeError):
    """The sdist could not be fetched (no network or no index): the suite is skipped, not failed."""


def cache_dir(version: str) -> Path:
    root = os.environ.get("DDRNET_TIMM_SUITE_CACHE") or Path.home() / ".cache" / "ddrnet_zoo" / "timm_suite"
    return Path(root) / f"timm-{version}"


def fetch_suite(version: str, dest: Path) -> Path:
    """``tests/test_models.py`` of timm ``version``'s sdist, fetched once into ``dest``."""
    target = dest / "timm_test_models.py"
    if target.is_file():
        return target
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        cmd += ["--retries", "1", "--timeout", "20", "--disable-pip-version-check", "-d", tmp, f"timm=={version}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        sdists = sorted(Path(tmp).glob("timm-*.tar.gz"))
        if proc.returncode != 0 or not sdists:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise SuiteUnavailable(f"pip could not download the timm=={version} sdist ({last})")
        with tarfile.open(sdists[0]) as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith("/" + SUITE_FILE)), None)
            if member is None:
                raise RuntimeError(f"{sdists[0].name} has no {SUITE_FILE}")
            data = tar.extractfile(member).read()
    partial = target.with_suffix(".tmp")
    partial.write_bytes(data)
    os.replace(partial, target)
    return target


def prepare_run_dir(suite: Path) -> Path:
    """The run folder: timm's file with ``'ddrnet'`` in ``FEAT_INTER_FILTERS``, our conftest, a pytest.ini."""
    source = suite.read_text(encoding="utf-8")
    if source.count(FEAT_INTER_ANCHOR) != 1:
        raise RuntimeError(
            f"{suite}: expected one {FEAT_INTER_ANCHOR!r} in timm's test_models.py; the suite changed, "
            "update tests/timm_suite/run_timm_suite.py"
        )
    patched = source.replace(FEAT_INTER_ANCHOR, FEAT_INTER_ANCHOR + "'ddrnet', ", 1)
    run_dir = suite.parent / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir()
    (run_dir / "test_models.py").write_text(patched, encoding="utf-8")
    shutil.copyfile(HERE / "timm_conftest.py", run_dir / "conftest.py")
    (run_dir / "pytest.ini").write_text(PYTEST_INI, encoding="utf-8")
    return run_dir


def summary_counts(output: str) -> Optional[str]:
    """The final ``N passed, M failed ...`` line of a pytest run."""
    lines = [ln for ln in output.splitlines() if re.search(r"\d+ (passed|failed|error)", ln)]
    return lines[-1].strip("= ") if lines else None


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    version = timm.__version__
    try:
        suite = fetch_suite(version, cache_dir(version))
    except SuiteUnavailable as e:
        print(f"SKIPPED: timm's model test suite was not run: {e}. Run again with network access to PyPI.")
        return 0
    run_dir = prepare_run_dir(suite)
    cmd = [sys.executable, "-m", "pytest", str(run_dir / "test_models.py"), "-c", str(run_dir / "pytest.ini")]
    cmd += ["--rootdir", str(run_dir), "-p", "no:cacheprovider", "-q", "-rfE", "-k", SELECT, *argv]
    print(f"timm {version}: {' '.join(cmd)}", flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = io.StringIO()
    for line in proc.stdout:
        sys.stdout.write(line)
        out.write(line)
    rc = proc.wait()
    print(f"timm {version} test_models.py on the DDRNet models: {summary_counts(out.getvalue())}")
    return rc


if __name__ == "__main__":
    sys.exit(main())

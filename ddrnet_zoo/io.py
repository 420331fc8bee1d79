"""File helpers: atomic writes and safe checkpoint reading (safetensors first, ``.pth`` only weights_only).

Reading a ``.pth`` runs no code (``torch.load(weights_only=True)``) and takes memory bounded by the file:
before ``torch.load``, a zip must hold only uncompressed entries inside the file with their CRC-32s
intact, and its pickle must not construct a ``bytearray`` (the one allowed global that allocates what its
argument says); after it, the tensors must be dense CPU tensors whose storages fit in the file.

Atomic writes go to a temporary file or folder beside the target, named
``.<target>.<pid>@<host>.<random>.tmp``, which is renamed over the target when complete. A process
killed mid-write leaves its temporary behind; the next write to the same target removes the
temporaries whose writing process (on this host) no longer runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import io
import json
import os
import pickletools
import re
import shutil
import socket
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any, Callable, Collection, Dict, Iterator, List, Optional, Tuple, Union

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .errors import DDRNetError, OutputPathError

__all__ = [
    "atomic_path",
    "is_disk_full",
    "atomic_directory",
    "atomic_write_text",
    "atomic_write_json",
    "json_text",
    "atomic_save",
    "remove_stale_temporaries",
    "check_output_dir",
    "prepare_output_dir",
    "check_output_file",
    "is_safetensors",
    "torch_load_safe",
    "check_torch_file",
    "check_loaded_tensors",
    "check_state_dict_tensors",
    "state_dict_from",
    "read_state_dict",
    "CheckpointError",
    "DiskFullError",
]

PathLike = Union[str, os.PathLike]


class CheckpointError(DDRNetError, ValueError):
    """A checkpoint file is missing, unreadable, corrupt or does not match the model."""


class DiskFullError(OutputPathError):
    """An atomic write ran out of space (``ENOSPC``/``EDQUOT``): the target is unchanged, the temporary removed."""


# ---------------------------------------------------------------------------------------------- full disks
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# how libraries that do their own I/O report it: Rust (safetensors) "(os error 28)", C strerror texts
_DISK_FULL_TEXTS = ("No space left on device", "Disk quota exceeded", "os error 28", "os error 122")


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was raised from or during, reports a full disk or quota."""
    seen = set()
    e: Any = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _DISK_FULL_ERRNOS:
            return True
        if any(text in str(e) for text in _DISK_FULL_TEXTS):
            return True
        e = e.__cause__ or e.__context__
    return False


def _size_text(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"  # pragma: no cover


def _disk_full(path: Path, existed: bool, partial: Path) -> DiskFullError:
    """The error of an atomic write to ``path`` that a full disk stopped; removes its temporary ``partial``."""
    if partial.is_dir():
        shutil.rmtree(partial, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    try:
        free = f"{_size_text(shutil.disk_usage(path.parent).free)} free"
    except OSError:
        free = "free space unknown"
    kept = f"the previous {path.name} is unchanged" if existed else f"no {path.name} was written"
    return DiskFullError(
        f"cannot write {path}: the disk is full ({free} once the partial write is removed); {kept} and the "
        "partial temporary was removed. Free space or choose another location"
    )


# ---------------------------------------------------------------------------------------------- temporaries
def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def _temp_prefix(target: Path) -> str:
    return f".{target.name}.{os.getpid()}@{_host()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


_TEMPORARY = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)\.[^/]*\.tmp$")
# folder -> (its mtime when read, {target name: [(temporary's name, writer's pid)]}) for this host's temporaries
_FOLDER_TEMPORARIES: Dict[str, Tuple[int, Dict[str, List[Tuple[str, int]]]]] = {}
_FOLDER_LOCK = threading.Lock()


def _temporaries_in(folder: Path) -> Dict[str, List[Tuple[str, int]]]:
    """This host's temporaries in ``folder`` by target name, read again only when the folder changed.

    Without the index every write would list its whole folder: quadratic for thousands of
    predictions written into one folder.
    """
    key = os.path.abspath(folder)
    mtime = os.stat(key).st_mtime_ns
    with _FOLDER_LOCK:
        cached = _FOLDER_TEMPORARIES.get(key)
        if cached is not None and cached[0] == mtime:
            return cached[1]
    host, index = _host(), {}
    with os.scandir(key) as entries:
        for entry in entries:
            m = _TEMPORARY.match(entry.name)
            if m and m["host"] == host:
                index.setdefault(m["target"], []).append((entry.name, int(m["pid"])))
    with _FOLDER_LOCK:
        _FOLDER_TEMPORARIES[key] = (mtime, index)
    return index


def _note_own_change(folder: Path) -> None:
    """After this process wrote into ``folder``: its index still holds (ours leave no temporary behind).

    A foreign write at the same moment may be missed until the folder changes again; that only
    delays removing a stale temporary.
    """
    key = os.path.abspath(folder)
    with _FOLDER_LOCK:
        cached = _FOLDER_TEMPORARIES.get(key)
        if cached is not None:
            with contextlib.suppress(OSError):
                _FOLDER_TEMPORARIES[key] = (os.stat(key).st_mtime_ns, cached[1])


def remove_stale_temporaries(target: PathLike) -> int:
    """Remove temporaries of ``target`` left by interrupted writes; returns how many were removed.

    Only temporaries written by a process of this host that no longer runs are removed: a write
    still under way (here or on another host sharing the folder) keeps its file.
    """
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        return 0
    index = _temporaries_in(parent)
    removed, kept = 0, []
    for name, pid in index.get(target.name, ()):
        if _pid_alive(pid):
            kept.append((name, pid))
            continue
        entry = parent / name
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed += 1
    if removed:
        with _FOLDER_LOCK:
            index[target.name] = kept
        _note_own_change(parent)
    return removed


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask is not thread-safe)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _apply_umask(path: Path) -> None:
    """Give ``path`` (and what a folder holds) the permissions a plain ``open``/``mkdir`` would have."""
    mask = _umask()
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o777 & ~mask)
            for f in files:
                os.chmod(os.path.join(root, f), 0o666 & ~mask)


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file or folder) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: PathLike, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    An exception leaves any existing ``path`` untouched and removes the temporary file; a full disk
    (``ENOSPC``/``EDQUOT``, however the writer reports it) becomes a :class:`DiskFullError` saying so.
    A killed process leaves the temporary for the next write to ``path`` to remove. The file gets
    the permissions the umask gives a new file. ``durable``: the file and the rename are flushed to
    the disk (``fsync``) before returning, so a node that loses power afterwards still has it.
    """
    path = Path(path)
    prepare_output_dir(path.parent)
    remove_stale_temporaries(path)
    existed = path.exists()
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _apply_umask(tmp_path)
        if durable:
            _fsync(tmp_path)
        os.replace(tmp_path, path)
        if durable:
            _fsync(path.parent)
        _note_own_change(path.parent)
    except Exception as e:
        if not isinstance(e, DiskFullError) and is_disk_full(e):
            raise _disk_full(path, existed, tmp_path) from e
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux ``renameat2(RENAME_EXCHANGE)``; False where unsupported."""
    # the C library already loaded into this process (find_library would run ldconfig on every save)
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # this file system or kernel cannot
        return False
    raise OSError(err, os.strerror(err), str(b))


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@contextlib.contextmanager
def atomic_directory(path: PathLike, replaced: Collection[str] = ()) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on success it replaces ``path`` as a whole.

    Readers see either the old folder or the new one, never a mix: on Linux the two are swapped
    with one ``renameat2(RENAME_EXCHANGE)`` call (elsewhere, two renames). Entries of an existing
    ``path`` that the new folder lacks are kept (hard links, or copies), except the names in
    ``replaced``, which belong to the folder's format and are dropped with the old version.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{path} exists and is not a folder; choose another location or remove the file")
    prepare_output_dir(path.parent)
    remove_stale_temporaries(path)
    existed = path.exists()
    staging = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield staging
        _apply_umask(staging)
        if path.is_dir():
            written = {p.name for p in staging.iterdir()}
            for entry in path.iterdir():
                if entry.name in written or entry.name in replaced:
                    continue
                if entry.is_symlink():
                    os.symlink(os.readlink(entry), staging / entry.name)
                elif entry.is_dir():
                    shutil.copytree(entry, staging / entry.name, symlinks=True, copy_function=_link_or_copy)
                else:
                    _link_or_copy(str(entry), str(staging / entry.name))
            if not _exchange(staging, path):
                old = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
                os.replace(path, old / "old")
                os.replace(staging, path)
                staging = old
        else:
            os.replace(staging, path)
        _note_own_change(path.parent)
    except Exception as e:
        if not isinstance(e, DiskFullError) and is_disk_full(e):
            raise _disk_full(path, existed, staging) from e
        raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def check_output_dir(path: PathLike, what: str = "output folder") -> Path:
    """Check, without creating anything, that the folder ``path`` exists or can be created and written.

    Raises :class:`OutputPathError` when a file stands where a folder is needed or the nearest
    existing folder is not writable.
    """
    path = Path(path) if str(path) else Path(".")
    for p in [path, *path.absolute().parents]:
        if not p.exists():
            continue
        if not p.is_dir():
            raise OutputPathError(
                f"cannot create the {what} {path}: {p} is a file, not a folder; choose another location"
            )
        try:  # a real write: permissions, read-only file systems and kernel folders all answer here
            with tempfile.TemporaryFile(dir=p):
                pass
        except OSError as e:
            raise OutputPathError(
                f"cannot write the {what} {path}: {p} is not writable ({e.strerror}); choose another location"
            ) from None
        break
    return path


def prepare_output_dir(path: PathLike, what: str = "output folder") -> Path:
    """Create the folder ``path`` (and its parents) or raise :class:`OutputPathError` saying why not."""
    path = Path(path) if str(path) else Path(".")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), path)
        raise OutputPathError(
            f"cannot create the {what} {path}: {blocker} is a file, not a folder; choose another location"
        ) from None
    except PermissionError as e:
        raise OutputPathError(
            f"cannot create the {what} {path}: permission denied ({e.strerror}); choose a location you can write to"
        ) from None
    except OSError as e:
        raise OutputPathError(f"cannot create the {what} {path}: {e.strerror or e}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputPathError(f"the {what} {path} is not writable; choose a location you can write to")
    return path


def check_output_file(path: PathLike, what: str = "output file") -> Path:
    """Check, without creating anything, that the file ``path`` can be written; else :class:`OutputPathError`."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"the {what} {path} is a folder; give a file name")
    check_output_dir(path.parent, f"folder of the {what}")
    return path


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def json_text(obj: Any) -> str:
    """``obj`` as the indented JSON text every file of this package is written with."""
    return json.dumps(obj, indent=2, sort_keys=False) + "\n"


def atomic_write_json(path: PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json_text(obj))


def atomic_save(path: PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def is_safetensors(path: PathLike) -> bool:
    """Whether ``path`` holds safetensors data (8-byte little-endian header length, then a JSON object)."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") > 1


# pickle globals that torch's weights_only unpickler allows but that allocate what the pickle says
_ALLOCATING_GLOBALS = {"builtins bytearray", "__builtin__ bytearray"}
_STORAGE_SLACK = 1 << 20  # bytes of tensor storage beyond the file's size (alignment, empty tensors)
_MAX_WALK = 10_000_000  # objects visited when checking a loaded checkpoint


def _pickle_globals(stream: Any, pickles: int) -> List[str]:
    """The ``GLOBAL`` names of the first ``pickles`` pickles in ``stream`` (read, never executed)."""
    names: List[str] = []
    try:
        for _ in range(pickles):
            for op, arg, _pos in pickletools.genops(stream):
                if op.name == "GLOBAL":
                    names.append(str(arg))
    except Exception:  # unparseable: torch.load reports it
        pass
    return names


def check_torch_file(path: PathLike) -> None:
    """Refuse, before ``torch.load`` reads ``path``, what would make reading it unbounded or silently wrong.

    A zip (``torch.save``'s format) must hold only uncompressed entries (``torch.save`` never compresses; a
    compressed one could inflate to any size: a zip bomb) that lie within the file and match their CRC-32
    (bit flips are caught here, not loaded); the pickle of any ``.pth`` must not call ``bytearray``.
    Raises :class:`CheckpointError` naming the file.
    """
    path = Path(path)
    size = path.stat().st_size
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                infos = archive.infolist()
                for info in infos:
                    if info.compress_type != zipfile.ZIP_STORED:
                        raise CheckpointError(
                            f"{path}: entry {info.filename} is compressed ({info.compress_size} bytes declaring "
                            f"{info.file_size}); torch.save never compresses, and inflating it could take any "
                            "amount of memory (a zip bomb): refused. Re-save the checkpoint with torch.save"
                        )
                    if info.file_size != info.compress_size or info.header_offset + info.file_size > size:
                        raise CheckpointError(
                            f"{path}: entry {info.filename} declares {info.file_size} bytes, beyond the file's "
                            f"{size}: truncated or corrupt"
                        )
                bad = archive.testzip()  # reads every entry in 1 MiB chunks
                if bad is not None:
                    raise CheckpointError(f"{path}: entry {bad} fails its CRC-32 check: the file is corrupt")
                pickle_entries = [i for i in infos if i.filename.rsplit("/", 1)[-1] == "data.pkl"]
                data = archive.read(pickle_entries[0]) if pickle_entries else b""
        except CheckpointError:
            raise
        except Exception as e:  # zipfile raises several types for a broken archive
            raise CheckpointError(f"{path}: not a readable zip archive (truncated or corrupt?): {e}") from None
        names = _pickle_globals(io.BytesIO(data), 1)
    else:  # the legacy format: magic number, protocol, system info, the object, storage keys, then raw data
        with open(path, "rb") as f:
            names = _pickle_globals(f, 5)
    allocating = sorted({n.replace(" ", ".") for n in names if n in _ALLOCATING_GLOBALS})
    if allocating:
        raise CheckpointError(
            f"{path}: its pickle calls {', '.join(allocating)}, which can allocate any amount of memory and is "
            "never needed for weights: refused"
        )


def check_loaded_tensors(obj: Any, path: PathLike) -> None:
    """Refuse a loaded checkpoint whose tensors are not dense CPU tensors stored in the file.

    Tensors that a pickle builds from allowed constructors (``torch.FloatTensor(n)``, meta tensors) rather
    than from the file's own storages are refused before anything touches their memory.
    """
    size = Path(path).stat().st_size
    storages: Dict[int, int] = {}
    stack, seen = [obj], 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > _MAX_WALK:
            raise CheckpointError(f"{path}: more than {_MAX_WALK} objects: not a checkpoint")
        if isinstance(item, torch.Tensor):
            if item.device.type != "cpu" or item.layout != torch.strided or item.is_quantized or item.is_nested:
                raise CheckpointError(
                    f"{path}: holds a {item.layout} tensor on {item.device} (a checkpoint holds dense CPU tensors)"
                )
            storage = item.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
    total = sum(storages.values())
    if total > size + _STORAGE_SLACK:
        raise CheckpointError(
            f"{path}: its tensors take {total} bytes, more than the file's {size}: not built from the file's data"
        )


_STATE_DICT_DTYPES = ("float32", "float16", "bfloat16", "float64", "int64")


def check_state_dict_tensors(state_dict: Dict[str, Any], path: PathLike) -> None:
    """Refuse weights of a dtype no DDRNet checkpoint has (integer, boolean, complex, 8-bit floats), naming one."""
    for key, value in state_dict.items():
        dtype = str(getattr(value, "dtype", "")).replace("torch.", "")
        if dtype not in _STATE_DICT_DTYPES:
            raise CheckpointError(
                f"{path}: tensor {key!r} is {dtype or type(value).__name__}; weights are floating point "
                f"({', '.join(_STATE_DICT_DTYPES[:4])}) or int64 counters: not a model checkpoint"
            )


# Objects that training frameworks pickle into checkpoint *metadata* (never into the weights):
# mmengine's message hub (HistoryBuffer), numpy arrays/scalars of logged values. When
# ``torch.load(weights_only=True)`` refuses only these, they may be replaced by inert placeholders
# that run no code (:func:`torch_load_safe` with ``metadata_placeholders``).
METADATA_GLOBAL_PREFIXES = ("mmengine.", "mmcv.", "numpy.")


class _MetadataPlaceholder:
    """Stands in for a refused metadata object: accepts any constructor arguments and state, does nothing."""

    def __new__(cls, *args: Any, **kwargs: Any):
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"<placeholder for {self._name}>"


def torch_load_safe(path: PathLike, metadata_placeholders: Optional[List[str]] = None) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: no pickled code runs, memory bounded by the file.

    With a list ``metadata_placeholders``, metadata-only classes that ``weights_only`` refuses
    (:data:`METADATA_GLOBAL_PREFIXES`) are replaced by inert placeholders and their names appended to
    the list; any other refused class is an error. Raises :class:`CheckpointError` naming the file when
    it cannot be read safely (see :func:`check_torch_file` and :func:`check_loaded_tensors`).
    """
    check_torch_file(path)
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as first_error:  # torch raises several types for bad/unsafe pickles
        obj = _load_with_placeholders(path, first_error, metadata_placeholders)
    check_loaded_tensors(obj, path)
    return obj


def _load_with_placeholders(path: PathLike, first_error: Exception, placeholders: Optional[List[str]]) -> Any:
    try:
        refused = list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:
        refused = []
    if not refused:
        raise CheckpointError(
            f"{path}: cannot be read safely with torch.load(weights_only=True) (truncated or corrupt?): {first_error}"
        ) from None
    unsafe = [g for g in refused if placeholders is None or not g.startswith(METADATA_GLOBAL_PREFIXES)]
    if unsafe:
        raise CheckpointError(
            f"{path}: refused: it holds pickled objects that are not weights; if you trust it, re-save only "
            "its state dict\n"
            f"  the objects: {', '.join(unsafe)} (torch.load(weights_only=True) will not execute them, nor will "
            "ddrnet_zoo)\n"
            "  re-save in the environment that created it: torch.save(obj['state_dict'], ...), or convert it "
            "to safetensors"
        ) from None
    stand_ins = [(type(name.rsplit(".", 1)[-1], (_MetadataPlaceholder,), {"_name": name}), name) for name in refused]
    try:
        with torch.serialization.safe_globals(stand_ins):
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot be read safely with torch.load(weights_only=True): {e}") from None
    placeholders.extend(refused)
    return obj


def state_dict_from(obj: Any, path: PathLike) -> Dict[str, torch.Tensor]:
    """The state dict in a loaded ``.pth`` object (bare, or under ``"state_dict"``), else :class:`CheckpointError`."""
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a dict of tensors (a state dict), got {type(obj).__name__}")
    if not all(isinstance(k, str) for k in obj):
        raise CheckpointError(f"{path}: a state dict's keys are strings")
    check_state_dict_tensors(obj, path)
    return obj


def read_state_dict(path: PathLike) -> Dict[str, torch.Tensor]:
    """Read a state dict from safetensors (recognised by content) or, safely, from ``.pth``/``.pt``/``.bin``.

    ``.pth`` files are read with ``torch.load(weights_only=True)``: no pickled code runs.
    Raises :class:`CheckpointError` naming the file for missing, truncated or corrupt files.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors" or is_safetensors(path):
        try:
            state_dict = load_file(str(path))
        except (SafetensorError, OSError, ValueError, KeyError, TypeError, RuntimeError, MemoryError) as e:
            raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt?): {e}") from None
        check_state_dict_tensors(state_dict, path)
        return state_dict
    return state_dict_from(torch_load_safe(path), path)

"""Video in and out for prediction: decode frames one at a time, encode overlay / colour-mask videos.

Decoding and encoding go through PyAV (FFmpeg), the ``video`` extra: ``pip install 'ddrnet_zoo[video]'``.
It is imported when a video is opened, and its absence is a one-line error naming the extra.
Frames are streamed: :func:`read_frames` yields them as they are decoded (a background thread
decodes ahead, a bounded number of frames), and :class:`VideoWriter` encodes each one as it
comes, so memory does not grow with the video's length.

The written videos keep the input's frame rate and timestamps (H.264 in MP4 when FFmpeg has
libx264, else MPEG-4 Part 2). 4:2:0 chroma needs even sizes: an odd width or height is padded by
one replicated row or column.
"""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import DDRNetError
from .onnx_model import require

__all__ = [
    "VIDEO_EXTENSIONS",
    "VideoError",
    "VideoInfo",
    "is_video_file",
    "require_av",
    "probe_video",
    "read_frames",
    "VideoWriter",
    "split_videos",
]

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
PathLike = Union[str, os.PathLike]


class VideoError(DDRNetError, ValueError):
    """A video cannot be read (corrupt, unsupported, no video stream) or written."""


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` found in a video file."""

    path: Path
    width: int
    height: int
    rate: Fraction
    """Frames per second (the stream's average rate)."""
    frames: Optional[int]
    """Frame count stored in the container (None when it does not say)."""
    codec: str


def is_video_file(path: PathLike) -> bool:
    """Whether ``path`` is an existing file with a video extension."""
    p = Path(str(path))
    return p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()


def require_av() -> Any:
    """PyAV, or an ImportError saying how to install it."""
    return require("av", "video input and output", extra="video")


def _open(path: Path):
    av = require_av()
    try:
        container = av.open(str(path), "r")
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise VideoError(
            f"{path}: not a readable video ({e}); check the file or convert it (e.g. to H.264 MP4)"
        ) from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: the file has no video stream")
    return container


def probe_video(path: PathLike) -> VideoInfo:
    """Open ``path`` and decode its first frame; :class:`VideoError` says why a video cannot be read."""
    av = require_av()
    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        try:
            first = next(iter(container.decode(stream)), None)
        except av.error.FFmpegError as e:
            raise VideoError(
                f"{path}: cannot decode its video ({e}); the file is corrupt or its codec unsupported"
            ) from None
        if first is None:
            raise VideoError(f"{path}: the video has no frames")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise VideoError(f"{path}: the video has no frame rate")
        return VideoInfo(
            path, first.width, first.height, Fraction(rate), int(stream.frames) or None, stream.codec_context.name
        )
    finally:
        container.close()


_DONE = object()


def _prefetch(items: Iterator[Any], size: int) -> Iterator[Any]:
    """Iterate ``items`` in a background thread, at most ``size`` ahead; its exceptions are re-raised here."""
    q: queue.Queue = queue.Queue(maxsize=max(1, size))
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as e:  # handed to the consumer
            q.put(e)

    thread = threading.Thread(target=work, name="video-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def _decode(path: Path) -> Iterator[Tuple[np.ndarray, Optional[int], Optional[Fraction]]]:
    av = require_av()
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index = 0
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24"), frame.pts, frame.time_base
                index += 1
        except av.error.FFmpegError as e:
            raise VideoError(f"{path}: decoding failed after {index} frames ({e}); the file is corrupt") from None
    finally:
        container.close()


def read_frames(path: PathLike, prefetch: int = 4) -> Iterator[Tuple[np.ndarray, Optional[int], Optional[Fraction]]]:
    """Yield ``(rgb, pts, time_base)`` for each frame of ``path``: (H, W, 3) ``uint8``, decoded ahead in a thread."""
    return _prefetch(_decode(Path(path)), prefetch)


def _encoder_name(av: Any) -> str:
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


class VideoWriter:
    """Encode RGB frames into a video file at ``rate`` (MP4; H.264 when available), one frame at a time.

    ``path`` should be a temporary path (the caller renames it when the whole video is written,
    e.g. with :func:`~ddrnet_zoo.io.atomic_path`); ``container_format`` names the format since such
    a path has no meaningful extension. Use as a context manager: leaving it flushes the encoder
    and closes the file.
    """

    def __init__(self, path: PathLike, width: int, height: int, rate: Fraction, container_format: str = "mp4") -> None:
        self.av = require_av()
        self.width, self.height = int(width), int(height)
        self.container = self.av.open(str(path), "w", format=container_format)
        codec = _encoder_name(self.av)
        self.stream = self.container.add_stream(codec, rate=Fraction(rate))
        self.stream.width = self.width + self.width % 2
        self.stream.height = self.height + self.height % 2
        self.stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            self.stream.options = {"crf": "20", "preset": "veryfast"}
        else:
            self.stream.bit_rate = 8_000_000
        self.frames = 0

    def write(self, rgb: np.ndarray, pts: Optional[int] = None, time_base: Optional[Fraction] = None) -> None:
        """Encode one (H, W, 3) ``uint8`` frame; ``pts``/``time_base`` keep the input's timestamp."""
        if rgb.shape[:2] != (self.height, self.width):
            raise VideoError(f"frame {rgb.shape[:2]} differs from the video's size {(self.height, self.width)}")
        if self.stream.width != self.width or self.stream.height != self.height:
            pad = ((0, self.stream.height - self.height), (0, self.stream.width - self.width), (0, 0))
            rgb = np.pad(rgb, pad, mode="edge")
        frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        if pts is not None and time_base is not None:
            frame.pts, frame.time_base = pts, time_base
        else:
            frame.pts, frame.time_base = self.frames, 1 / Fraction(self.stream.codec_context.framerate)
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and close the file."""
        if self.container is None:
            return
        try:
            for packet in self.stream.encode():
                self.container.mux(packet)
        finally:
            self.container.close()
            self.container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()
        elif self.container is not None:
            self.container.close()
            self.container = None


def split_videos(inputs: Sequence[PathLike]) -> Tuple[List[PathLike], List[Path]]:
    """``inputs`` split into (image inputs, video files): a video is an existing file with a video extension."""
    images: List[PathLike] = []
    videos: List[Path] = []
    for item in inputs:
        if is_video_file(item):
            videos.append(Path(str(item)))
        else:
            images.append(item)
    return images, videos

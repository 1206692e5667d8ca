"""Read one container's cgroup files, turning faults into sample errors.

Files are read with ``os.open`` and ``os.read`` on prebuilt string paths.
A scrape reads about ten files per container, and pathlib's path objects
and the buffered text layer of ``open()`` cost more than the system calls.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TypeVar

from exporter.cgroup_paths import CgroupPaths
from exporter.errors import CgroupReadError, ReaderError
from exporter.model import ContainerGoneError, ContainerInfo, ContainerSample

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Every cgroup interface file the reader uses is far smaller than this.
_CHUNK_BYTES = 65536


def read_text(path: str) -> str:
    """Return the whole content of a small file.

    Undecodable bytes become U+FFFD, so that the parser reports them as
    malformed content.

    Raises:
        OSError: the file cannot be opened or read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, _CHUNK_BYTES)
        # The kernel's seq_file reads fill the buffer unless the content
        # ended, so a short read is the whole file. A full one may not be.
        if len(data) == _CHUNK_BYTES:
            chunks = [data]
            while chunk := os.read(fd, _CHUNK_BYTES):
                chunks.append(chunk)
            data = b"".join(chunks)
    finally:
        os.close(fd)
    return data.decode("utf-8", "replace")


def record_error(sample: ContainerSample, kind: str, message: str) -> None:
    """Add an error to ``sample``; messages of one kind are joined."""
    previous = sample.errors.get(kind)
    sample.errors[kind] = f"{previous}; {message}" if previous else message


class ContainerFiles:
    """Access to one container's cgroup files that records each fault on one sample."""

    def __init__(
        self, container: ContainerInfo, paths: CgroupPaths, sample: ContainerSample
    ) -> None:
        self.container = container
        self.paths = paths
        self.sample = sample

    def error(self, error: ReaderError) -> None:
        """Record ``error`` on the sample; several of one kind are joined."""
        message = str(error)
        record_error(self.sample, error.kind, message)
        logger.debug("container %s: %s", self.container.id, message)

    def text(self, controller: str, name: str, optional: bool = False) -> str | None:
        """Return a file's text, or None after recording why it is missing.

        A missing file whose cgroup is also gone means the container is gone.
        With ``optional`` a missing file is not an error.

        Raises:
            ContainerGoneError: the cgroup directory was removed.
        """
        path = self.paths.file(controller, name)
        if path is None:
            if not optional:
                self.error(
                    CgroupReadError(
                        f"cgroup controller {controller} is not mounted, so "
                        f"{name} of container {self.container.id} is unknown"
                    )
                )
            return None
        try:
            return read_text(path)
        except FileNotFoundError:
            self._raise_if_gone()
            if not optional:
                self.error(CgroupReadError(f"cgroup file {path} does not exist"))
            return None
        except OSError as error:
            # ENODEV and friends come from a cgroup being torn down right now.
            self._raise_if_gone()
            self.error(CgroupReadError(f"failed to read cgroup file {path}: {error}"))
            return None

    def _raise_if_gone(self) -> None:
        # Only the primary directory decides: a missing cpuset directory on a
        # host that places containers in no cpuset cgroup is not removal.
        primary = self.paths.primary_directory()
        if primary is None or not os.path.isdir(primary):
            raise ContainerGoneError(
                f"cgroup {primary} of container {self.container.id} was removed"
            )

    def parse(
        self, controller: str, name: str, text: str, parse: Callable[[str, str], T]
    ) -> tuple[bool, T | None]:
        """Parse a file's text; return (ok, value), recording a parse fault."""
        path = self.paths.file(controller, name)
        assert path is not None
        try:
            return True, parse(text, path)
        except ReaderError as error:
            self.error(error)
            return False, None

    def value(
        self, controller: str, name: str, parse: Callable[[str, str], T]
    ) -> T | None:
        """Read and parse a required file; None after recording any fault."""
        text = self.text(controller, name)
        if text is None:
            return None
        return self.parse(controller, name, text, parse)[1]

    def limit(
        self, controller: str, name: str, parse: Callable[[str, str], int | None]
    ) -> tuple[bool, int | None]:
        """Read a limit file where None means unlimited; return (ok, limit)."""
        text = self.text(controller, name)
        if text is None:
            return False, None
        return self.parse(controller, name, text, parse)

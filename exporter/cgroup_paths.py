"""Find a container's cgroup directories from its init process.

The path comes from ``<proc_root>/<pid>/cgroup``, never from a guessed
``docker/<id>``, so the systemd driver (``system.slice/docker-<id>.scope``),
the cgroupfs driver (``docker/<id>``) and custom cgroup parents all work.
"""

from __future__ import annotations

import errno
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from exporter.errors import CgroupParseError
from exporter.model import ContainerGoneError, ContainerInfo

logger = logging.getLogger(__name__)

# The cgroup v1 controllers whose files the reader uses.
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids")


@dataclass(frozen=True)
class CgroupPaths:
    """The cgroup directories of one container.

    On cgroup v2 every controller's files are in ``unified``. On v1 each
    controller has its own directory; a controller that is not mounted under
    the cgroup root is missing from ``controllers``.
    """

    version: int
    unified: Path | None = None
    controllers: dict[str, Path] = field(default_factory=dict)
    # The directories as strings, built once, because reads join strings
    # faster than they join Path objects.
    _files: dict[str, str] = field(init=False, repr=False, compare=False)
    _primary: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.version == 2:
            unified = None if self.unified is None else str(self.unified)
            files = {} if unified is None else dict.fromkeys(V1_CONTROLLERS, unified)
        else:
            files = {name: str(path) for name, path in self.controllers.items()}
        primary = self.primary()
        object.__setattr__(self, "_files", files)
        object.__setattr__(self, "_primary", None if primary is None else str(primary))

    def file(self, controller: str, name: str) -> str | None:
        """Return the path of ``controller``'s file ``name``, or None if unmounted."""
        directory = self._files.get(controller)
        if directory is None:
            return None
        return f"{directory}/{name}"

    def primary_directory(self) -> str | None:
        """Return :meth:`primary` as a string."""
        return self._primary

    def directory(self, controller: str) -> Path | None:
        """Return the directory holding ``controller``'s files, or None."""
        if self.version == 2:
            return self.unified
        return self.controllers.get(controller)

    def primary(self) -> Path | None:
        """Return the directory whose removal means the cgroup is gone."""
        if self.version == 2:
            return self.unified
        for controller in ("memory", "cpuacct", "pids", "cpu"):
            if controller in self.controllers:
                return self.controllers[controller]
        return None


def is_cgroup_v2(cgroup_root: Path) -> bool:
    """Tell whether ``cgroup_root`` is a cgroup v2 (unified) mount.

    A hybrid v1 host also lists a ``0::`` line in /proc/<pid>/cgroup, so only
    the ``cgroup.controllers`` file at the root distinguishes the two.
    """
    return (cgroup_root / "cgroup.controllers").is_file()


def find_v1_mounts(cgroup_root: Path) -> dict[str, Path]:
    """Map each v1 controller to its mount directory under ``cgroup_root``.

    Controllers are either mounted separately (``cpu/``, ``cpuacct/``) or
    co-mounted (``cpu,cpuacct/`` with ``cpu`` and ``cpuacct`` symlinks to it).
    An entry named after the controller alone wins over a co-mounted one.
    """
    mounts: dict[str, Path] = {}
    exact: set[str] = set()
    try:
        entries = sorted(cgroup_root.iterdir())
    except OSError as error:
        logger.debug("failed to list cgroup root %s: %s", cgroup_root, error)
        return mounts
    for entry in entries:
        if not entry.is_dir():
            continue
        names = entry.name.split(",")
        for name in names:
            if len(names) == 1:
                mounts[name] = entry
                exact.add(name)
            elif name not in exact:
                mounts.setdefault(name, entry)
    return mounts


def parse_proc_cgroup(text: str, source: Path) -> dict[str, str]:
    """Parse /proc/<pid>/cgroup into a map of hierarchy to path.

    v1 lines ``4:memory:/docker/<id>`` give one key per controller; the v2
    line ``0::/path`` gives the key ``""``. Named hierarchies such as
    ``name=systemd`` keep their full name.

    Raises:
        CgroupParseError: a line does not have the ``id:controllers:path`` form.
    """
    paths: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[0].isdigit() or not parts[2].startswith("/"):
            raise CgroupParseError(
                f"invalid line {line[:120]!r} in {source}; expected "
                "'<hierarchy-id>:<controllers>:/<path>'"
            )
        _, controllers, path = parts
        if not controllers:
            paths[""] = path
            continue
        for controller in controllers.split(","):
            paths[controller] = path
    if not paths:
        raise CgroupParseError(f"{source} is empty; expected one line per hierarchy")
    return paths


def _join(base: Path, cgroup_path: str, source: Path) -> Path:
    # NOTE: this assumes each hierarchy is mounted from its root, as on the
    # host itself or with the host's /sys/fs/cgroup bind-mounted. A mount of
    # a sub-cgroup (mountinfo root other than "/") would need that prefix cut.
    relative = PurePosixPath(cgroup_path.lstrip("/"))
    if ".." in relative.parts:
        # The kernel writes paths relative to the reader's cgroup namespace,
        # so ".." means the exporter runs in a namespace of its own.
        raise CgroupParseError(
            f"cgroup path {cgroup_path!r} in {source} leaves the cgroup namespace; "
            "run the exporter in the host's cgroup namespace (--cgroupns=host)"
        )
    return base / relative


class CgroupResolver:
    """Resolve containers to cgroup directories, cached per (ID, pid).

    Safe to call from several threads, as concurrent scrapes do.
    """

    def __init__(self, cgroup_root: Path, proc_root: Path) -> None:
        self.cgroup_root = cgroup_root
        self.proc_root = proc_root
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[int, CgroupPaths]] = {}

    def resolve(self, container: ContainerInfo) -> CgroupPaths:
        """Return the container's cgroup directories.

        Raises:
            ContainerGoneError: the init process or the cgroup no longer exists,
                or the pid now belongs to a process outside the container.
            CgroupParseError: /proc/<pid>/cgroup has an unexpected format.
        """
        with self._lock:
            cached = self._cache.get(container.id)
        if cached is not None and cached[0] == container.pid:
            return cached[1]

        paths = self._resolve_uncached(container)
        with self._lock:
            self._cache[container.id] = (container.pid, paths)
        logger.debug(
            "container %s (pid %s) uses %s", container.id, container.pid, paths
        )
        return paths

    def forget(self, container_id: str) -> None:
        """Drop the cached paths of a container."""
        with self._lock:
            self._cache.pop(container_id, None)

    def retain(self, container_ids: set[str]) -> None:
        """Drop the cached paths of every container not in ``container_ids``."""
        with self._lock:
            for container_id in set(self._cache) - container_ids:
                del self._cache[container_id]

    def _resolve_uncached(self, container: ContainerInfo) -> CgroupPaths:
        if container.pid <= 0:
            raise ContainerGoneError(
                f"container {container.id} has no init process (pid {container.pid})"
            )
        source = self.proc_root / str(container.pid) / "cgroup"
        try:
            text = source.read_text()
        except OSError as error:
            if isinstance(error, FileNotFoundError) or error.errno == errno.ESRCH:
                raise ContainerGoneError(
                    f"init process {container.pid} of container {container.id} "
                    f"is gone: {source} does not exist"
                ) from error
            raise
        hierarchies = parse_proc_cgroup(text, source)

        if is_cgroup_v2(self.cgroup_root):
            if "" not in hierarchies:
                raise CgroupParseError(
                    f"no '0::' line in {source}, but {self.cgroup_root} is cgroup v2"
                )
            self._check_owner(container, hierarchies[""], source)
            paths = CgroupPaths(
                version=2, unified=_join(self.cgroup_root, hierarchies[""], source)
            )
        else:
            mounts = find_v1_mounts(self.cgroup_root)
            controllers = {}
            for controller in V1_CONTROLLERS:
                if controller in hierarchies and controller in mounts:
                    self._check_owner(container, hierarchies[controller], source)
                    controllers[controller] = _join(
                        mounts[controller], hierarchies[controller], source
                    )
            paths = CgroupPaths(version=1, controllers=controllers)

        primary = paths.primary()
        if primary is None:
            raise CgroupParseError(
                f"none of the controllers {', '.join(V1_CONTROLLERS)} of "
                f"{source} is mounted under {self.cgroup_root}; check --cgroup.root"
            )
        if not primary.is_dir():
            raise ContainerGoneError(
                f"cgroup {primary} of container {container.id} does not exist"
            )
        return paths

    @staticmethod
    def _check_owner(container: ContainerInfo, cgroup_path: str, source: Path) -> None:
        # Once the init process exits its pid can be reused by any process;
        # reading that process's cgroup would report someone else's usage.
        if container.id not in cgroup_path:
            raise ContainerGoneError(
                f"pid {container.pid} is in cgroup {cgroup_path} per {source}, "
                f"not in one of container {container.id}; the container stopped"
            )

"""Memory budgets for quadratic work: how much memory is available, how much a step will need, and a refusal
that says what to do when it does not fit.

Every quadratic step (the DTW engines' cost and direction matrices, Soft-DTW's matrices) estimates its memory
*before* allocating and compares it with a budget; past the budget it raises :class:`~ctkd_inspect.errors.
MemoryBudgetError` (exit code 2) naming the estimate, the budget and the ways out, instead of growing until the
machine's out-of-memory killer ends the process.

**Available memory** is the smallest of what this process could still get:

- ``MemAvailable`` of ``/proc/meminfo`` (memory the kernel can hand out without swapping);
- the cgroup limit minus the cgroup's current usage (v2: ``memory.max`` / ``memory.current``; v1:
  ``memory.limit_in_bytes`` / ``memory.usage_in_bytes``), which is what a container or a systemd slice allows;
- the address-space limit ``RLIMIT_AS`` (``ulimit -v``) minus the address space the process already maps
  (``VmSize``).

Sources that do not exist on a platform are skipped; with none at all the budget is unlimited. The **default
budget** is :data:`DEFAULT_FRACTION` (half) of the available memory, measured when the check runs: the other half
is headroom for what the estimate leaves out (the interpreter's own growth, the allocator's slack, the other
processes of a shared machine). ``max_memory`` (CLI ``--max-memory``) replaces it with a fixed size.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import MemoryBudgetError

__all__ = ["DEFAULT_FRACTION", "Budget", "available_memory", "check_memory", "format_size", "memory_budget",
           "parse_size"]

#: Share of the available memory a quadratic step may use by default.
DEFAULT_FRACTION = 0.5

_UNITS = {"": 1, "b": 1,
          "k": 1 << 10, "kib": 1 << 10, "kb": 10 ** 3,
          "m": 1 << 20, "mib": 1 << 20, "mb": 10 ** 6,
          "g": 1 << 30, "gib": 1 << 30, "gb": 10 ** 9,
          "t": 1 << 40, "tib": 1 << 40, "tb": 10 ** 12}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_size(value) -> int:
    """A memory size in bytes from ``value``: an integer number of bytes, or text such as ``"4G"``, ``"512M"``,
    ``"1.5GiB"``, ``"800MB"``, ``"1048576"``.

    ``K``, ``M``, ``G``, ``T`` and ``KiB`` … ``TiB`` are powers of 1024 (as ``ulimit`` and ``free -h`` count);
    ``KB``, ``MB``, ``GB``, ``TB`` are powers of 1000. Case does not matter.

    Raises:
        ValueError: anything else, or a size that is not positive (the message says what is accepted).

    >>> parse_size("4G"), parse_size("512M"), parse_size("1.5KB"), parse_size(4096)
    (4294967296, 536870912, 1500, 4096)
    """
    accepted = "give a size such as 4G, 512M, 1.5GiB, 800MB or a number of bytes"
    if isinstance(value, bool):
        raise ValueError(f"{accepted} (got {value!r})")
    if isinstance(value, numbers.Integral):
        size = int(value)
    elif isinstance(value, numbers.Real):
        if not math.isfinite(float(value)) or float(value) != int(value):
            raise ValueError(f"{accepted} (got {value!r})")
        size = int(value)
    elif isinstance(value, str):
        match = _SIZE.match(value)
        unit = match.group(2).lower() if match else None
        if match is None or unit not in _UNITS:
            raise ValueError(f"{accepted} (got {value!r})")
        size = int(float(match.group(1)) * _UNITS[unit])
    else:
        raise ValueError(f"{accepted} (got {type(value).__name__})")
    if size <= 0:
        raise ValueError(f"the size must be more than 0 bytes (got {value!r})")
    return size


def format_size(size: float) -> str:
    """Bytes for people, in powers of 1024: ``format_size(3 * 2**30) == "3.0 GiB"``."""
    size = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover - the loop returns


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except (OSError, ValueError):
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available(root: Path = Path("/sys/fs/cgroup"), membership: Path = Path("/proc/self/cgroup")
                      ) -> int | None:
    """Limit minus usage of this process's memory cgroup (v2, else v1); ``None`` when unlimited or unknown.

    ``root`` is where the cgroup file system is mounted and ``membership`` the process's cgroup list (parameters
    for tests)."""
    folders = []
    try:
        for line in membership.read_text().splitlines():
            parts = line.split(":", 2)
            if len(parts) == 3 and parts[0] == "0":
                folders.append((root / parts[2].lstrip("/"), "memory.max", "memory.current"))
            elif len(parts) == 3 and "memory" in parts[1].split(","):
                folders.append((root / "memory" / parts[2].lstrip("/"), "memory.limit_in_bytes",
                                "memory.usage_in_bytes"))
    except OSError:
        pass
    # inside a container the process's own path is often not mounted; the namespace root then is its cgroup
    folders += [(root, "memory.max", "memory.current"), (root / "memory", "memory.limit_in_bytes",
                                                         "memory.usage_in_bytes")]
    for folder, limit_name, usage_name in folders:
        limit = _read_int(folder / limit_name)
        if limit is None:
            if (folder / limit_name).exists():
                return None  # "max": this cgroup sets no limit
            continue
        if limit >= 1 << 60:  # v1 writes "no limit" as a huge number
            return None
        usage = _read_int(folder / usage_name) or 0
        return max(limit - usage, 0)
    return None


def _address_space_available() -> int | None:
    """``RLIMIT_AS`` minus the address space already mapped (``VmSize``); ``None`` when unlimited."""
    try:
        import resource
    except ImportError:  # not a POSIX system
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    mapped = 0
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmSize:"):
                    mapped = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    return max(soft - mapped, 0)


def available_memory() -> tuple[int | None, str]:
    """``(bytes, source)``: the smallest of the available-memory sources (see the module docstring) and which one
    it was (``"MemAvailable"``, ``"cgroup limit"``, ``"RLIMIT_AS"``); ``(None, "unknown")`` when none applies."""
    found = [(value, name) for value, name in ((_meminfo_available(), "MemAvailable"),
                                               (_cgroup_available(), "cgroup limit"),
                                               (_address_space_available(), "RLIMIT_AS"))
             if value is not None]
    if not found:
        return None, "unknown"
    return min(found)


@dataclass(frozen=True)
class Budget:
    """A memory budget: ``limit`` bytes (``None``: unlimited) and how it was set, for messages."""

    limit: int | None
    origin: str

    def describe(self) -> str:
        if self.limit is None:
            return f"unlimited ({self.origin})"
        return f"{format_size(self.limit)} ({self.origin})"


def memory_budget(max_memory: int | None = None) -> Budget:
    """The budget for one quadratic step: ``max_memory`` bytes when given, else :data:`DEFAULT_FRACTION` of
    :func:`available_memory` now."""
    if max_memory is not None:
        return Budget(int(max_memory), "set by max_memory / --max-memory")
    available, source = available_memory()
    if available is None:
        return Budget(None, "no memory limit could be read")
    return Budget(int(available * DEFAULT_FRACTION),
                  f"{DEFAULT_FRACTION:.0%} of the {format_size(available)} available, by {source}")


def check_memory(estimate: int, budget: Budget, what: str, ways_out: str) -> None:
    """Refuse work whose ``estimate`` (bytes) exceeds ``budget``, before anything is allocated.

    Args:
        estimate: the bytes the work will allocate.
        budget: from :func:`memory_budget`.
        what: the work, for the message (``"the mined engine's DTW over 26,215 × 32,408 tokens"``).
        ways_out: what the user can do instead (flags and keywords), appended to the message.

    Raises:
        MemoryBudgetError: ``estimate`` is above the budget.
    """
    if budget.limit is None or estimate <= budget.limit:
        return
    raise MemoryBudgetError(f"{what} needs about {format_size(estimate)}, more than the memory budget of "
                            f"{budget.describe()}. {ways_out}", estimate=estimate, budget=budget.limit)


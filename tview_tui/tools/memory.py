"""Memory of a process, as the tools report it."""

from __future__ import annotations

import sys
from pathlib import Path


def memory_kb(pid: int | str = "self") -> tuple[int, int]:
    """(resident set size, its peak so far) of a process in KiB, from /proc (Linux). Without
    /proc, this process's peak from getrusage stands for both (it is all getrusage knows)."""
    status = Path(f"/proc/{pid}/status")
    if pid == "self" and not status.exists():
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = peak // 1024 if sys.platform == "darwin" else peak
        return peak, peak
    values = {}
    for line in status.read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]

"""The peak resident memory of a piece of work in this process.

On Linux the kernel keeps the process's high-water mark of resident memory (``VmHWM``)
and resets it on request (writing 5 to ``/proc/self/clear_refs``), so a stage's peak is
its own even after earlier stages in the same process. Elsewhere (or where the reset is
refused) the peak is the process's so far (``getrusage``). Memory of Ray workers is
theirs, not counted here.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

__all__ = ["peak_rss_mib", "reset_peak"]

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def reset_peak() -> bool:
    """Start measuring the peak from now; False when only the process's peak so far can
    be read (not Linux, or the reset was refused)."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mib() -> float:
    """The peak resident memory since :func:`reset_peak` (or of the process), in MiB."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024

"""What a benchmark reads of a child process from /proc (Linux), CPU time and resident memory,
and how it stops one."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

__all__ = ["cpu_s", "rss_mb", "stop"]


def cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system, every thread) a process used so far; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float | None:
    """Resident memory (VmRSS) of a process in MiB; None when it is gone or off Linux."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def stop(proc: subprocess.Popen[str] | subprocess.Popen[bytes], timeout_s: float = 15) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout_s`; harmless when it has."""
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

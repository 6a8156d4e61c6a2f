"""Running one process and measuring it: wall time, CPU time, peak memory.

The child's own resource usage comes from `os.wait4`, which returns the
rusage of exactly that child (no `/usr/bin/time` needed, and no mixing with
other children as `RUSAGE_CHILDREN` would). Output goes to files, never to
pipes, so a chatty child cannot block. Python 3 standard library only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass


@dataclass
class Measured:
    """One finished (or killed) process."""

    argv: list[str]
    returncode: int | None
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_kb: int
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def as_dict(self) -> dict:
        return {
            "wall_s": round(self.wall_s, 4),
            "cpu_s": round(self.cpu_s, 4),
            "maxrss_mb": round(self.maxrss_kb / 1024, 1),
            "exit": self.returncode,
            "timed_out": self.timed_out,
        }

    def why(self, limit: int = 300) -> str:
        """A one-line reason for a failure, from the end of stderr/stdout."""
        if self.timed_out:
            return f"timed out after {self.wall_s:.0f}s"
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        tail = " | ".join(line.strip() for line in text[-3:] if line.strip())
        return f"exit {self.returncode}: {tail[:limit]}"


def run_measured(
    argv: list[str],
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> Measured:
    """Runs argv to completion; kills its process group after `timeout`."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=out, stderr=err,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        except OSError as e:
            return Measured(argv, None, 0.0, 0.0, 0.0, 0, "", f"cannot start: {e}")
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill) if timeout else None
        if timer:
            timer.daemon = True
            timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if timer:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait again
        out.seek(0)
        err.seek(0)
        return Measured(
            argv=argv,
            returncode=proc.returncode,
            wall_s=wall,
            user_s=usage.ru_utime,
            sys_s=usage.ru_stime,
            maxrss_kb=usage.ru_maxrss,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
            timed_out=timed_out.is_set(),
        )

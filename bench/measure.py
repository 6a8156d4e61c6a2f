"""Running one process and measuring it: wall time, CPU time, peak memory.

Peak memory needs care: Linux carries a process's peak RSS across `exec`,
so a child forked straight from this (possibly large) harness would report
the harness's own RSS as its peak. The command is therefore started from a
small launcher process: GNU `/usr/bin/time` when present, else a minimal
Python launcher, which forks the command, waits for it with `wait4` (the
rusage of exactly that child) and reports it. Output goes to files, never to
pipes, so a chatty child cannot block. Python 3 standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
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


GNU_TIME = "/usr/bin/time"

# Forks argv[1:], waits for it, writes its rusage as JSON to fd 3's file.
LAUNCHER = r"""
import json, os, sys, time
start = time.perf_counter()
try:
    pid = os.fork()
except OSError as e:
    sys.exit(126)
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    except OSError as e:
        sys.stderr.write(f"cannot start {sys.argv[2]}: {e}\n")
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"exit": os.waitstatus_to_exitcode(status), "wall": time.perf_counter() - start,
               "user": ru.ru_utime, "sys": ru.ru_stime, "maxrss_kb": ru.ru_maxrss}, f)
"""


def _gnu_time() -> bool:
    if os.environ.get("BENCH_NO_GNU_TIME") or not os.access(GNU_TIME, os.X_OK):
        return False
    try:
        r = subprocess.run([GNU_TIME, "-f", "%M", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0 and r.stderr.strip().isdigit()


HAVE_GNU_TIME = _gnu_time()


def run_measured(
    argv: list[str],
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> Measured:
    """Runs argv to completion; kills its process group after `timeout`."""
    fd, usage_file = tempfile.mkstemp(suffix=".usage")
    os.close(fd)
    try:
        return _run(argv, usage_file, cwd, env, timeout)
    finally:
        os.remove(usage_file)


def _run(argv: list[str], usage_file: str, cwd: str | None, env: dict[str, str] | None,
         timeout: float | None) -> Measured:
    if HAVE_GNU_TIME:
        launch = [GNU_TIME, "-q", "-f", "%M %U %S %x", "-o", usage_file, *argv]
    else:
        launch = [sys.executable, "-c", LAUNCHER, usage_file, *argv]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(
                launch, cwd=cwd, env=env, stdout=out, stderr=err,
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
        proc.wait()
        wall = time.perf_counter() - start
        if timer:
            timer.cancel()
        out.seek(0)
        err.seek(0)
        m = Measured(
            argv=argv,
            returncode=proc.returncode,
            wall_s=wall,
            user_s=0.0,
            sys_s=0.0,
            maxrss_kb=0,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
            timed_out=timed_out.is_set(),
        )
    _read_usage(m, usage_file)
    return m


def _read_usage(m: Measured, usage_file: str) -> None:
    """Fills CPU time, peak memory and exit code from the launcher's report."""
    try:
        with open(usage_file, encoding="utf-8") as f:
            text = f.read().strip()
    except OSError:
        return
    if not text:
        return
    if HAVE_GNU_TIME:
        # GNU time may first write "Command exited with non-zero status N"
        # or "Command terminated by signal N".
        for line in text.splitlines()[:-1]:
            if line.startswith("Command terminated by signal"):
                m.returncode = -int(line.split()[-1]) if line.split()[-1].isdigit() else -1
                m.maxrss_kb = int(text.splitlines()[-1].split()[0] or 0)
                return
        fields = text.splitlines()[-1].split()
        if len(fields) == 4:
            try:
                m.maxrss_kb = int(fields[0])
                m.user_s, m.sys_s = float(fields[1]), float(fields[2])
                m.returncode = int(fields[3])
            except ValueError:
                pass
        return
    try:
        u = json.loads(text)
    except ValueError:
        return
    m.maxrss_kb, m.user_s, m.sys_s = u["maxrss_kb"], u["user"], u["sys"]
    m.returncode = u["exit"]
    m.wall_s = u["wall"]  # without the launcher's start-up

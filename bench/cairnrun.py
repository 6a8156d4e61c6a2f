"""Driving the `cairn` binary for benchmarks: fresh stack folders, measured
runs, the counters of state bytes written, and the state's records (the
state file with the journal replayed).

Only the command line is used (no engine internals), so the harness works
whatever the state of the engine is, and reports what fails instead of
stopping. Standard library only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import gen
from measure import Measured, run_measured

STACK_NAME = "bench"


class Cairn:
    """The binary under test and a scratch root for its stacks."""

    def __init__(self, binary: str, work: str, timeout: float = 1800.0):
        self.binary = binary
        self.work = work
        self.timeout = timeout
        self.strace = shutil.which("strace")

    def version(self) -> str:
        try:
            r = subprocess.run([self.binary, "--version"], capture_output=True, text=True, timeout=30)
            return (r.stdout or r.stderr).strip() or f"exit {r.returncode}"
        except OSError as e:
            return f"not runnable: {e}"

    def stack_dir(self, label: str) -> str:
        """An empty folder for one stack (any previous one is removed)."""
        d = os.path.join(self.work, label)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        return d

    def write_stack(self, d: str, dag: gen.Dag, latency_ms: int = 0, jitter_ms: int = 0,
                    extra: dict[int, dict[str, object]] | None = None,
                    latency_log: str | None = None) -> str:
        path = os.path.join(d, f"{STACK_NAME}.toml")
        text = gen.to_cairn(dag, STACK_NAME, latency_ms, jitter_ms, extra=extra,
                            latency_log=latency_log)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def run(self, args: list[str], cwd: str, stats: str | None = None,
            env: dict[str, str] | None = None, timeout: float | None = None,
            strace_log: str | None = None) -> Measured:
        """`cairn ARGS` in cwd; CAIRN_STATS=stats when given."""
        e = dict(os.environ)
        e["NO_COLOR"] = "1"
        e.pop("CAIRN_STATS", None)
        if stats:
            if os.path.exists(stats):
                os.remove(stats)
            e["CAIRN_STATS"] = stats
        if env:
            e.update(env)
        argv = [self.binary, *args]
        if strace_log:
            argv = [self.strace or "strace", "-f", "-qq", "-y", "-o", strace_log,
                    "-e", "trace=write,pwrite64,writev,pwritev,pwritev2", "-e", "signal=none", *argv]
        return run_measured(argv, cwd=cwd, env=e, timeout=timeout or self.timeout)


def last_json(text: str) -> dict | None:
    """The last top-level JSON object printed (pretty or on one line)."""
    starts = [m.start() for m in re.finditer(r"^\{", text, re.M)]
    for s in reversed(starts):
        try:
            v, _ = json.JSONDecoder().raw_decode(text[s:])
        except ValueError:
            continue
        if isinstance(v, dict):
            return v
    return None


def read_stats(path: str) -> dict | None:
    """The counters cairn wrote with CAIRN_STATS (the last line), if any."""
    if not os.path.exists(path):
        return None
    last = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    last = json.loads(line)
                except ValueError:
                    pass
    return last if isinstance(last, dict) else None


def stats_bytes_written(stats: dict) -> int | None:
    """Sum of the `*_bytes_written` counters (journal, state, backup…)."""
    keys = [k for k, v in stats.items() if k.endswith("_bytes_written") and isinstance(v, int)]
    return sum(stats[k] for k in keys) if keys else None


_SYSCALL = re.compile(
    r"^(?P<pid>\d+)\s+(?:write|pwrite64|writev|pwritev2?)\((?P<fd>\d+)<(?P<path>[^>]*)>.*?"
    r"(?:\)\s+=\s+(?P<ret>-?\d+)|<unfinished \.\.\.>)"
)
_RESUMED = re.compile(r"^(?P<pid>\d+)\s+<\.\.\. \w+ resumed>.*\)\s+=\s+(?P<ret>-?\d+)")


def strace_state_bytes(log: str) -> int:
    """Bytes written to files under `.cairn/` (not the lock file)."""
    total = 0
    pending: dict[str, str] = {}

    def counts(path: str) -> bool:
        return "/.cairn/" in path and not path.endswith(".lock")

    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = _SYSCALL.match(line)
            if m:
                if m.group("ret") is None:
                    pending[m.group("pid")] = m.group("path")
                elif counts(m.group("path")) and int(m.group("ret")) > 0:
                    total += int(m.group("ret"))
                continue
            m = _RESUMED.match(line)
            if m and m.group("pid") in pending:
                path = pending.pop(m.group("pid"))
                if counts(path) and int(m.group("ret")) > 0:
                    total += int(m.group("ret"))
    return total


def state_file(d: str) -> str | None:
    folder = os.path.join(d, ".cairn")
    path = os.path.join(folder, f"{STACK_NAME}.default.state.json")
    if os.path.exists(path):
        return path
    # Another layout: any JSON document in .cairn/ holding `resources`.
    if os.path.isdir(folder):
        for name in sorted(os.listdir(folder)):
            if name.endswith(".json"):
                p = os.path.join(folder, name)
                try:
                    with open(p, encoding="utf-8") as f:
                        if isinstance(json.load(f).get("resources"), (dict, list)):
                            return p
                except (OSError, ValueError, AttributeError):
                    continue
    return None


def journal_files(d: str) -> list[str]:
    """The journal segment files that exist (`.journal`, `.journal.1`)."""
    base = os.path.join(d, ".cairn", f"{STACK_NAME}.default.journal")
    return [p for p in (base, base + ".1") if os.path.exists(p)]


def _segment_lines(path: str) -> list[dict]:
    """The decodable lines of a segment, the header first; a torn or
    undecodable last line is dropped."""
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    # The last piece has no newline: torn (or empty).
    complete = [ln for ln in lines[:-1] if ln.strip(b" \t\r\0")]
    out = []
    for i, raw in enumerate(complete):
        try:
            out.append(json.loads(raw))
        except ValueError:
            if i + 1 == len(complete):
                break
            raise
    return out


def load_state(d: str) -> dict | None:
    """The state as cairn loads it: the state file, then the records of the
    journal segments that continue it replayed on top, in order of their
    base serial (`put`/`remove` lines; a `commit` line moves the serial).
    None when there is no state at all.

    Mirrors src/state/local.rs and journal.rs: a segment's header must
    match the lineage and serial reached so far (a segment with an older
    base serial is stale and ignored); an unterminated or undecodable last
    line is a torn tail and dropped."""
    doc: dict = {}
    path = state_file(d)
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                loaded = json.load(f)
            if isinstance(loaded, dict):
                doc = loaded
        except (OSError, ValueError):
            doc = {}
    res = doc.get("resources", {})
    if isinstance(res, list):
        res = {str(r.get("address", i)): r for i, r in enumerate(res)}
    state = {"resources": dict(res), "serial": doc.get("serial", 0), "lineage": doc.get("lineage")}
    segments = [_segment_lines(p) for p in journal_files(d)]
    segments = sorted((s for s in segments if s and isinstance(s[0], dict) and "cairn_journal" in s[0]),
                      key=lambda s: s[0].get("base_serial", 0))
    replayed = False
    for lines in segments:
        header = lines[0]
        fits = (header.get("base_serial") == state["serial"]
                and (not (path or replayed) or header.get("lineage") == state["lineage"]))
        if not fits:
            continue
        replayed = True
        state["lineage"] = header.get("lineage")
        for obj in lines[1:]:
            if "put" in obj:
                state["resources"].update(obj["put"])
            elif "remove" in obj:
                state["resources"].pop(obj["remove"], None)
            elif "commit" in obj:
                state["serial"] = obj["commit"]
            elif obj.get("kind") == "put":  # journal format 1
                state["resources"][obj["address"]] = obj["resource"]
            elif obj.get("kind") == "remove":
                state["resources"].pop(obj["address"], None)
    return state if path or replayed else None


def state_serial(d: str) -> int | None:
    """The committed serial, as cairn loads it."""
    state = load_state(d)
    return state["serial"] if state else None


def state_records(d: str) -> dict[str, str]:
    """address -> compact JSON of its record, in the state as cairn loads it."""
    state = load_state(d)
    if not state:
        return {}
    return {str(k): json.dumps({k: v}, separators=(",", ":"), sort_keys=True)
            for k, v in state["resources"].items()}


def changed_records(before: dict[str, str], after: dict[str, str]) -> tuple[int, int]:
    """(records added or changed, their total compact JSON size)."""
    changed = [v for k, v in after.items() if before.get(k) != v]
    return len(changed), sum(len(v.encode("utf-8")) for v in changed)

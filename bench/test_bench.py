"""Tests of the benchmark harness's own logic (no timings asserted):
the generated graphs, their critical paths and lower bounds, the output
formats, the list-scheduling simulation, the strace byte counter and the
Markdown marker replacement. Run: `python3 -m unittest discover bench`
(tests/bench_harness.rs runs it under `cargo test`)."""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import unittest

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cairnrun  # noqa: E402
import gen  # noqa: E402
import measure  # noqa: E402
import report  # noqa: E402
import run  # noqa: E402
from measure import run_measured  # noqa: E402


class Shapes(unittest.TestCase):
    def test_wide_and_deep_have_the_expected_critical_paths(self):
        self.assertEqual(gen.wide(100).critical_path(), 1)
        self.assertEqual(gen.wide(100).edges(), 0)
        d = gen.deep(1000)
        self.assertEqual(d.critical_path(), 250)
        self.assertEqual(d.edges(), 996)

    def test_layered_is_acyclic_deterministic_and_chain_dominated(self):
        a, b = gen.layered(1000, 1), gen.layered(1000, 1)
        self.assertEqual(a.deps, b.deps)
        self.assertNotEqual(a.deps, gen.layered(1000, 2).deps)
        self.assertEqual(len(a), 1000)
        self.assertEqual(len(a.topo_order()), 1000)
        # Names follow a topological order: every edge points to a smaller index.
        for i, ds in enumerate(a.deps):
            for d in ds:
                self.assertLess(d, i)
        # The 4 chains of 100 make the critical path, about work / 10.
        self.assertEqual(a.critical_path(), 100)

    def test_layered_scales_to_small_and_large_sizes(self):
        for n in (1, 3, 7, 50, 20_000):
            dag = gen.layered(n, 3)
            self.assertEqual(len(dag), n)
            self.assertEqual(len(dag.topo_order()), n)

    def test_cycle_is_detected(self):
        dag = gen.Dag("x", ["a", "b"], [[1], [0]])
        with self.assertRaises(ValueError):
            dag.topo_order()

    def test_ecs_shape(self):
        e = gen.ecs()
        self.assertEqual(len(e), 7)
        self.assertEqual(e.critical_path(), 3)


class Bounds(unittest.TestCase):
    def test_drawn_bound_weighs_the_chain_by_the_drawn_durations(self):
        dag = gen.deep(8, chains=2)  # two chains of 4
        secs = [0.02, 0.03, 0.02, 0.02, 0.03, 0.02, 0.02, 0.02]
        # chain of even nodes: 0.02+0.02+0.03+0.02; odd: 0.03+0.02+0.02+0.02
        self.assertAlmostEqual(gen.drawn_bound(dag, None, secs), 0.09)
        self.assertAlmostEqual(gen.drawn_bound(dag, 1, secs), sum(secs))
        self.assertAlmostEqual(gen.drawn_bound(gen.wide(3), None, [0.01, 0.05, 0.02]), 0.05)

    def test_lower_bound_is_the_larger_of_path_and_work(self):
        self.assertAlmostEqual(gen.lower_bound(gen.wide(1000), 16, 0.025), 1000 * 0.025 / 16)
        self.assertAlmostEqual(gen.lower_bound(gen.wide(1000), None, 0.025), 0.025)
        self.assertAlmostEqual(gen.lower_bound(gen.deep(1000), 16, 0.025), 250 * 0.025)

    def test_simulation_meets_the_bound_and_arbitrary_order_is_worse(self):
        dag = gen.layered(1000, 1)
        cp = gen.simulate(dag, 10, "critical-path")
        arb = gen.simulate(dag, 10, "arbitrary")
        self.assertGreaterEqual(cp, gen.lower_bound(dag, 10, 1.0))
        self.assertLess(cp, arb * 0.85)  # the layered shape is built for this
        self.assertEqual(gen.simulate(gen.wide(10), None), 1.0)


class Formats(unittest.TestCase):
    @unittest.skipIf(tomllib is None, "tomllib needs Python 3.11")
    def test_cairn_stack_is_toml_with_every_edge(self):
        dag = gen.layered(200, 5)
        doc = tomllib.loads(gen.to_cairn(dag, "s", 20, 10, extra={3: {"rev": 2}}))
        self.assertEqual(doc["stack"]["name"], "s")
        self.assertEqual(doc["provider"]["sim"]["latency_ms"], 20)
        nodes = doc["resource"]["sim_node"]
        self.assertEqual(len(nodes), 200)
        self.assertEqual(nodes["n3"]["rev"], 2)
        edges = sum(len(r.get("depends_on", [])) for r in nodes.values())
        self.assertEqual(edges, dag.edges())
        for i, name in enumerate(dag.names):
            want = sorted(f"sim_node.{dag.names[d]}" for d in dag.deps[i])
            self.assertEqual(sorted(nodes[name].get("depends_on", [])), want)
            self.assertEqual(nodes[name]["name"], name)

    def test_terraform_config_has_the_same_edges(self):
        dag = gen.layered(200, 5)
        for edges in ("depends_on", "refs"):
            tf = gen.to_terraform(dag, edges)
            blocks = re.findall(r'resource "terraform_data" "(\w+)" \{(.*?)\n\}', tf, re.S)
            self.assertEqual(len(blocks), 200)
            found = {name: sorted(re.findall(r"terraform_data\.(\w+)", body)) for name, body in blocks}
            for i, name in enumerate(dag.names):
                self.assertEqual(found[name], sorted(dag.names[d] for d in dag.deps[i]))


class Measuring(unittest.TestCase):
    def test_run_measured_reports_exit_and_memory(self):
        m = run_measured([sys.executable, "-c", "x = bytearray(50_000_000); print('hi')"])
        self.assertEqual(m.returncode, 0)
        self.assertEqual(m.stdout.strip(), "hi")
        self.assertGreater(m.maxrss_kb, 40_000)
        bad = run_measured([sys.executable, "-c", "import sys; sys.exit(3)"])
        self.assertEqual(bad.returncode, 3)
        self.assertFalse(bad.ok)

    def test_peak_memory_is_the_childs_not_the_harness(self):
        # Linux carries peak RSS across exec: a child forked from a big
        # harness would report the harness's size without the launcher.
        ballast = bytearray(300_000_000)
        ballast[::4096] = b"x" * len(ballast[::4096])
        for gnu in (measure.HAVE_GNU_TIME, False):
            with self.subTest(gnu_time=gnu):
                saved, measure.HAVE_GNU_TIME = measure.HAVE_GNU_TIME, gnu
                try:
                    small = run_measured([sys.executable, "-c", "pass"])
                    big = run_measured([sys.executable, "-c", "x = b'y' * 120_000_000"])
                    failed = run_measured([sys.executable, "-c", "import sys; sys.exit(4)"])
                finally:
                    measure.HAVE_GNU_TIME = saved
                self.assertEqual(small.returncode, 0)
                self.assertLess(small.maxrss_kb, 100_000)
                self.assertGreater(big.maxrss_kb, 110_000)
                self.assertEqual(failed.returncode, 4)
        del ballast

    def test_run_measured_kills_on_timeout(self):
        m = run_measured([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)
        self.assertTrue(m.timed_out)
        self.assertLess(m.wall_s, 10)

    def test_last_json_finds_the_pretty_outcome(self):
        text = "noise\n{\n  \"a\": 1\n}\nmore\n{\n  \"elapsed_ms\": 42,\n  \"x\": [1]\n}\n"
        self.assertEqual(cairnrun.last_json(text), {"elapsed_ms": 42, "x": [1]})
        self.assertIsNone(cairnrun.last_json("no json"))

    def test_strace_counter_sums_state_writes_only(self):
        log = "\n".join([
            '12 write(3</w/.cairn/b.default.journal>, "abc", 3) = 3',
            '12 write(4</w/.cairn/b.default.lock>, "1234", 4) = 4',
            '13 write(5</w/world.json>, "zzzz", 4) = 4',
            '13 pwrite64(6</w/.cairn/b.default.state.json.tmp>, "x"..., 100, 0 <unfinished ...>',
            '12 write(1<pipe:[99]>, "out", 3) = 3',
            '13 <... pwrite64 resumed>) = 100',
            '14 writev(7</w/.cairn/b.default.journal>, [{iov_base="ab", iov_len=2}], 1) = 2',
        ]) + "\n"
        with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as f:
            f.write(log)
        try:
            self.assertEqual(cairnrun.strace_state_bytes(f.name), 3 + 100 + 2)
        finally:
            os.remove(f.name)

    def test_stats_counters_and_changed_records(self):
        self.assertEqual(cairnrun.stats_bytes_written(
            {"journal_bytes_written": 10, "state_bytes_written": 5, "resources": 3}), 15)
        self.assertIsNone(cairnrun.stats_bytes_written({"other": 1}))
        before = {"a": "x", "b": "yy"}
        after = {"a": "x", "b": "zzz", "c": "w"}
        self.assertEqual(cairnrun.changed_records(before, after), (2, 4))

    def test_state_records_read_the_state_file(self):
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, ".cairn"))
            state = {"format_version": 1, "resources": {"sim_node.n0": {"id": "i-1", "attributes": {}}}}
            with open(os.path.join(d, ".cairn", "bench.default.state.json"), "w") as f:
                json.dump(state, f, indent=2)
            recs = cairnrun.state_records(d)
            self.assertEqual(list(recs), ["sim_node.n0"])
            self.assertEqual(json.loads(recs["sim_node.n0"]), {"sim_node.n0": state["resources"]["sim_node.n0"]})

    def write_journal(self, d: str, lines: list[str], torn: str = "") -> None:
        with open(os.path.join(d, ".cairn", "bench.default.journal"), "w") as f:
            f.write("".join(line + "\n" for line in lines) + torn)

    def test_state_records_replay_the_journal(self):
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, ".cairn"))
            state = {"lineage": "L", "serial": 3,
                     "resources": {"t.a": {"id": "a"}, "t.b": {"id": "b"}}}
            with open(os.path.join(d, ".cairn", "bench.default.state.json"), "w") as f:
                json.dump(state, f, indent=2)
            self.write_journal(d, [
                '{"cairn_journal":2,"lineage":"L","base_serial":3}',
                '{"create":"t.c","identity":"c"}',
                '{"put":{"t.c":{"id":"c"}}}',
                '{"update":"t.a"}',
                '{"put":{"t.a":{"id":"a2"}}}',
                '{"delete":"t.b"}',
                '{"remove":"t.b"}',
                '{"commit":4}',
            ], torn='{"put":{"t.d":')
            recs = cairnrun.state_records(d)
            self.assertEqual(sorted(recs), ["t.a", "t.c"])
            self.assertEqual(json.loads(recs["t.a"]), {"t.a": {"id": "a2"}})
            self.assertEqual(cairnrun.state_serial(d), 4)
            # A stale journal (older base serial) is ignored.
            self.write_journal(d, ['{"cairn_journal":2,"lineage":"L","base_serial":2}',
                                   '{"remove":"t.a"}', '{"commit":3}'])
            self.assertEqual(sorted(cairnrun.state_records(d)), ["t.a", "t.b"])
            self.assertEqual(cairnrun.state_serial(d), 3)

    def test_journal_without_a_state_file(self):
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, ".cairn"))
            self.assertIsNone(cairnrun.state_serial(d))
            self.write_journal(d, ['{"cairn_journal":2,"lineage":"L","base_serial":0}',
                                   '{"put":{"t.a":{"id":"a"}}}', '{"commit":1}'])
            self.assertEqual(list(cairnrun.state_records(d)), ["t.a"])
            self.assertEqual(cairnrun.state_serial(d), 1)


def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


class Markdown(unittest.TestCase):
    def test_markers_keep_the_prose_around_them(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "b.md")
            with open(path, "w") as f:
                f.write(f"# Title\n\nprose\n\n{report.BEGIN}\nold\n{report.END}\n\nafter\n")
            report.write_markdown(path, "new table\n")
            text = read(path)
            self.assertEqual(text, f"# Title\n\nprose\n\n{report.BEGIN}\nnew table\n{report.END}\n\nafter\n")
            os.remove(path)
            report.write_markdown(path, "t\n")
            self.assertEqual(read(path), f"{report.BEGIN}\nt\n{report.END}\n")

    def test_na_cells_are_numbered_with_their_reason(self):
        results = {"machine": {}, "scale": [{"n": 1000, "validate": {"na": "engine missing"},
                                             "plan_create": {"wall_s": 0.5, "maxrss_mb": 20.0},
                                             "apply_create": {"na": "engine missing"},
                                             "plan_nochange": {"na": "needs the apply"}}]}
        text = report.render(results)
        self.assertIn("n/a [1]", text)
        self.assertIn("n/a [2]", text)
        self.assertIn("1. engine missing", text)
        self.assertIn("2. needs the apply", text)
        self.assertIn("0.50 s", text)

    def test_short_makespans_report_the_median_run_and_the_range(self):
        runs = [{"makespan_s": m, "drawn_bound_s": 0.030, "process_wall_s": 0.1}
                for m in (0.060, 0.045, 0.090, 0.050, 0.048)]
        chosen = run.median_run(runs)
        self.assertEqual(chosen["makespan_s"], 0.050)
        self.assertEqual(chosen["runs"], 5)
        self.assertAlmostEqual(chosen["range"][0], 1.5)
        self.assertAlmostEqual(chosen["range"][1], 3.0)
        self.assertIs(run.median_run(runs[:1]), runs[0])
        row = {"shape": "wide", "n": 1000, "critical_path": 1, "parallelism": 1_000_000,
               "lower_bound_s": 0.025, "latency": {"latency_ms": 20, "jitter_ms": 10},
               **chosen, "ratio": 2.0, "ratio_drawn": chosen["makespan_s"] / 0.030}
        text = report.render({"machine": {}, "makespan": [row]})
        self.assertIn("median of 5 runs", text)
        self.assertIn("wide at parallelism unbounded: 1.50×–3.00×", text)

    def test_repeated_scale_steps_report_the_median_run_and_the_range(self):
        def m(wall, code=0):
            return measure.Measured(["cairn", "plan"], code, wall, wall, 0.0, 10240, "", "")
        chosen, span = run.median_measured([m(3.6), m(2.0), m(2.2)])
        self.assertEqual(chosen.wall_s, 2.2)
        self.assertEqual(span, [2.0, 3.6])
        failed, span = run.median_measured([m(2.0), m(1.0, code=1)])
        self.assertEqual(failed.returncode, 1)
        self.assertIsNone(span)
        results = {"machine": {}, "scale": [{
            "n": 100000,
            "validate": {"wall_s": 1.1, "maxrss_mb": 260.0, "runs": 3, "range": [1.0, 1.4]},
            "plan_create": {"wall_s": 1.5, "maxrss_mb": 270.0},
            "apply_create": {"wall_s": 8.5, "maxrss_mb": 660.0},
            "plan_nochange": {"wall_s": 2.2, "maxrss_mb": 377.0, "runs": 3, "range": [2.0, 3.6]}}]}
        text = report.render(results)
        self.assertIn("median of 3 runs each", text)
        self.assertIn("100,000 validate: 1.00 s–1.40 s; 100,000 no-change plan: 2.00 s–3.60 s", text)

    def test_terraform_table_names_the_range_of_cairns_runs(self):
        results = {"machine": {}, "terraform": {
            "shape": "layered", "n": 1000, "edges": 1649, "critical_path": 100, "parallelism": 10,
            "terraform": {"apply": {"wall_s": 40.0, "maxrss_mb": 240.0},
                          "plan": {"wall_s": 4.0, "maxrss_mb": 350.0}},
            "cairn": {"apply": {"wall_s": 0.1, "maxrss_mb": 50.0, "runs": 3, "range": [0.09, 0.2]},
                      "plan": {"wall_s": 0.02, "maxrss_mb": 36.0, "runs": 3, "range": [0.02, 0.09]}}}}
        text = report.render(results)
        self.assertIn("cairn's are the median of 3 runs (over the runs: apply 90.0 ms–0.20 s, "
                      "plan 20.0 ms–90.0 ms)", text)
        self.assertIn("| apply, all create (parallelism 10) | 40.0 s | 240 MB | 0.10 s | 50 MB | 400.0× |", text)

    def test_bytes_sequence_table_shows_the_compacting_apply(self):
        results = {"machine": {}, "bytes_sequence": [
            {"n": 1000, "applies": 3, "updates": 2, "percent": 10, "changed": 1200,
             "changed_bytes": 250_000, "written_bytes": 450_000, "ratio": 1.8,
             "compacting": ["update 2"], "max_label": "update 2", "max_ratio": 14.2,
             "max_written": 300_000, "steps": []},
            {"n": 10000, "na": "update 1: failed"}]}
        text = report.render(results)
        self.assertIn("State bytes over a sequence of applies", text)
        self.assertIn("| 1,000 | 1 + 2 | 250,000 | 450,000 | 1.80× | update 2 | update 2: 14.20× |", text)
        self.assertIn("1. update 1: failed", text)


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/env python3
"""Benchmark DAGs for cairn: one generator, several output formats.

Every benchmark shape (wide, deep, layered random, the shipped ECS/Lambda
stack's shape) is built here once, from a fixed seed, and written either as a
cairn stack on the `sim` provider or as a Terraform configuration of
`terraform_data` resources, so both tools run exactly the same graph.

The module also knows the graph's numbers the harness divides by: the
longest chain (critical path, in operations) and the lower bound of an
apply's makespan, `max(critical path, total work / parallelism)`, and it can
simulate list scheduling (longest-chain-first or arbitrary order) to show
how much the order of ready operations matters on a given shape.

Python 3 standard library only.

Usage:
    gen.py cairn     --shape layered --n 1000 [--seed 1] [--latency-ms 0] [--jitter-ms 0] OUT.toml
    gen.py terraform --shape layered --n 1000 [--seed 1] OUT_DIR
    gen.py info      --shape layered --n 1000 [--seed 1] [--parallelism 10]
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import random
import sys
from dataclasses import dataclass, field

SHAPES = ("wide", "deep", "layered", "ecs")


@dataclass
class Dag:
    """A dependency graph: node i depends on every node in deps[i]."""

    shape: str
    names: list[str]
    deps: list[list[int]]
    # Resource type of each node (cairn `sim_*` type); one type by default.
    types: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    def type_of(self, i: int) -> str:
        return self.types[i] if self.types else "sim_node"

    def edges(self) -> int:
        return sum(len(d) for d in self.deps)

    def topo_order(self) -> list[int]:
        """Kahn's algorithm; raises ValueError on a cycle."""
        n = len(self)
        indeg = [len(d) for d in self.deps]
        children: list[list[int]] = [[] for _ in range(n)]
        for i, ds in enumerate(self.deps):
            for d in ds:
                children[d].append(i)
        ready = [i for i in range(n) if indeg[i] == 0]
        order: list[int] = []
        while ready:
            i = ready.pop()
            order.append(i)
            for c in children[i]:
                indeg[c] -= 1
                if indeg[c] == 0:
                    ready.append(c)
        if len(order) != n:
            raise ValueError("the graph has a cycle")
        return order

    def children(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in range(len(self))]
        for i, ds in enumerate(self.deps):
            for d in ds:
                out[d].append(i)
        return out

    def depth(self) -> list[int]:
        """Longest chain ending at each node, counting the node (>= 1)."""
        depth = [1] * len(self)
        for i in self.topo_order():
            if self.deps[i]:
                depth[i] = 1 + max(depth[d] for d in self.deps[i])
        return depth

    def remaining(self) -> list[int]:
        """Longest chain starting at each node, counting the node (>= 1)."""
        rem = [1] * len(self)
        children = self.children()
        for i in reversed(self.topo_order()):
            if children[i]:
                rem[i] = 1 + max(rem[c] for c in children[i])
        return rem

    def critical_path(self) -> int:
        """Operations on the longest dependency chain."""
        return max(self.depth()) if len(self) else 0


def lower_bound(dag: Dag, parallelism: int | None, op_seconds: float) -> float:
    """max(critical path, total work / parallelism), in seconds, when every
    operation takes `op_seconds` (the mean latency)."""
    cp = dag.critical_path() * op_seconds
    if parallelism is None or parallelism >= len(dag):
        return cp
    return max(cp, len(dag) * op_seconds / parallelism)


def drawn_bound(dag: Dag, parallelism: int | None, seconds: list[float]) -> float:
    """max(critical path, total work / parallelism), in seconds, for the
    durations each operation actually took (`seconds[i]` for node i): the
    physical limit of one run, whose latencies were drawn at random. With
    jitter it exceeds the mean-latency bound, since a layer waits for its
    slowest operation."""
    finish = [0.0] * len(dag)
    for i in dag.topo_order():
        finish[i] = seconds[i] + max((finish[d] for d in dag.deps[i]), default=0.0)
    cp = max(finish, default=0.0)
    if parallelism is None or parallelism >= len(dag):
        return cp
    return max(cp, sum(seconds) / parallelism)


# ---------------------------------------------------------------- shapes


def wide(n: int) -> Dag:
    """n independent resources."""
    return Dag("wide", [f"n{i}" for i in range(n)], [[] for _ in range(n)])


def deep(n: int, chains: int = 4) -> Dag:
    """`chains` chains of n/chains resources each (node i depends on i-chains)."""
    chains = max(1, min(chains, n))
    deps = [[i - chains] if i >= chains else [] for i in range(n)]
    return Dag("deep", [f"n{i}" for i in range(n)], deps)


def layered(n: int, seed: int = 1, chains: int = 4, chain_frac: float = 0.4) -> Dag:
    """A layered random DAG in which the critical path matters.

    A "blob" of layers of random width, each node depending on one node of
    the layer just before (so a node's layer is its depth) and up to two
    nodes of random earlier layers; mixed with a few long chains that cross
    the blob (a chain node sometimes waits for a blob node of a matching
    depth, a blob node sometimes for a chain node). The chains are about as
    long as the blob's total work divided by a parallelism of ~10, so a
    scheduler that does not start them early finishes late.
    """
    rng = random.Random(seed)
    chains = max(1, min(chains, n // 4)) if n >= 8 else 0
    chain_len = int(n * chain_frac) // chains if chains else 0
    if chain_len < 2:
        chains, chain_len = 0, 0
    blob = n - chains * chain_len
    layers_n = max(2, round(math.sqrt(blob) / 1.5)) if blob >= 4 else 1
    # Random widths summing to `blob`, each >= 1.
    weights = [rng.uniform(0.2, 1.8) for _ in range(layers_n)]
    total = sum(weights)
    widths = [max(1, int(blob * w / total)) for w in weights]
    while sum(widths) > blob:
        j = max(range(layers_n), key=lambda k: widths[k])
        widths[j] -= 1
    while sum(widths) < blob:
        widths[rng.randrange(layers_n)] += 1

    deps: list[list[int]] = []
    layer_nodes: list[list[int]] = []
    for li, w in enumerate(widths):
        nodes = []
        for _ in range(w):
            i = len(deps)
            ds: set[int] = set()
            if li > 0:
                ds.add(rng.choice(layer_nodes[li - 1]))
                for _ in range(rng.randint(0, 2)):
                    earlier = layer_nodes[rng.randrange(li)]
                    ds.add(rng.choice(earlier))
            deps.append(sorted(ds))
            nodes.append(i)
        layer_nodes.append(nodes)

    # Chains, crossing the blob at matching depths.
    chain_nodes: list[list[int]] = []
    for _ in range(chains):
        nodes = []
        for j in range(chain_len):
            i = len(deps)
            ds = {nodes[-1]} if nodes else set()
            # The blob layer this chain position lines up with (by depth).
            li = int(j * layers_n / chain_len) - 1
            if li >= 0 and rng.random() < 0.1:
                ds.add(rng.choice(layer_nodes[li]))
            deps.append(sorted(ds))
            nodes.append(i)
        chain_nodes.append(nodes)
    # Some blob nodes wait for a chain node of lower depth.
    if chains:
        for li in range(1, layers_n):
            for i in layer_nodes[li]:
                if rng.random() < 0.05:
                    pos = int((li - 1) * chain_len / layers_n)
                    deps[i] = sorted(set(deps[i]) | {rng.choice(chain_nodes)[pos]})

    dag = Dag("layered", [], deps)
    # Name the nodes in a random topological order (by depth, ties shuffled),
    # so the file order gives no scheduler a hint.
    depth = _depth_of(deps)
    key = {i: (depth[i], rng.random()) for i in range(len(deps))}
    order = sorted(range(len(deps)), key=lambda i: key[i])
    rank = {old: new for new, old in enumerate(order)}
    new_deps = [sorted(rank[d] for d in deps[old]) for old in order]
    dag.deps = new_deps
    dag.names = [f"n{i}" for i in range(len(new_deps))]
    return dag


def _depth_of(deps: list[list[int]]) -> list[int]:
    # deps always point to lower indices while building, except chain->blob
    # and blob->chain links; compute depth through a proper topological walk.
    tmp = Dag("tmp", [str(i) for i in range(len(deps))], deps)
    return tmp.depth()


def ecs() -> Dag:
    """The shape of the shipped ECS/Lambda stack: three roles, an image
    repository and a cluster, a task definition needing the task roles and
    the repository, a Lambda function needing its role and the task
    definition (it starts tasks of it)."""
    names = ["exec_role", "task_role", "lambda_role", "repo", "cluster", "task", "lambda"]
    types = ["sim_role", "sim_role", "sim_role", "sim_repo", "sim_cluster", "sim_task", "sim_function"]
    deps = [[], [], [], [], [], [0, 1, 3], [2, 4, 5]]
    return Dag("ecs", names, deps, types)


def make(shape: str, n: int, seed: int = 1) -> Dag:
    if shape == "wide":
        return wide(n)
    if shape == "deep":
        return deep(n)
    if shape == "layered":
        return layered(n, seed)
    if shape == "ecs":
        return ecs()
    raise ValueError(f"unknown shape {shape!r}: known shapes are {', '.join(SHAPES)}")


# ---------------------------------------------------------------- formats


def to_cairn(
    dag: Dag,
    stack_name: str = "bench",
    latency_ms: int = 0,
    jitter_ms: int = 0,
    world: str = "world.json",
    extra: dict[int, dict[str, object]] | None = None,
    latency_log: str | None = None,
) -> str:
    """A cairn stack on the `sim` provider; edges as `depends_on` lists.
    `extra`: more attributes for some nodes (by index), e.g. to make an
    update plan. `latency_log`: where the sim writes the delays it drew."""
    out = [
        f"# Generated by bench/gen.py: shape {dag.shape}, {len(dag)} resources, "
        f"{dag.edges()} edges, critical path {dag.critical_path()}.",
        "[stack]",
        f'name = "{stack_name}"',
        "",
        "[provider.sim]",
        f'world = "{world}"',
        f"latency_ms = {int(latency_ms)}",
        f"jitter_ms = {int(jitter_ms)}",
    ]
    if latency_log:
        out.append(f'latency_log = "{latency_log}"')
    for i, name in enumerate(dag.names):
        t = dag.type_of(i)
        out.append("")
        out.append(f"[resource.{t}.{name}]")
        out.append(f'name = "{name}"')
        for key, value in (extra or {}).get(i, {}).items():
            out.append(f"{key} = {json.dumps(value)}")
        if dag.deps[i]:
            refs = ", ".join(f'"{dag.type_of(d)}.{dag.names[d]}"' for d in dag.deps[i])
            out.append(f"depends_on = [{refs}]")
    out.append("")
    return "\n".join(out)


def to_terraform(dag: Dag, edges: str = "depends_on") -> str:
    """The same graph as `terraform_data` resources (built into Terraform,
    no provider to download). `edges`: "depends_on" (explicit edges, as the
    cairn stacks use) or "refs" (each edge a reference in `input`)."""
    if edges not in ("depends_on", "refs"):
        raise ValueError(f"edges must be depends_on or refs, not {edges!r}")
    out = [
        f"# Generated by bench/gen.py: shape {dag.shape}, {len(dag)} resources, "
        f"{dag.edges()} edges ({edges}), critical path {dag.critical_path()}.",
    ]
    for i, name in enumerate(dag.names):
        out.append(f'resource "terraform_data" "{name}" {{')
        targets = [f"terraform_data.{dag.names[d]}" for d in dag.deps[i]]
        if edges == "refs" and targets:
            refs = ", ".join(f"{t}.id" for t in targets)
            out.append(f'  input = ["{name}", {refs}]')
        else:
            out.append(f'  input = "{name}"')
            if targets:
                out.append(f"  depends_on = [{', '.join(targets)}]")
        out.append("}")
    out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------- simulation


def simulate(
    dag: Dag,
    parallelism: int | None,
    order: str = "critical-path",
    seed: int = 7,
    latency: float = 1.0,
    jitter: float = 0.0,
) -> float:
    """Makespan of list scheduling: whenever a slot is free, start a ready
    node; `order` picks which: "critical-path" (longest remaining chain
    first) or "arbitrary" (random). Operation time: latency + U[0, jitter]."""
    rng = random.Random(seed)
    n = len(dag)
    if n == 0:
        return 0.0
    slots = parallelism or n
    children = dag.children()
    indeg = [len(d) for d in dag.deps]
    rem = dag.remaining()
    ready: list[tuple[float, int]] = []

    def push(i: int) -> None:
        prio = -rem[i] if order == "critical-path" else rng.random()
        heapq.heappush(ready, (prio, i))

    for i in range(n):
        if indeg[i] == 0:
            push(i)
    running: list[tuple[float, int]] = []
    now = 0.0
    done = 0
    while done < n:
        while ready and len(running) < slots:
            _, i = heapq.heappop(ready)
            dur = latency + (rng.uniform(0, jitter) if jitter else 0.0)
            heapq.heappush(running, (now + dur, i))
        now, i = heapq.heappop(running)
        done += 1
        for c in children[i]:
            indeg[c] -= 1
            if indeg[c] == 0:
                push(c)
    return now


# ---------------------------------------------------------------- CLI


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("cairn", "terraform", "info"):
        s = sub.add_parser(name)
        s.add_argument("--shape", choices=SHAPES, default="layered")
        s.add_argument("--n", type=int, default=1000)
        s.add_argument("--seed", type=int, default=1)
        if name == "cairn":
            s.add_argument("--latency-ms", type=int, default=0)
            s.add_argument("--jitter-ms", type=int, default=0)
            s.add_argument("--stack-name", default="bench")
            s.add_argument("out")
        elif name == "terraform":
            s.add_argument("--edges", choices=("depends_on", "refs"), default="depends_on")
            s.add_argument("out", help="folder to write main.tf into")
        else:
            s.add_argument("--parallelism", type=int, default=10)
    a = p.parse_args(argv)
    dag = make(a.shape, a.n, a.seed)
    if a.cmd == "cairn":
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(to_cairn(dag, a.stack_name, a.latency_ms, a.jitter_ms))
    elif a.cmd == "terraform":
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "main.tf"), "w", encoding="utf-8") as f:
            f.write(to_terraform(dag, a.edges))
    else:
        par = a.parallelism
        info = {
            "shape": dag.shape,
            "nodes": len(dag),
            "edges": dag.edges(),
            "critical_path": dag.critical_path(),
            "parallelism": par,
            "lower_bound_ops": lower_bound(dag, par, 1.0),
            "sim_critical_path_first": simulate(dag, par, "critical-path"),
            "sim_arbitrary": simulate(dag, par, "arbitrary"),
        }
        print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

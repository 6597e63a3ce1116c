"""Benchmark: what ``torch.compile``'s default backend (Inductor) costs and gains on this CPU, for chapter 08.

    .venv/bin/python benchmarks/torch_compile_benchmark.py [--steps 200] [--repeats 2]

The book page cannot afford it: Inductor writes C++ and runs the C++ compiler at the first call, which with an
empty cache takes longer than a page's whole time budget on a two-core machine. This script measures it apart, each
run in a fresh process: the first compiled call with an empty Inductor cache ("cold"), the same with the cache that
run left behind ("warm"), and the steady-state time per training step of the chapter's MLP (64 -> 32 -> 10, batch
32), eager and compiled, as the median and the interquartile range over ``--steps`` steps. Numbers move with the
machine's load; run it on an idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
import numpy as np
import torch

torch.manual_seed(0)
steps = int(sys.argv[1])
net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
x, y = torch.randn(32, 64), torch.randint(0, 10, (32,))


def step(model):
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()


def per_step(model):
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step(model)
        times.append(time.perf_counter() - start)
    return [float(np.percentile(times, q)) for q in (25, 50, 75)]


compiled = torch.compile(net)
start = time.perf_counter()
step(compiled)
first = time.perf_counter() - start
print(json.dumps({"first_call": first, "eager": per_step(net), "compiled": per_step(compiled)}))
"""


def run_child(cache_dir: str, steps: int) -> dict:
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache_dir, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    result = subprocess.run([sys.executable, "-c", CHILD, str(steps)], env=env, capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="timed steps per variant (default 200)")
    parser.add_argument("--repeats", type=int, default=2, help="warm-cache runs after the cold one (default 2)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="inductor-cache-") as cache_dir:
        runs = [("cold cache", run_child(cache_dir, args.steps))]
        runs += [(f"warm cache {i + 1}", run_child(cache_dir, args.steps)) for i in range(args.repeats)]
    for label, run in runs:
        (e25, e50, e75), (c25, c50, c75) = ([1e6 * t for t in run[k]] for k in ("eager", "compiled"))
        print(f"{label:>12}: first compiled call {run['first_call']:6.2f} s; per step: "
              f"eager median {e50:.0f} us (IQR {e25:.0f}-{e75:.0f}), "
              f"compiled median {c50:.0f} us (IQR {c25:.0f}-{c75:.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

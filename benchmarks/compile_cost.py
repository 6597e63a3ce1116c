"""Benchmark: what ``torch.compile`` and XLA (``tf.function(jit_compile=True)``) cost on the training-loops page's
model, measured outside the book because ``torch.compile``'s first call alone takes longer than a page's one-minute
budget on two cores.

    .venv/bin/python benchmarks/compile_cost.py [--out benchmarks/results/compile_cost.json]

The model, batch size and data size are those of ``book/05_training_loops.md`` (64 -> 32 -> 10, batches of 32,
1437 samples, so the last batch has 29 rows). For each compiler it measures the first call (compilation
included), the first call on the short last batch (a new shape: a recompilation), and the steady-state time per
step (median of 5 repeats of 200 steps) next to the eager step. The page prints the JSON this writes.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

ROOT = Path(__file__).resolve().parents[1]
BATCH, SHORT, REPEATS, STEPS = 32, 29, 5, 200


def seconds(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def per_step_ms(step, x, y) -> dict:
    """Median and range over REPEATS of the mean time of one step, in milliseconds."""
    runs = [seconds(lambda: [step(x, y) for _ in range(STEPS)]) / STEPS * 1e3 for _ in range(REPEATS)]
    return {"median": statistics.median(runs), "min": min(runs), "max": max(runs)}


def torch_costs() -> dict:
    import torch

    torch.manual_seed(0)
    x, y = torch.randn(BATCH, 64), torch.randint(0, 10, (BATCH,))

    def make_step(compiled: bool):
        net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
        model = torch.compile(net) if compiled else net
        optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)

        def step(xb, yb):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
        return step

    eager, compiled = make_step(False), make_step(True)
    first = seconds(lambda: compiled(x, y))
    short = seconds(lambda: compiled(x[:SHORT], y[:SHORT]))
    eager(x, y)
    return {"first_call_s": first, "short_batch_first_call_s": short,
            "eager_ms_per_step": per_step_ms(eager, x, y), "compiled_ms_per_step": per_step_ms(compiled, x, y),
            "torch": torch.__version__}


def xla_costs() -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(BATCH, 64)).astype("float32"), rng.integers(0, 10, BATCH)

    def make_step(jit: bool):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                                  keras.layers.Dense(10)])
        optimizer = keras.optimizers.SGD(0.05, momentum=0.9)
        optimizer.build(model.trainable_variables)
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

        def step(xb, yb):
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True))
            optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return tf.function(step, jit_compile=jit)

    graph, xla = make_step(False), make_step(True)
    first = seconds(lambda: xla(x, y))
    short = seconds(lambda: xla(x[:SHORT], y[:SHORT]))
    graph(x, y)
    return {"first_call_s": first, "short_batch_first_call_s": short,
            "graph_ms_per_step": per_step_ms(graph, x, y), "xla_ms_per_step": per_step_ms(xla, x, y),
            "tensorflow": tf.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "compile_cost.json")
    args = parser.parse_args()
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "c_compiler": shutil.which("gcc") or shutil.which("cc")},
              "torch_compile": torch_costs(), "xla": xla_costs()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

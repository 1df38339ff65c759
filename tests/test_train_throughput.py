"""benchmarks/train_throughput.py's matmul share, which its matmul-bound ceiling rests on."""

import importlib.util
import os
import time

import torch

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "benchmarks", "train_throughput.py")


def load_benchmark():
    spec = importlib.util.spec_from_file_location("train_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_matmul_share_is_the_share_of_wall_time_in_matmuls():
    bench = load_benchmark()
    a, batch = torch.randn(512, 512), torch.randn(8, 128, 128)

    def matmuls():
        for _ in range(20):
            torch.addmm(a, a, a), a @ a, torch.bmm(batch, batch)

    def elementwise():
        for _ in range(20):
            a.exp(), a + a

    def half_waiting():
        start = time.perf_counter()
        matmuls()
        time.sleep(time.perf_counter() - start)

    assert bench.matmul_share(matmuls) > 0.8
    assert bench.matmul_share(elementwise) < 0.05
    assert 0.3 < bench.matmul_share(half_waiting) < 0.6

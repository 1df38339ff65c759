"""benchmarks/gpu_check.py --dry_run: every step of the first GPU's check, on the CPU."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gpu_check_dry_run_passes_every_step_and_writes_its_json(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu_check.py"),
                           "--dry_run", f"--out={out}"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with open(out) as f:
        report = json.load(f)
    steps = report["steps"]
    assert report["dry_run"] and set(steps) == {"environment", "training_steps", "tests",
                                                "compile_shapes", "mrpc", "throughput",
                                                "torchrun"}
    assert all(step["ok"] for step in steps.values())
    assert steps["environment"]["result"]["torch_compile_takes"]["dynamic"] is True
    for precision, result in steps["training_steps"]["result"].items():
        assert result["syncs"] == [] and result["devices"] == ["cpu"], precision
    assert set(steps["throughput"]["result"]) >= {"eager", "compiled", "compiled_cuda_graphs"}
    assert steps["torchrun"]["result"]["world_size"] == 1
    assert done.stdout.splitlines()[0].split() == ["step", "ok", "seconds", "summary"]

"""Where a whole command's seconds go before its first training step and after its last.

    GLUE_DIR=../shared/data/glue python benchmarks/fixed_cost.py --rows=2048 --repeats=2

On a seeded `--rows` subset of CoLA (benchmarks/glue_subset.py), 1 epoch with the README's
recipe, train and dev eval, each side a fresh process, taking turns (A B A B):
  project  `run_classifier.py` with its defaults, as benchmarks/whole_command.py runs it
  hf_best  benchmarks/accuracy.py's HF worker (HF Trainer at its fastest eager setting)
Each child times its own phases by wrapping the functions that do them (nothing in the
project knows it is timed) and counts the seconds spent importing modules in each phase;
the parent adds the interpreter's start and the process's exit. Prints, per phase, the
median seconds over the repeats, side by side, and one JSON line with every run. The
project's bytecode is written first, as a user's first run writes it (benchmarks/bytecode.py).
"""

import argparse
import atexit
import builtins
import functools
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
T0 = time.time()  # (the child's first statement after the interpreter's start)


class Clock:
    """Phases (label -> seconds, in first-seen order) and the seconds spent importing in
    each: an import's time counts once, for the outermost import, in the phase it ran in."""

    def __init__(self):
        self.phases, self.imports, self.marks = {}, {}, {}
        self.current, self._depth = "start", 0
        self.pending = []  # (module name, function that patches it) until it is imported

    def when_imported(self, module_name: str, patcher) -> None:
        """Runs patcher(module) once the program itself imports the module (patching it
        sooner would import it sooner, and move its import time to another phase)."""
        self.pending.append((module_name, patcher))
        self._patch_imported()

    def _patch_imported(self) -> None:
        ready = [p for p in self.pending if p[0] in sys.modules]
        self.pending = [p for p in self.pending if p not in ready]
        for name, patcher in ready:  # (a patcher's own imports may come back here)
            patcher(sys.modules[name])

    def add(self, label: str, seconds: float) -> None:
        self.phases[label] = self.phases.get(label, 0.0) + seconds

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, time.time())

    def timed(self, label: str, function):
        """`function` with its seconds added to `label` (calls within another timed phase
        count in the outer one only)."""
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if self.current != "start":
                return function(*args, **kwargs)
            self.current, begin = label, time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter() - begin)
                self.current = "start"
        return wrapper

    def count_imports(self) -> None:
        """Wraps __import__ and importlib.import_module to time the outermost imports."""
        def wrap(original):
            @functools.wraps(original)
            def importer(*args, **kwargs):
                self._depth += 1
                begin = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    self._depth -= 1
                    if not self._depth:
                        key = self.current
                        self.imports[key] = self.imports.get(key, 0.0) + (
                            time.perf_counter() - begin)
                        self._patch_imported()
            return importer
        builtins.__import__ = wrap(builtins.__import__)
        importlib.import_module = wrap(importlib.import_module)

    def result(self, end: float) -> dict:
        return {"t0": T0, "end": end, "phases": self.phases, "imports": self.imports,
                "marks": self.marks}


def patch(clock: Clock, module_name: str, attribute: str, label: str) -> None:
    """Times module.attribute (a function or a class's method: 'Class.method') from the
    moment the program imports the module."""
    def patcher(module):
        owner, name = module, attribute
        if "." in attribute:
            cls, name = attribute.split(".")
            owner = getattr(module, cls)
        setattr(owner, name, clock.timed(label, getattr(owner, name)))
    clock.when_imported(module_name, patcher)


def _step_marks(clock: Clock, owner, name: str) -> None:
    """Marks the first step's start and end and the last step's end around owner.name."""
    step = getattr(owner, name)

    @functools.wraps(step)
    def marked(*args, **kwargs):
        clock.mark("first_step_start")
        try:
            return step(*args, **kwargs)
        finally:
            clock.mark("first_step_end")
            clock.marks["last_step_end"] = time.time()
    setattr(owner, name, marked)


def worker_project(argv: list[str]) -> None:
    """run_classifier in this process, its phases timed; the result printed at exit."""
    clock = Clock()
    clock.count_imports()
    import run_classifier
    for module, attribute, label in (
            ("run_classifier", "validate", "checks and examples"),
            ("run_classifier", "start_run", "device, tokenizer, model"),
            ("run_classifier", "load_datasets", "features"),
            ("training.loop", "train", "training (steps and epoch ends)"),
            ("run_classifier", "do_eval", "final eval and report"),
            ("modeling.export", "save_model", "save the model"),
            ("training.plot", "write_learning_curves", "learning curves")):
        patch(clock, module, attribute, label)
    clock.when_imported("training.loop", lambda loop: _step_marks(clock, loop, "_train_step"))
    atexit.register(lambda: print("RESULT " + json.dumps(clock.result(time.time())),
                                  flush=True))
    sys.argv = ["run_classifier.py"] + argv
    run_classifier.run()


def worker_hf(task: str, device: str) -> None:
    """benchmarks/accuracy.py's HF run in this process, its phases timed."""
    clock = Clock()
    clock.count_imports()
    from benchmarks import accuracy
    import transformers  # noqa: F401 (lazy: its Trainer and torch load where run_hf needs them)
    clock.when_imported("transformers.trainer", lambda module: add_step_marks(clock, module))
    for module, attribute, label in (
            ("modeling.model", "build_model", "device, tokenizer, model"),
            ("processors.table", "TableProcessor.get_examples", "checks and examples"),
            ("processors.features", "convert_examples_to_features", "features"),
            ("benchmarks.hf_peer", "rows", "features"),
            ("benchmarks.hf_peer", "trainer", "trainer set-up"),
            ("transformers.trainer", "Trainer.train", "training (steps and epoch ends)"),
            ("transformers.trainer", "Trainer.predict", "final eval and report")):
        patch(clock, module, attribute, label)
    accuracy.RECIPE["epochs"] = 1.0
    accuracy.run_hf(task, 1, device, None, "hf_best")
    print("RESULT " + json.dumps(clock.result(time.time())), flush=True)


def add_step_marks(clock: Clock, trainer_module) -> None:
    """A callback on every Trainer that marks its first and last steps."""
    from transformers.trainer_callback import TrainerCallback

    class Steps(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            clock.mark("first_step_start")

        def on_step_end(self, args, state, control, **kwargs):
            clock.mark("first_step_end")
            clock.marks["last_step_end"] = time.time()

    init = trainer_module.Trainer.__init__

    def with_steps(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.add_callback(Steps())
    trainer_module.Trainer.__init__ = with_steps


def run_child(config: str, data_dir: str, device: str) -> dict:
    """One whole command in a fresh process: its phases, and the parent's view of its
    start and end (the interpreter's start, the exit)."""
    worker = [sys.executable, os.path.abspath(__file__), f"--worker={config}",
              f"--device={device}"]
    if config == "project":
        from benchmarks import accuracy
        out = tempfile.mkdtemp(prefix="fixed_cost_")
        accuracy.RECIPE["epochs"] = 1.0
        worker += ["--", *accuracy.project_flags("cola", 1, data_dir, out),
                   *accuracy.device_flags(device, None)]
    spawned = time.time()
    done = subprocess.run(worker, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "GLUE_DIR": os.path.dirname(data_dir)})
    ended = time.time()
    if config == "project":
        shutil.rmtree(out, ignore_errors=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        sys.exit(f"fixed_cost: {config} failed:\n{done.stderr[-3000:]}")
    return breakdown(json.loads(lines[-1][len("RESULT "):]), spawned, ended)


def breakdown(child: dict, spawned: float, ended: float) -> dict:
    """Seconds per row of the report, from a child's phases and marks."""
    marks, phases = child["marks"], dict(child["phases"])
    rows = {"interpreter start": child["t0"] - spawned}
    training = phases.pop("training (steps and epoch ends)", 0.0)
    rows.update({label: seconds for label, seconds in phases.items()})
    rows["first step"] = marks["first_step_end"] - marks["first_step_start"]
    rows["steps after the first"] = marks["last_step_end"] - marks["first_step_end"]
    rows["in train(), outside steps"] = training - (marks["last_step_end"]
                                                    - marks["first_step_start"])
    rows["exit (after the work)"] = ended - child["end"]
    rows["BEFORE THE FIRST STEP"] = marks["first_step_start"] - spawned
    rows["AFTER THE LAST STEP"] = ended - marks["last_step_end"]
    rows["TOTAL"] = ended - spawned
    rows["of which imports"] = sum(child["imports"].values())
    for label, seconds in child["imports"].items():
        rows[f"  imports in: {'(between phases)' if label == 'start' else label}"] = seconds
    return rows


def report(runs: dict[str, list[dict]], rows: int) -> None:
    from modeling.device import machine_class
    print(f"machine: {machine_class()}")
    print(f"whole command, CoLA {rows} train rows, 1 epoch, train + dev eval: seconds, "
          f"median of {len(next(iter(runs.values())))} runs")
    labels = list(dict.fromkeys(label for results in runs.values() for r in results
                                for label in r))
    print(f"  {'phase':<44}" + "".join(f"{config:>10}" for config in runs))
    for label in labels:
        values = [statistics.median(r.get(label, 0.0) for r in results)
                  for results in runs.values()]
        print(f"  {label:<44}" + "".join(f"{v:10.2f}" for v in values))
    print(json.dumps({"runs": runs}, sort_keys=True))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=2048, help="CoLA train rows (a seeded subset)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--configs", default="project,hf_best")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args, rest = p.parse_known_args()
    if args.worker == "project":
        worker_project(rest[1:] if rest[:1] == ["--"] else rest)
        return
    if args.worker:
        worker_hf("cola", args.device)
        return
    if not os.environ.get("GLUE_DIR"):
        sys.exit("fixed_cost: set GLUE_DIR to the GLUE data directory")
    from benchmarks import glue_subset
    from benchmarks.bytecode import write_bytecode
    write_bytecode(ROOT)
    runs = {config: [] for config in args.configs.split(",")}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = os.path.join(tmp, "CoLA")
        glue_subset.main([f"--task_dir={os.path.join(os.environ['GLUE_DIR'], 'CoLA')}",
                          f"--out={data_dir}", f"--rows={args.rows}", "--header=0"])
        for repeat in range(args.repeats):
            for config in runs:
                runs[config].append(run_child(config, data_dir, args.device))
                print(f"{config}: run {repeat + 1} of {args.repeats}: "
                      f"{runs[config][-1]['TOTAL']:.1f} s", file=sys.stderr, flush=True)
    report(runs, args.rows)


if __name__ == "__main__":
    main()

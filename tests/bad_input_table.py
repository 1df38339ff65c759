"""The bad-input table's machinery: a `Case` is one bad input (files, flags, the one-line
message it must produce); `run_all` runs a table's cases through the real command line, in
parallel subprocesses; `check_case` asserts exit code, the one line, no traceback, and
nothing partial left in output_dir or the cache. Tables live in `test_bad_*.py`.
"""

import ctypes
import functools
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Optional

import pytest

from conftest import VOCAB, write_similarity_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS="1")
MRPC_HEAD = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
MRPC_TEST_HEAD = "index\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
VALID = {
    "cola": {"train.tsv": "gj04\t1\t\tThe dog runs.\ngj04\t0\t*\tDog the runs.\n",
             "dev.tsv": "gj04\t1\t\tA cat sleeps.\n",
             "test.tsv": "index\tsentence\n0\tThe bird sings.\n"},
    "mrpc": {"train.tsv": MRPC_HEAD + "1\t1\t2\tThe dog runs.\tA dog runs.\n",
             "dev.tsv": MRPC_HEAD + "0\t3\t4\tA cat.\tThe car.\n",
             "test.tsv": MRPC_TEST_HEAD + "0\t5\t6\tA man reads.\tA man writes.\n"},
}
STSB_HEAD = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\t"
STSB_ROW = "0\tmain\tf\t2012\t1\ts\ts\tA dog runs.\tThe dog runs.\t{}\n"
VALID.update({
    "generic": {"train.csv": "text,label\nthe dog runs,pos\na cat sleeps,neg\n"},
    "multilabel_csv": {"train.csv": "text,labels\nthe dog runs,sports|travel\na cat,\n"},
    "sts-b": {"train.tsv": STSB_HEAD + "score\n" + STSB_ROW.format("4.5")},
})
MODES = {"train": "--do_train", "dev": "--do_eval", "test": "--do_predict"}
HUGE = "x" * 1_000_000
LIMIT = "a field longer than 131072 characters"


@dataclass(frozen=True)
class Case:
    """One bad input: files to write, flags to pass, and the message it must produce.

    `{data}`, `{out}`, `{bert}` and `{case}` in `args`, `message` and file names are
    filled in per case; `prepare(case_dir, bert)` builds what files alone cannot.
    """

    name: str
    message: str
    args: tuple = ("--do_train",)
    files: dict = field(default_factory=dict)
    task: str = "cola"
    prepare: Optional[Callable] = None
    code: int = 2
    quiet: bool = True  # stderr holds nothing but the error line
    read_only_out: bool = False
    limit_writes: bool = False
    unprivileged: bool = False  # the child runs without root's override of permission bits
    program: str = "run_classifier.py"
    interrupt_at: Optional[float] = None  # seconds after the start: Ctrl-C (SIGINT)
    interrupt_with: int = signal.SIGINT  # or SIGTERM, as a scheduler sends


def row_cases(task, ext, header_case, rows):
    """The same ten malformed-row kinds for one task; `rows` maps kind -> (file, text, msg)."""
    return [Case(f"{task}-{kind}", f"{{data}}/{split}.{ext}:{msg}",
                 (MODES[split],),
                 {f"{split}.{ext}": text}, task) for kind, (split, text, msg) in rows.items()
            ] + [header_case]


def copy_bert(case_dir, bert):
    return shutil.copytree(bert, os.path.join(case_dir, "bert"))


def edit_file(name, edit):
    """A prepare step: a copy of the tiny BERT with `edit(path)` applied to one file."""
    def prepare(case_dir, bert):
        edit(os.path.join(copy_bert(case_dir, bert), name))
    return prepare


def append(text):
    def edit(path):
        with open(path, "a") as f:
            f.write(text)
    return edit


def overwrite(text):
    def edit(path):
        with open(path, "w") as f:
            f.write(text)
    return edit


def truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def write_at(relative, text):
    def prepare(case_dir, bert):
        path = os.path.join(case_dir, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    return prepare


def finished_model(case_dir, bert):
    """An output_dir as a finished run leaves it: the model, best_model/, the stats."""
    out = shutil.copytree(bert, os.path.join(case_dir, "out"))
    shutil.copytree(bert, os.path.join(out, "best_model"))
    with open(os.path.join(out, "training_stats.json"), "w") as f:
        f.write('[{"epoch": 1, "step": 1, "train_loss": 0.7}]\n')


def nan_weight(path):
    """One NaN in the word embeddings of a safetensors file."""
    from safetensors.torch import load_file, save_file
    weights = load_file(path)
    weights["embeddings.word_embeddings.weight"][3, 5] = float("nan")
    save_file(weights, path, metadata={"format": "pt"})


def set_config(**values):
    def edit(path):
        with open(path) as f:
            config = json.load(f)
        with open(path, "w") as f:
            json.dump({**config, **values}, f)
    return edit


def replaced_model(case_dir, bert):
    """An unfinished run's checkpoint whose --init_checkpoint directory was then overwritten
    in place by a model of another size."""
    import torch
    from transformers import BertConfig, BertModel
    from modeling.model import resolve_source
    from processors import get_processor
    from training.checkpoint import save_checkpoint
    from training.runs import run_signature
    model_dir = copy_bert(case_dir, bert)
    signature = run_signature(get_processor(SIM), resolve_source(model_dir, None, None), 128,
                              True, os.path.join(case_dir, "data", "train.csv"), {})
    save_checkpoint(os.path.join(case_dir, "out"), torch.nn.Linear(2, 2),
                    {"global_step": 1, "signature": signature}, keep_max=1)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=128)
    BertModel(config).save_pretrained(model_dir)


def processor_module(body):
    """A module registering task `mine`: CoLA's files, with `body` in its class."""
    return write_at("mine.py", "from processors import ColaProcessor, register_processor\n\n\n"
                    "@register_processor('mine')\nclass Mine(ColaProcessor):\n" + body)


def truncated_checkpoint(case_dir, bert):
    import torch
    from training.checkpoint import save_checkpoint
    out = os.path.join(case_dir, "out")
    os.makedirs(out)
    path = save_checkpoint(out, torch.nn.Linear(2, 2), {"global_step": 3}, keep_max=1)
    truncate(os.path.join(path, "training_state.pt"))


def corrupt_cache(case_dir, bert):
    """Builds the test split's cache as a run would, then truncates the tensor file."""
    from modeling.tokenization import load_tokenizer
    from processors import get_processor
    from processors.builders import BertFeatures
    from processors.cache import load_features
    vocab = os.path.join(bert, "vocab.txt")
    load_features(get_processor("sentence_similarity"), os.path.join(case_dir, "data"), "test",
                  BertFeatures(load_tokenizer(vocab, True)), vocab, True, 128,
                  os.path.join(case_dir, "cache"))
    entry = next(n for n in os.listdir(os.path.join(case_dir, "cache"))
                 if not n.endswith(".lock"))
    truncate(os.path.join(case_dir, "cache", entry, "input_ids.bin"))


def make_read_only(path):
    """Makes `path` unwritable even for root (immutable, or a read-only mount); returns
    the command that undoes it, or None where neither works."""
    if os.geteuid() != 0:
        os.chmod(path, 0o555)
        return ["chmod", "755", path]
    for on, off in ((["chattr", "+i", path], ["chattr", "-i", path]),
                    (["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", path],
                     ["umount", path])):
        if shutil.which(on[0]) and subprocess.run(on, capture_output=True).returncode == 0:
            return off
    return None


def limit_file_size():
    """In the child: writes past 60 kB fail with EFBIG, as on a full disk."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))


def drop_root_override():
    """In the child: root's CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped from its bounding
    set (so the program it runs has neither): permission bits apply to it as to any user. A
    no-op for a non-root user, whom they apply to anyway."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            if libc.prctl(24, cap, 0, 0, 0):  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@functools.lru_cache
def can_drop_root_override() -> bool:
    try:
        subprocess.run(["true"], preexec_fn=drop_root_override, check=True)
    except (subprocess.SubprocessError, OSError):
        return False
    return True


def _preexec(case):
    """What the child runs before the program: the case's limits, or None."""
    steps = [step for step, wanted in ((limit_file_size, case.limit_writes),
                                       (drop_root_override, case.unprivileged)) if wanted]
    return (lambda: [step() for step in steps]) if steps else None


SIM = "sentence_similarity"


def setup(case, case_dir, bert) -> dict:
    """Writes the case's data (valid files, then the case's own) and runs its prepare."""
    data = os.path.join(case_dir, "data")
    if case.task == SIM:
        write_similarity_data(data, n_train=16, n_dev=4, n_test=4)
    else:
        os.makedirs(data)
        for name, text in VALID[case.task].items():
            with open(os.path.join(data, name), "w", newline="") as f:
                f.write(text)
    for name, content in case.files.items():
        path = os.path.join(data, name)
        if content is None:
            os.remove(path)
        else:
            with open(path, "wb") as f:
                f.write(content.encode() if isinstance(content, str) else content)
    if case.prepare:
        case.prepare(case_dir, bert)
    return {"case": case_dir, "data": data, "out": os.path.join(case_dir, "out"), "bert": bert}


def snapshot(folder) -> dict:
    """Relative path -> size of every file and folder under `folder`."""
    found = {}
    for parent, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(parent, name)
            found[os.path.relpath(path, folder)] = os.lstat(path).st_size
    return found


def run_case(case, dirs):
    """Runs the command line for one case; returns (exit code, stderr, before, after)."""
    args = ["--init_checkpoint={bert}", "--precision=fp32", *case.args]
    if case.program == "run_classifier.py":
        args = ["--task_name=" + case.task, "--data_dir={data}", "--output_dir={out}", *args]
    before = snapshot(dirs["case"])
    undo = make_read_only(dirs["out"]) if case.read_only_out else []
    if undo is None or case.unprivileged and not can_drop_root_override():
        return None
    try:
        proc = subprocess.Popen([sys.executable, os.path.join(ROOT, case.program)] +
                                [a.format(**dirs) for a in args], stderr=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, text=True, env=ENV, cwd=ROOT,
                                preexec_fn=_preexec(case))
        if case.interrupt_at is not None:
            time.sleep(case.interrupt_at)
            proc.send_signal(case.interrupt_with)
        _, stderr = proc.communicate(timeout=300)
    finally:
        if undo:
            subprocess.run(undo, check=True)
    return proc.returncode, stderr, before, snapshot(dirs["case"])


def run_all(cases, bert, root) -> dict:
    """Runs every case, in parallel, the ones that import torch first; case name ->
    (dirs, result)."""
    dirs = {case.name: setup(case, os.path.join(str(root), case.name), bert) for case in cases}
    with ThreadPoolExecutor(3) as pool:
        futures = {case.name: pool.submit(run_case, case, dirs[case.name])
                   for case in sorted(cases, key=lambda case: (case.quiet, not case.prepare))}
        return {name: (dirs[name], future.result()) for name, future in futures.items()}


def assert_caches_complete(folder):
    """Every features-cache array under `folder` matches the sha256 in its entry's sidecar."""
    for parent, _, files in os.walk(folder):
        if "features.json" in files and os.path.basename(os.path.dirname(parent)) == "cache":
            with open(os.path.join(parent, "features.json")) as f:
                arrays = json.load(f)["arrays"]
            for name, info in arrays.items():
                with open(os.path.join(parent, name + ".bin"), "rb") as f:
                    assert hashlib.sha256(f.read()).hexdigest() == info["sha256"], parent


def check_case(case, dirs, result):
    """The assertions every row of a bad-input table must pass."""
    if result is None:
        pytest.skip("root, and the case's protection cannot be set up here (chattr +i, a "
                    "read-only mount, or dropping CAP_DAC_OVERRIDE)")
    code, stderr, before, after = result
    message = case.message.format(**dirs)
    lines = stderr.splitlines()
    assert "Traceback" not in stderr, stderr[-3000:]
    assert code == case.code, stderr[-3000:]
    program = os.path.splitext(case.program)[0]
    if case.code == 2:
        assert lines[-1].startswith(f"{program}: error: {message}"), lines[-1]
    elif case.code in (130, 143):
        assert lines[-1] == f"{program}: {message}", lines[-1]
    else:
        assert message in stderr
    if case.quiet:
        assert len(lines) == 1, stderr
    assert not [p for p in after if p.endswith(".tmp")]
    if case.code == 2 and case.quiet:
        assert after == before  # failed before writing anything
    elif case.code == 2:  # failed while working: only whole records of work done remain
        made = set(after) - set(before)
        assert made <= {"out", "out/.lock", "out/run_config.json", "out/training_stats.json",
                        "out/cache"} | {
            p for p in made if p.startswith("out/cache/")}, sorted(made)
    assert_caches_complete(dirs["case"])


def table(cases, folder: str):
    """A table module's fixture and test: `results, test_bad_x = table(CASES, "bad_x")` runs
    every case once (`run_all`) and checks each as its own test (`check_case`)."""
    @pytest.fixture(scope="module")
    def results(tiny_bert, tmp_path_factory):
        return run_all(cases, tiny_bert, tmp_path_factory.mktemp(folder))

    @pytest.mark.parametrize("case", cases, ids=lambda case: case.name)
    def test(case, results):
        check_case(case, *results[case.name])

    return results, test

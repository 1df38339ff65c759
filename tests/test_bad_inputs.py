"""Bad input through the real command line: exit 2, one line naming file:line or the flag,
no traceback, and nothing partial left in output_dir or the cache.

Every case runs `run_classifier.py` in a subprocess; the cases run in parallel
in one module fixture (most fail before torch is imported, in a fraction of a
second), and each case is then checked by its own test (`bad_input_table.check_case`).
"""

import errno
import json
import logging
import os
import re
import signal
import subprocess
import sys

import pytest

from bad_input_table import (ENV, HUGE, LIMIT, MRPC_HEAD, MRPC_TEST_HEAD, ROOT, SIM, STSB_ROW,
                             VALID, VOCAB, Case, append, copy_bert, corrupt_cache,
                             edit_file, finished_model, nan_weight, overwrite, processor_module,
                             replaced_model, row_cases, set_config, table, truncate,
                             truncated_checkpoint, write_at)
from conftest import write_similarity_data
from modeling.errors import TrainingDiverged

COLA_OK = VALID["cola"]["train.tsv"]
MRPC_OK = "1\t1\t2\tThe dog runs.\tA dog runs.\n"
SIM_OK = '1,"a dog runs","a dog runs"\n'
CASES = row_cases("cola", "tsv", Case(
    "cola-no-header", "{data}/test.tsv:1: expected header 'index\\tsentence', found "
    "'0\\tThe bird sings.'", ("--do_predict",), {"test.tsv": "0\tThe bird sings.\n"}), {
    "columns": ("train", COLA_OK + "gj04\t1\tThe cat.\n", "3: expected 4 columns, found 3"),
    "empty-text": ("train", COLA_OK + "gj04\t1\t\t  \n", "3: empty text"),
    "label": ("train", COLA_OK + "gj04\tyes\t\tA cat.\n",
              "3: unknown label 'yes'; expected one of 0, 1"),
    "test-label": ("test", "index\tsentence\n0\t1\tA cat.\n",
                   "2: expected 2 columns, found 3 (test files have no label column)"),
    "utf8": ("train", COLA_OK.encode() + b"gj04\t1\t\tA caf\xe9.\n",
             "3: not valid UTF-8 (byte 0xe9)"),
    "nul": ("train", COLA_OK + "gj04\t1\t\tA\0cat.\n", "3: NUL byte in text"),
    "blank-line": ("train", COLA_OK + "\n" + COLA_OK, "3: blank line"),
    "huge-line": ("train", COLA_OK + f"gj04\t1\t\t{HUGE}\n", f"3: {LIMIT}"),
    "header": ("train", "source\tlabel\tjudgment\tsentence\n" + COLA_OK,
               "1: unknown label 'label'; expected one of 0, 1 (is line 1 a header? train "
               "files have none)"),
}) + row_cases("mrpc", "tsv", Case(
    "mrpc-no-header", "{data}/train.tsv:1: expected header 'Quality\\t#1 ID\\t#2 ID\\t#1 "
    "String\\t#2 String', found '1\\t1\\t2\\tThe dog runs.\\tA dog runs.'", ("--do_train",),
    {"train.tsv": MRPC_OK}, "mrpc"), {
    "columns": ("train", MRPC_HEAD + MRPC_OK + "1\t1\t2\tA cat.\n",
                "3: expected 5 columns, found 4"),
    "empty-text": ("dev", MRPC_HEAD + "1\t1\t2\tA cat.\t\n", "2: empty text"),
    "label": ("train", MRPC_HEAD + "2\t1\t2\tA.\tB.\n",
              "2: unknown label '2'; expected one of 0, 1"),
    "test-label": ("test", MRPC_TEST_HEAD + "0\t1\t5\t6\tA.\tB.\n",
                   "2: expected 5 columns, found 6 (test files have no label column)"),
    "utf8": ("train", MRPC_HEAD.encode() + b"1\t1\t2\t\x80.\tB.\n",
             "2: not valid UTF-8 (byte 0x80)"),
    "nul": ("train", MRPC_HEAD + MRPC_OK + "\0\n", "3: NUL byte in text"),
    "blank-line": ("train", MRPC_HEAD + MRPC_OK + "\t\t\r\n" + MRPC_OK, "3: blank line"),
    "huge-line": ("train", MRPC_HEAD + f"1\t1\t2\t{HUGE}\tB.\n", f"2: {LIMIT}"),
    "header": ("train", MRPC_HEAD + MRPC_OK + MRPC_HEAD.lstrip("\ufeff") + MRPC_OK,
               "3: unknown label 'Quality'; expected one of 0, 1 (a repeated header row?)"),
}) + row_cases("sentence_similarity", "csv", Case(
    "sentence_similarity-unclosed-quote", "{data}/train.csv:2: the file ends inside a quoted "
    'field (an unclosed ")', ("--do_train",),
    {"train.csv": SIM_OK + '0,"a cat,a dog\n'}, "sentence_similarity"), {
    "columns": ("train", SIM_OK + '1,"a dog runs"\n', "2: expected 3 columns, found 2"),
    "empty-text": ("train", SIM_OK + '1,"a dog",""\n', "2: empty text"),
    "label": ("dev", '1,a,b\nsame,a,b\n', "2: unknown label 'same'; expected one of 0, 1"),
    "test-label": ("test", '"a","b"\n1,"a","b"\n',
                   "2: expected 2 columns, found 3 (test rows are all text_a,text_b or all "
                   "label,text_a,text_b)"),
    "utf8": ("train", SIM_OK.encode() * 2 + b'1,"\xc3(",b\n', "3: not valid UTF-8 (byte 0xc3)"),
    "nul": ("train", SIM_OK + '1,"a\0",b\n', "2: NUL byte in text"),
    "blank-line": ("train", SIM_OK + "\n", "2: blank line"),
    "huge-line": ("train", SIM_OK + f'1,"{HUGE}",b\n', f'2: {LIMIT} (an unclosed "?)'),
    "header": ("train", "label,text_a,text_b\n" + SIM_OK,
               "1: unknown label 'label'; expected one of 0, 1 (is line 1 a header? train "
               "files have none)"),
})


FLAG_CASES = [
    Case("empty-file", "{data}/train.tsv: file is empty", files={"train.tsv": ""}),
    Case("missing-file", "{data}/dev.tsv: file not found", ("--do_train", "--do_eval"),
         {"dev.tsv": None}),
    Case("missing-data-dir", "--data_dir={case}/nowhere: not a directory",
         ("--do_train", "--data_dir={case}/nowhere")),
    Case("unknown-task", "--task_name=paraphrase: unknown task; registered tasks: cola, ",
         ("--do_train", "--task_name=paraphrase")),
    Case("module-syntax-error", "--processor_module={case}/mine.py: cannot import: SyntaxError: "
         "'(' was never closed (mine.py, line 1)",
         ("--do_train", "--processor_module={case}/mine.py"), prepare=write_at("mine.py", "x = (")),
    Case("module-missing", "--processor_module=no_such_module: cannot import: "
         "ModuleNotFoundError: No module named 'no_such_module'",
         ("--do_train", "--processor_module=no_such_module")),
    Case("module-no-processor", "--processor_module={case}/mine.py: registers no processor",
         ("--do_train", "--processor_module={case}/mine.py"),
         prepare=write_at("mine.py", "import processors\n")),
    Case("threshold-tune-without-training", "--multi_label_threshold=tune needs --do_train and "
         "--do_eval (thresholds are tuned on dev after training and saved with the model)",
         ("--do_eval", "--multi_label_threshold=tune"), task="multilabel_csv",
         prepare=finished_model),
    Case("max-seq-0", "--max_seq_length=0: must be at least 3", ("--do_train",
                                                                 "--max_seq_length=0")),
    Case("max-seq-2", "--max_seq_length=2: must be at least 3", ("--do_train",
                                                                 "--max_seq_length=2")),
    Case("max-seq-129", "--max_seq_length=129: must be at most the model's "
         "max_position_embeddings (128)", ("--do_train", "--max_seq_length=129")),
    Case("train-batch-0", "--train_batch_size=0: must be positive",
         ("--do_train", "--train_batch_size=0")),
    Case("eval-batch-negative", "--eval_batch_size=-8: must be positive",
         ("--do_eval", "--eval_batch_size=-8")),
    Case("predict-batch-0", "--predict_batch_size=0: must be positive",
         ("--do_predict", "--predict_batch_size=0")),
    Case("train-batch-not-int", "flag --train_batch_size=eight: invalid literal for int() with "
         "base 10: 'eight'", ("--do_train", "--train_batch_size=eight")),
    Case("epochs-0", "--num_train_epochs=0.0: must be positive",
         ("--do_train", "--num_train_epochs=0")),
    Case("epochs-negative", "--num_train_epochs=-1.0: must be positive",
         ("--do_train", "--num_train_epochs=-1")),
    Case("learning-rate-0", "--learning_rate=0.0: must be positive",
         ("--do_train", "--learning_rate=0")),
    Case("learning-rate-negative", "--learning_rate=-2e-05: must be positive",
         ("--do_train", "--learning_rate=-2e-5")),
    Case("warmup-1.5", "--warmup_proportion=1.5: must be in [0, 1)",
         ("--do_train", "--warmup_proportion=1.5")),
    Case("casing", "--do_lower_case=False: the checkpoint's tokenizer has do_lower_case=True; "
         "pass --do_lower_case", ("--do_train", "--nodo_lower_case")),
    Case("vocab-bigger-than-config", f"{{case}}/bert/vocab.txt: {len(VOCAB) + 5} tokens, more "
         f"than the config's vocab_size {len(VOCAB)} ({{case}}/bert/config.json)",
         ("--do_train", "--init_checkpoint={case}/bert"),
         prepare=edit_file("vocab.txt", append("x1\nx2\nx3\nx4\nx5\n"))),
    Case("config-not-json", "{case}/bert/config.json: not a valid JSON config: Expecting value: "
         "line 1 column 1 (char 0)", ("--do_train", "--init_checkpoint={case}/bert"),
         prepare=edit_file("config.json", overwrite("hidden_size = 32\n"))),
    Case("truncated-weights", "{case}/bert/model.safetensors: cannot read weights: "
         "SafetensorError: Error while deserializing header: ",
         ("--do_train", "--init_checkpoint={case}/bert"),
         prepare=edit_file("model.safetensors", truncate)),
    Case("output-dir-is-a-file", "--output_dir={case}/file: not a directory",
         ("--do_train", "--output_dir={case}/file"), prepare=write_at("file", "x")),
    Case("output-dir-under-a-file", "--output_dir={case}/file/out: cannot create it: "
         "{case}/file is not a writable directory", ("--do_train", "--output_dir={case}/file/out"),
         prepare=write_at("file", "x")),
    Case("output-dir-read-only", "--output_dir={case}/out: not writable", read_only_out=True,
         prepare=lambda case_dir, bert: os.makedirs(os.path.join(case_dir, "out"))),
    Case("finished-run", "--output_dir={case}/out: training there already finished; pass "
         "--overwrite_output_dir to train again, or drop --do_train to use that model",
         prepare=finished_model),
    Case("truncated-checkpoint", "{case}/out/checkpoint-3: checkpoint is unreadable and no "
         "earlier one is readable; pass --overwrite_output_dir to start over", task=SIM,
         prepare=truncated_checkpoint, quiet=False),
    Case("disk-full", "{case}/out/checkpoint-3: File too large", task=SIM, quiet=False,
         args=("--do_train", "--save_checkpoints_steps=3", "--train_batch_size=8"),
         limit_writes=True),
    Case("corrupt-cache", "is corrupt (input_ids: sha256 does not match features.json); "
         "rebuilding it",
         ("--do_predict", "--cache_dir={case}/cache"), task=SIM, prepare=corrupt_cache, code=0,
         quiet=False),
]

MINE = ("--do_train", "--processor_module={case}/mine.py", "--task_name=mine")
IN_TXT = write_at("in.txt", "the dog runs\n")
INTERRUPTED = ("interrupted; run the same command again to go on (training resumes from its "
               "last checkpoint)")
NO_TOKENS = ("has no tokens (only characters the tokenizer drops: zero-width, control or "
             "combining marks)")
# Issue 15: what the first table missed (data loss, NaN models, library tracebacks, ...).
ROUND_2 = [
    Case("overwrite-the-init-checkpoint", "--output_dir={case}/bert: holds --init_checkpoint="
         "{case}/bert, which --overwrite_output_dir would delete; choose another --output_dir",
         ("--do_train", "--overwrite_output_dir", "--init_checkpoint={case}/bert",
          "--output_dir={case}/bert"), prepare=copy_bert),
    Case("overwrite-the-best-model-read", "--output_dir={out}: holds --init_checkpoint="
         "{out}/best_model, which --overwrite_output_dir would delete",
         ("--do_train", "--overwrite_output_dir", "--init_checkpoint={out}/best_model"),
         prepare=finished_model),
    Case("overwrite-the-data", "--output_dir={data}: holds --data_dir={data}, which "
         "--overwrite_output_dir would delete", ("--do_train", "--overwrite_output_dir",
                                                 "--output_dir={data}")),
    Case("train-into-a-model-dir", "--output_dir={case}/bert: holds a model that no run trained "
         "there (config.json and weights, no training_stats.json); to fine-tune it, pass it as "
         "--init_checkpoint and choose another --output_dir",
         ("--do_train", "--init_checkpoint={case}/bert", "--output_dir={case}/bert"),
         prepare=copy_bert),
    Case("class-weights-overflow", "--class_weights=1e39,1: 1e+39 is infinite in float32 (at "
         "most 3.403e+38)", ("--do_train", "--class_weights=1e39,1")),
    Case("learning-rate-inf", "--learning_rate=inf: must be a finite number",
         ("--do_train", "--learning_rate=inf")),
    Case("weight-decay-inf", "--weight_decay=inf: must be a finite number",
         ("--do_train", "--weight_decay=inf")),
    Case("nan-in-the-weights", "{case}/bert/model.safetensors: "
         "bert.embeddings.word_embeddings.weight holds 1 NaN or Inf values",
         ("--do_train", "--init_checkpoint={case}/bert"),
         prepare=edit_file("model.safetensors", nan_weight), quiet=False),
    Case("seed-negative", "--seed=-1: must be in [0, 4294967295]", ("--do_train", "--seed=-1")),
    Case("seed-beyond-64-bits", f"--seed={2**64}: must be in [0, 4294967295]",
         ("--do_train", f"--seed={2**64}")),
    Case("epochs-inf", "--num_train_epochs=inf: must be a finite number",
         ("--do_train", "--num_train_epochs=inf")),
    Case("epochs-too-many-steps", "--num_train_epochs=1e+30: 1e+30 optimizer steps (2 examples, "
         "--train_batch_size=32); at most 9223372036854775807 fit",
         ("--do_train", "--num_train_epochs=1e30")),
    Case("heads-do-not-divide-hidden", "{case}/bert/config.json: num_attention_heads (3) does "
         "not divide hidden_size (32)", ("--do_train", "--init_checkpoint={case}/bert"),
         prepare=edit_file("config.json", set_config(num_attention_heads=3))),
    Case("processor-unknown-metric", "--task_name=mine: unknown metric 'bleu'; expected one of "
         "accuracy, mcc, f1, acc_and_f1, corr, micro_f1", MINE,
         prepare=processor_module("    metric = 'bleu'\n")),
    Case("processor-metric-for-another-problem", "--task_name=mine: metric 'corr' scores "
         "regression, not single_label_classification", MINE,
         prepare=processor_module("    metric = 'corr'\n")),
    Case("processor-without-labels", "--task_name=mine: get_labels() returned []; expected at "
         "least 2 distinct, non-empty label names", MINE,
         prepare=processor_module("    def get_labels(self):\n        return []\n")),
    Case("checkpoint-model-replaced-in-place", "{out}/checkpoint-1: checkpoint is from a "
         "different run (model_sha256: '", ("--do_train", "--init_checkpoint={case}/bert"),
         task=SIM, prepare=replaced_model, quiet=False),
    Case("text-of-zero-width-characters", f"example train-2: text_a {chr(0x200b) * 2!r} "
         + NO_TOKENS, files={"train.tsv": COLA_OK + "gj04\t1\t\t\u200b\u200b\n"}, quiet=False),
    Case("jsonl-lone-surrogate", "{data}/train.jsonl:2: --text_a_column field is not valid "
         "Unicode (a lone surrogate, such as \\ud800 without its pair)",
         ("--do_train", "--data_format=jsonl"), task="generic",
         files={"train.jsonl": '{"text": "a dog", "label": "a"}\n'
                               '{"text": "\\ud800", "label": "b"}\n'}),
    Case("nohas-header-on-a-header", "{data}/train.csv:1: looks like a header (text, label), but "
         "--nohas_header says there is none; pass --has_header and name the columns",
         ("--do_train", "--nohas_header", "--text_a_column=0", "--label_column=1"),
         task="generic"),
    Case("lone-cr-inside-a-text", "{data}/train.tsv:2: unknown label 'yes'; expected one of 0, 1",
         files={"train.tsv": "gj04\t1\t\tA\rdog.\ngj04\tyes\t\tA cat.\n"}),  # grep -n: 2
    Case("lone-cr-line-endings", "{data}/train.tsv:1: lines end in a lone CR (classic Mac line "
         "endings); convert them to LF", files={"train.tsv": COLA_OK.replace("\n", "\r")}),
    Case("extract-output-file-is-the-vectors", "--output_vectors={case}/v.npy: the same file as "
         "--output_file={case}/v.npy; choose another path",
         ("--input_file={case}/in.txt", "--output_file={case}/v.npy",
          "--output_vectors={case}/v.npy"), prepare=IN_TXT, program="extract_features.py"),
    Case("extract-output-file-is-the-input", "--output_file={case}/in.txt: the same file as "
         "--input_file={case}/in.txt; choose another path",
         ("--input_file={case}/in.txt", "--output_file={case}/in.txt"), prepare=IN_TXT,
         program="extract_features.py"),
    Case("multilabel-empty-name-between-bars", "{data}/train.csv:4: empty label name in "
         "'sports||travel' (labels are '|'-separated)", task="multilabel_csv",
         files={"train.csv": VALID["multilabel_csv"]["train.csv"] + "a bird,sports||travel\n"}),
    Case("multilabel-trailing-bar", "{data}/train.csv:2: empty label name in 'sports|' (labels "
         "are '|'-separated)", task="multilabel_csv",
         files={"train.csv": "text,labels\nthe dog runs,sports|\n"}),
    Case("cache-dir-is-a-file", "--cache_dir={case}/file: not a directory",
         ("--do_train", "--cache_dir={case}/file"), prepare=write_at("file", "x")),
    Case("stsb-score-below-0", "{data}/train.tsv:3: score '-1' is outside the task's range 0 "
         "to 5", task="sts-b", files={"train.tsv": VALID["sts-b"]["train.tsv"]
                                      + STSB_ROW.format("-1")}),
] + [Case(f"ctrl-c-after-{t}s", INTERRUPTED, ("--do_train", "--num_train_epochs=10000"), task=SIM,
          code=130, quiet=False, interrupt_at=t) for t in (0.5, 2.5)] + [
    Case("sigterm-after-2.5s", INTERRUPTED, ("--do_train", "--num_train_epochs=10000"), task=SIM,
         code=143, quiet=False, interrupt_at=2.5, interrupt_with=signal.SIGTERM)]


def lock_file(make):
    """An output_dir whose .lock is what `make(path, case_dir)` puts there, and a victim file."""
    def prepare(case_dir, bert):
        os.makedirs(os.path.join(case_dir, "out"))
        with open(os.path.join(case_dir, "victim"), "w") as f:
            f.write("precious\n")
        make(os.path.join(case_dir, "out", ".lock"), case_dir)
    return prepare


LOCKS = [
    Case("lock-symlink", "--output_dir={out}: {out}/.lock is a symbolic link; a lock file must "
         "be a regular file (remove the link)", ("--do_train",), task=SIM, quiet=False,
         prepare=lock_file(lambda path, case: os.symlink("../victim", path))),
    Case("lock-dangling-symlink", "--output_dir={out}: {out}/.lock is a symbolic link",
         ("--do_eval", "--init_checkpoint={bert}"), task=SIM, quiet=False,
         prepare=lock_file(lambda path, case: os.symlink(os.path.join(case, "made"), path))),
    Case("lock-fifo", "--output_dir={out}: {out}/.lock is not a regular file", ("--do_train",),
         task=SIM, quiet=False, prepare=lock_file(lambda path, case: os.mkfifo(path))),
]

ALL = CASES + FLAG_CASES + ROUND_2 + LOCKS


results, test_bad_input = table(ALL, "bad_inputs")


def test_there_are_at_least_30_distinct_bad_inputs():
    assert len({case.name for case in ALL}) == len(ALL) >= 30


def test_a_full_disk_mid_write_leaves_the_old_file_and_names_the_path(tmp_path, monkeypatch):
    from modeling import disk
    path = tmp_path / "eval_results.txt"
    path.write_text("old\n")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(disk.os, "fsync", no_space)
    with pytest.raises(OSError) as info:
        disk.atomic_write_text(str(path), "new\n")
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(path))
    assert os.listdir(tmp_path) == ["eval_results.txt"] and path.read_text() == "old\n"


@pytest.fixture
def logging_restored():
    """_main's last line disables logging (nothing may print after it): undone after a test."""
    yield
    logging.disable(logging.NOTSET)


@pytest.mark.parametrize("error, code, line", [
    (OSError(errno.ENOSPC, "No space left on device", "/out/x.tsv"), 2,
     "run_classifier: error: /out/x.tsv: No space left on device"),
    (KeyboardInterrupt(), 130, "run_classifier: " + INTERRUPTED),
    (TrainingDiverged("training diverged: the loss was not finite at step 3"), 3,
     "run_classifier: error: training diverged: the loss was not finite at step 3"),
])
def test_main_turns_write_errors_and_ctrl_c_into_one_line(error, code, line, monkeypatch,
                                                          capsys, logging_restored):
    import run_classifier

    def fail(argv):
        raise error

    monkeypatch.setattr(run_classifier, "main", fail)
    with pytest.raises(SystemExit) as info:
        run_classifier._main(["run_classifier"])
    assert info.value.code == code and capsys.readouterr().err == line + "\n"


def test_ctrl_c_that_a_library_turns_into_another_error_still_exits_130(
        monkeypatch, capsys, logging_restored):
    """transformers' lazy import reports a KeyboardInterrupt inside it as ModuleNotFoundError."""
    import run_classifier
    import training.cli as cli

    def main(argv):
        try:
            cli.interrupt_handler("run_classifier", run_classifier.INTERRUPTED)(signal.SIGINT,
                                                                                None)
        except KeyboardInterrupt:
            raise ModuleNotFoundError("Could not import module 'BertForSequenceClassification'"
                                      ) from None

    monkeypatch.setattr(run_classifier, "main", main)
    with pytest.raises(SystemExit) as info:
        run_classifier._main(["run_classifier"])
    assert info.value.code == 130 and capsys.readouterr().err == (
        "run_classifier: " + INTERRUPTED + "\n")


def test_a_diverging_run_stops_and_keeps_the_last_good_checkpoint(tiny_bert, tmp_path):
    """--learning_rate=1e4 on the tiny model: exit 3 at the first non-finite loss, the last
    good checkpoint kept, valid JSON stats, no final model (one step an epoch here)."""
    from safetensors.torch import load_file
    data, out = write_similarity_data(tmp_path / "data", n_train=32, n_dev=8), tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "run_classifier.py"), f"--task_name={SIM}",
         f"--data_dir={data}", f"--output_dir={out}", f"--init_checkpoint={tiny_bert}",
         "--precision=fp32", "--do_train", "--do_eval", "--learning_rate=1e4",
         "--num_train_epochs=20", "--save_checkpoints_steps=1", "--keep_checkpoint_max=2"],
        capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    found = re.fullmatch(r"run_classifier: error: training diverged: the loss was not finite "
                         r"at step (\d+); lower --learning_rate=10000\.0\. Kept the last good "
                         r"checkpoint, (\S+); no model was saved", proc.stderr.splitlines()[-1])
    step = int(found[1])
    assert step > 2 and found[2] == str(out / f"checkpoint-{step - 1}")
    assert not {"model.safetensors", "config.json"} & set(os.listdir(out))
    assert not os.path.exists(out / f"checkpoint-{step}")

    def no_nan(constant):
        raise AssertionError(f"{constant} in training_stats.json")

    stats = json.loads((out / "training_stats.json").read_text(), parse_constant=no_nan)
    assert [row["step"] for row in stats] == list(range(1, step))
    weights = load_file(out / f"checkpoint-{step - 1}" / "model.safetensors")
    assert all(bool(w.isfinite().all()) for w in weights.values())

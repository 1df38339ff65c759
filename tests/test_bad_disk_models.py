"""Issue 29, what is on disk: model folders that ask to run their own code, damaged model,
tokenizer and ONNX files, a model with one token type on a pair task, data files that are
folders, FIFOs, devices or unreadable, and a full disk during --export. Each is one line
naming the file and what is wrong, exit 2, nothing partial left (the bad-input table's
rows, through the real command line)."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from tiny_families import write_tiny_family

from bad_input_table import (ENV, ROOT, SIM, Case, copy_bert, set_config, table,
                             truncate)
from conftest import write_similarity_data, write_tiny_bert, write_tiny_encoder

OWN_CODE = ("open({marker!r}, 'w').write('ran')\n"
            "from transformers import BertConfig\n\n\n"
            "class MyConfig(BertConfig):\n    model_type = 'my-net'\n")
AUTO_MAP = {"AutoConfig": "modeling_my_net.MyConfig",
            "AutoModelForSequenceClassification": "modeling_my_net.MyModel"}


def asks_for_own_code(folder="bert", name="config.json", **values):
    """A copy of the tiny BERT (or a trained output_dir) whose `name` asks for the folder's
    own code, and that code: it would write `{case}/PWNED` (the table checks that the case
    folder is unchanged)."""
    def prepare(case_dir, bert):
        path = os.path.join(case_dir, folder)
        if folder == "bert":
            copy_bert(case_dir, bert)
        else:
            trained_model(case_dir, bert)
        set_config(**values)(os.path.join(path, name))
        with open(os.path.join(path, "modeling_my_net.py"), "w") as f:
            f.write(OWN_CODE.format(marker=os.path.join(case_dir, "PWNED")))
    return prepare


def trained_model(case_dir, bert):
    """An output_dir as a finished sentence_similarity run leaves it (a random head)."""
    from transformers import BertConfig, BertForSequenceClassification
    out = os.path.join(case_dir, "out")
    labels = {0: "0", 1: "1"}
    config = BertConfig.from_pretrained(bert, id2label=labels, label2id={"0": 0, "1": 1},
                                        problem_type="single_label_classification")
    BertForSequenceClassification(config).save_pretrained(out)
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(os.path.join(bert, name), out)
    with open(os.path.join(out, "training_stats.json"), "w") as f:
        f.write('[{"epoch": 1, "step": 1, "train_loss": 0.7}]\n')


def damaged_onnx(name):
    """A trained output_dir with `name`, a real ONNX model, cut in half."""
    def prepare(case_dir, bert):
        import numpy as np
        import onnx
        from onnx import TensorProto, helper, numpy_helper
        trained_model(case_dir, bert)
        weight = numpy_helper.from_array(np.ones((64, 64), np.float32), "w")
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["input_ids", "w"], ["logits"])], "g",
            [helper.make_tensor_value_info("input_ids", TensorProto.FLOAT, [1, 64])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 64])], [weight])
        path = os.path.join(case_dir, "out", name)
        onnx.save(helper.make_model(graph), path)
        truncate(path)
    return prepare


def in_model(edit, name, family=None):
    """A prepare step: `edit(path)` on file `name` of a copy of the tiny BERT (or of a tiny
    model of `family`, written to {case}/<family>)."""
    def prepare(case_dir, bert):
        if family is None:
            folder = copy_bert(case_dir, bert)
        elif family in ("big_bird", "mpnet", "albert"):
            folder = write_tiny_encoder(family, os.path.join(case_dir, family))
        else:
            folder = write_tiny_family(family, os.path.join(case_dir, family))
        edit(os.path.join(folder, name))
    return prepare


def one_token_type(case_dir, bert):
    write_tiny_bert(os.path.join(case_dir, "bert"), type_vocab_size=1)


def in_data(make, name="train.csv"):
    """A prepare step: data file `name` replaced by what `make(path)` puts there."""
    def prepare(case_dir, bert):
        path = os.path.join(case_dir, "data", name)
        os.remove(path)
        make(path)
    return prepare


def unreadable(relative):
    def prepare(case_dir, bert):
        os.chmod(os.path.join(case_dir, relative), 0)
    return prepare


MODEL = "--init_checkpoint={case}/bert"
NOT_JSON = "not a valid JSON config: "
ONNX = ("--do_predict", "--predict_backend=onnxruntime")
CASES = [
    Case("own-code-auto-map", "{case}/bert/config.json: has auto_map, which asks to run the model "
         "folder's own Python code; this program never runs it (trust_remote_code stays off)",
         ("--do_train", MODEL), task=SIM,
         prepare=asks_for_own_code(model_type="my-net", auto_map=AUTO_MAP)),
    Case("own-code-auto-map-bert", "{case}/bert/config.json: has auto_map", ("--do_train", MODEL),
         task=SIM, prepare=asks_for_own_code(auto_map=AUTO_MAP)),
    Case("own-code-tokenizer", "{case}/bert/tokenizer_config.json: has auto_map",
         ("--do_train", MODEL), task=SIM, prepare=asks_for_own_code(
             name="tokenizer_config.json", auto_map={"AutoTokenizer": ["t.MyTokenizer", None]})),
    Case("own-code-output-dir", "{out}/config.json: has auto_map", ("--do_eval",), task=SIM,
         prepare=asks_for_own_code("out", auto_map=AUTO_MAP)),
    Case("unknown-model-type", "{case}/bert/config.json: model_type 'my-net' is not one "
         "transformers knows", ("--do_train", MODEL), task=SIM,
         prepare=asks_for_own_code(model_type="my-net")),
    Case("truncated-config-output-dir", "{out}/config.json: " + NOT_JSON, ("--do_eval",),
         task=SIM, prepare=lambda case_dir, bert: (
             trained_model(case_dir, bert), truncate(os.path.join(case_dir, "out/config.json")))),
    Case("truncated-config-model-dir", "{case}/bert/config.json: " + NOT_JSON,
         ("--do_train", MODEL), task=SIM, prepare=in_model(truncate, "config.json")),
    Case("truncated-tokenizer-config", "{case}/bert/tokenizer_config.json: not a valid JSON file "
         "(damaged or cut short?): ", ("--do_train", MODEL), task=SIM,
         prepare=in_model(truncate, "tokenizer_config.json")),
    Case("truncated-tokenizer-config-albert", "{case}/albert/tokenizer_config.json: not a valid "
         "JSON file", ("--do_train", "--init_checkpoint={case}/albert", "--nodo_lower_case"),
         task=SIM, prepare=in_model(truncate, "tokenizer_config.json", "albert")),
    Case("damaged-onnx", "{out}/model.onnx: not a valid ONNX model (damaged or cut short?): "
         "DecodeError: ", ONNX, task=SIM, prepare=damaged_onnx("model.onnx")),
    Case("damaged-onnx-int8", "{out}/model_int8.onnx: not a valid ONNX model", (
        "--do_predict", "--predict_backend=onnxruntime_int8"), task=SIM,
        prepare=damaged_onnx("model_int8.onnx")),
    Case("one-token-type-on-pairs", "{case}/bert/config.json: type_vocab_size is 1, but "
         "--task_name=sentence_similarity has sentence pairs (e.g. guid train-0), whose second "
         "text gets token type 1; use a model with type_vocab_size 2 or more",
         ("--do_train", MODEL), task=SIM, prepare=one_token_type),
    Case("one-token-type-on-pairs-eval", "{case}/bert/config.json: type_vocab_size is 1, but "
         "--task_name=mrpc has sentence pairs (e.g. guid dev-0)", ("--do_eval", MODEL),
         task="mrpc", prepare=one_token_type),
    Case("one-token-type-electra", "{case}/electra/config.json: type_vocab_size is 1",
         ("--do_train", "--init_checkpoint={case}/electra", "--nodo_lower_case"), task=SIM,
         prepare=in_model(set_config(type_vocab_size=1), "config.json", "electra")),
    Case("data-file-is-a-directory", "{data}/train.csv: is a directory, not a data file",
         task=SIM, prepare=in_data(os.mkdir)),
    Case("data-file-is-a-directory-generic", "{data}/train.csv: is a directory, not a data "
         "file", task="generic", prepare=in_data(os.mkdir)),
    Case("data-file-is-a-fifo", "{data}/dev.csv: not a regular file (a FIFO, device or "
         "socket); data files must be regular files", ("--do_train", "--do_eval"), task=SIM,
         prepare=in_data(os.mkfifo, "dev.csv")),
    Case("data-file-links-to-dev-zero", "{data}/train.csv: not a regular file", task=SIM,
         prepare=in_data(lambda path: os.symlink("/dev/zero", path))),
    Case("data-file-unreadable", "{data}/train.csv: permission denied", task=SIM,
         prepare=unreadable("data/train.csv"), unprivileged=True),
    Case("data-dir-unreadable", "--data_dir={data}: permission denied", task=SIM,
         prepare=unreadable("data"), unprivileged=True),
    Case("export-disk-full", "{out}/model.onnx: File too large", ("--export=onnx",), task=SIM,
         prepare=trained_model, limit_writes=True, quiet=False),
]


results, test_bad_disk_model = table(CASES, "bad_disk_models")


def test_own_code_never_runs_and_nothing_asks(tiny_bert, tmp_path):
    """A folder whose config asks for its own code: refused with stdin closed (no prompt to
    answer), the code's marker never written, whether the model is read by run_classifier
    or by transformers itself through `families` (trust_remote_code=False)."""
    from modeling import families
    asks_for_own_code(model_type="my-net", auto_map=AUTO_MAP)(str(tmp_path), tiny_bert)
    set_config(auto_map={"AutoTokenizer": ["modeling_my_net.MyTokenizer", None]})(
        str(tmp_path / "bert" / "tokenizer_config.json"))
    data = write_similarity_data(tmp_path / "data", n_train=8, n_dev=4, n_test=4)
    model, marker = str(tmp_path / "bert"), tmp_path / "PWNED"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "run_classifier.py"), f"--task_name={SIM}",
         f"--data_dir={data}", f"--output_dir={tmp_path / 'out'}", f"--init_checkpoint={model}",
         "--do_train"], stdin=subprocess.DEVNULL, capture_output=True, text=True, env=ENV,
        cwd=ROOT, timeout=300)
    assert proc.returncode == 2 and proc.stderr == (
        f"run_classifier: error: {model}/config.json: has auto_map, which asks to run the model "
        "folder's own Python code; this program never runs it (trust_remote_code stays off): "
        "use a model of a family transformers has built in\n")
    for load in (families.load_tokenizer, lambda path: families.load_config(path, 2, None, "")):
        with pytest.raises(ValueError, match="contains custom code"):  # transformers' refusal
            load(model)
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_one_token_type_is_fine_without_pairs(tiny_bert, tmp_path):
    """The type_vocab_size check refuses only what would fail: pairs on a one-type model;
    single texts pass, and a family whose tokenizer gives pairs no token types passes."""
    from modeling.model import resolve_source
    from processors import InputError
    from processors.base import InputExample
    from training.model_checks import check_token_types
    one = resolve_source(write_tiny_bert(tmp_path / "one", type_vocab_size=1), None, None)
    single = {"train": [InputExample("a", "the dog")], "dev": [InputExample("b", "a cat")]}
    pairs = {"train": [InputExample("a", "the dog")], "dev": [InputExample("b", "a", "b")]}
    check_token_types(one, "t", single)
    with pytest.raises(InputError, match=r"^.*/one/config.json: type_vocab_size is 1, but "
                       r"--task_name=t has sentence pairs \(e.g. guid b\)"):
        check_token_types(one, "t", pairs)
    roberta = write_tiny_family("roberta", str(tmp_path / "roberta"))
    with open(os.path.join(roberta, "config.json")) as f:
        assert json.load(f)["type_vocab_size"] == 1
    check_token_types(resolve_source(roberta, None, None), "t", pairs)

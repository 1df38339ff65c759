"""--export and --predict_backend on a tiny model: onnxruntime's logits equal PyTorch's, the
int8 model runs, and predict through onnxruntime writes the same files."""

import os

import numpy as np
import pytest
import torch
from absl import flags
from absl.testing import flagsaver
from tiny_families import write_tiny_family

import run_classifier
from conftest import write_similarity_data
from processors import InputError
from training.evaluation import onnx_logits, predict_logits

FLAGS = flags.FLAGS
RUN = dict(task_name="sentence_similarity", train_batch_size=8, predict_batch_size=5,
           num_train_epochs=1.0, learning_rate=1e-3, precision="fp32", max_seq_length=64,
           do_lower_case=False)


@pytest.fixture(autouse=True)
def parsed_flags():
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()


def run_main(**values):
    with flagsaver.flagsaver(**dict(RUN, **values)):
        run_classifier.main(["run_classifier"])


def read(path):
    with open(path) as f:
        return f.read()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny RoBERTa fine-tuned and exported (fp32 and int8) in one run; its test set."""
    root = tmp_path_factory.mktemp("onnx")
    model = write_tiny_family("roberta", str(root / "roberta"))
    data = write_similarity_data(root / "data", n_train=16, n_dev=8, n_test=23)
    out = str(root / "out")
    run_main(init_checkpoint=model, data_dir=data, output_dir=out, do_train=True,
             do_predict=True, export="onnx_int8")
    return out, data


def test_onnxruntime_logits_equal_pytorch(exported):
    from transformers import AutoModelForSequenceClassification
    from modeling import families
    from processors.builders import TokenizerFeatures
    from processors.cache import load_features
    out, data = exported
    assert {"model.onnx", "model_int8.onnx"} <= set(os.listdir(out))
    tokenizer = families.load_tokenizer(out)
    from processors import get_processor
    processor = get_processor("sentence_similarity", data)
    dataset = load_features(processor, data, "test",
                            TokenizerFeatures(tokenizer, families.tokenizer_files(out)),
                            os.path.join(out, "tokenizer.json"), False, 64,
                            os.path.join(out, "cache"))
    model = AutoModelForSequenceClassification.from_pretrained(out)
    torch_logits = predict_logits(model, dataset, 4, torch.device("cpu"), "fp32")
    ort = onnx_logits(os.path.join(out, "model.onnx"), dataset, 7)  # other batches, padding
    assert ort.shape == (23, 2)
    np.testing.assert_allclose(ort, torch_logits, atol=1e-4)
    int8 = onnx_logits(os.path.join(out, "model_int8.onnx"), dataset, 7)
    assert int8.shape == (23, 2) and np.isfinite(int8).all()
    assert 0 < np.abs(int8 - torch_logits).max() < 0.5  # quantized: close, not identical


@pytest.mark.parametrize("backend", ["onnxruntime", "onnxruntime_int8"])
def test_predict_backend_writes_the_same_files(exported, backend, tmp_path):
    out, data = exported
    torch_probs = np.loadtxt(os.path.join(out, "test_results.tsv"), delimiter="\t")
    torch_predictions = read(os.path.join(out, "predictions.tsv"))
    run_main(data_dir=data, output_dir=out, do_predict=True, predict_backend=backend)
    probs = np.loadtxt(os.path.join(out, "test_results.tsv"), delimiter="\t")
    np.testing.assert_allclose(probs, torch_probs, atol=1e-4 if backend == "onnxruntime" else 0.05)
    if backend == "onnxruntime":
        assert read(os.path.join(out, "predictions.tsv")) == torch_predictions
    run_main(data_dir=data, output_dir=out, do_predict=True)  # (back to PyTorch's files)
    np.testing.assert_array_equal(
        np.loadtxt(os.path.join(out, "test_results.tsv"), delimiter="\t"), torch_probs)


def test_onnx_flag_checks(exported, tmp_path):
    out, data = exported
    fresh = str(tmp_path / "fresh")
    model = os.path.join(os.path.dirname(out), "roberta")
    cases = [
        (dict(output_dir=fresh, init_checkpoint=model, do_train=True, do_predict=True,
              predict_backend="onnxruntime"),
         f"^--predict_backend=onnxruntime: no {fresh}/model.onnx; add --export=onnx$"),
        (dict(output_dir=fresh, init_checkpoint=model, do_train=True, export="onnx",
              do_predict=True, predict_backend="onnxruntime_int8"),
         "^--predict_backend=onnxruntime_int8: no .*model_int8.onnx; add --export=onnx_int8$"),
        (dict(output_dir=fresh, init_checkpoint=model, export="onnx"),
         f"^--export=onnx: needs --do_train or a trained model in --output_dir={fresh}$"),
        (dict(output_dir=out, do_eval=True, predict_backend="onnxruntime"),
         "^--predict_backend=onnxruntime: needs --do_predict$"),
    ]
    for values, message in cases:
        with pytest.raises(InputError, match=message):
            run_main(data_dir=data, **values)
    assert not os.path.exists(fresh)


def test_readme_onnxruntime_snippet(exported):
    """docs/deployment.md's 5 lines run on an exported model as printed (its path replaced)."""
    import re
    root = os.path.dirname(os.path.dirname(__file__))
    with open(os.path.join(root, "docs", "deployment.md")) as f:
        code = re.search(r"```python\n(import numpy as np, onnxruntime.*?)```", f.read(),
                         re.S).group(1)
    assert len(code.splitlines()) == 5
    namespace = {}
    exec(code.replace("/tmp/mrpc", exported[0]), namespace)
    assert namespace["logits"].shape == (1, 2) and np.isfinite(namespace["logits"]).all()


@pytest.mark.parametrize("int8", [False, True])
def test_a_full_disk_during_export_names_the_file_and_leaves_nothing(exported, tmp_path,
                                                                     monkeypatch, int8):
    """ENOSPC while model.onnx (or then model_int8.onnx) is written: the OSError names the
    final path, no temp file is left, and a file written before stays whole."""
    import errno
    from modeling import families
    from modeling.model import build_model, load_config, resolve_source
    from modeling.onnx_export import export_onnx, session
    out = exported[0]
    source = resolve_source(out, None, None)
    model = build_model(source, load_config(source.config_file, 2, ["0", "1"]), keep_head=True)
    target = tmp_path / "export"
    target.mkdir()
    synced, fsync = [], os.fsync

    def full_disk(fd):
        if len(synced) == int8:  # (the int8 run: model.onnx's is the first fsync)
            raise OSError(errno.ENOSPC, "No space left on device")
        synced.append(fd)
        fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError) as info:
        export_onnx(model, families.load_tokenizer(out), str(target), int8=int8)
    name = "model_int8.onnx" if int8 else "model.onnx"
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(target / name))
    assert sorted(os.listdir(target)) == (["model.onnx"] if int8 else [])
    if int8:
        session(str(target / "model.onnx"))  # whole


def test_a_model_onnxruntime_cannot_load_is_one_line(tmp_path):
    """A file that parses as ONNX but that onnxruntime refuses (here: an unknown operator)
    is an InputError naming it, not onnxruntime's traceback."""
    import onnx
    from onnx import TensorProto, helper
    from modeling.onnx_export import session
    graph = helper.make_graph(
        [helper.make_node("NoSuchOp", ["x"], ["logits"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1])])
    path = str(tmp_path / "model.onnx")
    onnx.save(helper.make_model(graph), path)
    with pytest.raises(InputError, match=f"^{path}: onnxruntime cannot load it \\(damaged\\?\\): "):
        session(path)

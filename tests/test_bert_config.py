"""modeling.bert_config: BERT's config read and written as transformers' BertConfig reads and
writes it, byte for byte, without importing transformers."""

import json
import os
import subprocess
import sys

import pytest
import transformers
from transformers import GenerationConfig, PreTrainedConfig

from modeling import bert_config
from modeling.families import set_task
from modeling.model import default_model_dir, load_config, read_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GOOGLE = {"attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
          "hidden_dropout_prob": 0.1, "hidden_size": 128, "initializer_range": 0.02,
          "intermediate_size": 512, "max_position_embeddings": 512, "num_attention_heads": 2,
          "num_hidden_layers": 2, "type_vocab_size": 2, "vocab_size": 30522}
ODD = {**GOOGLE, "torch_dtype": "float16", "_name_or_path": "someone/model",
       "transformers_version": "4.8.2", "gradient_checkpointing": False,
       "position_embedding_type": "absolute", "use_cache": False, "classifier_dropout": 0.2,
       "output_hidden_states": True, "output_attentions": True, "max_length": 20,
       "num_beams": 4, "temperature": 0.7, "my_key": [1, {"a": None}], "return_dict": False,
       "architectures": ["BertModel"], "_commit_hash": "abc", "chunk_size_feed_forward": 0}
TASKS = [  # (num_labels, labels, problem_type)
    (3, ["a", "b", "c"], "single_label_classification"),
    (2, ["0", "1"], "single_label_classification"),
    (2, ["LABEL_0", "LABEL_1"], "single_label_classification"),
    (1, None, "regression"),
    (4, ["w", "x", "y", "z"], "multi_label_classification")]


def both(values: dict):
    return bert_config.BertConfig(**values), transformers.BertConfig(**values)


@pytest.mark.parametrize("source", ["minilm", "google", "odd"])
@pytest.mark.parametrize("task", TASKS, ids=[t[2][:6] + str(t[0]) for t in TASKS])
def test_a_task_config_is_written_as_transformers_writes_it(source, task):
    values = {"minilm": lambda: read_config(os.path.join(default_model_dir(), "config.json")),
              "google": lambda: GOOGLE, "odd": lambda: ODD}[source]()
    ours, theirs = both(values)
    for config in (ours, theirs):
        set_task(config, *task)
        config.finetuning_task, config.global_step = "cola", 12
        config.calibration_temperature = 1.25
        config.dtype, config.architectures = "float32", ["BertForSequenceClassification"]
    assert ours.to_json_string() == theirs.to_json_string()
    assert ours.num_labels == theirs.num_labels
    assert ours.id2label == theirs.id2label and ours.label2id == theirs.label2id


def test_values_as_given_are_written_as_transformers_writes_them():
    for values in ({}, GOOGLE, ODD, {"id2label": {"0": "neg", "1": "pos"}},
                   {"num_labels": 5}, {"calibration_temperature": float("nan")}):
        ours, theirs = both(values)
        assert ours.to_json_string() == theirs.to_json_string(), values


def test_num_labels_behaves_as_transformers():
    ours, theirs = both({})
    for count in (2, 3, 3, 1, 2):
        ours.num_labels = theirs.num_labels = count
        assert (ours.id2label, ours.label2id) == (theirs.id2label, theirs.label2id)


def test_the_tables_are_those_of_the_installed_transformers():
    """A transformers upgrade that changes a default, a field or the dropped generation
    settings fails here, before it could change what a saved model says."""
    fields = transformers.BertConfig().to_dict()
    assert {k: fields[k] for k in bert_config.BERT_FIELDS} == bert_config.BERT_FIELDS
    base = PreTrainedConfig().to_dict()
    assert set(fields) - set(base) - {"output_attentions"} == set(bert_config.BERT_FIELDS)
    assert {k: base[k] for k in bert_config.BASE_DEFAULTS} == bert_config.BASE_DEFAULTS
    generation = set(GenerationConfig._get_default_generation_params()) - {"use_cache"}
    assert bert_config.GENERATION_KEYS == generation


def test_a_saved_config_reads_back_the_same(tmp_path):
    config = load_config(os.path.join(default_model_dir(), "config.json"), 3, ["a", "b", "c"])
    config.save_pretrained(str(tmp_path))
    again = load_config(str(tmp_path / "config.json"), 3, ["a", "b", "c"])
    assert again.to_json_string() == config.to_json_string()
    loaded = transformers.AutoConfig.from_pretrained(str(tmp_path))
    assert type(loaded) is transformers.BertConfig
    assert loaded.to_json_string() == config.to_json_string()
    assert json.loads(config.to_json_string())["id2label"] == {"0": "a", "1": "b", "2": "c"}


def test_reading_a_config_imports_no_transformers():
    code = ("import sys\n"
            "from modeling.model import default_model_dir, load_config\n"
            "c = load_config(default_model_dir() + '/config.json', 2, ['0', '1'])\n"
            "c.to_json_string()\n"
            "print('IMPORTED', sorted(m for m in ('transformers', 'torch') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "IMPORTED []" in done.stdout

"""Issue 29's table: damaged files a run reads back from disk (a trained model, best_model/,
checkpoints) are refused in one line naming the file, before anything is written.

A model folder this project saved carries an integrity record (disk.write_integrity);
a bit flip in any file it names is caught before torch is imported.
"""

import json
import os
import shutil
import struct


from bad_input_table import SIM, Case, table
from modeling.disk import write_integrity

DAMAGED = "damaged (its sha256 differs from integrity.json's)"


def flip_bit(path, offset, bit=7):
    """Flips one bit of the byte at `offset` of `path`, in place."""
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ (1 << bit)]))


def tensor_offset(path, name):
    """Where the bytes of tensor `name` start in a safetensors file."""
    with open(path, "rb") as f:
        header_len = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(header_len))
    return 8 + header_len + header[name]["data_offsets"][0]


def flip_weight_bit(path, name="classifier.weight"):
    """The issue's flip: bit 7 of byte 2 of `name`'s first float (its lowest exponent bit),
    so the weight halves or doubles: loadable, finite, and wrong."""
    flip_bit(path, tensor_offset(path, name) + 2)


def saved_model(case_dir, bert):
    """An output_dir as a finished run leaves it: the model with its integrity record
    (as save_model writes it), best_model/ likewise, the stats."""
    out = shutil.copytree(bert, os.path.join(case_dir, "out"))
    write_integrity(out, os.listdir(out))
    best = shutil.copytree(bert, os.path.join(out, "best_model"))
    write_integrity(best, os.listdir(best))
    with open(os.path.join(out, "training_stats.json"), "w") as f:
        f.write('[{"epoch": 1, "step": 1, "train_loss": 0.7}]\n')
    return out


def damaged(relative, edit):
    """A prepare step: a saved model with `edit(path)` applied to one of its files."""
    def prepare(case_dir, bert):
        edit(os.path.join(saved_model(case_dir, bert), relative))
    return prepare


def first_weight_flipped(path):
    with open(path, "rb") as f:
        header_len = struct.unpack("<Q", f.read(8))[0]
    flip_bit(path, 8 + header_len + 2)


def config_edited(path):
    """Still valid JSON, and a valid config: only the record tells."""
    with open(path) as f:
        config = json.load(f)
    with open(path, "w") as f:
        json.dump({**config, "hidden_dropout_prob": 0.5}, f)


def truncated(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def flipped_checkpoint(case_dir, bert):
    """The only checkpoint of an unfinished run, one bit of its weights flipped."""
    import torch
    from training.checkpoint import save_checkpoint
    out = os.path.join(case_dir, "out")
    os.makedirs(out)
    path = save_checkpoint(out, torch.nn.Linear(2, 2), {"global_step": 3, "signature": {}},
                           keep_max=1)
    flip_weight_bit(os.path.join(path, "model.safetensors"), "weight")


EVAL = ("--do_eval",)
CASES = [
    Case("flipped-final-weights", "{out}/model.safetensors: " + DAMAGED, EVAL,
         prepare=damaged("model.safetensors", first_weight_flipped)),
    Case("flipped-final-weights-predict", "{out}/model.safetensors: " + DAMAGED,
         ("--do_predict",), prepare=damaged("model.safetensors", first_weight_flipped)),
    Case("edited-final-config", "{out}/config.json: " + DAMAGED, EVAL,
         prepare=damaged("config.json", config_edited)),
    Case("edited-final-vocab", "{out}/vocab.txt: " + DAMAGED, EVAL,
         prepare=damaged("vocab.txt", lambda path: open(path, "a").write("extra\n"))),
    Case("missing-final-tokenizer-config", "{out}/tokenizer_config.json: No such file or "
         "directory (named in integrity.json)", EVAL,
         prepare=damaged("tokenizer_config.json", os.remove)),
    Case("truncated-integrity-record", "{out}/integrity.json: integrity record is unreadable "
         "(JSONDecodeError)", EVAL, prepare=damaged("integrity.json", truncated)),
    Case("flipped-best-model-as-init-checkpoint", "{out}/best_model/model.safetensors: "
         + DAMAGED, ("--do_train", "--init_checkpoint={out}/best_model",
                     "--output_dir={case}/new"),
         prepare=damaged("best_model/model.safetensors", first_weight_flipped)),
    Case("flipped-final-weights-extract-features", "{out}/model.safetensors: " + DAMAGED,
         ("--init_checkpoint={out}", "--input_file={case}/in.txt",
          "--output_vectors={case}/v.npy"), program="extract_features.py",
         prepare=damaged("model.safetensors", first_weight_flipped),
         files={"../in.txt": "the dog runs\n"}),
    Case("flipped-only-checkpoint", "{out}/checkpoint-3: checkpoint is unreadable and no "
         "earlier one is readable; pass --overwrite_output_dir to start over", task=SIM,
         prepare=flipped_checkpoint, quiet=False),
]


results, test_bad_disk_file = table(CASES, "bad_disk")

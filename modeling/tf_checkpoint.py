"""Load Google's original TensorFlow BERT checkpoints into PyTorch without TensorFlow.

A TF V2 checkpoint ``PREFIX`` is ``PREFIX.index`` (a LevelDB-style sorted table
mapping variable names to serialized ``BundleEntryProto``s) plus data shards
``PREFIX.data-SSSSS-of-NNNNN`` holding raw little-endian tensor bytes.  The table
and the protobuf wire format are parsed here by hand, so neither TensorFlow nor
protobuf is needed.
"""

import os
import re
from collections.abc import Mapping

import numpy as np
import torch

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_LEN = 48  # two varint64 block handles padded to 40 bytes, then the 8-byte magic
_BLOCK_TRAILER_LEN = 5  # compression type byte + masked crc32c
# TF DataType enum -> numpy dtype; bfloat16 (14) is read as uint16 and widened to float32.
_DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 5: "<i2", 6: "i1", 9: "<i8", 10: "?", 14: "<u2", 19: "<f2"}
_DT_BFLOAT16 = 14
# Optimizer slots, the step counter, pretraining heads and a fine-tuned run_classifier head.
_SKIPPED = re.compile(
    r".*/adam_[mv]|global_step|cls/(predictions|seq_relationship)/.*|output_(weights|bias)")


def _crc32c_table():
    table = []
    for n in range(256):
        for _ in range(8):
            n = (n >> 1) ^ (0x82F63B78 if n & 1 else 0)
        table.append(n)
    return table


_CRC32C_TABLE = _crc32c_table()


def _masked_crc32c(data):
    """CRC-32C of data, masked as TF stores it; pure Python, so only a few MB/s."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(buf, pos):
    """Decode a base-128 varint at pos; return (value, next position)."""
    value = shift = 0
    while True:
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7


def _proto_fields(buf):
    """Parse protobuf wire format into {field number: [values]} (ints, or bytes for length-delimited)."""
    fields, pos = {}, 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        wire = tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = bytes(buf[pos : pos + size]), pos + size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            value, pos = int.from_bytes(buf[pos : pos + width], "little"), pos + width
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.setdefault(tag >> 3, []).append(value)
    return fields


def _block_entries(index, handle, prefix, verify_crc):
    """Yield (key, value) from the table block at handle (offset, size); keys are prefix-compressed."""
    offset, size = handle
    block = index[offset : offset + size]
    trailer = index[offset + size : offset + size + _BLOCK_TRAILER_LEN]
    if len(trailer) != _BLOCK_TRAILER_LEN:
        raise ValueError(f"{prefix}.index: truncated table block at offset {offset}")
    if trailer[0] != 0:
        raise ValueError(f"{prefix}.index: compressed table block (type {trailer[0]}) is not supported")
    if verify_crc and _masked_crc32c(block + trailer[:1]) != int.from_bytes(trailer[1:], "little"):
        raise ValueError(f"{prefix}.index: crc32c mismatch in table block at offset {offset}")
    num_restarts = int.from_bytes(block[-4:], "little")
    end, pos, key = len(block) - 4 * (num_restarts + 1), 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        yield key, block[pos : pos + value_len]
        pos += value_len


def _read_index(prefix, verify_crc):
    """Return {key: serialized proto} from PREFIX.index, walking the index block to every data block."""
    with open(prefix + ".index", "rb") as f:
        index = f.read()
    if len(index) < _FOOTER_LEN or int.from_bytes(index[-8:], "little") != _TABLE_MAGIC:
        raise ValueError(f"{prefix}.index: not a TensorFlow checkpoint index (bad footer magic)")
    pos = len(index) - _FOOTER_LEN
    for _ in range(2):  # skip the metaindex handle; TF writes an empty metaindex block
        _, pos = _varint(index, pos)
    index_offset, pos = _varint(index, pos)
    index_size, _ = _varint(index, pos)
    entries = {}
    for _, handle in _block_entries(index, (index_offset, index_size), prefix, verify_crc):
        offset, pos = _varint(handle, 0)
        for key, value in _block_entries(index, (offset, _varint(handle, pos)[0]), prefix, verify_crc):
            entries[key.decode("utf-8", "backslashreplace")] = value
    return entries


def _read_tensor(f, shard_path, name, entry, prefix, verify_crc):
    """Read one tensor described by a parsed BundleEntryProto from the open data shard f."""
    dtype_id = entry.get(1, [1])[0]
    if dtype_id not in _DTYPES:
        raise ValueError(f"{prefix}: variable {name!r} has unsupported TF dtype {dtype_id} (strings: skip them)")
    if 7 in entry:
        raise ValueError(f"{prefix}: variable {name!r} is partitioned (slices), which is not supported")
    dims = [_proto_fields(d) for d in _proto_fields(entry[2][0]).get(2, [])] if 2 in entry else []
    shape = tuple(d.get(1, [0])[0] for d in dims)
    dtype = np.dtype(_DTYPES[dtype_id])
    offset, size = entry.get(4, [0])[0], entry.get(5, [0])[0]
    if size != dtype.itemsize * int(np.prod(shape)):
        raise ValueError(f"{prefix}: variable {name!r} has {size} bytes, expected {shape} x {dtype.itemsize}")
    f.seek(offset)
    buf = bytearray(size)
    if f.readinto(buf) != size:
        have = os.fstat(f.fileno()).st_size
        raise ValueError(
            f"{shard_path}: truncated data shard: {name!r} needs bytes {offset}..{offset + size}, file has {have}"
        )
    if verify_crc and _masked_crc32c(buf) != entry.get(6, [0])[0]:
        raise ValueError(f"{prefix}: crc32c mismatch for variable {name!r}")
    array = np.frombuffer(buf, dtype).reshape(shape)
    if dtype_id == _DT_BFLOAT16:
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def read_tf_checkpoint(prefix: str, skip=None, verify_crc: bool = False) -> dict[str, np.ndarray]:
    """Read every variable of the TF V2 checkpoint PREFIX into numpy arrays.

    Variables for which ``skip(name)`` is true are not read at all (saves memory on
    Adam slots; string tensors can only be skipped).  ``verify_crc`` checks each
    tensor's crc32c in pure Python (a few MB/s: meant for small checkpoints).
    """
    entries = _read_index(prefix, verify_crc)
    header = _proto_fields(entries.pop("", b""))
    if header.get(2, [0])[0] != 0:
        raise ValueError(f"{prefix}: big-endian checkpoints are not supported")
    num_shards = header.get(1, [1])[0]
    shards, out = {}, {}
    try:
        for name, raw in entries.items():
            if skip is not None and skip(name):
                continue
            entry = _proto_fields(raw)
            shard_id = entry.get(3, [0])[0]
            shard_path = f"{prefix}.data-{shard_id:05d}-of-{num_shards:05d}"
            if shard_id not in shards:
                shards[shard_id] = open(shard_path, "rb")
            out[name] = _read_tensor(shards[shard_id], shard_path, name, entry, prefix, verify_crc)
    finally:
        for f in shards.values():
            f.close()
    return out


def is_tf_checkpoint(path: str) -> bool:
    """True when path is a TF checkpoint prefix, i.e. ``path + '.index'`` exists."""
    return os.path.isfile(path + ".index")


def is_skipped_variable(name: str) -> bool:
    """True for checkpoint variables a classifier does not need: Adam slots, global_step, pretraining heads."""
    return _SKIPPED.fullmatch(name) is not None


def _bert_variables(config):
    """Map each Google BERT variable name to (transformers key, expected TF shape)."""
    get = config.__getitem__ if isinstance(config, Mapping) else lambda key: getattr(config, key)
    h, inter = get("hidden_size"), get("intermediate_size")
    embeddings = {"word": "vocab_size", "token_type": "type_vocab_size", "position": "max_position_embeddings"}
    table = {
        f"bert/embeddings/{kind}_embeddings": (f"bert.embeddings.{kind}_embeddings.weight", (get(size_key), h))
        for kind, size_key in embeddings.items()
    }

    def dense(tf_name, hf_name, n_in, n_out):
        table[tf_name + "/kernel"] = (f"bert.{hf_name}.weight", (n_in, n_out))
        table[tf_name + "/bias"] = (f"bert.{hf_name}.bias", (n_out,))

    def layer_norm(tf_name, hf_name):
        table[tf_name + "/gamma"] = (f"bert.{hf_name}.weight", (h,))
        table[tf_name + "/beta"] = (f"bert.{hf_name}.bias", (h,))

    layer_norm("bert/embeddings/LayerNorm", "embeddings.LayerNorm")
    for i in range(get("num_hidden_layers")):
        tf_layer, hf_layer = f"bert/encoder/layer_{i}", f"encoder.layer.{i}"
        for part in ("query", "key", "value"):
            dense(f"{tf_layer}/attention/self/{part}", f"{hf_layer}.attention.self.{part}", h, h)
        dense(f"{tf_layer}/attention/output/dense", f"{hf_layer}.attention.output.dense", h, h)
        layer_norm(f"{tf_layer}/attention/output/LayerNorm", f"{hf_layer}.attention.output.LayerNorm")
        dense(f"{tf_layer}/intermediate/dense", f"{hf_layer}.intermediate.dense", h, inter)
        dense(f"{tf_layer}/output/dense", f"{hf_layer}.output.dense", inter, h)
        layer_norm(f"{tf_layer}/output/LayerNorm", f"{hf_layer}.output.LayerNorm")
    dense("bert/pooler/dense", "pooler.dense", h, h)
    return table


def tf_to_bert_state_dict(variables: dict, config, source: str = "TF checkpoint") -> dict[str, torch.Tensor]:
    """Rename Google's BERT variables to ``bert.``-prefixed transformers keys, transposing dense kernels.

    ``config`` is bert_config.json as a dict or a config object with the same
    attribute names; ``source`` (the checkpoint path) starts every error message.
    Unknown variables, shapes that disagree with the config and missing weights
    raise ValueError; variables on the skip list are ignored.
    """
    table = _bert_variables(config)
    state = {}
    for name, value in variables.items():
        if name not in table:
            if is_skipped_variable(name):
                continue
            raise ValueError(f"{source}: unknown variable {name!r} (not a BERT weight nor on the skip list)")
        key, shape = table[name]
        if tuple(value.shape) != shape:
            raise ValueError(f"{source}: variable {name!r} has shape {tuple(value.shape)}, config implies {shape}")
        state[key] = torch.from_numpy(np.ascontiguousarray(value.T if name.endswith("/kernel") else value))
    missing = sorted(set(table) - set(variables))
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ValueError(f"{source}: missing variable {missing[0]!r}{more}")
    return state


def load_tf_bert_state_dict(prefix: str, config) -> dict[str, torch.Tensor]:
    """Read the TF BERT checkpoint PREFIX (skipping Adam slots etc.) as a ``bert.``-prefixed state dict."""
    return tf_to_bert_state_dict(read_tf_checkpoint(prefix, skip=is_skipped_variable), config, source=prefix)

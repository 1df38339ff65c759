"""The GPU's code path on the CPU: `cuda_path` takes a CUDA run's branches, and a step then
creates every tensor on the run's device and never waits for the device.

Every tensor is checked by running the step with `torch.device("meta")` as the default
device: a tensor made without the run's device lands on meta (on a GPU it would be a CPU
tensor, one host-to-device copy a step) and shows. Host syncs are the aten ops that read
a device value on the host (`.item()`, `.tolist()`, `nonzero`...).
"""

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from modeling.model import build_model, load_config, resolve_source
from processors.cache import FeatureSet
from processors.features import InputFeatures
from training import loop as training
from training.data import LENGTH_BUCKET, inference_batch_size, iterate, train_batches
from training.optimization import create_optimizer

# Ops whose result the host reads: on CUDA each one waits for the queued kernels.
SYNC_OPS = ("_local_scalar_dense", "nonzero", "is_nonzero", "equal", "masked_select",
            "unique", "_unique2", "repeat_interleave")
CPU = torch.device("cpu")


class Recorder(TorchDispatchMode):
    """Every aten op run, and the devices of the tensors each one returns."""

    def __init__(self):
        super().__init__()
        self.ops, self.devices = [], {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        self.ops.append(name)
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.devices.setdefault(t.device.type, set()).add(name)
        return out

    def syncs(self) -> list[str]:
        return [op for op in self.ops if op in SYNC_OPS]


def tiny_model(tiny_bert):
    source = resolve_source(tiny_bert, None, None)
    torch.manual_seed(0)
    return build_model(source, load_config(source.config_file, 2, ["0", "1"]))


def features(count: int, seed: int = 0) -> FeatureSet:
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(count):
        length = int(torch.randint(4, 30, (1,), generator=g))
        ids = [2] + torch.randint(5, 60, (length - 2,), generator=g).tolist() + [3]
        rows.append(InputFeatures(ids, [1] * length, [0] * length, i % 2))
    return FeatureSet.from_features(rows)


def args_for(tmp_path, precision: str, cuda_path: bool) -> training.TrainArgs:
    return training.TrainArgs(str(tmp_path), 8, 1, 1e-3, 1.0, 0.1, 0.01, 1e-6, 1.0,
                              10 ** 9, 1, 0, precision, cuda_path=cuda_path)


def recorded_steps(tiny_bert, tmp_path, monkeypatch, precision: str, cuda_path: bool,
                   meta: bool = True) -> Recorder:
    """Two training steps (the loop's own `train_on`), recorded (with meta as the default
    device unless `meta` is False);
    `recorder.sdpa` counts the SDPA calls (on the CPU, with dropout, it runs as plain ops)."""
    import torch.nn.functional as F
    real, sdpa = F.scaled_dot_product_attention, []
    monkeypatch.setattr(F, "scaled_dot_product_attention",
                        lambda *args, **kwargs: sdpa.append(1) or real(*args, **kwargs))
    model = tiny_model(tiny_bert).train()
    data = features(16)
    loop = training._Loop(model, data, args_for(tmp_path, precision, cuda_path), CPU, {})
    batches = list(iterate(data, train_batches(data.lengths(), 8, 0, 0), CPU))
    recorder = Recorder()
    with training.sparse_word_embeddings(model, CPU, cuda_path), \
            torch.device("meta" if meta else "cpu"), recorder:
        for batch in batches:
            loop.train_on(batch)
    assert loop.step == 2 and math.isfinite(loop.flush())
    recorder.sdpa = len(sdpa)
    return recorder


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_a_cuda_path_step_makes_every_tensor_on_the_device_and_never_syncs(
        tiny_bert, tmp_path, monkeypatch, precision):
    """fp16: the grad scaler (torch's CPU one here) with the fused optimizer, no sync."""
    recorder = recorded_steps(tiny_bert, tmp_path, monkeypatch, precision, cuda_path=True)
    assert set(recorder.devices) == {"cpu"}, recorder.devices.get("meta")
    assert recorder.syncs() == []
    ops = set(recorder.ops)
    assert "bernoulli_" in ops and "random_" not in ops  # torch's dropout, no CPU bits
    assert recorder.sdpa == 2  # every full layer (one of two) in each step: SDPA
    assert "_coalesce" not in ops  # a dense word-embedding gradient
    assert "_fused_adamw_" in ops
    assert ("_amp_foreach_non_finite_check_and_unscale_" in ops) == (precision == "fp16")


def test_the_cpu_path_is_another_path_and_the_recorder_sees_its_syncs(
        tiny_bert, tmp_path, monkeypatch):
    """Without the switch the same step takes the CPU's branches: the bits, the plain
    attention, sparse rows (whose `nonzero` is a sync the recorder catches). Its dropout
    makes tensors of Python numbers without a device (fine on the CPU): with meta as the
    default device that fails, as such a tensor would be a copy a step on a GPU."""
    with pytest.raises(RuntimeError, match="meta"):
        recorded_steps(tiny_bert, tmp_path / "meta", monkeypatch, "fp32", cuda_path=False)
    recorder = recorded_steps(tiny_bert, tmp_path, monkeypatch, "fp32", cuda_path=False,
                              meta=False)
    ops = set(recorder.ops)
    assert "random_" in ops and "bernoulli_" not in ops and recorder.sdpa == 0
    assert "_coalesce" in ops  # the sparse word-embedding gradient
    assert "nonzero" in recorder.syncs()


def test_fp16_grad_scaler_skips_an_inf_step_and_halves_the_scale(tiny_bert, tmp_path):
    """The fused BertAdamW with clipping, under torch's CPU grad scaler: a step whose
    gradients overflow leaves weights and Adam's moments alone and halves the scale; the
    next step updates."""
    model = tiny_model(tiny_bert).train()
    args = args_for(tmp_path, "fp16", cuda_path=True)
    optimizer, scheduler = create_optimizer(model, 1e-3, 0.01, 1e-6, 10, 0)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    data = features(8)
    batch = next(iterate(data, [list(range(8))], CPU))
    overflow = [True]  # the first backward's classifier gradient overflows

    def first_overflows(grad):
        return grad * math.inf if overflow and overflow.pop() else grad
    model.classifier.weight.register_hook(first_overflows)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    forward = training.training_forward(False, "fp16", cuda_path=True)
    step = training.distributed.wrap(model, forward)
    training._train_step(step, dict(batch), args, CPU, optimizer, scheduler, scaler)
    assert scaler.get_scale() == 2.0 ** 9
    for name, param in model.named_parameters():
        assert torch.equal(param, before[name]), name  # no update, no weight decay
    assert all(int(s["step"]) == 0 for s in optimizer.state.values())
    training._train_step(step, dict(batch), args, CPU, optimizer, scheduler, scaler)
    assert scaler.get_scale() == 2.0 ** 9  # (it grows back only after 2000 good steps)
    assert not torch.equal(model.classifier.weight, before["classifier.weight"])
    assert all(int(s["step"]) == 1 for s in optimizer.state.values())


def test_cuda_batches_pad_to_length_buckets_and_the_next_one_is_ready_first(monkeypatch):
    data = features(12)
    lengths = data.lengths()
    batches = [[0, 1, 2], [3, 4], [5]]
    made = []
    real = FeatureSet.batch
    monkeypatch.setattr(FeatureSet, "batch", lambda dataset, indices: made.append(
        len(indices)) or real(dataset, indices))
    out = iterate(data, batches, CPU, bucket=LENGTH_BUCKET)
    first = next(out)
    assert made == [3, 2]  # the second batch was prepared before the first was handed over
    widths = [first["input_ids"].shape[1]] + [b["input_ids"].shape[1] for b in out]
    for width, batch in zip(widths, batches):
        longest = max(lengths[i] for i in batch)
        assert width == min(-(-longest // LENGTH_BUCKET) * LENGTH_BUCKET, max(lengths))
    assert first["attention_mask"].sum(1).tolist() == [lengths[i] for i in batches[0]]
    assert next(iterate(data, batches, CPU))["input_ids"].shape[1] == max(
        lengths[i] for i in batches[0])  # the CPU pads to the batch's longest row only


def test_inference_batches_fill_a_gpu_when_the_user_sets_none():
    assert inference_batch_size(CPU, 128) == 8  # Google's default
    cuda = torch.device("cuda")
    assert inference_batch_size(cuda, 128) == 128
    assert inference_batch_size(cuda, 512) == 32
    assert inference_batch_size(cuda, 16) == 128

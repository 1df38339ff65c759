"""BertAdamW: the same updates as torch's AdamW after clip_grad_norm_, dense or sparse."""

import copy

import pytest
import torch

from training.optimization import SEEN_ROWS, BertAdamW, linear_schedule


def _params(seed=0):
    torch.manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(50, 8)), torch.nn.Parameter(torch.randn(8, 8)),
            torch.nn.Parameter(torch.randn(8))]


def _groups(params):
    return [{"params": params[:2], "weight_decay": 0.01}, {"params": params[2:],
                                                           "weight_decay": 0.0}]


def _grads(step: int):
    """Gradients for step `step`: rows 3, 7 (every step) and 10 + step (once) of the table."""
    g = torch.Generator().manual_seed(step)
    rows = torch.tensor([3, 7, 10 + step, 3])  # a repeated row: sparse values add up
    values = torch.randn(4, 8, generator=g) * 3
    sparse = torch.sparse_coo_tensor(rows[None], values, (50, 8), check_invariants=True)
    return sparse, torch.randn(8, 8, generator=g), torch.randn(8, generator=g)


@pytest.mark.parametrize("sparse,fused", [(True, True), (False, True), (False, False)])
def test_clip_and_step_matches_torch_adamw_after_clipping(sparse, fused):
    ours, ref = _params(), _params()
    opt = BertAdamW(_groups(ours), lr=1e-2, eps=1e-6, fused=fused)
    ref_opt = torch.optim.AdamW(_groups(ref), lr=1e-2, eps=1e-6)
    for step in range(6):
        emb, w, b = _grads(step)
        for p, g in zip(ours, (emb if sparse else emb.to_dense(), w, b)):
            p.grad = g.clone()
        for p, g in zip(ref, (emb.to_dense(), w, b)):
            p.grad = g.clone()
        norm = opt.clip_and_step(1.0)
        ref_norm = torch.nn.utils.clip_grad_norm_(ref, 1.0)
        ref_opt.step()
        assert norm.item() == pytest.approx(ref_norm.item(), rel=1e-6)
        assert norm.item() > 1.0  # the clip is active
        for p, q in zip(ours, ref):
            torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-6)
    untouched = ours[0][20:].detach()  # rows that never had a gradient: only weight decay
    expected = _params()[0][20:].detach() * (1 - 1e-2 * 0.01) ** 6
    torch.testing.assert_close(untouched, expected)
    if sparse:
        seen = opt.state[ours[0]][SEEN_ROWS]
        assert seen.nonzero().squeeze(1).tolist() == [3, 7, 10, 11, 12, 13, 14, 15]


def test_unclipped_gradients_are_unchanged():
    ours, ref = _params(), _params()
    opt = BertAdamW(_groups(ours), lr=1e-2, fused=True)
    ref_opt = torch.optim.AdamW(_groups(ref), lr=1e-2)
    for p, q in zip(ours, ref):
        p.grad = torch.full_like(p, 1e-3)
        q.grad = torch.full_like(q, 1e-3)
    assert opt.clip_and_step(1.0).item() < 1.0
    ref_opt.step()
    for p, q in zip(ours, ref):
        torch.testing.assert_close(p.detach(), q.detach())


def test_sparse_steps_resume_from_a_state_dict_and_from_dense_moments():
    """A saved state resumes exactly; a dense AdamW state (no seen rows) is taken up too."""
    ours = _params()
    opt = BertAdamW(_groups(ours), lr=1e-2, fused=True)
    for step in range(3):
        for p, g in zip(ours, _grads(step)):
            p.grad = g.clone()
        opt.clip_and_step(1.0)
    saved, weights = copy.deepcopy(opt.state_dict()), [p.detach().clone() for p in ours]
    without_rows = copy.deepcopy(saved)
    del without_rows["state"][0][SEEN_ROWS]
    results = []
    for state in (saved, without_rows):
        params = [torch.nn.Parameter(w.clone()) for w in weights]
        resumed = BertAdamW(_groups(params), lr=1e-2, fused=True)
        resumed.load_state_dict(state)
        for step in range(3, 5):
            for p, g in zip(params, _grads(step)):
                p.grad = g.clone()
            resumed.clip_and_step(1.0)
        results.append(params)
    for step in range(3, 5):
        for p, g in zip(ours, _grads(step)):
            p.grad = g.clone()
        opt.clip_and_step(1.0)
    for params in results:
        for p, q in zip(params, ours):
            assert torch.equal(p, q)


def _tiny_model(tiny_bert):
    from modeling.model import build_model, load_config, resolve_source
    source = resolve_source(tiny_bert, None, None)
    torch.manual_seed(0)
    return build_model(source, load_config(source.config_file, 2, ["0", "1"]))


def _train_tiny(tiny_bert, tmp_path, name):
    from processors.cache import FeatureSet
    from processors.features import InputFeatures
    from training.loop import TrainArgs, train
    model = _tiny_model(tiny_bert)
    g = torch.Generator().manual_seed(0)
    features = []
    for i in range(48):
        n = 4 + i % 9
        ids = [2] + torch.randint(5, 60, (n - 2,), generator=g).tolist() + [3]
        features.append(InputFeatures(ids, [1] * n, [0] * n, i % 2))
    args = TrainArgs(str(tmp_path / name), 8, 1, 1e-3, 2.0, 0.1, 0.01, 1e-6, 1.0, 1000, 1, 0,
                     "fp32")
    train(model, FeatureSet.from_features(features), args, torch.device("cpu"), {})
    return model


def test_training_with_sparse_embedding_gradients_equals_dense(tiny_bert, tmp_path, monkeypatch):
    import contextlib
    from training import loop as training
    seen = []
    step = BertAdamW.step

    def recording_step(self, closure=None):
        seen.append(self.param_groups[0]["params"][0].grad.is_sparse)
        return step(self, closure)

    monkeypatch.setattr(BertAdamW, "step", recording_step)
    sparse = _train_tiny(tiny_bert, tmp_path, "sparse")
    assert seen and all(seen)  # the word embeddings (first parameter) took sparse gradients
    assert not sparse.bert.embeddings.word_embeddings.sparse  # reset after training
    monkeypatch.setattr(training, "sparse_word_embeddings",
                        lambda *args: contextlib.nullcontext())
    seen.clear()
    dense = _train_tiny(tiny_bert, tmp_path, "dense")
    assert seen and not any(seen)
    for (name, p), q in zip(sparse.named_parameters(), dense.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
    initial = _tiny_model(tiny_bert).bert.embeddings.word_embeddings.weight.detach()
    assert not torch.equal(sparse.bert.embeddings.word_embeddings.weight[5:60], initial[5:60])


@pytest.mark.parametrize("sparse", [True, False])
def test_a_non_finite_gradient_norm_skips_the_step(sparse):
    """The weights, moments and step count stay as they were; the next step goes on."""
    ours = _params()
    opt = BertAdamW(_groups(ours), lr=1e-2, fused=True)
    for p, g in zip(ours, _grads(0)):
        p.grad = g.clone() if sparse or not g.is_sparse else g.to_dense()
    opt.clip_and_step(1.0)
    saved, weights = copy.deepcopy(opt.state_dict()), [p.detach().clone() for p in ours]
    emb, w, b = _grads(1)
    w[2, 3] = float("nan")
    for p, g in zip(ours, (emb if sparse else emb.to_dense(), w, b)):
        p.grad = g
    assert not torch.isfinite(opt.clip_and_step(1.0))
    for p, q in zip(ours, weights):
        assert torch.equal(p.detach(), q)
    after = opt.state_dict()["state"]
    for i, state in saved["state"].items():
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(after[i][key], state[key]), (i, key)
    for p, g in zip(ours, _grads(2)):
        p.grad = g.clone() if sparse or not g.is_sparse else g.to_dense()
    opt.clip_and_step(1.0)
    assert all(torch.isfinite(p).all() and not torch.equal(p.detach(), q)
               for p, q in zip(ours, weights))


def test_the_optimizer_never_imports_dynamo():
    """torch's wrappers for a compiled optimizer step import torch._dynamo on first use;
    BertAdamW's eager methods (made, stepped, zeroed, saved, loaded) do not."""
    import os
    import subprocess
    import sys
    code = ("import sys, torch\n"
            "from training.optimization import create_optimizer\n"
            "model = torch.nn.Sequential(torch.nn.Embedding(9, 4), torch.nn.Linear(4, 2))\n"
            "optimizer, scheduler = create_optimizer(model, 1e-3, 0.01, 1e-6, 4, 1)\n"
            "for _ in range(2):\n"
            "    model(torch.tensor([[1, 2]])).sum().backward()\n"
            "    optimizer.clip_and_step(1.0)\n"
            "    scheduler.step()\n"
            "    optimizer.zero_grad()\n"
            "optimizer.load_state_dict(optimizer.state_dict())\n"
            "print('torch._dynamo' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(__file__)), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("warmup,total", [(0, 10), (3, 10), (10, 10), (4, 0), (1, 1)])
def test_the_schedule_is_transformers_linear_warmup_then_decay(warmup, total):
    """The same rate every step, and the same state dict (a checkpoint resumes either)."""
    from transformers import get_linear_schedule_with_warmup
    rates = []
    for make in (linear_schedule, get_linear_schedule_with_warmup):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
        scheduler = make(optimizer, warmup, total)
        steps = []
        for _ in range(total + 3):
            steps.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        rates.append((steps, scheduler.state_dict()))
    assert rates[0] == rates[1]
    assert rates[0][0][0] == (0.0 if warmup else 0.5) and max(rates[0][0]) <= 0.5


def test_the_global_norm_is_the_float64_norm_of_every_gradient():
    """BLAS's dot for float32 gradients on the CPU, torch's norms for the rest (a transposed
    view, bf16), summed: the float64 norm of all of them, to float32's precision."""
    from training.optimization import _global_norm
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(1536, 384, generator=g) * 1e-3, torch.randn(384, generator=g),
             torch.randn(384, 96, generator=g).t(), torch.randn(64, 64, generator=g).bfloat16()]
    expected = sum(float(t.double().pow(2).sum()) for t in grads) ** 0.5
    assert _global_norm(grads).item() == pytest.approx(expected, rel=1e-6)
    assert _global_norm(grads).dtype == torch.float32
    assert not torch.isfinite(_global_norm(grads + [torch.tensor([float("inf")])]))

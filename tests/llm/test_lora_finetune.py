"""Grader for lora-finetune's adapters: LoRALinear inside a tiny random Llama against peft's LoRA
with the same A and B copied in (outputs, gradients, dropout, merged weights), the zero-B start,
parameter counts, gradchecks, and the bottleneck adapter against its closed form."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from lora_testing import lm_loss, tiny_llama, token_ids
from peft import LoraConfig, get_peft_model
from torch import nn

REFERENCE = "airoad.llm.lora_finetune"

ALL_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _ours_and_peft(impl, targets, r, alpha, dropout=0.0, seed=0):
    """Our LoRA and peft's on copies of one Llama, B randomised in ours, A and B copied to peft."""
    base = tiny_llama(seed)
    ours = copy.deepcopy(base)
    impl.add_lora(ours, targets, r=r, alpha=alpha, dropout=dropout, seed=seed)
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets), lora_dropout=dropout)
    theirs = get_peft_model(copy.deepcopy(base), config)
    gen = torch.Generator().manual_seed(seed + 1)
    for name, module in ours.named_modules():
        if isinstance(module, impl.LoRALinear):
            with torch.no_grad():
                module.lora_B.copy_(torch.randn(module.lora_B.shape, generator=gen))
            layer = theirs.base_model.model.get_submodule(name)
            layer.lora_A["default"].weight.data.copy_(module.lora_A)
            layer.lora_B["default"].weight.data.copy_(module.lora_B)
    return base, ours, theirs


def _lora_grads(impl, model) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{part}": getattr(m, part).grad
        for name, m in model.named_modules()
        if isinstance(m, impl.LoRALinear)
        for part in ("lora_A", "lora_B")
    }


def _peft_grads(model) -> dict[str, torch.Tensor]:
    out = {}
    for name, p in model.base_model.model.named_parameters():
        if "lora_" in name:
            key = name.replace(".lora_A.default.weight", ".lora_A")
            out[key.replace(".lora_B.default.weight", ".lora_B")] = p.grad
    return out


@pytest.mark.parametrize(
    "targets,r,alpha",
    [(("q_proj", "v_proj"), 2, 4.0), (ALL_LINEARS, 4, 16.0), (("down_proj",), 1, 1.0)],
)
def test_outputs_and_gradients_equal_peft(impl, targets, r, alpha):
    """With the same A and B, logits and the gradients of every A and B equal peft's LoRA."""
    _, ours, theirs = _ours_and_peft(impl, targets, r, alpha)
    ids = token_ids()
    torch.testing.assert_close(
        ours(input_ids=ids).logits,
        theirs(input_ids=ids).logits,
        atol=1e-10,
        rtol=1e-8,
        msg="logits differ from peft's: check y = base(x) + (alpha / r) x A^T B^T",
    )
    lm_loss(ours, ids).backward()
    lm_loss(theirs, ids).backward()
    mine, peft = _lora_grads(impl, ours), _peft_grads(theirs)
    assert set(mine) == set(peft), f"adapters on {sorted(mine)}, peft has {sorted(peft)}"
    for name, grad in mine.items():
        assert grad is not None, f"{name} got no gradient"
        torch.testing.assert_close(
            grad, peft[name], atol=1e-10, rtol=1e-8, msg=f"gradient of {name} differs from peft's"
        )


def test_dropout_matches_peft_in_train_mode(impl):
    """In train mode, with lora_dropout=0.3 and the same torch seed, logits equal peft's."""
    _, ours, theirs = _ours_and_peft(impl, ("q_proj", "v_proj", "up_proj"), 4, 8.0, dropout=0.3)
    ours.train()
    theirs.train()
    outs = []
    for model in (ours, theirs):
        torch.manual_seed(7)  # both draw one dropout mask per wrapped layer, in module order
        outs.append(model(input_ids=token_ids()).logits)
    torch.testing.assert_close(
        outs[0], outs[1], atol=1e-10, rtol=1e-8, msg="dropout must act on x before A, only there"
    )
    ours.eval()
    with torch.no_grad():
        again = ours(input_ids=token_ids()).logits
    assert not torch.allclose(again, outs[0]), "in eval mode dropout must be off"


def test_merge_equals_peft_merge_and_unload(impl):
    """merge_lora gives the same weights as peft's merge_and_unload() and the same logits."""
    _, ours, theirs = _ours_and_peft(impl, ALL_LINEARS, 4, 8.0)
    ids = token_ids()
    with torch.no_grad():
        before = ours(input_ids=ids).logits
        merged = impl.merge_lora(ours)
        after = merged(input_ids=ids).logits
    left = [n for n, m in merged.named_modules() if isinstance(m, impl.LoRALinear)]
    assert not left, f"LoRALinear left after merging: {left}"
    reference = theirs.merge_and_unload().state_dict()
    state = merged.state_dict()
    assert set(state) == set(reference), "merged model's parameter names differ from peft's"
    for name, value in reference.items():
        torch.testing.assert_close(
            state[name], value, atol=1e-12, rtol=1e-10, msg=f"merged {name} differs from peft's"
        )
    torch.testing.assert_close(after, before, atol=1e-10, rtol=1e-8, msg="merging changed logits")


def test_merged_layer_keeps_the_bias(impl):
    """merged() of a biased nn.Linear is W + (alpha / r) B A with the bias unchanged."""
    torch.manual_seed(0)
    lin = nn.Linear(6, 5).double()
    layer = impl.LoRALinear(lin, r=3, alpha=5.0, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        layer.lora_B.normal_()
    merged = layer.merged()
    assert isinstance(merged, nn.Linear), "merged() must return an nn.Linear"
    expected = lin.weight + (5.0 / 3) * layer.lora_B @ layer.lora_A
    torch.testing.assert_close(merged.weight, expected, msg="merged weight is not W + s B A")
    torch.testing.assert_close(merged.bias, lin.bias, msg="the bias must be copied unchanged")
    x = torch.randn(4, 6, dtype=torch.float64)
    torch.testing.assert_close(merged(x), layer(x), msg="merged layer computes something else")


def test_zero_b_start_is_the_base_model_and_only_b_learns_first(impl):
    """Fresh adapters (B = 0) leave the logits exactly the base's; the first gradient reaches only B."""
    base = tiny_llama(3)
    model = copy.deepcopy(base)
    impl.add_lora(model, ("q_proj", "v_proj"), r=4, alpha=8.0, seed=0)
    ids = token_ids(2)
    torch.testing.assert_close(
        model(input_ids=ids).logits,
        base(input_ids=ids).logits,
        atol=0.0,
        rtol=0.0,
        msg="with B = 0 the wrapped model must equal the base exactly",
    )
    lm_loss(model, ids).backward()
    for name, grad in _lora_grads(impl, model).items():
        if name.endswith("lora_A"):
            assert grad is None or not grad.any(), f"{name}: dL/dA = s B^T (...) is 0 while B = 0"
        else:
            assert grad is not None and grad.abs().sum() > 0, f"{name} must get a gradient"


def test_trainable_counts_and_frozen_base_match_peft(impl):
    """Wrapped names and (trainable, total) parameter counts equal peft's; a tied tensor counts once."""
    base = tiny_llama(0, tie=True)
    ours = copy.deepcopy(base)
    names = impl.add_lora(ours, ("q_proj", "v_proj"), r=4, alpha=8.0)
    theirs = get_peft_model(
        copy.deepcopy(base), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    )
    peft_names = [n for n, m in base.named_modules() if n.split(".")[-1] in ("q_proj", "v_proj")]
    assert names == peft_names, f"wrapped {names}, expected {peft_names}"
    assert impl.count_parameters(ours) == theirs.get_nb_trainable_parameters(), "counts differ"
    assert impl.count_parameters(base) == (sum(p.numel() for p in base.parameters()),) * 2
    trainable = {n for n, p in ours.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith(("lora_A", "lora_B")) for n in trainable), (
        f"only LoRA matrices may train, found {sorted(trainable)[:4]}"
    )


def test_wrap_linears_matches_whole_name_components(impl):
    """wrap_linears matches the last name component exactly and raises ValueError on no match."""
    model = tiny_llama()
    with pytest.raises(ValueError):
        impl.wrap_linears(model, ("proj",), lambda lin: lin)  # "q_proj" is not "proj"
    names = impl.wrap_linears(model, ("lm_head", "o_proj"), lambda lin: nn.Sequential(lin))
    assert names == [
        "model.layers.0.self_attn.o_proj",
        "model.layers.1.self_attn.o_proj",
        "lm_head",
    ]
    assert isinstance(model.lm_head, nn.Sequential), "the layer was not replaced in place"


def test_lora_linear_gradcheck(impl):
    """Finite differences agree with autograd for LoRALinear's input, A and B (float64)."""
    torch.manual_seed(0)
    layer = impl.LoRALinear(nn.Linear(5, 4).double(), r=2, alpha=3.0)
    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    a = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)

    def f(x, a, b):
        return torch.func.functional_call(layer, {"lora_A": a, "lora_B": b}, (x,))

    assert torch.autograd.gradcheck(f, (x, a, b), eps=1e-6, atol=1e-6), "gradcheck failed"


def test_bottleneck_adapter_closed_form_identity_start_and_gradcheck(impl):
    """An adapter starts as the identity, computes h + up(gelu(down(h))) and passes gradcheck."""
    base = tiny_llama(4)
    model = copy.deepcopy(base)
    names = impl.add_adapters(model, ("o_proj", "down_proj"), bottleneck=3, seed=0)
    ids = token_ids(3)
    torch.testing.assert_close(
        model(input_ids=ids).logits,
        base(input_ids=ids).logits,
        atol=0.0,
        rtol=0.0,
        msg="with up = 0 the adapted model must equal the base exactly",
    )
    trainable, _ = impl.count_parameters(model)
    assert len(names) == 4 and trainable == 4 * (16 * 3 + 3 + 3 * 16 + 16), "adapter sizes"
    adapter = model.get_submodule(names[0])
    with torch.no_grad():
        adapter.up.weight.normal_()
        adapter.up.bias.normal_()
    x = torch.randn(2, 3, 16, dtype=torch.float64, requires_grad=True)
    h = adapter.base(x)
    expected = h + F.linear(
        F.gelu(F.linear(h, adapter.down.weight, adapter.down.bias)),
        adapter.up.weight,
        adapter.up.bias,
    )
    torch.testing.assert_close(adapter(x), expected, msg="adapter is not h + up(gelu(down(h)))")
    params = dict(adapter.named_parameters())
    names_p = [n for n, p in params.items() if p.requires_grad]
    assert sorted(names_p) == ["down.bias", "down.weight", "up.bias", "up.weight"], names_p

    def f(x, *weights):
        return torch.func.functional_call(adapter, dict(zip(names_p, weights)), (x,))

    weights = [params[n].detach().clone().requires_grad_() for n in names_p]
    assert torch.autograd.gradcheck(f, (x, *weights), eps=1e-6, atol=1e-5), "gradcheck failed"


def test_adapter_down_starts_like_nn_linear_and_rank_zero_is_refused(impl):
    """An adapter's down layer starts as nn.Linear's U(-1/sqrt(d), 1/sqrt(d)); a LoRA rank r < 1 is a ValueError."""
    base = nn.Linear(64, 64)
    adapter = impl.BottleneckAdapter(base, 32, generator=torch.Generator().manual_seed(0))
    x = torch.randn(2, 64)
    torch.testing.assert_close(adapter(x), base(x), atol=0.0, rtol=0.0, msg="up = 0: identity")
    w, bound = adapter.down.weight, 1.0 / math.sqrt(64)
    assert float(w.abs().max()) <= bound and float(w.min()) < -bound / 2 < bound / 2 < float(
        w.max()
    )
    assert float(w.std()) == pytest.approx(bound / math.sqrt(3), rel=0.1), "not U(-b, b)"
    with pytest.raises(ValueError):
        impl.LoRALinear(nn.Linear(4, 4), r=0)

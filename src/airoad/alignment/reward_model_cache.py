"""The reward models other labs load: trained once per config, kept in the artifact cache.

``load_tiny_reward_model`` (the tiny GPT backbone, judged on the cached SFT policy's pairs) and
``load_real_reward_model`` (SmolLM2 + LoRA) train on a miss with ``airoad.alignment.reward_model``
and store the result under the id ``alignment-reward-model``; ``rlhf-ppo`` optimises them. The
cache key of the tiny one includes a fingerprint of the SFT weights, so a policy retrained under
the same config gets a reward model of its own.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from airoad.alignment import tiny_lm, tiny_task
from airoad.alignment.reward_model import (
    RM_FULL,
    RM_QUICK,
    RealRewardModel,
    RewardModel,
    RMConfig,
    build_pairs,
    expected_calibration_error,
    held_out_pairs,
    pair_tensors,
    pairwise_accuracy,
    preference_probability,
    real_pair_tensors,
    score_pairs,
    train_reward_model,
)
from airoad.alignment.tiny_lm import TinyLMConfig
from airoad.errors import AiroadError
from airoad.labs import artifacts

ARTIFACT_ID = "alignment-reward-model"
Note = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rm_config_for(config: TinyLMConfig) -> RMConfig:
    """The reward-model settings that go with a tiny LM config (QUICK gets the quick ones)."""
    return RM_QUICK if config == tiny_lm.QUICK else RM_FULL


def _train_tiny(config: TinyLMConfig, rm: RMConfig, note: Note) -> tuple[RewardModel, dict]:
    loader = tiny_lm.load_sft if rm.start == "sft" else tiny_lm.load_base
    policy, _ = tiny_lm.load_sft(config, note)
    train = tiny_task.problems(rm.n_train_problems, seed=rm.seed + 20_000)
    note(f"sampling preference pairs from the SFT policy ({len(train)} problems) ...")
    train_pairs = build_pairs(policy, train, rm.k, rm.format_fraction, rm.seed)
    test_pairs = held_out_pairs(policy, rm)
    torch.manual_seed(rm.seed)
    model = RewardModel(loader(config, note)[0])
    note(f"training the reward model on {len(train_pairs)} pairs ({rm.steps} steps) ...")
    losses = train_reward_model(model, pair_tensors(train_pairs), rm.steps, rm.batch, rm.lr, rm.seed)  # fmt: skip
    r_c, r_r = score_pairs(model.eval(), pair_tensors(test_pairs))
    return model, {
        "losses": losses, "n_train_pairs": len(train_pairs), "n_test_pairs": len(test_pairs),
        "test_accuracy": pairwise_accuracy(r_c, r_r),
        "test_ece": expected_calibration_error(preference_probability(r_c, r_r)),
    }  # fmt: skip


def load_tiny_reward_model(
    config: TinyLMConfig = tiny_lm.FULL, note: Note = _stderr, rm: RMConfig | None = None
) -> RewardModel:
    """The tiny reward model in eval mode, trained on the SFT policy's pairs and cached on a miss
    (key: the RM config, by default ``rm_config_for(config)``, + the tiny LM config)."""
    return load_tiny_with_info(config, note, rm)[0]


def load_tiny_with_info(
    config: TinyLMConfig = tiny_lm.FULL, note: Note = _stderr, rm: RMConfig | None = None
) -> tuple[RewardModel, dict]:
    """(the same model, its record: losses, pair counts, held-out accuracy and ECE, cpu_seconds)."""
    rm = rm or rm_config_for(config)
    if rm.start not in ("sft", "base"):
        raise ValueError(f"RMConfig.start must be 'sft' or 'base', not {rm.start!r}")
    tiny_lm.load_sft(config, note)  # trains the policy on a miss, so its fingerprint exists
    key = {"rm": dataclasses.asdict(rm), "lm": dataclasses.asdict(config), "sft": _fingerprint(config)}  # fmt: skip
    model = RewardModel(tiny_lm.new_model(config))
    return _cached("tiny", key, model, lambda: _train_tiny(config, rm, note))


def _fingerprint(config: TinyLMConfig) -> str:
    """sha256 of the cached SFT policy's weights: a policy retrained under the same config (new
    code, a race) gets a reward model of its own instead of one judged on another's samples."""
    folder = artifacts.lookup(tiny_lm.ARTIFACT_ID, dataclasses.asdict(config), "sft")
    if folder is None:
        raise AiroadError("the tiny SFT policy vanished from the artifact cache: run again")
    return json.loads((folder / artifacts.MANIFEST).read_text("utf-8"))["files"]["model.pt"]


def _cached(name: str, key: dict, empty: nn.Module, train: Callable[[], tuple[nn.Module, dict]]):
    """(model in eval mode, info) from the artifact cache; on a miss ``train()`` makes them and
    they are saved (the trainable tensors only, so a LoRA model stores just its adapters)."""
    folder = artifacts.lookup(ARTIFACT_ID, key, name)
    if folder is None:
        clock = time.process_time()
        model, info = train()
        info["cpu_seconds"] = time.process_time() - clock
        keep = {n for n, p in model.named_parameters() if p.requires_grad}
        whole = all(p.requires_grad for p in model.parameters())
        state = {n: t for n, t in model.state_dict().items() if whole or n in keep}

        def writer(out: Path) -> None:
            torch.save(state, out / "model.pt")
            (out / "info.json").write_text(json.dumps(info), "utf-8")

        try:
            folder = artifacts.save(ARTIFACT_ID, key, name, writer)
        except OSError as exc:
            raise AiroadError(
                f"cannot store the reward model in the artifact cache ({exc.strerror}: "
                f"{exc.filename}): make the data folder writable or point AIROAD_DATA_DIR at one"
            ) from None
    state = torch.load(folder / "model.pt", weights_only=True)
    empty.load_state_dict(state, strict=all(p.requires_grad for p in empty.parameters()))
    return empty.eval(), json.loads((folder / "info.json").read_text("utf-8"))


@dataclass(frozen=True)
class RealRMConfig:
    """SmolLM2 + LoRA reward model: pairs, adapters, optimiser."""

    digits: int = 2
    n_train: int = 240
    n_eval: int = 100
    steps: int = 30  # each step runs SmolLM2 forward and backward on 2 x batch chats of ~50 tokens
    batch: int = 8
    lr: float = 1e-3
    lora_r: int = 8
    seed: int = 0


REAL_FULL = RealRMConfig()
REAL_QUICK = RealRMConfig(n_train=16, n_eval=16, steps=2, batch=4)


def real_reward_model(causal_lm: nn.Module, r: int, seed: int) -> RealRewardModel:
    """SmolLM2's decoder, frozen, with LoRA (rank r) on q_proj and v_proj, plus a fresh head."""
    from airoad.llm.lora_finetune import add_lora

    decoder = causal_lm.model
    add_lora(decoder, ("q_proj", "v_proj"), r=r, alpha=2.0 * r, seed=seed)
    torch.manual_seed(seed)
    return RealRewardModel(decoder, causal_lm.config.hidden_size)


def _train_real(rm: RealRMConfig, model: RealRewardModel, tokenizer, note: Note):
    train = tiny_task.problems(rm.n_train, seed=rm.seed + 40_000, digits=rm.digits)
    test = tiny_task.problems(rm.n_eval, seed=rm.seed + 50_000, split="test", digits=rm.digits)
    held = real_pair_tensors(tokenizer, test, rm.seed + 1)
    before = pairwise_accuracy(*score_pairs(model.eval(), held))
    note(f"training the SmolLM2 reward model with LoRA ({rm.steps} steps) ...")
    tensors = real_pair_tensors(tokenizer, train, rm.seed)
    losses = train_reward_model(model, tensors, rm.steps, rm.batch, rm.lr, rm.seed)
    r_c, r_r = score_pairs(model.eval(), held)
    p = preference_probability(r_c, r_r)
    return model, {
        "losses": losses, "test_accuracy_before": before, "p_chosen": p.tolist(),
        "test_accuracy": pairwise_accuracy(r_c, r_r),
        "test_ece": expected_calibration_error(p),
    }  # fmt: skip


def load_real_reward_model(quick: bool, note: Note = _stderr) -> tuple[RealRewardModel, object, dict]:  # fmt: skip
    """(SmolLM2 reward model in eval mode, its tokenizer, info), trained with LoRA and cached
    (adapters and head only) on a miss; ``quick`` picks ``REAL_QUICK`` instead of ``REAL_FULL``."""
    from airoad.data.models import load_smollm2  # the one place this module needs the registry

    rm = REAL_QUICK if quick else REAL_FULL
    causal_lm, tokenizer = load_smollm2()
    model = real_reward_model(causal_lm, rm.lora_r, rm.seed)
    key = {"real": dataclasses.asdict(rm)}
    model, info = _cached("real", key, model, lambda: _train_real(rm, model, tokenizer, note))
    return model, tokenizer, info

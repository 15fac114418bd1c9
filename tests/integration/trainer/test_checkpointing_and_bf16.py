"""`spec.training.gradientCheckpointing` and `precision: bf16` train through the trainer's own path on CPU.

Gradient checkpointing trades compute for memory and must not change what is learned: the same
losses step for step, while each decoder layer's forward runs again during the backward pass.
bf16 on a CPU is autocast (the weights stay float32, the matrix products run in bf16): the losses
stay finite and close to float32's.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
from typing import Any

import pytest
import torch

from kubeft_trainer import config, pipeline
from kubeft_trainer import model as model_stage
from tests.fixtures.hub import HubStandIn
from tests.integration.trainer.conftest import hub_spec, logged_losses, merge

pytestmark = pytest.mark.slow

# Checkpointing recomputes the same float32 activations: the losses agree to rounding (they were
# identical when measured).
CHECKPOINTING_RTOL = 1e-6
# bf16 keeps 8 bits of mantissa; over three steps the losses stayed within 1.3e-4 of float32's
# (measured), where one step of learning moves them by 1e-2 or more.
BF16_RTOL = 2e-3


@dataclasses.dataclass
class Watch:
    """What the first decoder layer did while the pipeline trained: its attention's forward calls, matmul dtypes."""

    attention_calls: int = 0
    projection_dtypes: set[torch.dtype] = dataclasses.field(default_factory=set)


@pytest.fixture
def watch(monkeypatch: pytest.MonkeyPatch) -> Watch:
    """Hooks on the model the pipeline builds, inside its first decoder layer: attention and k_proj.

    Inside, because transformers checkpoints a layer's `forward` and leaves the layer's own hooks out
    of the recomputation. The attention holds the LoRA weights, so its forward is always replayed
    (torch stops a replay once it has what the backward needs, which may leave out the MLP).
    """
    seen = Watch()
    build = model_stage.build

    def watched_build(*args: Any, **kwargs: Any) -> Any:
        model = build(*args, **kwargs)
        modules = dict(model.named_modules())
        attention = next(m for name, m in modules.items() if name.endswith("layers.0.self_attn"))
        projection = next(m for name, m in modules.items() if name.endswith("layers.0.self_attn.k_proj"))

        def count(module: Any, args: Any, output: Any) -> None:
            if module.training:
                seen.attention_calls += 1

        attention.register_forward_hook(count)
        projection.register_forward_hook(lambda module, args, output: seen.projection_dtypes.add(output.dtype))
        return model

    monkeypatch.setattr(model_stage, "build", watched_build)
    return seen


def train(spec: dict[str, Any]) -> list[tuple[int, float]]:
    cfg = config.parse({"spec": spec}, environ=os.environ)
    pipeline.run(cfg)
    return logged_losses(cfg.tensorboard_dir)


@pytest.fixture
def spec(hub_output: HubStandIn, tiny: dict[str, pathlib.Path], matrix_data: pathlib.Path) -> dict[str, Any]:
    return merge(
        hub_spec(hub_output, model=tiny["causal-lm"], data=matrix_data, repo="kubeft-tester/options"),
        {"training": {"precision": "fp32"}},
    )


def test_gradient_checkpointing_replays_the_forward_in_the_backward_and_learns_the_same(
    spec: dict[str, Any], watch: Watch
) -> None:
    plain = train(spec)
    calls_plain = watch.attention_calls
    watch.attention_calls = 0
    checkpointed = train(merge(spec, {"training": {"gradientCheckpointing": True}}))

    # Three steps of one micro-batch: three forwards without, and each again in the backward with.
    assert (calls_plain, watch.attention_calls) == (3, 6)
    assert [step for step, _ in checkpointed] == [step for step, _ in plain] == [1, 2, 3, 3]
    assert [loss for _, loss in checkpointed] == pytest.approx([loss for _, loss in plain], rel=CHECKPOINTING_RTOL)


def test_bf16_on_cpu_trains_in_autocast_close_to_fp32(spec: dict[str, Any], watch: Watch) -> None:
    full = train(spec)
    assert watch.projection_dtypes == {torch.float32}
    watch.projection_dtypes.clear()
    half = train(merge(spec, {"training": {"precision": "bf16"}}))

    assert watch.projection_dtypes == {torch.bfloat16}, "the matrix products ran in bf16"
    assert all(math.isfinite(loss) for _, loss in half), half
    assert [loss for _, loss in half] == pytest.approx([loss for _, loss in full], rel=BF16_RTOL)

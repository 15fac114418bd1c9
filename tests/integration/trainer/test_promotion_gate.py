"""spec.promotion against the real S3 store: the adapter always lands in the run's prefix, and in
spec.output only when the final evaluation passes the gate (manifest verified and uploaded last)."""

from __future__ import annotations

import hashlib
import json
import pathlib
from collections.abc import Callable
from typing import Any

from kubeft_trainer import __main__ as entry
from tests.fixtures.s3 import S3
from tests.integration.trainer import records
from tests.integration.trainer.conftest import merge, spec_doc, termination

# write_config's uid is 0000; the output is s3://<bucket>/out.
RUN_ADAPTER = ".kubeft-runs/out/0000/adapter/"
EXPORTED = {"adapter_config.json", "adapter_model.safetensors", "README.md", "metrics.json", "manifest.json"}


def gated(s3: S3, tiny: dict[str, pathlib.Path], trainer_env: pathlib.Path, *, bound: dict[str, Any]) -> dict[str, Any]:
    data = records.write(trainer_env / "text.jsonl", records.capital_chats(40, seed=3))
    spec = spec_doc(s3, model=tiny["causal-lm"], data=data, task="CAUSAL_LM", fields={"messages": "messages"})
    return merge(
        spec,
        {
            "dataset": {"validationFraction": 0.2},
            "promotion": {"thresholds": [{"metric": "eval_loss", **bound}]},
        },
    )


def names(keys: list[str], prefix: str) -> set[str]:
    return {key[len(prefix) :] for key in keys if key.startswith(prefix)}


def test_a_passing_gate_promotes_the_verified_adapter_to_the_output(
    s3: S3, tiny: dict[str, pathlib.Path], write_config: Callable[..., pathlib.Path], trainer_env: pathlib.Path
) -> None:
    spec = gated(s3, tiny, trainer_env, bound={"max": 1e6})

    rc = entry.main(["--config", str(write_config(spec))])

    message = termination(trainer_env)
    assert rc == 0, message
    assert message["promotion"]["promoted"] is True
    check = message["promotion"]["checks"][0]
    assert check["metric"] == "eval_loss" and check["max"] == 1e6 and check["value"] == message["metrics"]["eval_loss"]
    assert message["artifact"]["uri"] == s3.uri("out")
    keys = s3.keys("")
    assert names(keys, "out/") == EXPORTED
    assert names(keys, RUN_ADAPTER) == EXPORTED
    promoted = s3.read("out/manifest.json")
    assert promoted == s3.read(RUN_ADAPTER + "manifest.json")
    assert hashlib.sha256(promoted).hexdigest() == message["artifact"]["sha256"]


def test_a_failing_gate_leaves_the_output_untouched_and_says_why(
    s3: S3, tiny: dict[str, pathlib.Path], write_config: Callable[..., pathlib.Path], trainer_env: pathlib.Path
) -> None:
    # The adapter a reader already serves from spec.output: a failed gate must not touch it.
    s3.client.put_object(Bucket=s3.bucket, Key="out/manifest.json", Body=b'{"files": []}')
    spec = gated(s3, tiny, trainer_env, bound={"max": 1e-6})

    rc = entry.main(["--config", str(write_config(spec))])

    message = termination(trainer_env)
    assert rc == 0, message
    gate = message["promotion"]
    assert gate["promoted"] is False
    loss = message["metrics"]["eval_loss"]
    assert gate["checks"] == [{"metric": "eval_loss", "max": 1e-6, "passed": False, "value": loss}]
    assert f"eval_loss {loss:.4g} <= 1e-06 failed" in gate["message"]
    assert s3.uri(RUN_ADAPTER.rstrip("/")) in gate["message"]
    assert message["artifact"]["uri"] == s3.uri(RUN_ADAPTER.rstrip("/"))
    keys = s3.keys("")
    assert names(keys, "out/") == {"manifest.json"}
    assert json.loads(s3.read("out/manifest.json")) == {"files": []}
    assert names(keys, RUN_ADAPTER) == EXPORTED
    assert hashlib.sha256(s3.read(RUN_ADAPTER + "manifest.json")).hexdigest() == message["artifact"]["sha256"]

"""The benchmark harness's pure parts: run order, per-round ratios, the metered process, the rendered pod."""

from __future__ import annotations

import pathlib
import sys

import pytest
import yaml

from benchmarks import meter, pod, trainer_throughput
from kubeft_operator.builders import meta


def test_every_side_runs_in_every_position_once_over_as_many_rounds() -> None:
    runs = trainer_throughput.order(3)
    rounds = [[side for r, side in runs if r == i] for i in range(3)]
    assert all(sorted(r) == sorted(trainer_throughput.SIDES) for r in rounds)
    for position in range(3):
        assert sorted(r[position] for r in rounds) == sorted(trainer_throughput.SIDES)


def _run(side: str, round_: int, tps: float, *, ok: bool = True) -> dict[str, object]:
    return {"side": side, "round": round_, "exit_code": 0 if ok else 1, "tokens_per_second": tps}


def test_round_ratios_pair_kubeft_with_the_baseline_of_the_same_round_only() -> None:
    runs = [
        _run("baseline", 0, 100.0),
        _run("kubeft", 0, 150.0),
        _run("kubeft", 1, 300.0),
        _run("baseline", 1, 200.0, ok=False),  # a failed run leaves its round out
        _run("baseline", 2, 50.0),
        _run("kubeft", 2, 100.0),
    ]
    assert trainer_throughput.round_ratios(runs, "tokens_per_second", baseline="baseline") == [1.5, 2.0]


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        ([sys.executable, "-m", "kubeft_trainer", "--config", "c.yaml"], True),
        ([sys.executable, "-u", "-m", "kubeft_trainer", "--config", "c.yaml"], True),
        ([sys.executable, "-X", "dev", "-m", "kubeft_trainer"], True),
        # The launcher and accelerate carry `-m kubeft_trainer` among their own arguments.
        ([sys.executable, "-m", "kubeft_trainer.launch", "--num_processes", "1", "-m", "kubeft_trainer"], False),
        ([sys.executable, "-m", "accelerate.commands.launch", "-m", "kubeft_trainer"], False),
        ([sys.executable, "script.py", "-m", "kubeft_trainer"], False),
    ],
)
def test_only_the_trainer_process_itself_is_metered(argv: list[str], want: bool) -> None:
    assert meter.is_trainer_process(argv) is want


def test_the_pod_env_resolves_as_the_kubelet_would() -> None:
    owner = meta.Owner(name="job", namespace="ns", uid="u")
    entries = [
        {"name": "KUBEFT_WORKDIR", "value": "/var/lib/kubeft"},
        {"name": "PLAIN", "value": "x"},
        {"name": "KUBEFT_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "t", "optional": True}}},
    ]
    env = pod.resolve_env(
        entries, owner=owner, volumes={"/var/lib/kubeft": pathlib.Path("/tmp/w")}, secrets={("s", "k"): "v"}
    )
    assert (env["KUBEFT_WORKDIR"], env["PLAIN"], env["KUBEFT_NAMESPACE"], env["KEY"]) == ("/tmp/w", "x", "ns", "v")
    assert "TOKEN" not in env


def test_a_secret_the_pod_needs_but_nobody_gave_is_an_error() -> None:
    owner = meta.Owner(name="job", namespace="ns", uid="u")
    entries = [{"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
    with pytest.raises(KeyError, match="Secret s key k"):
        pod.resolve_env(entries, owner=owner, volumes={}, secrets={})


def test_the_rendered_pod_runs_the_launcher_on_the_config_the_operator_renders(tmp_path: pathlib.Path) -> None:
    spec = {
        "model": {"source": "/models/tiny"},
        "dataset": {"source": "/data/train.jsonl", "fields": {"text": "text"}},
        "task": "CAUSAL_LM",
        "method": {"type": "lora"},
        "training": {"epochs": 1},
        "resources": {"gpus": 2},
        "output": {"s3": {"uri": "s3://bucket/out"}},
    }
    rendered = pod.render(spec, name="bench", run_dir=tmp_path)
    argv = rendered.argv
    assert argv[:3] == [sys.executable, "-m", "kubeft_trainer.launch"]  # whatever flags the launcher adds after it
    assert argv[argv.index("--num_processes") + 1] == "2"
    assert argv[-4:] == ["-m", "kubeft_trainer", "--config", str(rendered.config_file)]
    doc = yaml.safe_load(rendered.config_file.read_text())
    assert (doc["kind"], doc["metadata"]["name"], doc["spec"]["resources"]["gpus"]) == ("TrainerConfig", "bench", 2)
    assert rendered.env["KUBEFT_WORKDIR"] == str(tmp_path / "workdir")
    assert rendered.env["KUBEFT_JOB_NAME"] == "bench"
    assert rendered.env["KUBEFT_ALLOW_PRIVATE_ENDPOINTS"] == "true"

"""A multi-node FineTuneJob (spec.resources.nodes > 1): an Indexed Job of one pod per node, the headless
Service its pods meet through, and a failure policy that restarts the group and counts the cause once."""

from __future__ import annotations

from typing import Any

import pytest

from kubeft_operator import config, status
from kubeft_operator.api import contract
from kubeft_operator.builders import children, fit, rendezvous
from kubeft_operator.builders import job as job_builder
from tests.unit.operator import factories


def build(nodes: int, gpus: int = 0, **patch: Any) -> dict[str, Any]:
    settings = config.Settings()
    spec = factories.spec(settings, resources={"nodes": nodes, "gpus": gpus}, **patch)
    return job_builder.build(factories.OWNER, spec, settings=settings)


def env_of(job: dict[str, Any]) -> dict[str, Any]:
    return {
        e["name"]: e.get("value", e.get("valueFrom")) for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }


def test_two_cpu_nodes_make_an_indexed_job_whose_pods_rendezvous_at_pod_0():
    job = build(nodes=2)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 2, 2)
    assert spec["successPolicy"] == {"rules": [{"succeededIndexes": "0"}]}
    assert spec["template"]["spec"]["subdomain"] == "demo-train"
    command = spec["template"]["spec"]["containers"][0]["command"]
    head = command[: command.index("-m", 3)]
    assert head == [
        "python", "-m", "kubeft_trainer.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "2", "--machine_rank", "$(KUBEFT_MACHINE_RANK)",
        "--main_process_ip", "demo-train-0.demo-train", "--main_process_port", "29500",
    ]  # fmt: skip
    env = env_of(job)
    # The kubelet expands $(KUBEFT_MACHINE_RANK) from the pod's completion index.
    assert env["KUBEFT_MACHINE_RANK"] == {
        "fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}
    }
    assert env["KUBEFT_NODES"] == "2"


def test_num_processes_counts_every_gpu_of_every_node():
    command = build(nodes=3, gpus=8)["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--num_processes") + 1] == "24"
    assert command[command.index("--num_machines") + 1] == "3"


def test_a_pod_stopped_for_its_group_is_replaced_without_counting_and_the_cause_counts_once():
    rules = build(nodes=2)["spec"]["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    assert rules[1] == {
        "action": "Ignore",
        "onExitCodes": {"containerName": "trainer", "operator": "In", "values": [contract.EXIT_PEER_STOPPED]},
    }
    # Not ignored: the pod that was preempted (143) or failed (1) is what counts toward retryLimit.
    assert contract.EXIT_PREEMPTED not in rules[1]["onExitCodes"]["values"]
    assert rules[2]["action"] == "FailJob"
    assert build(nodes=2)["spec"]["backoffLimit"] == 3


def test_one_node_keeps_the_plain_job():
    spec = build(nodes=1)["spec"]
    assert "completionMode" not in spec and "successPolicy" not in spec
    assert "subdomain" not in spec["template"]["spec"]
    assert [r["action"] for r in spec["podFailurePolicy"]["rules"]] == ["Ignore", "FailJob"]
    assert "KUBEFT_MACHINE_RANK" not in env_of(build(nodes=1))


def test_the_headless_service_selects_only_the_trainer_jobs_pods_and_is_created_before_the_job():
    settings = config.Settings()
    spec = factories.spec(settings, resources={"nodes": 2, "gpus": 0})
    stages = children.stages(factories.OWNER, spec, settings=settings)
    (service,) = [o for o in stages[0] if o["kind"] == "Service"]
    assert stages[-1][0]["kind"] == "Job"
    assert service["metadata"]["name"] == "demo-train"
    assert service["metadata"]["ownerReferences"][0]["uid"] == factories.OWNER.uid
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    # The verify Job's pods carry kubeft.io/job too; the job-name label keeps them out.
    assert service["spec"]["selector"] == {"kubeft.io/job": "demo", "batch.kubernetes.io/job-name": "demo-train"}
    one = children.build(factories.OWNER, factories.spec(settings), settings=settings)
    assert "Service" not in [o["kind"] for o in one]


SHAPE_8B = {
    "hiddenSize": 4096,
    "intermediateSize": 14336,
    "numHiddenLayers": 32,
    "numAttentionHeads": 32,
    "numKeyValueHeads": 8,
    "vocabSize": 128256,
}


@pytest.mark.parametrize(
    ("asked", "gpus", "memory_gib", "want"),
    [
        ("ddp", 8, 24, "ddp"),  # asked: kept, even if it does not fit
        ("fsdp", 2, 141, "fsdp"),
        ("auto", 8, 24, "fsdp"),  # a 16 GB bf16 replica + activations exceed 24 GiB: shard
        ("auto", 8, 141, "ddp"),  # fits one GPU: replicate, the fastest
        ("auto", 1, 24, "ddp"),  # one process: nothing to shard over
    ],
)
def test_auto_parallelism_shards_only_when_a_replica_exceeds_the_gpu(asked, gpus, memory_gib, want):
    settings = config.Settings(gpu_memory_gib=(("nvidia.com/gpu", float(memory_gib)),))
    spec = factories.spec(
        settings,
        resources={"gpus": gpus},
        training={"maxSteps": 10, "parallelism": asked},
        model={"source": "s3://models/llama", "config": SHAPE_8B},
    )
    assert fit.parallelism(spec, settings) == want
    found = fit.assess(spec, settings)
    assert found is not None
    if want == "fsdp":
        assert found["shardedOver"] == gpus
        replica = fit.assess(
            factories.spec(settings, resources={"gpus": 1}, model={"source": "s3://m", "config": SHAPE_8B}), settings
        )
        assert replica is not None and found["weightsGib"] < replica["weightsGib"]
    else:
        assert "shardedOver" not in found


def test_the_pod_rank_and_name_helpers_agree_with_the_job():
    assert rendezvous.main_host("demo") == "demo-train-0.demo-train"
    assert rendezvous.service_name("demo") == "demo-train"


def _pod(index: str, phase: str, code: int, finished: str, message: str = "") -> dict[str, Any]:
    pod = factories.pod(
        phase, name=f"demo-train-{index}-x", terminated={"exitCode": code, "finishedAt": finished, "message": message}
    )
    pod["metadata"]["index"] = index
    return pod


def test_the_group_success_is_read_from_pod_0_which_exported_even_when_pod_1_finished_later():
    pods = [_pod("0", "Succeeded", 0, "2026-01-01T00:00:01Z"), _pod("1", "Succeeded", 0, "2026-01-01T00:00:09Z")]
    latest = status._latest(pods, "Succeeded")
    assert latest is not None and latest["metadata"]["index"] == "0"


def test_a_group_failure_is_explained_by_the_pod_that_caused_it_not_by_the_ones_that_stopped_with_it():
    cause = _pod("1", "Failed", 1, "2026-01-01T00:00:01Z")
    follower = _pod("0", "Failed", contract.EXIT_PEER_STOPPED, "2026-01-01T00:00:05Z")
    latest = status._latest([cause, follower], "Failed")
    assert latest is not None and latest["metadata"]["index"] == "1"
    # Only followers: one of them is still better than nothing.
    assert status._latest([follower], "Failed") is follower


def test_the_pod_view_keeps_the_completion_index():
    body = {"metadata": {"name": "p", "annotations": {rendezvous.INDEX_ANNOTATION: "1"}}, "status": {}}
    assert status.pod_view(body)["metadata"]["index"] == "1"

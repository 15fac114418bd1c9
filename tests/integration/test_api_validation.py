"""The real API server rejects invalid FineTuneJobs at `kubectl apply` time, naming the field.

Runs against the local control plane (`make cluster-up`) with the generated CRD installed.
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

VALID: dict[str, Any] = {
    "apiVersion": "kubeft.io/v1alpha1",
    "kind": "FineTuneJob",
    "metadata": {"name": "valid"},
    "spec": {
        "model": {"source": "org/model"},
        "dataset": {"source": "s3://data/train.jsonl", "fields": {"text": "text"}},
        "task": "CAUSAL_LM",
        "method": {"type": "lora"},
        "training": {"maxSteps": 10},
        "output": {"s3": {"uri": "s3://adapters/run"}},
    },
}


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for key in parents:
        doc = doc.setdefault(key, {})
    if value is _DELETE:
        doc.pop(leaf, None)
    else:
        doc[leaf] = value


_DELETE = object()

# (id, {dotted path: value}, substrings the error must contain: the field, then the reason)
INVALID: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("missing-model", {"spec.model": _DELETE}, ("spec.model", "Required value")),
    ("unknown-method", {"spec.method.type": "fancy"}, ("spec.method.type", "Unsupported value")),
    ("qlora-without-quantization", {"spec.method.type": "qlora"}, ("spec.model", "needs spec.model.quantization")),
    ("epochs-and-max-steps", {"spec.training.epochs": 1}, ("spec.training", "exactly one of epochs and maxSteps")),
    ("neither-epochs-nor-max-steps", {"spec.training.maxSteps": _DELETE}, ("spec.training", "exactly one")),
    ("no-output", {"spec.output": {}}, ("spec.output", "at least one output")),
    ("http-output-uri", {"spec.output.s3.uri": "http://bucket/run"}, ("spec.output.s3.uri", "s3://bucket/prefix")),
    ("bare-bucket-output", {"spec.output.s3.uri": "s3://bucket/"}, ("spec.output.s3.uri", "bare bucket root")),
    ("zero-rank", {"spec.method.lora": {"r": 0}}, ("spec.method.lora.r", "greater than or equal to 1")),
    ("negative-rank", {"spec.method.lora": {"r": -8}}, ("spec.method.lora.r", "greater than or equal to 1")),
    ("zero-learning-rate", {"spec.training.learningRate": 0}, ("spec.training.learningRate", "greater than 0")),
    ("negative-learning-rate", {"spec.training.learningRate": -1e-4}, ("spec.training.learningRate", "greater")),
    (
        "seq-cls-without-label",
        {"spec.task": "SEQ_CLS"},
        ("spec.dataset.fields", "SEQ_CLS needs spec.dataset.fields.text and spec.dataset.fields.label"),
    ),
    ("file-dataset", {"spec.dataset.source": "file:///etc/passwd"}, ("spec.dataset.source", "file://")),
    ("http-dataset", {"spec.dataset.source": "http://169.254.169.254/x"}, ("spec.dataset.source", "not allowed")),
    ("http-model", {"spec.model.source": "https://evil.example/model"}, ("spec.model.source", "not allowed")),
    (
        "oversized-target-modules",
        {"spec.method.lora": {"targetModules": [f"m{i}" for i in range(65)]}},
        ("spec.method.lora.targetModules", "must have at most 64 items"),
    ),
    ("unknown-task", {"spec.task": "TRANSLATION"}, ("spec.task", "Unsupported value")),
    (
        "chat-with-seq2seq",
        {
            "spec.task": "SEQ_2_SEQ_LM",
            "spec.dataset.fields": {"messages": "messages", "prompt": "p", "completion": "c"},
        },
        ("spec.dataset.fields.messages", "need task CAUSAL_LM"),
    ),
    ("lora-params-on-ia3", {"spec.method": {"type": "ia3", "lora": {"r": 8}}}, ("spec.method", "type lora or qlora")),
    ("validation-fraction-too-big", {"spec.dataset.validationFraction": 0.9}, ("spec.dataset.validationFraction",)),
    (
        "two-validation-sources",
        {"spec.dataset.validationFraction": 0.1, "spec.dataset.validationSource": "s3://data/val.jsonl"},
        ("spec.dataset", "at most one of validationSource and validationFraction"),
    ),
    (
        "prompt-init-text-missing",
        {"spec.method": {"type": "promptTuning", "promptTuning": {"init": "text"}}},
        ("spec.method.promptTuning", "init: text needs initText"),
    ),
    ("too-many-nodes", {"spec.resources": {"nodes": 65}}, ("spec.resources.nodes", "less than or equal to 64")),
    (
        "multi-node-name-not-a-dns-label",
        {"metadata.name": "team.sweep-1", "spec.resources": {"nodes": 2}},
        ("needs a name that is a DNS label",),
    ),
    ("unknown-parallelism", {"spec.training": {"maxSteps": 10, "parallelism": "tp"}}, ("spec.training.parallelism",)),
    ("negative-gpus", {"spec.resources": {"gpus": -1}}, ("spec.resources.gpus", "greater than or equal to 0")),
    (
        "bad-hub-repo",
        {"spec.output": {"hub": {"repo": "not a repo", "tokenSecretRef": {"name": "t"}}}},
        ("spec.output.hub.repo", "should match"),
    ),
    (
        "eval-steps-missing",
        {"spec.training.evaluation": {"strategy": "steps"}},
        ("spec.training.evaluation", "strategy: steps needs steps"),
    ),
    ("quantization-3-bit", {"spec.model.quantization": {"bits": 3}}, ("spec.model.quantization.bits", "Unsupported")),
    ("dropout-above-one", {"spec.method.lora": {"dropout": 1.5}}, ("spec.method.lora.dropout", "less than 1")),
    ("unknown-field", {"spec.training.learningRat": 1e-4}, ("spec.training.learningRat", "unknown field")),
    ("resume-from-nothing", {"spec.resumeFrom": {}}, ("spec.resumeFrom", "exactly one of resumeFrom.job and .uri")),
    (
        "resume-from-both",
        {"spec.resumeFrom": {"job": "a", "uri": "s3://b/x"}},
        ("spec.resumeFrom", "exactly one of resumeFrom.job and .uri"),
    ),
    ("resume-from-bad-name", {"spec.resumeFrom": {"job": "Not_A_Name"}}, ("spec.resumeFrom.job", "should match")),
    (
        "prompt-tuning-token-cls",
        {
            "spec.task": "TOKEN_CLS",
            "spec.dataset.fields": {"tokens": "tokens", "tags": "tags"},
            "spec.method": {"type": "promptTuning"},
        },
        ("spec.method.type", "method promptTuning supports CAUSAL_LM, SEQ_2_SEQ_LM, SEQ_CLS, FEATURE_EXTRACTION"),
    ),
    ("ftp-endpoint", {"spec.storage": {"endpoint": "ftp://minio:9000"}}, ("spec.storage.endpoint", "should match")),
    ("tensorboard-bucket-root", {"spec.tensorboard": {"uri": "s3://logs"}}, ("spec.tensorboard.uri", "s3://")),
    ("name-too-long", {"metadata.name": "x" * 53}, ("metadata.name", "at most 52 characters")),
    # Scheduling fields end up on the Pod: what the Pod would refuse is refused here, not at Job creation.
    (
        "node-selector-key-with-spaces",
        {"spec.scheduling": {"nodeSelector": {"gpu type": "a100"}}},
        ("spec.scheduling.nodeSelector", "keys must be label keys"),
    ),
    (
        "node-selector-key-two-slashes",
        {"spec.scheduling": {"nodeSelector": {"a/b/c": "x"}}},
        ("spec.scheduling.nodeSelector", "keys must be label keys"),
    ),
    (
        "node-selector-value-not-a-label",
        {"spec.scheduling": {"nodeSelector": {"nvidia.com/gpu.product": "A100 80GB"}}},
        ("spec.scheduling.nodeSelector.nvidia.com/gpu.product", "should match"),
    ),
    (
        "toleration-without-key-or-exists",
        {"spec.scheduling": {"tolerations": [{"operator": "Equal", "value": "x"}]}},
        ("spec.scheduling.tolerations[0]", "a toleration without a key must use operator Exists"),
    ),
    (
        "toleration-exists-with-value",
        {"spec.scheduling": {"tolerations": [{"key": "gpu", "operator": "Exists", "value": "x"}]}},
        ("spec.scheduling.tolerations[0]", "operator Exists takes no value"),
    ),
    (
        "toleration-seconds-without-no-execute",
        {"spec.scheduling": {"tolerations": [{"key": "gpu", "effect": "NoSchedule", "tolerationSeconds": 5}]}},
        ("spec.scheduling.tolerations[0]", "only allowed with effect NoExecute"),
    ),
    (
        "toleration-key-not-a-label",
        {"spec.scheduling": {"tolerations": [{"key": "-gpu-", "operator": "Exists"}]}},
        ("spec.scheduling.tolerations[0].key", "should match"),
    ),
    (
        "gpu-resource-without-domain",
        {"spec.resources": {"gpuResourceName": "gpu"}},
        ("spec.resources.gpuResourceName", "should match"),
    ),
    (
        "gpu-resource-native",
        {"spec.resources": {"gpuResourceName": "kubernetes.io/gpu"}},
        ("spec.resources.gpuResourceName", "kubernetes.io names are native resources"),
    ),
    (
        "gpu-resource-a-url",
        {"spec.resources": {"gpuResourceName": "http://[::ffff:a9fe:a9fe]/"}},
        ("spec.resources.gpuResourceName", "should match"),
    ),
    (
        "queue-name-too-long-for-a-label",
        {"spec.scheduling": {"queueName": "q" * 64}},
        ("spec.scheduling.queueName", "may not be more than 63 bytes"),
    ),
    # Volumes end up on the Pod, next to the trainer's own: only claims and ConfigMaps, only where they
    # can neither hide the trainer's files nor replace its code.
    (
        "volume-host-path",
        {"spec.volumes": [{"name": "host", "hostPath": {"path": "/"}}]},
        ("spec.volumes[0].hostPath", "unknown field"),
    ),
    (
        "volume-without-source",
        {"spec.volumes": [{"name": "data"}]},
        ("spec.volumes[0]", "set exactly one of persistentVolumeClaim and configMap"),
    ),
    (
        "volume-with-two-sources",
        {"spec.volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "d"}, "configMap": {"name": "c"}}]},
        ("spec.volumes[0]", "set exactly one of persistentVolumeClaim and configMap"),
    ),
    (
        "volume-name-not-a-dns-label",
        {"spec.volumes": [{"name": "Data_Set", "configMap": {"name": "c"}}]},
        ("spec.volumes[0].name", "should match"),
    ),
    (
        "volume-name-too-long",
        {"spec.volumes": [{"name": "d" * 64, "configMap": {"name": "c"}}]},
        ("spec.volumes[0].name", "may not be more than 63 bytes"),
    ),
    (
        "volume-name-twice",
        {"spec.volumes": [{"name": "d", "configMap": {"name": "a"}}, {"name": "d", "configMap": {"name": "b"}}]},
        ("spec.volumes[1]", "Duplicate value"),
    ),
    (
        "volume-name-of-the-trainer",
        {"spec.volumes": [{"name": "hf-cache", "persistentVolumeClaim": {"claimName": "mine"}}]},
        ("spec.volumes[0].name", "name the trainer's own volumes"),
    ),
    (
        "claim-name-not-a-name",
        {"spec.volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "My Claim"}}]},
        ("spec.volumes[0].persistentVolumeClaim.claimName", "should match"),
    ),
    (
        "mount-of-an-unknown-volume",
        {
            "spec.volumes": [{"name": "d", "configMap": {"name": "c"}}],
            "spec.volumeMounts": [{"name": "e", "mountPath": "/data"}],
        },
        ("spec.volumeMounts", "each volume mount must name a volume in spec.volumes"),
    ),
    (
        "mount-without-volumes",
        {"spec.volumeMounts": [{"name": "d", "mountPath": "/data"}]},
        ("spec.volumeMounts", "each volume mount must name a volume in spec.volumes"),
    ),
    (
        "mount-path-relative",
        {"spec.volumes": [{"name": "d", "configMap": {"name": "c"}}], "spec.volumeMounts": [
            {"name": "d", "mountPath": "data"}
        ]},
        ("spec.volumeMounts[0].mountPath", "should match"),
    ),
    (
        "mount-over-the-trainers-work-directory",
        {"spec.volumes": [{"name": "d", "configMap": {"name": "c"}}], "spec.volumeMounts": [
            {"name": "d", "mountPath": "/var/lib/kubeft"}
        ]},
        ("spec.volumeMounts[0].mountPath", "must be /data, /datasets, /models or /mnt"),
    ),
    (
        "mount-over-the-trainers-code",
        {"spec.volumes": [{"name": "d", "configMap": {"name": "c"}}], "spec.volumeMounts": [
            {"name": "d", "mountPath": "/opt/kubeft"}
        ]},
        ("spec.volumeMounts[0].mountPath", "must be /data, /datasets, /models or /mnt"),
    ),
    (
        "mount-over-dev-shm",
        {"spec.volumes": [{"name": "d", "configMap": {"name": "c"}}], "spec.volumeMounts": [
            {"name": "d", "mountPath": "/dev/shm"}
        ]},
        ("spec.volumeMounts[0].mountPath", "must be /data, /datasets, /models or /mnt"),
    ),
    (
        "mount-path-escaping-its-root",
        {"spec.volumes": [{"name": "d", "configMap": {"name": "c"}}], "spec.volumeMounts": [
            {"name": "d", "mountPath": "/data/../etc"}
        ]},
        ("spec.volumeMounts[0].mountPath", "must not contain . or .. segments"),
    ),
    (
        "mount-path-a-sibling-of-a-root",
        {"spec.volumes": [{"name": "d", "configMap": {"name": "c"}}], "spec.volumeMounts": [
            {"name": "d", "mountPath": "/database"}
        ]},
        ("spec.volumeMounts[0].mountPath", "must be /data, /datasets, /models or /mnt"),
    ),
    (
        "mount-path-twice",
        {"spec.volumes": [{"name": "d", "configMap": {"name": "c"}}], "spec.volumeMounts": [
            {"name": "d", "mountPath": "/data"}, {"name": "d", "mountPath": "/data"}
        ]},
        ("spec.volumeMounts[1]", "Duplicate value"),
    ),
    # A promotion gate the run could never evaluate is refused at apply time, not after training.
    (
        "promotion-without-validation-split",
        {"spec.promotion": {"thresholds": [{"metric": "eval_loss", "max": 2.5}]}},
        ("spec.promotion", "needs a validation split"),
    ),
    (
        "promotion-threshold-without-bound",
        {"spec.dataset.validationFraction": 0.1, "spec.promotion": {"thresholds": [{"metric": "eval_loss"}]}},
        ("spec.promotion.thresholds[0]", "set min, max or both"),
    ),
    (
        "promotion-f1-for-a-language-model",
        {"spec.dataset.validationFraction": 0.1, "spec.promotion": {"thresholds": [{"metric": "eval_f1", "min": 0.8}]}},
        ("spec.promotion.thresholds", "eval_f1 is computed for tasks SEQ_CLS, TOKEN_CLS only"),
    ),
    (
        "promotion-hub-only",
        {
            "spec.dataset.validationFraction": 0.1,
            "spec.output": {"hub": {"repo": "org/name", "tokenSecretRef": {"name": "hub"}}},
            "spec.promotion": {"thresholds": [{"metric": "eval_loss", "max": 2.5}]},
        },
        ("spec.promotion", "needs spec.output.s3"),
    ),
]  # fmt: skip


def _manifest(changes: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(VALID)
    for path, value in changes.items():
        _set(doc, path, value)
    return doc


@pytest.fixture
def apply(kubectl: Callable[..., subprocess.CompletedProcess[str]], namespace: str):
    def run(doc: dict[str, Any], *, dry_run: bool = True) -> subprocess.CompletedProcess[str]:
        args = ["apply", "-n", namespace, "-f", "-"]
        if dry_run:
            args.append("--dry-run=server")
        return kubectl(*args, input=yaml.safe_dump(doc), check=False)

    return run


def test_there_are_at_least_25_invalid_cases():
    assert len(INVALID) >= 25


def test_valid_manifest_is_accepted(apply):
    result = apply(VALID)
    assert result.returncode == 0, result.stderr


def test_valid_scheduling_is_accepted_and_kept(apply, kubectl, namespace):
    """Label-shaped keys and values and another vendor's GPU resource pass; the map survives pruning."""
    selector = {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB", "pool": "", "kubernetes.io/arch": "amd64"}
    tolerations = [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"operator": "Exists"},
        {"key": "spot", "value": "true", "effect": "NoExecute", "tolerationSeconds": 30},
    ]
    doc = _manifest(
        {
            "metadata.name": "scheduled",
            "spec.scheduling": {"nodeSelector": selector, "tolerations": tolerations},
            "spec.resources": {"gpus": 1, "gpuResourceName": "amd.com/gpu"},
        }
    )
    result = apply(doc, dry_run=False)
    assert result.returncode == 0, result.stderr
    got = yaml.safe_load(kubectl("get", "ftj", "scheduled", "-n", namespace, "-o", "yaml").stdout)
    assert got["spec"]["resources"]["gpuResourceName"] == "amd.com/gpu"
    assert got["spec"]["scheduling"]["nodeSelector"] == selector
    assert got["spec"]["scheduling"]["tolerations"] == [
        {"operator": "Equal", **t} if "operator" not in t else t for t in tolerations
    ]


def test_valid_volumes_are_accepted_and_kept(apply, kubectl, namespace):
    """Claims (read-only unless asked) and ConfigMaps under the allowed roots; a volume may be mounted twice."""
    volumes = [
        {"name": "datasets", "persistentVolumeClaim": {"claimName": "team-datasets"}},
        {"name": "models", "persistentVolumeClaim": {"claimName": "team-models", "readOnly": False}},
        {"name": "templates", "configMap": {"name": "chat-templates"}},
    ]
    mounts = [
        {"name": "datasets", "mountPath": "/datasets"},
        {"name": "datasets", "mountPath": "/data/legal", "readOnly": True},
        {"name": "models", "mountPath": "/models/base"},
        {"name": "templates", "mountPath": "/mnt/templates"},
    ]
    doc = _manifest({"metadata.name": "mounted", "spec.volumes": volumes, "spec.volumeMounts": mounts})
    result = apply(doc, dry_run=False)
    assert result.returncode == 0, result.stderr
    got = yaml.safe_load(kubectl("get", "ftj", "mounted", "-n", namespace, "-o", "yaml").stdout)["spec"]
    claim = {"claimName": "team-datasets", "readOnly": True}
    assert got["volumes"][0] == {"name": "datasets", "persistentVolumeClaim": claim}
    assert got["volumes"][1:] == volumes[1:]
    assert got["volumeMounts"] == [{"readOnly": False, **m} for m in mounts]


def test_a_promotion_gate_with_evaluation_is_accepted(apply):
    gate = {"thresholds": [{"metric": "eval_loss", "max": 2.5}, {"metric": "eval_perplexity", "max": 12}]}
    doc = _manifest({"spec.dataset.validationFraction": 0.1, "spec.promotion": gate})
    result = apply(doc)
    assert result.returncode == 0, result.stderr


def test_volumes_cannot_change_after_creation(apply):
    volumes = [{"name": "datasets", "persistentVolumeClaim": {"claimName": "team-datasets"}}]
    mounts = [{"name": "datasets", "mountPath": "/datasets"}]
    assert apply(_manifest({"spec.volumes": volumes, "spec.volumeMounts": mounts}), dry_run=False).returncode == 0
    moved = [{"name": "datasets", "mountPath": "/data"}]
    changed = apply(_manifest({"spec.volumes": volumes, "spec.volumeMounts": moved}), dry_run=False)
    assert changed.returncode != 0
    assert "spec.volumeMounts" in changed.stderr and "immutable" in changed.stderr


@pytest.mark.parametrize(("changes", "want_in_error"), [(c, w) for _, c, w in INVALID], ids=[i for i, _, _ in INVALID])
def test_invalid_manifest_is_rejected_naming_the_field(apply, changes, want_in_error):
    result = apply(_manifest(changes))
    assert result.returncode != 0, f"accepted: {changes}"
    for want in want_in_error:
        assert want in result.stderr, result.stderr


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_passes_server_side_dry_run(kubectl, namespace, path: Path):
    result = kubectl("apply", "-n", namespace, "--dry-run=server", "-f", str(path), check=False)
    assert result.returncode == 0, result.stderr


def test_training_spec_cannot_change_after_creation(apply):
    created = apply(VALID, dry_run=False)
    assert created.returncode == 0, created.stderr
    changed = apply(_manifest({"spec.training.learningRate": 1e-3}), dry_run=False)
    assert changed.returncode != 0
    assert "spec.training" in changed.stderr and "immutable" in changed.stderr


def test_adding_an_optional_section_after_creation_is_rejected(apply):
    assert apply(VALID, dry_run=False).returncode == 0
    changed = apply(_manifest({"spec.tensorboard": {"uri": "s3://logs/run"}}), dry_run=False)
    assert changed.returncode != 0
    assert "spec.tensorboard" in changed.stderr and "immutable" in changed.stderr


def test_suspend_and_ttl_may_change_after_creation(apply):
    assert apply(VALID, dry_run=False).returncode == 0
    changed = apply(_manifest({"spec.suspend": True, "spec.ttlSecondsAfterFinished": 60}), dry_run=False)
    assert changed.returncode == 0, changed.stderr


def test_get_shows_printer_columns(kubectl, namespace, apply):
    assert apply(VALID, dry_run=False).returncode == 0
    header = kubectl("get", "ftj", "-n", namespace).stdout.splitlines()[0].split()
    assert header[:6] == ["NAME", "PHASE", "PROGRESS", "LOSS", "MODEL", "METHOD"]
    assert header[-1] == "AGE"


def test_explain_shows_descriptions(kubectl):
    out = kubectl("explain", "ftj.spec.method").stdout
    assert "PEFT method" in out
    assert "qlora (LoRA on a 4-bit quantized base)" in " ".join(out.split())
    lora = kubectl("explain", "ftj.spec.method.lora.r").stdout
    assert "Rank of the update matrices" in lora

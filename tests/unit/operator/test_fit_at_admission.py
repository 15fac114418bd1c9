"""builders/fit.py and status.compute: status.estimate, condition Fits, and failIfNotFits."""

from __future__ import annotations

import pytest

from kubeft_operator import config, status
from kubeft_operator.builders import fit
from tests.unit.operator import factories

CONFIG = {
    "hiddenSize": 4096,
    "numHiddenLayers": 32,
    "intermediateSize": 11008,
    "vocabSize": 32000,
    "numAttentionHeads": 32,
}
A100_40 = "nvidia.com/gpu.product=NVIDIA-A100-SXM4-40GB"
SETTINGS = config.Settings(gpu_memory_gib=((A100_40, 40.0), ("nvidia.com/gpu", 24.0)))


def _spec(**patch):
    return factories.spec(SETTINGS, **{"model": {"source": "org/model", "config": CONFIG}, **patch})


def _observe(spec, *, job_body=None):
    return status.Observed(
        name="demo", generation=1, status={}, spec=spec, job=job_body, estimate=fit.assess(spec, SETTINGS)
    )


def test_without_model_config_there_is_no_estimate():
    assert fit.assess(factories.spec(SETTINGS), SETTINGS) is None


@pytest.mark.parametrize(
    ("selector", "want_gpu"),
    [
        ({"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"}, (A100_40, 40.0)),
        ({"nvidia.com/gpu.product": "Tesla-T4"}, ("nvidia.com/gpu", 24.0)),
        (None, ("nvidia.com/gpu", 24.0)),
    ],
)
def test_gpu_memory_comes_from_the_product_label_then_the_resource(selector, want_gpu):
    spec = _spec(scheduling={"nodeSelector": selector} if selector else {})
    assert fit.declared(spec, SETTINGS) == want_gpu


def test_a_cpu_job_gets_an_estimate_but_no_verdict():
    spec = _spec(resources={"gpus": 0})
    found = fit.assess(spec, SETTINGS)
    assert found is not None and "gpuMemoryGib" not in found
    assert fit.verdict(found) is None


def test_a_job_that_fits_says_so_in_condition_fits():
    spec = _spec(model={"source": "org/model", "config": CONFIG, "quantization": {"bits": 4}}, method={"type": "qlora"},
                 training={"maxSteps": 5, "batchSize": 1, "gradientCheckpointing": True})  # fmt: skip
    out = status.compute(_observe(spec), now=factories.NOW).status
    fits = next(c for c in out["conditions"] if c["type"] == "Fits")
    assert (fits["status"], fits["reason"]) == ("True", "FitsGpuMemory")
    assert out["estimate"]["totalGib"] < 24
    assert out["phase"] == "Pending"


def test_a_job_that_does_not_fit_is_warned_about_and_still_starts():
    spec = _spec(training={"maxSteps": 5, "batchSize": 16})
    out = status.compute(_observe(spec), now=factories.NOW).status
    fits = next(c for c in out["conditions"] if c["type"] == "Fits")
    assert (fits["status"], fits["reason"]) == ("False", "InsufficientGpuMemory")
    assert "exceeds the 24 GiB of nvidia.com/gpu" in fits["message"]
    assert out["phase"] == "Pending"
    assert fit.refusal(spec, out["estimate"]) is None


def test_fail_if_not_fits_fails_the_job_before_its_children_exist():
    spec = _spec(training={"maxSteps": 5, "batchSize": 16}, resources={"gpus": 1, "failIfNotFits": True})
    out = status.compute(_observe(spec), now=factories.NOW).status
    failed = next(c for c in out["conditions"] if c["type"] == "Failed")
    assert out["phase"] == "Failed"
    assert failed["reason"] == "InsufficientGpuMemory"
    assert "failIfNotFits" in failed["message"]
    assert "children" not in out


def test_fail_if_not_fits_leaves_a_job_whose_trainer_already_exists_alone():
    spec = _spec(training={"maxSteps": 5, "batchSize": 16}, resources={"gpus": 1, "failIfNotFits": True})
    out = status.compute(_observe(spec, job_body=factories.job()), now=factories.NOW).status
    assert out["phase"] != "Failed"


def test_gpu_memory_setting_is_read_from_json():
    settings = config.Settings.from_env({"KUBEFT_GPU_MEMORY_GIB": '{"nvidia.com/gpu": 80}'})
    assert settings.gpu_memory_gib == (("nvidia.com/gpu", 80.0),)


def test_a_malformed_gpu_memory_setting_names_the_variable():
    with pytest.raises(ValueError, match="`KUBEFT_GPU_MEMORY_GIB`"):
        config.Settings.from_env({"KUBEFT_GPU_MEMORY_GIB": '{"nvidia.com/gpu": "80Gi"}'})

"""The GPU check (hack/gpu-check.sh, benchmarks/gpu_check.py) in --cpu-smoke mode: the same steps with tiny shapes.

One smoke run per module, through the real script: it builds a tiny model, trains the PEFT quick tour
and kubeft's trainer (through `python -m kubeft_trainer.launch` with the config and env the operator
renders), runs the QLoRA step's export path as LoRA, and exports to the Hub stand-in (`--store hub`: the
store a GPU machine without the `weed` binary uses). The tests then check what it wrote against what is
on disk, so a step that only claimed to run would fail them.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import subprocess
from typing import Any

import pytest
import yaml

from benchmarks import gpu_check

pytestmark = pytest.mark.slow

REPO = pathlib.Path(__file__).resolve().parents[2]
STEPS = ["environment", "kubeft-lora", "quick-tour-baseline", "qlora-export", "ddp", "fsdp"]


@dataclasses.dataclass(frozen=True)
class Smoke:
    returncode: int
    output: str
    result: dict[str, Any]
    markdown: str
    workdir: pathlib.Path

    def step(self, name: str) -> dict[str, Any]:
        return next(s for s in self.result["steps"] if s["name"] == name)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Smoke:
    root = tmp_path_factory.mktemp("gpu-check")
    workdir, out = root / "work", root / "out"
    proc = subprocess.run(
        [str(REPO / "hack" / "gpu-check.sh"), "--cpu-smoke", "--store", "hub", "--workdir", str(workdir),
         "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert (out / "gpu-check.json").exists(), output[-4000:]
    return Smoke(
        returncode=proc.returncode,
        output=output,
        result=json.loads((out / "gpu-check.json").read_text()),
        markdown=(out / "gpu-check.md").read_text(),
        workdir=workdir,
    )


def test_smoke_run_passes_and_records_every_step_in_order(smoke: Smoke) -> None:
    assert smoke.returncode == 0, smoke.output[-4000:]
    assert smoke.result["mode"] == "cpu-smoke"
    assert smoke.result["passed"] is True
    assert [s["name"] for s in smoke.result["steps"]] == STEPS
    statuses = {s["name"]: s["status"] for s in smoke.result["steps"]}
    assert statuses == {
        "environment": "passed",
        "kubeft-lora": "passed",
        "quick-tour-baseline": "passed",
        "qlora-export": "passed",
        "ddp": "skipped",
        "fsdp": "skipped",
    }
    facts = smoke.result["environment"]
    assert facts["torch"] and facts["python"] and "transformers" in facts["versions"]


def test_kubeft_trained_through_the_launcher_with_the_operators_config(smoke: Smoke) -> None:
    run_dir = smoke.workdir / "lora" / "run-01-kubeft"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["kind"] == "TrainerConfig"
    assert config["spec"]["resources"]["gpus"] == 0  # defaults folded in by the operator's builders
    assert "kubeft launch: started accelerate" in (run_dir / "worker.log").read_text()
    kubeft = smoke.step("kubeft-lora")
    assert kubeft["exit_code"] == 0
    assert kubeft["steps_metered"] == gpu_check.SMOKE_STEPS
    assert kubeft["tokens_real"] > 0 and kubeft["tokens_per_second"] > 0
    assert kubeft["padding_ratio"] == 0  # packed rows: every token computed is real
    termination = json.loads((run_dir / "termination-log").read_text())
    assert termination["result"] == "Succeeded"
    assert kubeft["artifact"] == termination["artifact"]


def test_the_quick_tour_trained_the_same_steps_and_the_ratio_is_of_the_two_runs(smoke: Smoke) -> None:
    baseline, kubeft = smoke.step("quick-tour-baseline"), smoke.step("kubeft-lora")
    assert baseline["exit_code"] == 0
    assert baseline["steps_metered"] == kubeft["steps_metered"]
    assert baseline["padding_ratio"] > 0  # the tour pads each batch to its longest record
    assert baseline["kubeft_over_baseline_tokens_per_second"] == pytest.approx(
        kubeft["tokens_per_second"] / baseline["tokens_per_second"]
    )
    # Same model, data and learning rate: both losses start at the same point.
    assert baseline["first_train_loss"] == pytest.approx(kubeft["first_train_loss"], rel=0.02)


def test_the_adapter_was_exported_and_is_in_the_store(smoke: Smoke) -> None:
    export = smoke.step("qlora-export")
    assert export["exit_code"] == 0 and export["store"] == "hub"
    repo = smoke.workdir / "hub-store" / "models" / "kubeft-tester" / "gpu-check-qlora" / "main"
    on_disk = {p.name: p.stat().st_size for p in repo.iterdir() if p.is_file()}
    assert on_disk["adapter_model.safetensors"] > 0 and "adapter_config.json" in on_disk
    assert export["exported_files"]["adapter_model.safetensors"] == on_disk["adapter_model.safetensors"]
    assert export["artifact"]["uri"] == "hf://kubeft-tester/gpu-check-qlora"


def test_what_needs_a_gpu_says_skipped_no_gpu(smoke: Smoke) -> None:
    assert "ddp: skipped: no GPU (needs 2)" in smoke.output
    assert "4-bit quantization: skipped: no GPU" in smoke.output
    assert "trainer's GPU verdict: skipped: no GPU" in smoke.output
    assert smoke.step("qlora-export")["method"] == "lora"


def test_the_markdown_report_has_a_row_per_step(smoke: Smoke) -> None:
    rows = [line for line in smoke.markdown.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == len(STEPS)
    assert "Verdict: **passed**" in smoke.markdown

"""Pins the behaviour of the pinned libraries that the trainer's argument mapping relies on.

If an upgrade of transformers changes what these arguments mean, this fails before any run
silently trains with another schedule.
"""

from __future__ import annotations

import pathlib

import transformers

from kubeft_operator.api import spec as api_spec
from kubeft_trainer.train import arguments


def training(**fields: object) -> api_spec.TrainingSpec:
    return api_spec.TrainingSpec.model_validate({"maxSteps": 100, **fields})


def test_transformers_is_the_major_version_the_mapping_is_written_for() -> None:
    assert int(transformers.__version__.split(".")[0]) >= 5


def test_a_warmup_ratio_below_one_is_a_fraction_of_the_steps(tmp_path: pathlib.Path) -> None:
    # transformers 5 folded warmup_ratio into warmup_steps: a float below 1 is a ratio of the total.
    args = arguments.build(training(warmupRatio=0.1), output_dir=tmp_path, has_validation=False, label_names=[])
    assert args.get_warmup_steps(100) == 10
    assert args.get_warmup_steps(400) == 40
    none = arguments.build(training(warmupRatio=0.0), output_dir=tmp_path, has_validation=False, label_names=[])
    assert none.get_warmup_steps(100) == 0


def test_checkpointing_and_schedule_arguments_land_where_the_trainer_reads_them(tmp_path: pathlib.Path) -> None:
    args = arguments.build(
        training(checkpointSteps=7, lrScheduler="cosine", gradientCheckpointing=True),
        output_dir=tmp_path,
        has_validation=False,
        label_names=["labels"],
    )
    assert args.save_steps == 7 and args.save_total_limit == 2
    assert getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type) == "cosine"
    name = "activation_checkpointing" if hasattr(args, "activation_checkpointing") else "gradient_checkpointing"
    assert getattr(args, name) is True
    assert args.max_steps == 100

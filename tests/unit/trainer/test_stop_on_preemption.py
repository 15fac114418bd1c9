"""SIGTERM stops within one micro-batch, saves the last completed step once, and evaluates nothing on the way out.

The callback gets transformers' own TrainerState and TrainerControl, and DefaultFlowCallback runs
before it as in a Trainer, so the flags are the ones the Trainer's loop reads.
"""

from __future__ import annotations

import signal

import pytest
import transformers

from kubeft_trainer import errors
from kubeft_trainer.train import callbacks, preemption


def _setup(*, global_step: int = 0, eval_strategy: str = "epoch") -> tuple[object, ...]:
    args = transformers.TrainingArguments(
        output_dir="/nonexistent",
        eval_strategy=eval_strategy,
        eval_steps=1,
        save_strategy="epoch",
        logging_steps=1,
        report_to=[],
        use_cpu=True,
    )
    state = transformers.TrainerState(global_step=global_step, max_steps=100)
    control = transformers.TrainerControl()
    flag = preemption.Preemption()
    stop = callbacks.StopOnPreemption(flag)
    handler = transformers.trainer_callback.CallbackHandler(
        [transformers.trainer_callback.DefaultFlowCallback, stop], None, None, None, None
    )
    handler.on_train_begin(args, state, control)
    return args, state, control, flag, stop, handler


def test_without_a_signal_nothing_changes():
    args, state, control, _, stop, handler = _setup(global_step=4)
    control = handler.on_substep_end(args, state, control)
    assert not control.should_training_stop and not control.should_save
    assert stop.step is None


def test_a_signal_between_micro_batches_stops_there_and_saves_the_last_completed_step_once():
    args, state, control, flag, stop, handler = _setup()
    state.global_step = 7  # steps 1-7 completed; the 8th is accumulating
    flag.requested = True

    control = handler.on_substep_end(args, state, control)

    assert control.should_training_stop, "the loop must break after this micro-batch, not after 16"
    assert control.should_save and not control.should_evaluate
    assert stop.step == 7

    # The loop breaks; the epoch ends: the epoch's evaluation is skipped and the step saved once.
    control = handler.on_epoch_end(args, state, control)
    assert control.should_save and not control.should_evaluate
    control = handler.on_save(args, state, control)
    assert stop.saved_step == 7
    control = handler.on_epoch_end(args, state, control)
    assert not control.should_save and not control.should_evaluate


def test_a_signal_at_a_step_end_skips_that_steps_evaluation_and_saves():
    args, state, control, flag, stop, handler = _setup(eval_strategy="steps")
    state.global_step = 3
    flag.requested = True

    control = handler.on_step_end(args, state, control)

    assert control.should_training_stop and control.should_save
    assert not control.should_evaluate, "eval_steps=1 asked for an evaluation; on the way out it is skipped"
    assert stop.step == 3


def test_a_signal_before_the_first_step_saves_nothing():
    args, state, control, flag, stop, handler = _setup()
    flag.requested = True
    control = handler.on_substep_end(args, state, control)
    control = handler.on_epoch_end(args, state, control)
    assert control.should_training_stop and not control.should_save
    assert stop.step == 0


def test_a_resumed_run_stopped_before_its_next_step_does_not_save_its_checkpoint_again():
    args, state, control, flag, stop, handler = _setup(global_step=30)
    flag.requested = True
    control = handler.on_substep_end(args, state, control)
    control = handler.on_epoch_end(args, state, control)
    assert control.should_training_stop and not control.should_save
    assert stop.step == 30


def test_a_sigterm_outside_training_ends_the_run_at_once():
    flag = preemption.Preemption()
    with pytest.raises(errors.Preempted, match="outside the training loop"):
        flag._handle(signal.SIGTERM, None)


def test_a_repeated_sigterm_after_the_loop_stopped_keeps_the_first_outcome():
    """A second SIGTERM (torchrun stopping the other ranks once one exited, or a person) that lands
    between the training loop's end and the trainer's exit must not turn `Preempted at step N` into
    a stepless one (seen in CI, when the launcher still repeated SIGTERM each second)."""
    flag = preemption.Preemption()
    flag.training = True
    flag._handle(signal.SIGTERM, None)  # the loop saves and stops
    assert flag.requested
    flag.training = False  # on_train_end
    flag._handle(signal.SIGTERM, None)  # the repeat: no exception


def test_a_sigterm_after_the_run_has_its_outcome_changes_nothing():
    """Between the pipeline's end (exported, or failed) and the process's exit, a SIGTERM is too late."""
    flag = preemption.Preemption()
    flag.finish()
    flag._handle(signal.SIGTERM, None)  # no Preempted raised into the termination message's writing
    assert flag.requested

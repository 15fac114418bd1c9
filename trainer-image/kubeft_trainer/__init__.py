"""kubeft trainer: turns a rendered FineTuneJob config into a PEFT adapter in S3 or on the Hub.

Run as ``accelerate launch -m kubeft_trainer --config /etc/kubeft/config.yaml`` (the operator's
Job) or ``kubeft-train --config FILE`` (anywhere else). The pipeline is one module per stage:
:mod:`.config` → :mod:`.data` → :mod:`.model` → :mod:`.train` → :mod:`.export`, driven by
:mod:`.pipeline`; :mod:`.__main__` turns its outcome into an exit code and a termination message
(docs/DESIGN.md). Importing this package imports nothing heavy.
"""

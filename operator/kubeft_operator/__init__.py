"""kubeft operator: reconciles FineTuneJob resources into trainer Jobs.

Importing this package imports nothing else, so ``kubeft_operator.api`` stays usable from the
trainer image, which does not install the operator's dependencies (kopf, kubernetes).
"""

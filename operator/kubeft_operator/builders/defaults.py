"""Operator-wide defaults folded into a FineTuneJob's spec before anything is built from it.

``spec.resources`` fields the user left out take the operator's defaults (the chart's
``trainer.defaultResources``) instead of the API's built-in ones, so one cluster can default to
CPU training and another to one GPU. The ConfigMap and the Job are both built from the result,
so the trainer's config file shows what the pod actually got.
"""

from __future__ import annotations

from kubeft_operator import config
from kubeft_operator.api import spec as spec_models


def apply(spec: spec_models.FineTuneJobSpec, settings: config.Settings) -> spec_models.FineTuneJobSpec:
    given = spec.resources.model_fields_set if "resources" in spec.model_fields_set else set()
    fallback = {"gpus": settings.default_gpus, "cpu": settings.default_cpu, "memory": settings.default_memory}
    missing = {field: value for field, value in fallback.items() if field not in given}
    if not missing:
        return spec
    resources = spec_models.ResourcesSpec.model_validate({**spec.resources.model_dump(), **missing})
    return spec.model_copy(update={"resources": resources})

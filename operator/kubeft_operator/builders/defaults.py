"""Operator-wide defaults folded into a FineTuneJob's spec before anything is built from it.

``spec.resources`` fields the user left out take the operator's defaults (the chart's
``trainer.defaultResources``) instead of the API's built-in ones, so one cluster can default to
CPU training and another to one GPU. ``spec.scheduling`` takes the platform's defaults (the chart's
``trainer.defaults``): the job's nodeSelector is laid over the default one key by key (a job narrows
the platform's node pool, say to one GPU product, without restating it), its tolerations replace
the default list when it has any (tolerations are about the taints of the nodes the job picks, so
they go together), and its priorityClassName and queueName win when set. The ConfigMap and the Job
are both built from the result, so the trainer's config file shows what the pod actually got, and
every "is this job queued?" (the Job's suspend and queue label, the Queued condition, the reconciler's
Kueue path) asks the same effective ``queueName``.
"""

from __future__ import annotations

from typing import Any

from kubeft_operator import config
from kubeft_operator.api import spec as spec_models


def apply(spec: spec_models.FineTuneJobSpec, settings: config.Settings) -> spec_models.FineTuneJobSpec:
    update: dict[str, Any] = {}
    resources = _resources(spec, settings)
    if resources is not None:
        update["resources"] = resources
    scheduling = _scheduling(spec.scheduling, settings.default_scheduling)
    if scheduling != spec.scheduling:
        update["scheduling"] = scheduling
    return spec.model_copy(update=update) if update else spec


def _resources(spec: spec_models.FineTuneJobSpec, settings: config.Settings) -> spec_models.ResourcesSpec | None:
    given = spec.resources.model_fields_set if "resources" in spec.model_fields_set else set()
    fallback = {"gpus": settings.default_gpus, "cpu": settings.default_cpu, "memory": settings.default_memory}
    missing = {field: value for field, value in fallback.items() if field not in given}
    if not missing:
        return None
    return spec_models.ResourcesSpec.model_validate({**spec.resources.model_dump(), **missing})


def _scheduling(
    job: spec_models.SchedulingSpec | None, platform: spec_models.SchedulingSpec
) -> spec_models.SchedulingSpec | None:
    """The job's scheduling over the platform's; None when neither says anything."""
    if job is None and platform == spec_models.SchedulingSpec():
        return None
    own = job or spec_models.SchedulingSpec()
    node_selector = {**(platform.node_selector or {}), **(own.node_selector or {})}
    return spec_models.SchedulingSpec(
        node_selector=node_selector or None,
        tolerations=own.tolerations or platform.tolerations,
        priority_class_name=own.priority_class_name or platform.priority_class_name,
        queue_name=own.queue_name or platform.queue_name,
    )

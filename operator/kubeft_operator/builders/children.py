"""Every child object of a FineTuneJob, in the order the reconciler creates them.

A multi-node job also gets the headless Service its pods meet through (builders/rendezvous.py).
The Job comes last: once it exists, everything it mounts and runs as exists too, so the
reconciler can treat "Job observed" as "all children created". :func:`stages` groups them into
what may be created in parallel: the RoleBinding waits for its Role, because the API server checks
a binding against the Role it grants (the operator may only grant what it holds, and a Role that
does not exist yet cannot be checked).
"""

from __future__ import annotations

from typing import Any

from kubeft_operator import config
from kubeft_operator.api import spec as spec_models
from kubeft_operator.builders import config_map, job, meta, rbac, rendezvous


def build(
    owner: meta.Owner, spec: spec_models.FineTuneJobSpec, *, settings: config.Settings, resume_uri: str | None = None
) -> list[dict[str, Any]]:
    """``resume_uri``: what spec.resumeFrom resolved to (:mod:`kubeft_operator.builders.resume`)."""
    group = [rendezvous.service(owner)] if rendezvous.multi_node(spec) else []
    return [
        config_map.build(owner, spec, resume_uri=resume_uri),
        rbac.service_account(owner, settings),
        rbac.role(owner),
        *group,
        rbac.role_binding(owner),
        job.build(owner, spec, settings=settings),
    ]


def stages(
    owner: meta.Owner, spec: spec_models.FineTuneJobSpec, *, settings: config.Settings, resume_uri: str | None = None
) -> list[list[dict[str, Any]]]:
    """:func:`build`'s objects in creation stages: each stage's objects in parallel, stages in order."""
    *first, binding, job_obj = build(owner, spec, settings=settings, resume_uri=resume_uri)
    return [first, [binding], [job_obj]]

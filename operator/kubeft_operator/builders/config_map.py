"""The ConfigMap ``NAME-config`` holding the trainer's config file (``config.yaml``).

The document is the contract of docs/DESIGN.md: ``kind: TrainerConfig`` with the FineTuneJob's
name, namespace and uid, its spec in wire form with every default filled in, and ``resumeFrom``:
the adapter or checkpoint URI that ``spec.resumeFrom`` resolved to (a job name becomes a URI). The trainer
reads it back with ``FineTuneJobSpec.model_validate(doc["spec"])``. The ConfigMap is immutable,
like the spec it renders.
"""

from __future__ import annotations

from typing import Any

import yaml

from kubeft_operator.api import contract
from kubeft_operator.api import spec as spec_models
from kubeft_operator.builders import meta

_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def render(owner: meta.Owner, spec: spec_models.FineTuneJobSpec, *, resume_uri: str | None = None) -> str:
    """The trainer config file's text."""
    doc: dict[str, Any] = {
        "apiVersion": meta.API_VERSION,
        "kind": contract.TRAINER_CONFIG_KIND,
        "metadata": {"name": owner.name, "namespace": owner.namespace, "uid": owner.uid},
        "spec": spec.wire(),
    }
    if resume_uri is not None:
        doc["resumeFrom"] = resume_uri
    # libyaml's emitter when PyYAML has it (its wheels do): the pure-Python one took 7 ms per job.
    return yaml.dump(doc, Dumper=_DUMPER, sort_keys=False)


def build(owner: meta.Owner, spec: spec_models.FineTuneJobSpec, *, resume_uri: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta.metadata(owner, meta.config_map_name(owner.name)),
        "immutable": True,
        "data": {meta.CONFIG_KEY: render(owner, spec, resume_uri=resume_uri)},
    }

"""Shared building blocks for the FineTuneJob API models.

Every spec and status model derives from :class:`ApiModel`, which gives camelCase wire names,
rejects unknown fields and freezes instances. Cross-field rules are declared next to the model
they constrain with :func:`cel`, and end up as ``x-kubernetes-validations`` in the generated CRD
(see :mod:`kubeft_operator.api.crd`). This module imports only pydantic, so the trainer can use
the API models without the operator's dependencies.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

# CEL cost estimation needs a bound on every string, list and map the rules can touch.
ShortStr = Annotated[str, StringConstraints(min_length=1, max_length=253)]
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
]
Uri = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


def cel(*rules: tuple[str, str] | tuple[str, str, str]) -> dict[str, Any]:
    """Build a ``json_schema_extra`` holding CEL rules: ``(rule, message[, fieldPath])``."""
    out = []
    for rule in rules:
        entry = {"rule": rule[0], "message": rule[1]}
        if len(rule) == 3:
            entry["fieldPath"] = rule[2]
        out.append(entry)
    return {"x-kubernetes-validations": out}


class ApiModel(BaseModel):
    """Base for every API object: camelCase on the wire, strict, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=True,
    )

    def wire(self) -> dict[str, Any]:
        """The object as it appears in Kubernetes: camelCase, unset fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class SecretKeyRef(ApiModel):
    """A key in a Secret in the FineTuneJob's namespace."""

    name: Name = Field(description="Name of the Secret, in the same namespace as the FineTuneJob.")
    key: ShortStr = Field(default="token", description="Key inside the Secret that holds the value.")

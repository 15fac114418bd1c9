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

# Label keys and values as Kubernetes checks them on a Pod; a nodeSelector or toleration that
# breaks these would pass the CRD and then fail every Job creation, so the CRD checks them too.
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
LABEL_KEY_PATTERN = rf"^({_DNS_SUBDOMAIN}/)?{_LABEL_NAME}$"
_CEL_LABEL_KEY = LABEL_KEY_PATTERN.replace("\\", "\\\\")  # a backslash inside a CEL string literal
LABEL_KEY_RULE = f"self.all(k, k.matches('{_CEL_LABEL_KEY}') && (!k.contains('/') || k.indexOf('/') <= 253))"
LABEL_KEY_MSG = (
    "keys must be label keys: an optional DNS prefix and '/', then at most 63 letters, digits, '-', '_' or '.'"
)
LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=317, pattern=LABEL_KEY_PATTERN)]
LabelValue = Annotated[str, StringConstraints(max_length=63, pattern=rf"^({_LABEL_NAME})?$")]
# An extended resource (a GPU's), as a container's resource limits accept it: a domain-prefixed
# name outside kubernetes.io, whose "requests." form is still a label key. The pattern fixes the
# shape; EXTENDED_RESOURCE_RULES say the rest, in CEL.
ExtendedResourceName = Annotated[
    str, StringConstraints(min_length=3, max_length=308, pattern=rf"^{_DNS_SUBDOMAIN}/{_LABEL_NAME}$")
]
EXTENDED_RESOURCE_RULES = (
    ("!self.contains('kubernetes.io/')", "must be an extended resource: kubernetes.io names are native resources"),
    ("self.indexOf('/') <= 244", "the domain prefix may be at most 244 characters"),
)


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

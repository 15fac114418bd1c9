"""core/v1 Events about a FineTuneJob (Created, Queued, Started, Checkpointed, Succeeded, Failed).

The reconciler decides which events to post (:func:`kubeft_operator.status.transitions`) and
builds them here. Messages come from conditions and termination messages, never from Secrets.
"""

from __future__ import annotations

from typing import Any

from kubeft_operator.api import crd
from kubeft_operator.builders import meta

REPORTING_COMPONENT = "kubeft-operator"
MAX_MESSAGE = 1024


def build(
    owner: meta.Owner,
    *,
    type: str,
    reason: str,
    message: str,
    now: str,
    suffix: str,
    instance: str,
) -> dict[str, Any]:
    """An Event named ``NAME.<suffix>``; ``suffix`` must be unique per event (a time in hex will do)."""
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{owner.name}.{suffix}", "namespace": owner.namespace},
        "involvedObject": {
            "apiVersion": meta.API_VERSION,
            "kind": crd.KIND,
            "name": owner.name,
            "namespace": owner.namespace,
            "uid": owner.uid,
        },
        "type": type,
        "reason": reason,
        "message": message,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "source": {"component": REPORTING_COMPONENT},
        "reportingComponent": REPORTING_COMPONENT,
        "reportingInstance": instance,
    }

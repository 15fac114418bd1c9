"""The FineTuneJob API (kubeft.io/v1alpha1): spec and status models, and the CRD generated from them.

Shared by the operator and the trainer; depends only on pydantic (and PyYAML for the generator).
"""

from kubeft_operator.api.methods import MethodType
from kubeft_operator.api.spec import FineTuneJobSpec, Task
from kubeft_operator.api.status import FineTuneJobStatus, Phase

__all__ = ["FineTuneJobSpec", "FineTuneJobStatus", "MethodType", "Phase", "Task"]

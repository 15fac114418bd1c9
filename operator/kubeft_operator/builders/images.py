"""Image policy: which trainer images a FineTuneJob may run (``spec.image``).

A trainer pod runs with the trainer's ServiceAccount, its Secrets and the cluster's GPUs, so a
tenant must not run an arbitrary image there. ``spec.image`` must match one of the operator's
allowed patterns (``KUBEFT_ALLOWED_IMAGES``, chart value ``operator.allowedImages``: shell-style
globs over the whole reference, e.g. ``registry.example.com/ml/*``); with none configured, only the
operator's default trainer image is allowed. Called by the reconciler with the endpoint policy; a
refusal fails the run with reason ``InvalidSpec``.
"""

from __future__ import annotations

import fnmatch

from kubeft_operator import config
from kubeft_operator.api import spec as spec_models


def problem(spec: spec_models.FineTuneJobSpec, settings: config.Settings) -> str | None:
    """Why ``spec.image`` is refused, or None when it is left out or allowed."""
    image = spec.image
    if not image or image == settings.trainer_image:
        return None
    patterns = settings.allowed_images or (settings.trainer_image,)
    if any(fnmatch.fnmatchcase(image, pattern) for pattern in patterns):
        return None
    return (
        f"spec.image {image} is not an image this operator runs (allowed: {', '.join(patterns)}); "
        "leave spec.image out for the default trainer, or ask the platform team to add it to "
        "operator.allowedImages"
    )

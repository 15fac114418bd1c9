"""Pure builders: typed spec in, desired Kubernetes objects out, as plain dicts.

Nothing here talks to the API server or imports kopf or the Kubernetes client (an import-linter contract
holds that). :mod:`kubeft_operator.reconciler` calls :func:`children.build` and hands the dicts
to :mod:`kubeft_operator.k8s`; unit tests compare them field by field.
"""

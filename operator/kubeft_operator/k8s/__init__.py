"""The only package that talks to the Kubernetes API server (through lightkube's async client).

An import-linter contract keeps lightkube out of every other module: the reconciler speaks to
:class:`client.Api` in plain dicts and catches the exceptions of :mod:`errors`.
"""

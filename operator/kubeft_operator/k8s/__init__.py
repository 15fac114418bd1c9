"""The only package that talks to the Kubernetes API server (the official ``kubernetes`` client).

An import-linter contract keeps the client out of every other module: the reconciler speaks to
:class:`client.Api` in plain dicts and catches the exceptions of :mod:`errors`.
"""

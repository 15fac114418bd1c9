# Test-only image: hack/fake_trainer.py, the stand-in trainer that the operator's integration
# tests run instead of the real one (it speaks the trainer's side of the contract and trains
# nothing, so a test pod finishes in about a second). Never published. Same uid as the trainer.
# It imports the contract (kubeft_operator.api: exit codes, the progress report's model) as the
# real trainer does, so the two cannot drift apart.
ARG BASE=docker.io/library/python:3.11-slim-bookworm
FROM ${BASE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_INDEX=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 VIRTUAL_ENV=/opt/kubeft PATH=/opt/kubeft/bin:$PATH \
    PYTHONPATH=/opt/kubeft/lib
RUN --mount=type=bind,from=wheels,target=/wheels \
    python3 -m venv "$VIRTUAL_ENV" && pip install --find-links /wheels PyYAML==6.0.4 pydantic==2.14.4
COPY operator/kubeft_operator/__init__.py /opt/kubeft/lib/kubeft_operator/
COPY operator/kubeft_operator/api /opt/kubeft/lib/kubeft_operator/api
COPY hack/fake_trainer.py /opt/kubeft/fake_trainer.py
USER 10001:10001
ENTRYPOINT ["python", "/opt/kubeft/fake_trainer.py"]

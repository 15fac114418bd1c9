"""Property-based fuzzing of FineTuneJob specs against the real API server, then the real operator.

Hypothesis mutates a valid spec: it picks one to three fields anywhere in the CRD's schema (which
is generated from the pydantic models, so it walks the models' fields) and puts there a value
drawn from that field's schema, widened past its bounds, or a hostile string (metadata addresses
in numeric spellings, path traversal, template and shell syntax, control characters, 2 KB
strings). Every mutated spec is created with server-side dry run:

1. the API server either accepts it, or rejects it with a message that names a `spec.` field path;
2. an accepted spec parses with the operator's own model or fails with a ValidationError (which the
   operator turns into InvalidSpec), never another exception.

Then up to 40 accepted specs, half of them ones the operator's policy refuses, all `suspend: true`
(so no trainer pod runs), are created for real in a namespace watched by a real operator process:
each ends `Failed`/`InvalidSpec` with no Job
exactly when the operator's policy (model, endpoint policy, image allowlist, resumeFrom) refuses
it, and `Suspended` with its Job otherwise; the operator neither crashes, nor logs a reconcile
error, nor keeps writing once everything has settled. The seed is printed, and set with
KUBEFT_FUZZ_SEED to replay a run.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import hypothesis
import pydantic
import pytest
import yaml
from hypothesis import strategies as st

from kubeft_operator.api import spec as spec_models
from tests.fixtures.cluster import REPO, Cluster
from tests.integration.operator.conftest import Operator, Watcher, manifest

pytestmark = pytest.mark.cluster

EXAMPLES = int(os.environ.get("KUBEFT_FUZZ_EXAMPLES", "3000"))
CREATED = 40
# Fields whose change the test itself relies on (suspend keeps pods away; a TTL would delete the job).
SKIP = {"suspend", "ttlSecondsAfterFinished"}
HOSTILE = [
    "",
    " ",
    "\x00",
    "\u202e\u0000x",
    "🦙" * 10,
    "a" * 2000,
    "../../../etc/passwd",
    "file:///etc/shadow",
    "http://169.254.169.254/latest/meta-data/",
    "http://2852039166/",
    "http://0xA9FEA9FE/",
    "http://0251.0376.0251.0376/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://169.254.169.254./",
    "http://metadata.google.internal/",
    "http://user:pass@10.0.0.1/",
    "http://%31%36%39.254.169.254/",
    "https://127.0.0.1:6443/",
    "s3://",
    "s3://bucket",
    "s3://bucket/../../x",
    "s3://Bad_Bucket/x",
    "hf://org/model",
    "{{ .Values.secret }}",
    "${AWS_SECRET_ACCESS_KEY}",
    "$(cat /var/run/secrets/kubernetes.io/serviceaccount/token)",
    "'; DROP TABLE jobs; --",
    "--help",
    "registry.evil.example/miner:latest",
    "ghcr.io/kubeft/trainer:0.1.0@sha256:" + "0" * 64,
    "null",
    "true",
    "1e309",
    "NaN",
]


def _schema() -> dict[str, Any]:
    crd = yaml.safe_load((REPO / "crds" / "finetunejob.yaml").read_text())
    (version,) = crd["spec"]["versions"]
    return dict(version["schema"]["openAPIV3Schema"]["properties"]["spec"])


def values(node: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values for one schema node: mostly what it allows, often a little beyond, sometimes hostile."""
    hostile = st.sampled_from(HOSTILE)
    if "enum" in node:
        return st.one_of(st.sampled_from(node["enum"]), hostile)
    kind = node.get("type")
    if node.get("x-kubernetes-int-or-string"):
        return st.one_of(st.integers(-5, 10**6), st.text(max_size=12), hostile)
    if kind == "object":
        props = node.get("properties") or {}
        if not props or depth > 3:
            leaf = st.one_of(st.text(max_size=12), hostile)
            return st.dictionaries(st.text(min_size=1, max_size=12), leaf, max_size=3)
        required = [k for k in node.get("required", []) if k in props]
        optional = {k: values(v, depth + 1) for k, v in props.items() if k not in required and k not in SKIP}
        return st.fixed_dictionaries({k: values(props[k], depth + 1) for k in required}, optional=optional)
    if kind == "string":
        return st.one_of(st.text(max_size=40), hostile)
    if kind == "integer":
        low, high = node.get("minimum"), node.get("maximum")
        return st.integers(
            min_value=int(low) - 2 if low is not None else -(10**9),
            max_value=int(high) + 2 if high is not None else 10**9,
        )
    if kind == "number":
        low, high = node.get("minimum"), node.get("maximum")
        return st.floats(
            min_value=float(low) - 1 if low is not None else -1e12,
            max_value=float(high) + 1 if high is not None else 1e12,
            allow_nan=False,
            allow_infinity=False,
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return st.lists(values(node.get("items") or {}, depth + 1), max_size=4)
    return st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8), hostile)


def paths(node: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    for key, child in (node.get("properties") or {}).items():
        if key in SKIP:
            continue
        here = (*prefix, key)
        yield here, child
        if child.get("type") == "object" and len(here) < 4:
            yield from paths(child, here)


SPEC_SCHEMA = _schema()
FIELDS = list(paths(SPEC_SCHEMA))
MUTATIONS = st.lists(
    st.sampled_from(range(len(FIELDS))).flatmap(lambda i: st.tuples(st.just(FIELDS[i][0]), values(FIELDS[i][1]))),
    min_size=1,
    max_size=3,
)


def mutate(spec: dict[str, Any], changes: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    out = json.loads(json.dumps(spec))
    for path, value in changes:
        node = out
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[path[-1]] = value
    out["suspend"] = True
    return out


class Api:
    """Just enough of the API server for thousands of dry runs without a kubectl process each."""

    def __init__(self, cluster: Cluster, tmp: str) -> None:
        config = yaml.safe_load(cluster.kubeconfig.read_text())
        server = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        ca, cert, key = (os.path.join(tmp, n) for n in ("ca.crt", "client.crt", "client.key"))
        for path, field in ((ca, server["certificate-authority-data"]), (cert, user["client-certificate-data"])):
            with open(path, "wb") as f:
                f.write(base64.b64decode(field))
        with open(key, "wb") as f:
            f.write(base64.b64decode(user["client-key-data"]))
        self.context = ssl.create_default_context(cafile=ca)
        self.context.load_cert_chain(cert, key)
        self.server = server["server"]

    def dry_run_create(self, namespace: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        url = f"{self.server}/apis/kubeft.io/v1alpha1/namespaces/{namespace}/finetunejobs?dryRun=All"
        request = urllib.request.Request(
            url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")


def operator_refuses(spec: dict[str, Any], environ: dict[str, str]) -> bool:
    """What the operator's policy says before creating anything, with the operator's own settings (no
    private endpoints, its trainer image only; there is no FineTuneJob for resumeFrom.job to name)."""
    from kubeft_operator import config
    from kubeft_operator.builders import endpoints, images

    try:
        parsed = spec_models.FineTuneJobSpec.model_validate(spec)
    except pydantic.ValidationError:
        return True
    settings = config.Settings.from_env(environ)
    if endpoints.problem(parsed, settings) or images.problem(parsed, settings):
        return True
    return parsed.resume_from is not None and parsed.resume_from.job is not None


def test_fuzzed_specs_are_rejected_clearly_or_handled_without_crash_loop_or_stray_job(
    cluster: Cluster, namespace: str, operator: Operator, watch: Watcher
) -> None:
    seed = int(os.environ.get("KUBEFT_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
    print(f"spec fuzzing: seed {seed} (replay with KUBEFT_FUZZ_SEED={seed}), {EXAMPLES} examples")
    base = manifest("fuzz")
    accepted: list[dict[str, Any]] = []
    rejected = 0
    started = time.monotonic()

    with tempfile.TemporaryDirectory() as tmp:
        api = Api(cluster, tmp)

        @hypothesis.seed(seed)
        @hypothesis.settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            print_blob=True,
        )
        @hypothesis.given(MUTATIONS)
        def one(changes: list[tuple[tuple[str, ...], Any]]) -> None:
            nonlocal rejected
            spec = mutate(base["spec"], changes)
            body = {**base, "metadata": {"name": "fuzz"}, "spec": spec}
            code, answer = api.dry_run_create(namespace, body)
            if code == 201:
                # Another exception than ValidationError would crash the reconcile; that one is InvalidSpec.
                with contextlib.suppress(pydantic.ValidationError):
                    spec_models.FineTuneJobSpec.model_validate(answer["spec"])
                accepted.append(answer["spec"])
                return
            assert code in (400, 422), (seed, code, answer)
            rejected += 1
            causes = answer.get("details", {}).get("causes") or []
            named = [c.get("field", "") for c in causes] + [answer.get("message", "")]
            assert any("spec" in text for text in named), (seed, changes, answer.get("message"))

        one()

    print(
        f"spec fuzzing: {rejected} rejected at apply, {EXAMPLES - rejected} accepted, "
        f"in {time.monotonic() - started:.0f} s"
    )
    assert accepted, f"seed {seed}: no fuzzed spec was accepted; the mutations are too wild to test the operator"

    # Half of those the operator's policy refuses, half it runs (as many as the seed produced).
    verdicts = [(spec, operator_refuses(spec, operator._env)) for spec in accepted]
    sample = [v for v in verdicts if v[1]][: CREATED // 2] + [v for v in verdicts if not v[1]][: CREATED // 2]
    expected = {}
    for i, (spec, refused) in enumerate(sample):
        name = f"fuzz-{i}"
        cluster.apply({**base, "metadata": {"name": name}, "spec": spec}, namespace=namespace)
        expected[name] = refused

    def settled() -> bool:
        return all(watch.phase(name) in ("Failed", "Suspended") for name in expected)

    try:
        cluster.wait_for(settled, timeout=120, interval=1, what=f"every fuzzed job to settle (seed {seed})")
    except AssertionError:
        spec_of = dict(zip(expected, (spec for spec, _ in sample), strict=True))
        stuck = {n: (watch.status(n), spec_of[n]) for n in expected if watch.phase(n) not in ("Failed", "Suspended")}
        raise AssertionError(f"seed {seed}: not settled: {json.dumps(stuck, indent=1, default=str)}") from None
    for name, refused in expected.items():
        status = watch.status(name)
        jobs = watch.items("jobs", name)
        if refused:
            failed = watch.condition(name, "Failed")
            assert status["phase"] == "Failed" and failed["reason"] == "InvalidSpec", (
                f"seed {seed}: {name}: {json.dumps(status)}"
            )
            assert jobs == [], f"seed {seed}: {name} is refused by policy but has a Job"
        else:
            assert status["phase"] == "Suspended", f"seed {seed}: {name}: {json.dumps(status)}"
            assert len(jobs) == 1 and jobs[0]["spec"]["suspend"] is True
    refused = sum(expected.values())
    print(f"spec fuzzing: of {len(expected)} created, {refused} refused by the operator, {len(expected) - refused} ran")
    assert operator.proc is not None and operator.proc.poll() is None, "the operator crashed"
    assert operator.metrics().get("kubeft_reconcile_errors_total", 0) == 0, operator.log()[-3000:]
    writes = operator.writes()
    time.sleep(5)
    assert operator.writes() == writes, f"seed {seed}: the operator keeps writing after everything settled"

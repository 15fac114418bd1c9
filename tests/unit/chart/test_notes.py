"""NOTES.txt, printed after `helm install`, tells the user what to run next."""

from __future__ import annotations

from tests.unit.chart import helm


def test_notes_point_at_the_operator_deployment_in_the_release_namespace() -> None:
    assert "kubectl -n kubeft-system rollout status deployment/ft-kubeft-operator" in helm.notes()


def test_notes_show_how_to_apply_an_example_and_watch_it() -> None:
    text = helm.notes()

    assert "kubectl apply -f examples/01-lora-chat-s3.yaml" in text
    assert "kubectl get ftj -w" in text


def test_notes_name_an_example_job_that_exists() -> None:
    example = (helm.ROOT / "examples" / "01-lora-chat-s3.yaml").read_text()

    assert "name: qwen-support-chat" in example
    assert "kubectl get ftj qwen-support-chat" in helm.notes()


def test_notes_name_the_default_trainer_image() -> None:
    assert "Trainer pods default to the image registry.local/trainer:dev." in helm.notes(
        "--set", "trainer.image.repository=registry.local/trainer,trainer.image.tag=dev"
    )


def test_notes_say_how_to_upgrade_crds() -> None:
    assert "kubectl apply --server-side --force-conflicts -f charts/kubeft/crds/" in helm.notes()


def test_notes_warn_when_no_operator_runs() -> None:
    text = helm.notes("--set", "operator.replicas=0")

    assert "WARNING: operator.replicas is 0" in text
    assert "--set operator.replicas=1" in text


def test_notes_do_not_warn_with_a_running_operator() -> None:
    assert "WARNING" not in helm.notes()


def test_notes_list_watched_namespaces() -> None:
    text = helm.notes("--set", "operator.watchNamespaces={team-a,team-b}")

    assert "The operator only handles FineTuneJobs in: team-a, team-b." in text


def test_notes_show_metrics_port_forward_without_service_monitor() -> None:
    text = helm.notes()

    assert "port-forward svc/ft-kubeft-metrics 9090" in text
    assert "ServiceMonitor" not in text


def test_notes_name_the_service_monitor_when_enabled() -> None:
    text = helm.notes("-f", str(helm.VALUES_DIR / "ha-monitoring.yaml"))

    assert "Prometheus scrapes the operator through ServiceMonitor ft-kubeft-operator." in text

"""The Helm chart (deploy/helm/livedub), checked with the real helm binary.

`helm lint` and `helm template` for each example values file, the rendered manifests
validated strictly against the Kubernetes JSON schemas (kubernetes-validate) and the CRD
objects against the subsets in crd_schemas/, then the chart's promises one by one.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from workers.topology import DEFAULT

from .conftest import (
    API_VERSIONS,
    CHART,
    EXAMPLES,
    KUBE_VERSIONS,
    REQUIRED_SET,
    by_kind,
    helm,
    module,
    render,
    render_raw,
    run,
    stage_of,
    values_file,
    with_stage,
)

STAGES = ("segment", "asr", "translate", "tts", "lipsync")
GPU_STAGES = {"asr", "tts", "lipsync"}
INPUT_TOPICS = {stage: DEFAULT.main_input(stage) for stage in DEFAULT.names}  # the code's topology
CRD_SCHEMAS = Path(__file__).parent / "crd_schemas"
CRD_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject-keda-v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "triggerauthentication-keda-v1alpha1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring-v1.json",
}
GPU_EXAMPLE = CHART / "examples" / "values-gpu.yaml"
CPU_EXAMPLE = CHART / "examples" / "values-cpu.yaml"


def example_id(p: Path) -> str:
    return p.stem


def workers(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """stage -> Deployment."""
    return {stage_of(d): d for d in docs if d["kind"] == "Deployment"}


def container(dep: dict[str, Any]) -> dict[str, Any]:
    (c,) = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "worker"]
    return c


def env_of(dep: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(dep)["env"]}


LIVEKIT = {"url": "ws://livekit.livekit.svc:7880", "existingSecret": "livekit-api"}


def bot_values(**overrides: Any) -> str:
    """Values file enabling the call bot (with the two required LiveKit values) plus `overrides`
    (`livekit` is merged into the required ones)."""
    bot: dict[str, Any] = {"enabled": True, **overrides, "livekit": {**LIVEKIT, **overrides.get("livekit", {})}}
    return values_file({"bot": bot})


def the_bot(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (dep,) = [d for d in docs if d["kind"] == "Deployment" and stage_of(d) == "bot"]
    return dep


def bot_container(dep: dict[str, Any]) -> dict[str, Any]:
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["name"] == "bot"
    return c


def bot_env(dep: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in bot_container(dep)["env"]}


# --- lint and render --------------------------------------------------------------


def test_examples_exist() -> None:
    assert {p.name for p in EXAMPLES} >= {"values-gpu.yaml", "values-cpu.yaml"}


@pytest.mark.parametrize("values", EXAMPLES, ids=example_id)
def test_helm_lint_strict(values: Path) -> None:
    proc = run(
        [helm(), "lint", str(CHART), "--strict", "-f", str(values), "--kube-version", KUBE_VERSIONS[-1]]
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_helm_version_is_a_release() -> None:
    proc = run([helm(), "version", "--short"])
    assert proc.returncode == 0
    assert re.match(r"^v3\.\d+\.\d+", proc.stdout), proc.stdout


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", EXAMPLES, ids=example_id)
def test_manifests_valid_against_kubernetes_schemas(values: Path, kube_version: str) -> None:
    kv = module("kubernetes_validate")
    docs = render(values=(str(values),), sets=(), kube_version=kube_version)
    crd_seen = set()
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if key in CRD_KINDS:
            crd_seen.add(key)
            continue
        try:
            kv.validate(doc, kube_version, strict=True)
        except kv.ValidationError as e:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} invalid for {kube_version}: {e.message}")
    # Every example exercises at least the monitoring CRDs.
    assert ("monitoring.coreos.com/v1", "ServiceMonitor") in crd_seen


def test_kubernetes_validate_is_strict() -> None:
    """Guard: the validator really rejects an unknown field (so the test above means something)."""
    kv = module("kubernetes_validate")
    docs = render(values=(str(GPU_EXAMPLE),), sets=())
    dep = next(iter(workers(docs).values()))
    container(dep)["imagePullPolcy"] = "Always"
    with pytest.raises(kv.ValidationError):
        kv.validate(dep, KUBE_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("values", EXAMPLES, ids=example_id)
def test_crd_objects_valid(values: Path) -> None:
    jsonschema = module("jsonschema")
    docs = render(values=(str(values),), sets=())
    checked = 0
    for doc in docs:
        name = CRD_KINDS.get((doc["apiVersion"], doc["kind"]))
        if name:
            schema = json.loads((CRD_SCHEMAS / name).read_text())
            errors = list(jsonschema.Draft202012Validator(schema).iter_errors(doc))
            assert not errors, f"{doc['kind']}/{doc['metadata']['name']}: {[e.message for e in errors]}"
            checked += 1
    assert checked >= 6  # 5 ServiceMonitors + 1 PrometheusRule (+ KEDA objects in the GPU profile)


def test_crd_schema_rejects_unquoted_keda_metadata() -> None:
    jsonschema = module("jsonschema")
    schema = json.loads((CRD_SCHEMAS / CRD_KINDS[("keda.sh/v1alpha1", "ScaledObject")]).read_text())
    so = next(iter(by_kind(render(values=(str(GPU_EXAMPLE),), sets=()), "ScaledObject").values()))
    so["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 20
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(so))


def test_default_values_render_with_only_the_required_settings() -> None:
    docs = render()
    assert set(workers(docs)) == set(STAGES)


def test_renders_without_monitoring_and_keda_crds_when_disabled() -> None:
    docs = render(
        sets=(
            *REQUIRED_SET,
            "autoscaling.keda.enabled=false",
            "metrics.serviceMonitor.enabled=false",
            "metrics.prometheusRule.enabled=false",
        ),
        api_versions=(),
    )
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"ScaledObject", "ServiceMonitor", "PrometheusRule", "TriggerAuthentication"}
    assert "HorizontalPodAutoscaler" in kinds


# --- one Deployment per stage, placement ---------------------------------------------


@pytest.mark.parametrize("values", EXAMPLES, ids=example_id)
def test_one_deployment_per_stage_running_livedub_worker(values: Path) -> None:
    deps = workers(render(values=(str(values),), sets=()))
    assert set(deps) == set(STAGES)
    for stage, dep in deps.items():
        c = container(dep)
        assert c.get("args") == ["livedub", "worker", stage]
        assert "command" not in c  # the image's tini entrypoint stays PID 1
        assert {"containerPort": 9464, "name": "http-metrics", "protocol": "TCP"} in c["ports"]


def test_gpu_stages_get_gpus_tolerations_and_gpu_pool() -> None:
    deps = workers(render(values=(str(GPU_EXAMPLE),), sets=()))
    for stage, dep in deps.items():
        pod = dep["spec"]["template"]["spec"]
        c = container(dep)
        env = env_of(dep)
        limits = c["resources"].get("limits", {})
        tolerations = pod.get("tolerations", [])
        gpu_taint = any(
            t.get("key") == "nvidia.com/gpu" and t.get("effect") == "NoSchedule" for t in tolerations
        )
        if stage in GPU_STAGES:
            assert limits.get("nvidia.com/gpu") == 1, stage
            assert gpu_taint, stage
            assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
            assert pod["runtimeClassName"] == "nvidia"
            assert c["image"].endswith(":0.1.0-cuda")
            assert env["LIVEDUB_DEVICE"]["value"] == "cuda"
        else:
            assert "nvidia.com/gpu" not in limits, stage
            assert not gpu_taint, stage
            assert "runtimeClassName" not in pod
            assert pod.get("nodeSelector") == {"kubernetes.io/os": "linux"}
            assert c["image"].endswith(":0.1.0-cpu")
            assert env["LIVEDUB_DEVICE"]["value"] == "cpu"


def test_cpu_profile_has_no_gpu_anything() -> None:
    docs = render(values=(str(CPU_EXAMPLE),), sets=())
    text = json.dumps(docs)
    assert "nvidia.com/gpu" not in text
    assert "runtimeClassName" not in text
    for dep in workers(docs).values():
        assert env_of(dep)["LIVEDUB_DEVICE"]["value"] == "cpu"


def test_gpu_count_and_backend_per_stage() -> None:
    docs = render(values=(with_stage("asr", gpuCount=2, backend="faster-whisper"),))
    asr = workers(docs)["asr"]
    assert container(asr)["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert env_of(asr)["LIVEDUB_ASR__BACKEND"]["value"] == "faster-whisper"


def test_image_digest_wins_over_tag() -> None:
    digest = "sha256:" + "a" * 64
    docs = render(sets=(*REQUIRED_SET, f"images.cuda.digest={digest}"))
    assert container(workers(docs)["asr"])["image"] == f"livedub/livedub@{digest}"
    assert container(workers(docs)["segment"])["image"] == "livedub/livedub:0.1.0-cpu"


# --- autoscaling ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "sets",
    [
        (),
        ("autoscaling.keda.enabled=false",),
        ("autoscaling.enabled=false",),
        ("autoscaling.keda.enabled=false", "stages[2].autoscaling.enabled=true"),
    ],
    ids=["keda", "hpa", "off", "keda-one-stage-off"],
)
@pytest.mark.parametrize("values", EXAMPLES, ids=example_id)
def test_keda_and_hpa_never_both(values: Path, sets: tuple[str, ...]) -> None:
    docs = render(values=(str(values),), sets=sets)
    targets: dict[str, list[str]] = {}
    for d in docs:
        if d["kind"] in ("ScaledObject", "HorizontalPodAutoscaler"):
            targets.setdefault(d["spec"]["scaleTargetRef"]["name"], []).append(d["kind"])
    assert all(len(kinds) == 1 for kinds in targets.values()), targets
    for dep in workers(docs).values():
        scaled = dep["metadata"]["name"] in targets
        # An autoscaled Deployment leaves replicas to the autoscaler (no fight on upgrade).
        assert ("replicas" in dep["spec"]) != scaled


def test_keda_scaledobject_per_stage_on_input_topic_lag() -> None:
    docs = render(values=(str(GPU_EXAMPLE),), sets=())
    sos = {stage_of(d): d for d in docs if d["kind"] == "ScaledObject"}
    assert set(sos) == set(STAGES)
    assert not by_kind(docs, "HorizontalPodAutoscaler")
    for stage, so in sos.items():
        spec = so["spec"]
        assert spec["scaleTargetRef"]["name"] == f"livedub-{stage}"
        assert spec["maxReplicaCount"] <= 12  # topics.partitions
        (trigger,) = spec["triggers"]
        md = trigger["metadata"]
        assert trigger["type"] == "kafka"
        assert md["consumerGroup"] == f"livedub-{stage}"
        assert md["topic"] == "livedub." + INPUT_TOPICS[stage]
        assert md["bootstrapServers"] == "livedub-kafka-bootstrap.kafka.svc:9093"
        assert int(md["lagThreshold"]) >= 1
        assert md["sasl"] == "scram_sha512"
        assert md["tls"] == "enable"
        assert trigger["authenticationRef"]["name"] == f"livedub-{stage}"


def test_keda_trigger_authentication_references_existing_secrets() -> None:
    docs = render(values=(str(GPU_EXAMPLE),), sets=())
    for ta in by_kind(docs, "TriggerAuthentication").values():
        refs = {r["parameter"]: r for r in ta["spec"]["secretTargetRef"]}
        assert refs["password"] == {"parameter": "password", "name": "livedub", "key": "password"}
        assert refs["ca"]["name"] == "livedub-kafka-cluster-ca-cert"
        # The plain (non-secret) username is read from the worker container's env.
        assert ta["spec"]["env"] == [
            {"parameter": "username", "name": "LIVEDUB_KAFKA__SASL_USERNAME", "containerName": "worker"}
        ]


def test_hpa_on_cpu_when_keda_off() -> None:
    docs = render(values=(str(CPU_EXAMPLE),), sets=())
    hpas = {stage_of(d): d for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    assert set(hpas) == set(STAGES)
    assert not by_kind(docs, "ScaledObject")
    for hpa in hpas.values():
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"]["averageUtilization"] == 75
        assert hpa["spec"]["maxReplicas"] <= 6  # topics.partitions in the CPU example


def test_max_replicas_defaults_to_partition_count() -> None:
    docs = render(
        values=(with_stage("segment", autoscaling=None),), sets=(*REQUIRED_SET, "topics.partitions=4")
    )
    so = {stage_of(d): d for d in docs if d["kind"] == "ScaledObject"}
    assert so["segment"]["spec"]["maxReplicaCount"] == 4
    assert so["segment"]["spec"]["minReplicaCount"] == 1


# --- monitoring ------------------------------------------------------------------------


def test_service_monitor_per_stage_on_metrics_port() -> None:
    docs = render(values=(str(GPU_EXAMPLE),), sets=())
    sms = {stage_of(d): d for d in docs if d["kind"] == "ServiceMonitor"}
    svcs = {stage_of(d): d for d in docs if d["kind"] == "Service"}
    assert set(sms) == set(svcs) == set(STAGES)
    for stage, sm in sms.items():
        assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        (ep,) = sm["spec"]["endpoints"]
        assert ep["port"] == "http-metrics" and ep["path"] == "/metrics"
        assert {"action": "replace", "targetLabel": "job", "replacement": f"livedub-{stage}"} in ep[
            "relabelings"
        ]
        assert sm["spec"]["selector"]["matchLabels"] == svcs[stage]["spec"]["selector"]
        assert svcs[stage]["spec"]["ports"][0]["targetPort"] == "http-metrics"


def test_prometheus_rule_ships_the_tested_rules() -> None:
    yaml = module("yaml")
    rules_file = yaml.safe_load(
        (CHART.parents[2] / "monitoring" / "alerts" / "livedub-rules.yaml").read_text()
    )
    (pr,) = by_kind(render(), "PrometheusRule").values()
    assert pr["spec"]["groups"] == [{**g, "interval": g.get("interval", "30s")} for g in rules_file["groups"]]


def test_prometheus_rule_alert_overrides() -> None:
    docs = render(
        sets=(
            *REQUIRED_SET,
            "metrics.prometheusRule.alerts.LivedubDLQRate.enabled=false",
            "metrics.prometheusRule.alerts.LivedubE2ELatencyOverBudget.expr="
            "livedub:e2e_latency_seconds:p95_5m > 3",
            "metrics.prometheusRule.alerts.LivedubStageDown.severity=page",
        )
    )
    (pr,) = by_kind(docs, "PrometheusRule").values()
    alerts = {r["alert"]: r for g in pr["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert "LivedubDLQRate" not in alerts
    assert alerts["LivedubE2ELatencyOverBudget"]["expr"] == "livedub:e2e_latency_seconds:p95_5m > 3"
    assert alerts["LivedubStageDown"]["labels"]["severity"] == "page"


def test_dashboards_configmaps_for_grafana_sidecar() -> None:
    docs = render(values=(str(GPU_EXAMPLE),), sets=())
    cms = [d for d in docs if d["kind"] == "ConfigMap" and "-dashboard-" in d["metadata"]["name"]]
    shipped = sorted(p.name for p in (CHART.parents[2] / "monitoring" / "dashboards").glob("*.json"))
    assert sorted(k for cm in cms for k in cm["data"]) == shipped
    for cm in cms:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["namespace"] == "monitoring"
        for text in cm["data"].values():
            assert json.loads(text)["uid"].startswith("livedub-")


# --- probes, shutdown, security ---------------------------------------------------------


@pytest.mark.parametrize("values", EXAMPLES, ids=example_id)
def test_probes_and_graceful_shutdown(values: Path) -> None:
    for stage, dep in workers(render(values=(str(values),), sets=())).items():
        c = container(dep)
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-metrics"}
        assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http-metrics"}
        assert c["startupProbe"]["httpGet"]["path"] == "/livez"
        grace = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        sleep = int(c["lifecycle"]["preStop"]["exec"]["command"][-1].split()[-1])
        assert 0 < sleep < grace, stage
        assert grace == (120 if stage == "lipsync" else 60)
        strategy = dep["spec"]["strategy"]["rollingUpdate"]
        assert strategy["maxUnavailable"] == 0


@pytest.mark.parametrize("values", EXAMPLES, ids=example_id)
def test_non_root_read_only_root_fs_with_writable_emptydirs(values: Path) -> None:
    docs = render(values=(str(values),), sets=())
    pods = [d["spec"]["template"]["spec"] for d in docs if d["kind"] in ("Deployment", "Job")]
    assert pods
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        vols = {v["name"]: v for v in pod["volumes"]}
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert "emptyDir" in vols[mounts["/tmp"]]


def test_models_from_pvc_read_only() -> None:
    for dep in workers(render(values=(str(GPU_EXAMPLE),), sets=())).values():
        pod = dep["spec"]["template"]["spec"]
        vols = {v["name"]: v for v in pod["volumes"]}
        assert vols["models"]["persistentVolumeClaim"] == {"claimName": "livedub-models", "readOnly": True}
        mount = next(m for m in container(dep)["volumeMounts"] if m["name"] == "models")
        assert mount["readOnly"] is True and mount["mountPath"] == "/models"
        assert env_of(dep)["LIVEDUB_CACHE_DIR"]["value"] == "/models"
        assert "initContainers" not in pod


def test_models_from_init_container() -> None:
    for stage, dep in workers(render(values=(str(CPU_EXAMPLE),), sets=())).items():
        pod = dep["spec"]["template"]["spec"]
        (init,) = pod["initContainers"]
        assert {"name": "STAGE", "value": stage} in init["env"]
        assert any(m["name"] == "models" for m in init["volumeMounts"])
        assert "emptyDir" in {v["name"]: v for v in pod["volumes"]}["models"]


def test_pdb_per_stage() -> None:
    docs = render(values=(str(GPU_EXAMPLE),), sets=())
    pdbs = {stage_of(d): d for d in docs if d["kind"] == "PodDisruptionBudget"}
    deps = workers(docs)
    assert set(pdbs) == set(STAGES)
    for stage, pdb in pdbs.items():
        assert pdb["spec"]["maxUnavailable"] == 1
        assert pdb["spec"]["selector"]["matchLabels"] == deps[stage]["spec"]["selector"]["matchLabels"]


def test_network_policy_limits_ingress_to_metrics_port() -> None:
    docs = render(values=(str(GPU_EXAMPLE),), sets=())
    (np,) = by_kind(docs, "NetworkPolicy").values()
    spec = np["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = spec["ingress"]
    assert ingress["ports"] == [{"port": "http-metrics", "protocol": "TCP"}]
    assert ingress["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    egress_ports = {p["port"] for rule in spec["egress"] for p in rule["ports"]}
    assert {53, 9093, 8081} <= egress_ports
    selector = spec["podSelector"]["matchLabels"]
    for dep in workers(docs).values():
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()


# --- Kafka connection and secrets ------------------------------------------------------


def test_sasl_credentials_come_from_existing_secret() -> None:
    for dep in workers(render(values=(str(GPU_EXAMPLE),), sets=())).values():
        env = env_of(dep)
        assert env["LIVEDUB_KAFKA__SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
        assert env["LIVEDUB_KAFKA__SASL_MECHANISM"]["value"] == "SCRAM-SHA-512"
        assert env["LIVEDUB_KAFKA__SASL_PASSWORD"] == {
            "name": "LIVEDUB_KAFKA__SASL_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "livedub", "key": "password"}},
        }
        assert env["LIVEDUB_KAFKA__SSL_CAFILE"]["value"] == "/etc/livedub/kafka-tls/ca/ca.crt"
        vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
        assert vols["kafka-ca"]["secret"]["secretName"] == "livedub-kafka-cluster-ca-cert"
        assert env["LIVEDUB_SCHEMA_REGISTRY__URL"]["value"] == "http://schema-registry.kafka.svc:8081"
        assert env["LIVEDUB_TOPICS__PARTITIONS"]["value"] == "12"


def test_mtls_certificates_mounted_from_existing_secret() -> None:
    docs = render(values=(str(CPU_EXAMPLE),), sets=())
    for dep in workers(docs).values():
        env = env_of(dep)
        assert env["LIVEDUB_KAFKA__SECURITY_PROTOCOL"]["value"] == "SSL"
        assert env["LIVEDUB_KAFKA__SSL_CERTFILE"]["value"] == "/etc/livedub/kafka-tls/client/user.crt"
        assert env["LIVEDUB_KAFKA__SSL_KEYFILE"]["value"] == "/etc/livedub/kafka-tls/client/user.key"
        assert "LIVEDUB_KAFKA__SASL_PASSWORD" not in env
        vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
        assert vols["kafka-client-cert"]["secret"]["secretName"] == "livedub"
        mounts = {m["name"]: m for m in container(dep)["volumeMounts"]}
        assert mounts["kafka-client-cert"]["readOnly"] is True


def test_mtls_keda_trigger_auth_gets_cert_and_key() -> None:
    docs = render(values=(str(CPU_EXAMPLE),), sets=("autoscaling.keda.enabled=true",))
    for ta in by_kind(docs, "TriggerAuthentication").values():
        refs = {r["parameter"]: (r["name"], r["key"]) for r in ta["spec"]["secretTargetRef"]}
        assert refs == {
            "ca": ("livedub-kafka-cluster-ca-cert", "ca.crt"),
            "cert": ("livedub", "user.crt"),
            "key": ("livedub", "user.key"),
        }
    for so in by_kind(docs, "ScaledObject").values():
        md = so["spec"]["triggers"][0]["metadata"]
        assert md["tls"] == "enable" and "sasl" not in md


@pytest.mark.parametrize("values", EXAMPLES, ids=example_id)
def test_no_secret_objects_and_no_inline_credentials(values: Path) -> None:
    docs = render(values=(str(values),), sets=())
    assert not [d for d in docs if d["kind"] == "Secret"]
    secretish = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$", re.I)
    for d in docs:
        spec = d.get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            for e in c.get("env", []):
                if secretish.search(e["name"]) and not e["name"].endswith("_KEYFILE"):
                    assert "valueFrom" in e and "value" not in e, (d["metadata"]["name"], e)


def test_topics_job_is_a_hook() -> None:
    docs = render(values=(str(GPU_EXAMPLE),), sets=())
    (job,) = by_kind(docs, "Job").values()
    ann = job["metadata"]["annotations"]
    assert ann["helm.sh/hook"] == "pre-install,pre-upgrade"
    c = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    assert env["LIVEDUB_TOPICS__PARTITIONS"]["value"] == "12"
    assert env["LIVEDUB_KAFKA__SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "livedub"


NOTES_WRAPPER = """apiVersion: v1
kind: ConfigMap
metadata:
  name: notes-preview
data:
  notes: |
{{ tpl (.Files.Get "notes-preview.txt") . | indent 4 }}
"""


def render_notes(tmp_path: Path, *values: str) -> str:
    """NOTES.txt rendered for the GPU example plus `values` files. helm renders the notes only on
    install (which needs a cluster): render a copy of the chart in which they are a ConfigMap."""
    yaml = module("yaml")
    chart = tmp_path / "livedub"
    shutil.copytree(CHART, chart)
    (chart / "notes-preview.txt").write_text((CHART / "templates" / "NOTES.txt").read_text())
    (chart / "templates" / "zz-notes-preview.yaml").write_text(NOTES_WRAPPER)
    cmd = [helm(), "template", "livedub", str(chart), "-n", "livedub", "-f", str(GPU_EXAMPLE)]
    cmd += [a for v in values for a in ("-f", v)]
    cmd += [a for v in API_VERSIONS for a in ("--api-versions", v)] + ["--kube-version", KUBE_VERSIONS[-1]]
    proc = run(cmd)
    assert proc.returncode == 0, proc.stderr
    (cm,) = [d for d in yaml.safe_load_all(proc.stdout) if d and d["metadata"]["name"] == "notes-preview"]
    return str(cm["data"]["notes"])


def test_notes_render(tmp_path: Path) -> None:
    notes = render_notes(tmp_path)
    assert "Call bot" not in notes
    assert "livedub-asr  device=cuda  input=livedub.segments  group=livedub-asr" in notes
    assert "autoscaled 1..6 by KEDA (consumer lag)" in notes
    assert "kubectl -n livedub get scaledobjects" in notes


# --- bad values are rejected at install time ---------------------------------------


BAD_VALUES = [
    # (what, --set values (replacing the required ones unless listed), expected message fragment)
    ("missing bootstrap servers", ("schemaRegistry.url=http://sr:8081",), "bootstrapServers"),
    ("missing schema registry", ("kafka.bootstrapServers=k:9092",), "schemaRegistry"),
    (
        "bootstrap without port",
        ("kafka.bootstrapServers=kafka", "schemaRegistry.url=http://sr:8081"),
        "bootstrapServers",
    ),
    ("plain-text SASL password", ("kafka.sasl.password=hunter2",), "password"),
    ("SASL without secret", ("kafka.securityProtocol=SASL_SSL", "kafka.sasl.username=u"), "existingSecret"),
    ("bad security protocol", ("kafka.securityProtocol=TLS",), "securityProtocol"),
    ("unknown stage", ("stages[0].name=ocr",), "/stages/0/name"),
    ("bad device", ("stages[0].name=segment", "stages[0].device=tpu"), "/stages/0/device"),
    (
        "gpuCount on a cpu stage",
        ("stages[0].name=segment", "stages[0].device=cpu", "stages[0].gpuCount=1"),
        "gpuCount",
    ),
    ("typo in top-level key", ("autoscalling.enabled=true",), "autoscalling"),
    ("zero partitions", ("topics.partitions=0",), "partitions"),
    ("root user", ("podSecurityContext.runAsNonRoot=false",), "runAsNonRoot"),
    ("bad digest", ("images.cpu.digest=latest",), "digest"),
    ("empty image repository", ("images.cuda.repository=",), "/images/cuda/repository"),
    ("init container without command", ("models.initContainer.enabled=true",), "command"),
    ("bot on a bad device", ("bot.device=tpu",), "/bot/device"),
    ("bot gpuCount on cpu", ("bot.device=cpu", "bot.gpuCount=1"), "/bot/gpuCount"),
    ("bot delay not positive", ("bot.delayS=0",), "/bot/delayS"),
    ("typo in a bot key", ("bot.livekit.apiSecret=x",), "apiSecret"),
]

# (what, values-file factory, --set values, expected message fragment)
TEMPLATE_FAILURES = [
    (
        "more replicas than partitions",
        lambda: with_stage("asr", autoscaling={"maxReplicas": 5}),
        ("topics.partitions=4",),
        "stages[asr].autoscaling.maxReplicas=5 exceeds topics.partitions=4",
    ),
    (
        "fixed replicas above partitions",
        lambda: with_stage("asr", autoscaling={"enabled": False}, replicas=13),
        (),
        "stages[asr].replicas=13 exceeds topics.partitions=12",
    ),
    (
        "duplicate stage",
        lambda: values_file({"stages": [{"name": "segment"}, {"name": "segment"}]}),
        (),
        'stage "segment" is listed more than once',
    ),
    (
        "min above max",
        lambda: with_stage("segment", autoscaling={"minReplicas": 5, "maxReplicas": 4}),
        (),
        "minReplicas=5 is greater than maxReplicas=4",
    ),
    (
        "scale to zero without KEDA",
        lambda: with_stage("segment", autoscaling={"minReplicas": 0}),
        ("autoscaling.keda.enabled=false",),
        "needs KEDA",
    ),
    (
        "HPA without cpu request",
        lambda: with_stage("tts", resources={"requests": {"memory": "1Gi"}}),
        ("autoscaling.keda.enabled=false",),
        "stages[tts]: the CPU HPA (autoscaling.keda.enabled=false) needs resources.requests.cpu",
    ),
    (
        "no stage enabled",
        lambda: values_file({"stages": [{"name": "segment", "enabled": False}]}),
        (),
        "no stage is enabled",
    ),
    (
        "secret in a stage's plain env",
        lambda: with_stage("tts", env={"API_TOKEN": "abc"}),
        (),
        "stages[tts].env.API_TOKEN looks like a secret",
    ),
    (
        "secret as a plain extraEnv value",
        None,
        ("extraEnv[0].name=KAFKA_PASSWORD", "extraEnv[0].value=x"),
        "extraEnv KAFKA_PASSWORD looks like a secret: use valueFrom.secretKeyRef",
    ),
    ("preStop longer than grace", None, ("shutdown.preStopSleepSeconds=60",), "must be smaller than"),
    ("pvc without claim", None, ("models.source=pvc",), "models.pvc.existingClaim"),
    (
        "bot without LiveKit URL",
        lambda: bot_values(livekit={"url": ""}),
        (),
        "bot.enabled=true needs bot.livekit.url",
    ),
    (
        "bot without LiveKit secret",
        lambda: bot_values(livekit={"existingSecret": ""}),
        (),
        "bot.enabled=true needs bot.livekit.existingSecret",
    ),
    (
        "bot with unknown transport",
        lambda: bot_values(transport="grpc"),
        (),
        'bot.transport must be embedded or kafka, not "grpc"',
    ),
    ("bot with no language", lambda: bot_values(to=[]), (), "bot.to must list at least one target language"),
    (
        "bot on kafka with a principal per stage",
        lambda: bot_values(transport="kafka"),
        ("kafka.securityProtocol=SASL_SSL", "kafka.sasl.existingSecret=s", "kafka.sasl.principalPerStage=true"),
        "bot.transport=kafka with kafka.sasl.principalPerStage=true",
    ),
    (
        "bot with a plain secret in extraEnv",
        lambda: bot_values(extraEnv=[{"name": "LIVEKIT_API_SECRET", "value": "x"}]),
        (),
        "bot.extraEnv LIVEKIT_API_SECRET looks like a secret",
    ),
]


@pytest.mark.parametrize(("what", "sets", "fragment"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_bad_values_rejected_by_schema(what: str, sets: tuple[str, ...], fragment: str) -> None:
    base = tuple(s for s in REQUIRED_SET if s.split("=")[0] not in {x.split("=")[0] for x in sets})
    if what.startswith("missing"):
        base = ()
    rc, _out, err = render_raw(sets=base + sets)
    assert rc != 0, f"{what}: accepted"
    assert "values don't meet the specifications of the schema" in err, err
    assert fragment in err, err


@pytest.mark.parametrize(
    ("what", "values", "sets", "fragment"), TEMPLATE_FAILURES, ids=[t[0] for t in TEMPLATE_FAILURES]
)
def test_inconsistent_values_fail_with_clear_message(
    what: str, values: Callable[[], str] | None, sets: tuple[str, ...], fragment: str
) -> None:
    rc, _out, err = render_raw(values=(values(),) if values else (), sets=REQUIRED_SET + sets)
    assert rc != 0, f"{what}: accepted"
    assert fragment in err, err


def test_missing_crds_fail_with_clear_message() -> None:
    rc, _out, err = render_raw(api_versions=())
    assert rc != 0
    assert "no keda.sh/v1alpha1 ScaledObject API" in err


def test_helm_template_without_values_names_the_missing_setting() -> None:
    rc, _out, err = render_raw(sets=())
    assert rc != 0
    assert "/kafka/bootstrapServers" in err or "kafka.bootstrapServers" in err, err


def test_principal_per_stage_uses_exactly_the_principals_livedub_acls_creates() -> None:
    """kafka.sasl.principalPerStage: each worker (and the topics Job, and KEDA) authenticates as the
    principal `livedub acls --apply` made for it, with the password file it wrote as the Secret key."""
    from streams.acls import principal, principals
    from streams.topics import Topics

    docs = render(values=(str(GPU_EXAMPLE),), sets=("kafka.sasl.principalPerStage=true",
                                                    "topics.prefix=prod.livedub."))
    topics = Topics(prefix="prod.livedub.")
    used = set()
    for stage, dep in workers(docs).items():
        env = env_of(dep)
        who = principal(topics.prefix, stage)
        assert env["LIVEDUB_KAFKA__SASL_USERNAME"]["value"] == who
        assert env["LIVEDUB_KAFKA__SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == f"{who}.password"
        used.add(who)
    (job,) = [d for d in docs if d["kind"] == "Job"]
    (c,) = job["spec"]["template"]["spec"]["containers"]
    job_env = {e["name"]: e for e in c["env"]}
    assert job_env["LIVEDUB_KAFKA__SASL_USERNAME"]["value"] == principal(topics.prefix, "topics")
    used.add(principal(topics.prefix, "topics"))
    assert used <= set(principals(topics))
    for ta in by_kind(docs, "TriggerAuthentication").values():
        refs = {r["parameter"]: r for r in ta["spec"]["secretTargetRef"]}
        assert refs["password"]["key"] == f"{principal(topics.prefix, stage_of(ta))}.password"
        assert "username" not in refs


# --- the live-call bot (bot.enabled) -------------------------------------------------------

KAFKA_ENV = re.compile(r"^LIVEDUB_(KAFKA|SCHEMA_REGISTRY|TOPICS)__")


@pytest.mark.parametrize("values", [None, *EXAMPLES], ids=lambda p: p.stem if p else "defaults")
def test_no_bot_by_default(values: Path | None) -> None:
    docs = render(values=(str(values),), sets=()) if values else render()
    assert not [d for d in docs if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "bot"]
    assert '"call"' not in json.dumps(docs)


def test_bot_deployment_runs_livedub_call_with_livekit_secrets() -> None:
    docs = render(values=(bot_values(rooms="dub-*", to=["es", "fr"], delayS=6.5),))
    dep = the_bot(docs)
    assert dep["metadata"]["name"] == "livedub-bot"
    assert dep["spec"]["replicas"] == 1
    # Surge, never Recreate: the bot resolves two replicas in one room itself.
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    c = bot_container(dep)
    assert c["args"] == ["livedub", "call", "--rooms", "dub-*", "--to", "es,fr", "--transport", "embedded",
                         "--metrics-port", "9464", "--metrics-host", "0.0.0.0"]
    assert "command" not in c  # tini stays PID 1 and forwards SIGTERM (the bot leaves its rooms)
    assert c["image"] == "livedub/livedub:0.1.0-cpu"
    env = bot_env(dep)
    assert env["LIVEDUB_LIVEKIT__URL"]["value"] == "ws://livekit.livekit.svc:7880"
    assert env["LIVEDUB_LIVEKIT__API_KEY"] == {
        "name": "LIVEDUB_LIVEKIT__API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "livekit-api", "key": "api-key"}},
    }
    assert env["LIVEDUB_LIVEKIT__API_SECRET"] == {
        "name": "LIVEDUB_LIVEKIT__API_SECRET",
        "valueFrom": {"secretKeyRef": {"name": "livekit-api", "key": "api-secret"}},
    }
    assert env["LIVEDUB_LIVEKIT__DELAY_S"]["value"] == "6.5"
    assert env["LIVEDUB_DEVICE"]["value"] == "cpu"
    assert env["LIVEDUB_CACHE_DIR"]["value"] == "/models"
    assert {m["name"]: m["mountPath"] for m in c["volumeMounts"]}["models"] == "/models"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["tcpSocket"] == {"port": "http-metrics"}, probe  # no /livez on a plain exporter
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "livedub"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert "nvidia.com/gpu" not in json.dumps(dep)


def test_bot_secret_keys_delay_and_extra_env_are_values() -> None:
    docs = render(
        values=(
            bot_values(
                livekit={"existingSecret": "lk", "apiKeyKey": "key", "apiSecretKey": "secret"},
                replicas=2,
                extraEnv=[{"name": "LIVEDUB_LIVEKIT__IDLE_S", "value": "60"}],
            ),
        ),
        sets=(*REQUIRED_SET, "podLabels.team=media"),
    )
    dep = the_bot(docs)
    env = bot_env(dep)
    assert env["LIVEDUB_LIVEKIT__API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "lk", "key": "key"}
    assert env["LIVEDUB_LIVEKIT__API_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "lk", "key": "secret"}
    assert "LIVEDUB_LIVEKIT__DELAY_S" not in env  # the application default
    assert env["LIVEDUB_LIVEKIT__IDLE_S"]["value"] == "60"
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["template"]["metadata"]["labels"]["team"] == "media"


def test_bot_cuda_gets_the_gpu_pool_and_a_gpu() -> None:
    docs = render(values=(str(GPU_EXAMPLE), bot_values(device="cuda")), sets=())
    dep = the_bot(docs)
    pod = dep["spec"]["template"]["spec"]
    c = bot_container(dep)
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["runtimeClassName"] == "nvidia"
    assert c["image"] == "registry.example.com/livedub/livedub:0.1.0-cuda"
    assert bot_env(dep)["LIVEDUB_DEVICE"]["value"] == "cuda"
    assert dep["metadata"]["labels"]["livedub.io/device"] == "cuda"


def test_bot_cpu_stays_on_the_cpu_pool_unless_overridden() -> None:
    pod = the_bot(render(values=(str(GPU_EXAMPLE), bot_values()), sets=()))["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert "tolerations" not in pod and "runtimeClassName" not in pod
    assert "nvidia.com/gpu" not in json.dumps(pod)
    pod = the_bot(
        render(values=(str(GPU_EXAMPLE), bot_values(nodeSelector={"pool": "calls"}, tolerations=[])), sets=())
    )["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "calls"}


def test_bot_gets_the_stages_kafka_env_only_with_transport_kafka() -> None:
    docs = render(values=(str(GPU_EXAMPLE), bot_values(transport="kafka")), sets=())
    dep = the_bot(docs)
    assert "--transport" in (args := bot_container(dep)["args"]) and args[args.index("--transport") + 1] == "kafka"
    env = bot_env(dep)
    # The same helper as the stages': same names, values and secret references.
    stage_env = {k: v for k, v in env_of(workers(docs)["segment"]).items() if KAFKA_ENV.match(k)}
    assert stage_env and {k: v for k, v in env.items() if KAFKA_ENV.match(k)} == stage_env
    assert env["LIVEDUB_KAFKA__SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "livedub", "key": "password"}
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert vols["kafka-ca"]["secret"]["secretName"] == "livedub-kafka-cluster-ca-cert"
    assert "kafka-ca" in {m["name"] for m in bot_container(dep)["volumeMounts"]}

    dep = the_bot(render(values=(str(GPU_EXAMPLE), bot_values()), sets=()))
    assert not [k for k in bot_env(dep) if KAFKA_ENV.match(k)]
    assert "kafka-ca" not in {v["name"] for v in dep["spec"]["template"]["spec"]["volumes"]}


def test_bot_fetches_models_only_when_it_runs_them() -> None:
    pod = the_bot(render(values=(str(CPU_EXAMPLE), bot_values()), sets=()))["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert {"name": "STAGE", "value": "bot"} in init["env"]
    pod = the_bot(render(values=(str(CPU_EXAMPLE), bot_values(transport="kafka")), sets=()))["spec"]["template"]["spec"]
    assert "initContainers" not in pod  # the stages run the models


@pytest.mark.parametrize("port", [9464, 9500])
def test_bot_metrics_port_is_scraped_like_a_stage(port: int) -> None:
    docs = render(values=(str(GPU_EXAMPLE), bot_values(metricsPort=port)), sets=())
    dep = the_bot(docs)
    c = bot_container(dep)
    assert {"containerPort": port, "name": "http-metrics", "protocol": "TCP"} in c["ports"]
    assert c["args"][c["args"].index("--metrics-port") + 1] == str(port)
    assert c["args"][c["args"].index("--metrics-host") + 1] == "0.0.0.0"
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    svc = by_kind(docs, "Service")["livedub-bot"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert svc["spec"]["ports"] == [{"name": "http-metrics", "port": port, "targetPort": "http-metrics",
                                     "protocol": "TCP"}]
    sm = by_kind(docs, "ServiceMonitor")["livedub-bot"]
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]
    assert sm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "bot"
    (ep,) = sm["spec"]["endpoints"]
    assert ep["port"] == "http-metrics" and ep["path"] == "/metrics"
    assert {"action": "replace", "targetLabel": "job", "replacement": "livedub-bot"} in ep["relabelings"]
    # The stages' ServiceMonitors do not select the bot's Service (and vice versa).
    for name, other in by_kind(docs, "ServiceMonitor").items():
        if name != "livedub-bot":
            assert not other["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()


def test_bot_network_policy_reaches_livekit() -> None:
    docs = render(values=(str(GPU_EXAMPLE), bot_values()), sets=())
    pod_labels = the_bot(docs)["spec"]["template"]["metadata"]["labels"]
    nps = by_kind(docs, "NetworkPolicy")
    # The workers' policy covers the bot too (metrics ingress, DNS/Kafka egress) ...
    assert nps["livedub"]["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    # ... and the bot's own adds the LiveKit server, for the bot only.
    spec = nps["livedub-bot"]["spec"]
    assert spec["podSelector"]["matchLabels"] == {**spec["podSelector"]["matchLabels"],
                                                  "app.kubernetes.io/component": "bot"}
    assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert spec["policyTypes"] == ["Egress"]
    (rule,) = spec["egress"]
    assert rule["ports"] == [
        {"port": 7880, "protocol": "TCP"},
        {"port": 7881, "protocol": "TCP"},
        {"port": 50000, "endPort": 60000, "protocol": "UDP"},
    ]
    docs = render(values=(str(GPU_EXAMPLE), bot_values()), sets=("networkPolicy.egress.allowAll=true",))
    assert set(by_kind(docs, "NetworkPolicy")) == {"livedub"}
    ports = values_file({"networkPolicy": {"egress": {"livekitPorts": [{"port": 443, "protocol": "TCP"}]}}})
    docs = render(values=(str(GPU_EXAMPLE), bot_values(), ports), sets=())
    assert by_kind(docs, "NetworkPolicy")["livedub-bot"]["spec"]["egress"][0]["ports"] == [
        {"port": 443, "protocol": "TCP"}]


BOT_PROFILES = [
    (GPU_EXAMPLE, {"transport": "kafka", "device": "cuda", "delayS": 8}),
    (CPU_EXAMPLE, {"to": ["es", "fr"]}),
]


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize(("values", "bot"), BOT_PROFILES, ids=["gpu-kafka-cuda", "cpu-embedded"])
def test_bot_manifests_valid_against_kubernetes_schemas(values: Path, bot: dict[str, Any], kube_version: str) -> None:
    kv = module("kubernetes_validate")
    jsonschema = module("jsonschema")
    docs = render(values=(str(values), bot_values(**bot)), sets=(), kube_version=kube_version)
    checked = set()
    for doc in docs:
        if doc["metadata"]["name"] != "livedub-bot":
            continue
        checked.add(doc["kind"])
        crd = CRD_KINDS.get((doc["apiVersion"], doc["kind"]))
        if crd:
            schema = json.loads((CRD_SCHEMAS / crd).read_text())
            assert not [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)]
            continue
        try:
            kv.validate(doc, kube_version, strict=True)
        except kv.ValidationError as e:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} invalid for {kube_version}: {e.message}")
    assert checked == {"Deployment", "Service", "ServiceMonitor", "NetworkPolicy"}


@pytest.mark.parametrize(("values", "bot"), BOT_PROFILES, ids=["gpu-kafka-cuda", "cpu-embedded"])
def test_helm_lint_strict_with_the_bot(values: Path, bot: dict[str, Any]) -> None:
    proc = run([helm(), "lint", str(CHART), "--strict", "-f", str(values), "-f", bot_values(**bot),
                "--kube-version", KUBE_VERSIONS[-1]])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_notes_name_the_bot(tmp_path: Path) -> None:
    notes = render_notes(tmp_path, bot_values(rooms="dub-*", to=["es", "fr"]))
    assert ('Call bot: livedub-bot (replicas=1, device=cpu, transport=embedded) joins every room matching '
            '"dub-*" on ws://livekit.livekit.svc:7880 and dubs it into es,fr') in notes
    assert 'job="livedub-bot"' in notes


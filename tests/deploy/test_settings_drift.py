"""Deployment and code cannot drift: every LIVEDUB_* name the chart or an image sets is a setting,
and the chart's topics and consumer groups are the code's topology."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from streams.app import group_id
from workers.settings import env_names, unknown_env
from workers.topology import DEFAULT

from .conftest import CHART, EXAMPLES, REQUIRED_SET, by_kind, render, values_file
from .test_dockerfiles import DOCKERFILES, instructions

KNOWN = env_names()


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    pod = spec.get("jobTemplate", {}).get("spec", {}).get("template", spec.get("template", {})).get("spec", {})
    return pod.get("containers", []) + pod.get("initContainers", [])


def _livedub_env(docs: list[dict[str, Any]]) -> dict[str, set[str]]:
    """LIVEDUB_* names -> where they are set (env, and the data of ConfigMaps pulled in by envFrom)."""
    configmaps = by_kind(docs, "ConfigMap")
    seen: dict[str, set[str]] = {}
    for d in docs:
        for c in _containers(d):
            where = f"{d['kind']}/{d['metadata']['name']}/{c['name']}"
            names = [e["name"] for e in c.get("env", [])]
            for src in c.get("envFrom", []):
                ref = src.get("configMapRef")
                if ref:
                    prefix = src.get("prefix", "")
                    names += [prefix + k for k in configmaps[ref["name"]].get("data", {})]
            for n in names:
                if n.startswith("LIVEDUB_"):
                    seen.setdefault(n, set()).add(where)
    return seen


def _bot(transport: str) -> str:
    """Values file: the call bot with everything that adds env (the LiveKit secret, a delay, the stages'
    Kafka env with transport kafka, and an extraEnv setting of the kind its values document)."""
    return values_file({"bot": {
        "enabled": True, "transport": transport, "delayS": 8,
        "livekit": {"url": "ws://livekit:7880", "existingSecret": "livekit-api"},
        "extraEnv": [{"name": "LIVEDUB_LIVEKIT__IDLE_S", "value": "60"}],
    }})


def _all_features(values: Path, bot_transport: str) -> list[dict[str, Any]]:
    """The example profile with the topics job and the call bot switched on too (the examples set
    the rest: init containers, per-stage env, TLS and SASL)."""
    return render(values=(str(values), _bot(bot_transport)), sets=(*REQUIRED_SET, "topics.create.enabled=true"))


@pytest.mark.parametrize("bot_transport", ["embedded", "kafka"])
@pytest.mark.parametrize("values", EXAMPLES, ids=lambda p: p.stem)
def test_every_livedub_variable_in_the_chart_names_a_setting(values: Path, bot_transport: str) -> None:
    seen = _livedub_env(_all_features(values, bot_transport))
    assert "LIVEDUB_CACHE_DIR" in seen and "LIVEDUB_KAFKA__BOOTSTRAP_SERVERS" in seen
    bot = "Deployment/livedub-bot/bot"
    for name in ("LIVEDUB_LIVEKIT__URL", "LIVEDUB_LIVEKIT__API_SECRET", "LIVEDUB_LIVEKIT__DELAY_S",
                 "LIVEDUB_LIVEKIT__IDLE_S", "LIVEDUB_DEVICE"):
        assert bot in seen[name], name
    assert (bot in seen["LIVEDUB_KAFKA__BOOTSTRAP_SERVERS"]) == (bot_transport == "kafka")
    bad = unknown_env(dict.fromkeys(seen, "x"))
    assert not bad, {b: sorted(seen[b.split()[0]]) for b in bad}


def test_the_check_catches_a_misspelt_name() -> None:
    assert unknown_env({"LIVEDUB_MODELS__CACHE_DIR": "/models"}) == [
        "LIVEDUB_MODELS__CACHE_DIR (did you mean LIVEDUB_CACHE_DIR?)"]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_every_livedub_variable_in_the_images_names_a_setting(path: Path) -> None:
    names = []
    for op, rest in instructions(path):
        if op in ("ENV", "ARG"):
            names += re.findall(r"(?:^|\s)(LIVEDUB_\w+)=", rest)
    assert "LIVEDUB_CACHE_DIR" in names
    assert not unknown_env(dict.fromkeys(names, "x"))


@pytest.mark.parametrize("prefix", ["livedub.", "prod-eu_"])
def test_keda_watches_each_stage_main_input_with_the_code_consumer_group(prefix: str) -> None:
    docs = render(values=(str(CHART / "examples" / "values-gpu.yaml"),), sets=(f"topics.prefix={prefix}",))
    objects = by_kind(docs, "ScaledObject")
    assert objects
    for so in objects.values():
        stage = so["metadata"]["labels"]["app.kubernetes.io/component"]
        (trigger,) = so["spec"]["triggers"]
        assert trigger["metadata"]["topic"] == prefix + DEFAULT.main_input(stage)
        assert trigger["metadata"]["consumerGroup"] == group_id(stage, prefix)
    deployments = {d["metadata"]["labels"]["app.kubernetes.io/component"] for d in by_kind(docs, "Deployment").values()}
    assert deployments == set(DEFAULT.names)


def test_the_topics_job_runs_livedub_topics_create() -> None:
    docs = render(values=(str(CHART / "examples" / "values-gpu.yaml"),), sets=("topics.create.enabled=true",))
    (job,) = by_kind(docs, "Job").values()
    (c,) = job["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["livedub", "topics", "--create", "--grow"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["LIVEDUB_TOPICS__REPLICATION"] == "3" and '"retention.ms"' in env["LIVEDUB_TOPICS__CONFIG"]
    assert not [d for d in docs if d["kind"] == "ConfigMap" and "create-topics" in d["metadata"]["name"]]

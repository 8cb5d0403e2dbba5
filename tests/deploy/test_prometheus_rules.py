"""Prometheus rules: `promtool check rules` and the unit tests in monitoring/alerts/tests/."""

from __future__ import annotations

from .conftest import ROOT, module, run, tool

RULES = ROOT / "monitoring" / "alerts" / "livedub-rules.yaml"
RULE_TESTS = sorted((ROOT / "monitoring" / "alerts" / "tests").glob("*.test.yaml"))


def test_promtool_check_rules() -> None:
    proc = run([tool("promtool"), "check", "rules", str(RULES)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_promtool_test_rules() -> None:
    assert RULE_TESTS
    proc = run([tool("promtool"), "test", "rules", *map(str, RULE_TESTS)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAILED" not in proc.stdout + proc.stderr


def test_every_alert_has_a_unit_test_and_docs() -> None:
    yaml = module("yaml")
    rules = yaml.safe_load(RULES.read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tested = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for t in case.get("alert_rule_test", []):
                if t.get("exp_alerts"):
                    tested.add(t["alertname"])
    assert alerts == tested, f"alerts never shown firing in a test: {sorted(alerts - tested)}"
    assert {
        "LivedubE2ELatencyOverBudget",
        "LivedubConsumerLagGrowing",
        "LivedubDLQRate",
        "LivedubWorkerDown",
        "LivedubStageErrorRate",
    } <= alerts
    for g in rules["groups"]:
        for r in g["rules"]:
            if "alert" in r:
                assert r["labels"]["severity"] in {"warning", "critical"}
                assert r["annotations"]["summary"] and r["annotations"]["description"]

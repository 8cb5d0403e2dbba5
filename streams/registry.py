"""A small client for a Confluent-compatible schema registry (Apicurio's ccompat API works).

Subjects follow TopicNameStrategy: the values of topic T are registered under `T-value`.
Schemas are sent as compact JSON of the parsed .avsc, so the same file always registers as
the same text (and therefore the same id). Lookups by id are cached: ids never change meaning.

Errors: connection problems, timeouts and 5xx answers raise TransportError (retryable);
401/403 raise TransportError(retryable=False); a schema the registry rejects (invalid,
incompatible) or an unknown id raises SchemaError.

Also a command line for CI:  python -m streams.registry check-compat [--base-ref REF] [--url URL]
checks every schemas/*.avsc against its version at REF through the registry's BACKWARD rule.
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests

from workers.errors import SchemaError, TransportError

if TYPE_CHECKING:
    from workers.settings import SchemaRegistrySettings

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
COMPATIBILITY_LEVELS = (
    "NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE",
)


def schema_text(schema: dict[str, Any] | str) -> str:
    """The exact text registered for a schema: compact JSON, field order kept."""
    if isinstance(schema, str):
        schema = json.loads(schema)
    return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)


class SchemaRegistryClient:
    """Register, fetch and check Avro schemas over HTTP (thread-safe; one requests.Session)."""

    def __init__(self, url: str, *, username: str | None = None, password: str | None = None,
                 timeout: float = 10.0, session: requests.Session | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = session or requests.Session()
        self._session.headers.update({"Accept": CONTENT_TYPE, "Content-Type": CONTENT_TYPE})
        if username is not None:
            self._session.auth = (username, password or "")
        self._by_id: dict[int, str] = {}
        self._ids: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: SchemaRegistrySettings, **kwargs: Any) -> SchemaRegistryClient:
        password = settings.password.get_secret_value() if settings.password is not None else None
        return cls(settings.url, username=settings.username, password=password, **kwargs)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> SchemaRegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP ---------------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, body: Any = None,
                 params: dict[str, Any] | None = None) -> requests.Response:
        url = f"{self.url}{path}"
        try:
            resp = self._session.request(method, url, json=body, params=params, timeout=self.timeout)
        except requests.RequestException as e:
            raise TransportError(f"schema registry {method} {url} failed: {e}") from e
        if resp.status_code >= 500:
            raise TransportError(f"schema registry {method} {url}: HTTP {resp.status_code} {_message(resp)}")
        if resp.status_code in (401, 403):
            raise TransportError(
                f"schema registry {method} {url}: HTTP {resp.status_code} (check "
                "LIVEDUB_SCHEMA_REGISTRY__USERNAME / __PASSWORD)", retryable=False)
        return resp

    @staticmethod
    def _json(resp: requests.Response, what: str) -> Any:
        try:
            return resp.json()
        except ValueError as e:
            raise TransportError(f"schema registry answered {what} with non-JSON: {resp.text[:200]!r}") from e

    # -- API ------------------------------------------------------------------------------------

    def register(self, subject: str, schema: dict[str, Any] | str) -> int:
        """Register `schema` under `subject` (a no-op returning the id if already there)."""
        text = schema_text(schema)
        key = (subject, text)
        with self._lock:
            if key in self._ids:
                return self._ids[key]
        resp = self._request("POST", f"/subjects/{_q(subject)}/versions", body={"schema": text})
        if resp.status_code == 409:
            raise SchemaError(f"schema for {subject} is incompatible with the registered one: {_message(resp)}")
        if resp.status_code in (400, 422):
            raise SchemaError(f"registry rejected the schema for {subject}: {_message(resp)}")
        if resp.status_code != 200:
            raise TransportError(f"registering {subject}: HTTP {resp.status_code} {_message(resp)}")
        schema_id = int(self._json(resp, "register")["id"])
        with self._lock:
            self._ids[key] = schema_id
            self._by_id[schema_id] = text
        return schema_id

    def lookup(self, subject: str, schema: dict[str, Any] | str) -> int | None:
        """The id of `schema` if it is registered under `subject`, else None."""
        text = schema_text(schema)
        resp = self._request("POST", f"/subjects/{_q(subject)}", body={"schema": text})
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise SchemaError(f"looking up the schema of {subject}: HTTP {resp.status_code} {_message(resp)}")
        return int(self._json(resp, "lookup")["id"])

    def get_schema(self, schema_id: int) -> str:
        """The schema text registered with `schema_id` (cached)."""
        with self._lock:
            cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        resp = self._request("GET", f"/schemas/ids/{schema_id}")
        if resp.status_code == 404:
            raise SchemaError(f"schema id {schema_id} is unknown to the registry at {self.url}")
        if resp.status_code != 200:
            raise TransportError(f"fetching schema id {schema_id}: HTTP {resp.status_code} {_message(resp)}")
        body = self._json(resp, f"schema id {schema_id}")
        if body.get("schemaType", "AVRO") != "AVRO":
            raise SchemaError(f"schema id {schema_id} is {body.get('schemaType')}, not AVRO")
        text = body["schema"]
        with self._lock:
            self._by_id[schema_id] = text
        return text

    def get_latest(self, subject: str) -> tuple[int, int, str] | None:
        """(id, version, schema text) of the latest version under `subject`, or None."""
        resp = self._request("GET", f"/subjects/{_q(subject)}/versions/latest")
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise TransportError(f"reading {subject}: HTTP {resp.status_code} {_message(resp)}")
        body = self._json(resp, subject)
        return int(body["id"]), int(body["version"]), body["schema"]

    def subjects(self) -> list[str]:
        resp = self._request("GET", "/subjects")
        if resp.status_code != 200:
            raise TransportError(f"listing subjects: HTTP {resp.status_code} {_message(resp)}")
        return list(self._json(resp, "subjects"))

    def check_compatibility(self, subject: str, schema: dict[str, Any] | str) -> bool:
        """Whether `schema` may be registered next under `subject` (by the subject's rule).

        A subject with no versions accepts anything.
        """
        resp = self._request("POST", f"/compatibility/subjects/{_q(subject)}/versions/latest",
                             body={"schema": schema_text(schema)})
        if resp.status_code == 404:
            return True
        if resp.status_code in (400, 422):
            raise SchemaError(f"registry rejected the schema checked against {subject}: {_message(resp)}")
        if resp.status_code != 200:
            raise TransportError(f"checking {subject}: HTTP {resp.status_code} {_message(resp)}")
        return bool(self._json(resp, "compatibility")["is_compatible"])

    def set_compatibility(self, subject: str, level: str = "BACKWARD") -> None:
        """Set the subject's compatibility rule (the subject must have a version on Apicurio)."""
        if level not in COMPATIBILITY_LEVELS:
            raise SchemaError(f"unknown compatibility level {level!r}")
        resp = self._request("PUT", f"/config/{_q(subject)}", body={"compatibility": level})
        if resp.status_code == 409:
            # Apicurio creates the rule on the first PUT; another worker starting at the same time
            # may have created it between our GET and PUT ("rule already exists"): PUT again updates it.
            if self.get_compatibility(subject) == level:
                return
            resp = self._request("PUT", f"/config/{_q(subject)}", body={"compatibility": level})
        if resp.status_code != 200:
            raise SchemaError(f"setting {level} on {subject}: HTTP {resp.status_code} {_message(resp)}")

    def get_compatibility(self, subject: str) -> str | None:
        resp = self._request("GET", f"/config/{_q(subject)}")
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise TransportError(f"reading config of {subject}: HTTP {resp.status_code} {_message(resp)}")
        body = self._json(resp, "config")
        # Confluent answers compatibilityLevel on GET; some servers say compatibility.
        return body.get("compatibilityLevel") or body.get("compatibility")

    def delete_subject(self, subject: str) -> None:
        """Delete a subject and its versions (missing subjects are ignored)."""
        resp = self._request("DELETE", f"/subjects/{_q(subject)}")
        if resp.status_code not in (200, 404):
            raise TransportError(f"deleting {subject}: HTTP {resp.status_code} {_message(resp)}")
        with self._lock:
            self._ids = {k: v for k, v in self._ids.items() if k[0] != subject}

    def register_with_compatibility(self, subject: str, schema: dict[str, Any] | str,
                                    level: str = "BACKWARD") -> int:
        """Register and make sure the subject's rule is `level` (idempotent)."""
        schema_id = self.register(subject, schema)
        if self.get_compatibility(subject) != level:
            self.set_compatibility(subject, level)
        return schema_id


def _q(subject: str) -> str:
    return quote(subject, safe="")


def _message(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300]
    if isinstance(body, dict):
        code = body.get("error_code")
        msg = body.get("message") or body
        return f"{msg} (error_code {code})" if code else str(msg)
    return str(body)[:300]


# -- schema evolution check (CI) ------------------------------------------------------------------

def check_backward_compatible(client: SchemaRegistryClient, old: dict[str, str],
                              new: dict[str, str]) -> dict[str, str]:
    """Check each schema in `new` against the same-named one in `old` with the registry's BACKWARD
    rule, under throwaway subjects. Returns name -> 'ok' | 'new' | 'INCOMPATIBLE'."""
    run = uuid.uuid4().hex[:8]
    result: dict[str, str] = {}
    for name, text in sorted(new.items()):
        if name not in old:
            result[name] = "new"
            continue
        subject = f"livedub-compat-check.{run}.{name}-value"
        try:
            client.register(subject, old[name])
            client.set_compatibility(subject, "BACKWARD")
            ok = client.check_compatibility(subject, text)
        finally:
            client.delete_subject(subject)
        result[name] = "ok" if ok else "INCOMPATIBLE"
    return result


def _schemas_at(ref: str | None, root: Any) -> dict[str, str] | None:
    """name -> .avsc text at git `ref` (None: the working tree); None if `ref` does not resolve."""
    import subprocess

    schema_dir = root / "schemas"
    if ref is None:
        return {p.stem: p.read_text() for p in sorted(schema_dir.glob("*.avsc"))}
    probe = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return None
    ls = subprocess.run(["git", "-C", str(root), "ls-tree", "--name-only", ref, "schemas/"],
                        capture_output=True, text=True, check=True)
    out: dict[str, str] = {}
    for path in ls.stdout.split():
        if path.endswith(".avsc"):
            show = subprocess.run(["git", "-C", str(root), "show", f"{ref}:{path}"],
                                  capture_output=True, text=True, check=True)
            out[path.rsplit("/", 1)[-1][:-5]] = show.stdout
    return out


def default_base_ref(root: Any) -> str:
    """HEAD when schemas/ has uncommitted changes (check the edit), else HEAD~1 (check the commit)."""
    import subprocess

    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "schemas/"],
                           capture_output=True, text=True).stdout.strip()
    return "HEAD" if dirty else "HEAD~1"


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys
    from pathlib import Path

    p = argparse.ArgumentParser(prog="python -m streams.registry")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check-compat", help="check schemas/*.avsc are BACKWARD compatible with a git ref")
    c.add_argument("--base-ref", default=None,
                   help="git ref to compare with (default: HEAD if schemas/ is dirty, else HEAD~1)")
    c.add_argument("--url", default=None, help="registry URL (default: LIVEDUB_SCHEMA_REGISTRY__URL)")
    args = p.parse_args(argv)

    root = Path(__file__).resolve().parents[1]
    ref = args.base_ref or default_base_ref(root)
    old = _schemas_at(ref, root)
    if old is None:
        if args.base_ref:  # asked for explicitly: a typo or a ref CI did not fetch
            print(f"schema-compat: base ref {ref!r} does not resolve", file=sys.stderr)
            return 2
        print(f"schema-compat: no {ref} (first commit or shallow clone); nothing to compare")
        return 0
    new = _schemas_at(None, root)
    assert new is not None
    if args.url:
        client = SchemaRegistryClient(args.url)
    else:
        from workers.settings import load_settings

        client = SchemaRegistryClient.from_settings(load_settings().schema_registry)
    with client:
        result = check_backward_compatible(client, old, new)
    for name, verdict in result.items():
        print(f"schema-compat: {name}: {verdict} (vs {ref})")
    removed = sorted(set(old) - set(new))
    for name in removed:
        print(f"schema-compat: {name}: REMOVED (was in {ref})")
    bad = [n for n, v in result.items() if v == "INCOMPATIBLE"] + removed
    if bad:
        print(f"schema-compat: FAILED: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The schema registry through confluent-kafka's own client (Apicurio's ccompat API works).

`SchemaRegistry` adapts `confluent_kafka.schema_registry.SchemaRegistryClient` (HTTP, auth,
caching by id) to what LiveDub needs and translates its errors where they are caught:
connection problems and 5xx answers raise TransportError (retryable); 401/403 raise
TransportError(retryable=False); a schema the registry rejects (invalid, incompatible) or an
unknown id raises SchemaError.

Subjects follow TopicNameStrategy: the values of topic T are registered under `T-value`.
Schemas are sent as compact JSON of the parsed .avsc, so the same file always registers as
the same text (and therefore the same id).

Also a command line for CI:  python -m streams.registry check-compat [--base-ref REF] [--url URL]
checks every schemas/*.avsc against its version at REF through the registry's BACKWARD rule.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from workers.errors import SchemaError, TransportError

if TYPE_CHECKING:
    from workers.settings import SchemaRegistrySettings

T = TypeVar("T")
COMPATIBILITY_LEVELS = (
    "NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE",
)
# Confluent error codes: subject / version / schema not found, no compatibility configured.
NOT_FOUND = {40401, 40402, 40403, 40408}


def schema_text(schema: dict[str, Any] | str) -> str:
    """The exact text registered for a schema: compact JSON, field order kept."""
    if isinstance(schema, str):
        schema = json.loads(schema)
    return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)


def _avro(schema: dict[str, Any] | str) -> Schema:
    return Schema(schema_text(schema), "AVRO")


class SchemaRegistry:
    """Register, fetch and check Avro schemas (thread-safe; ids cached by the confluent client)."""

    def __init__(self, url: str, *, username: str | None = None, password: str | None = None,
                 timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        conf: dict[str, Any] = {"url": self.url, "timeout": timeout, "max.retries": 2}
        if username is not None:
            conf["basic.auth.user.info"] = f"{username}:{password or ''}"
        self._client = SchemaRegistryClient(conf)
        self._ids: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: SchemaRegistrySettings, **kwargs: Any) -> SchemaRegistry:
        password = settings.password.get_secret_value() if settings.password is not None else None
        return cls(settings.url, username=settings.username, password=password, **kwargs)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SchemaRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, fn: Callable[[], T], *, missing: T | type[SchemaError] = SchemaError,
              rejected: str | None = None) -> T:
        """Run one client call, translating its errors (`missing` is returned for a 404, or raised)."""
        try:
            return fn()
        except SchemaRegistryError as e:
            status, code = e.http_status_code, e.error_code
            if status == 404 or code in NOT_FOUND:
                if isinstance(missing, type) and issubclass(missing, Exception):
                    raise missing(f"{what} is unknown to the registry at {self.url} ({e.error_message})") from e
                return missing
            if status in (401, 403):
                raise TransportError(f"schema registry {self.url}: {what}: HTTP {status} (check "
                                     "LIVEDUB_SCHEMA_REGISTRY__USERNAME / __PASSWORD)", retryable=False) from e
            if status == 409:
                raise SchemaError(f"{what}: incompatible with the registered schema: {e.error_message}") from e
            if status in (400, 422):
                raise SchemaError(f"{what}: {rejected or 'rejected by the registry'}: {e.error_message}") from e
            raise TransportError(f"schema registry {self.url}: {what}: HTTP {status} {e.error_message}",
                                 retryable=status is None or status >= 500) from e
        except (OSError, ValueError) as e:  # connection refused, timeouts (httpx errors are OSErrors), bad JSON
            raise TransportError(f"schema registry {self.url}: {what}: {type(e).__name__}: {e}") from e
        except Exception as e:  # httpx transport errors that are not OSErrors
            if type(e).__module__.startswith("httpx"):
                raise TransportError(f"schema registry {self.url}: {what}: {type(e).__name__}: {e}") from e
            raise

    # -- API --------------------------------------------------------------------------------
    def register(self, subject: str, schema: dict[str, Any] | str) -> int:
        """Register `schema` under `subject` (a no-op returning the id if already there)."""
        key = (subject, schema_text(schema))
        with self._lock:
            if key in self._ids:
                return self._ids[key]
        schema_id = self._call(f"registering {subject}", lambda: self._client.register_schema(subject, _avro(schema)))
        with self._lock:
            self._ids[key] = schema_id
        return schema_id

    def lookup(self, subject: str, schema: dict[str, Any] | str) -> int | None:
        """The id of `schema` if it is registered under `subject`, else None."""
        found = self._call(f"looking up {subject}", lambda: self._client.lookup_schema(subject, _avro(schema)),
                           missing=None)
        return None if found is None else found.schema_id

    def get_schema(self, schema_id: int) -> str:
        """The schema text registered with `schema_id` (cached by the client: ids never change meaning)."""
        schema = self._call(f"schema id {schema_id}", lambda: self._client.get_schema(schema_id))
        if (schema.schema_type or "AVRO") != "AVRO":
            raise SchemaError(f"schema id {schema_id} is {schema.schema_type}, not AVRO")
        return schema.schema_str

    def get_latest(self, subject: str) -> tuple[int, int, str] | None:
        """(id, version, schema text) of the latest version under `subject`, or None."""
        reg = self._call(f"reading {subject}", lambda: self._client.get_latest_version(subject), missing=None)
        return None if reg is None else (reg.schema_id, reg.version, reg.schema.schema_str)

    def subjects(self) -> list[str]:
        return list(self._call("listing subjects", self._client.get_subjects))

    def check_compatibility(self, subject: str, schema: dict[str, Any] | str) -> bool:
        """Whether `schema` may be registered next under `subject` (by the subject's rule).

        A subject with no versions accepts anything.
        """
        return bool(self._call(f"checking {subject}", lambda: self._client.test_compatibility(subject, _avro(schema)),
                               missing=True, rejected="schema rejected"))

    def set_compatibility(self, subject: str, level: str = "BACKWARD") -> None:
        """Set the subject's compatibility rule (the subject must have a version on Apicurio)."""
        if level not in COMPATIBILITY_LEVELS:
            raise SchemaError(f"unknown compatibility level {level!r}")
        try:
            self._call(f"setting {level} on {subject}", lambda: self._client.set_compatibility(subject, level))
        except SchemaError:
            # Apicurio creates the rule on the first PUT; another worker starting at the same time may
            # have created it between our GET and PUT (409 "rule already exists"): PUT again updates it.
            if self.get_compatibility(subject) != level:
                self._call(f"setting {level} on {subject}", lambda: self._client.set_compatibility(subject, level))

    def get_compatibility(self, subject: str) -> str | None:
        return self._call(f"reading the config of {subject}", lambda: self._client.get_compatibility(subject),
                          missing=None)

    def delete_subject(self, subject: str) -> None:
        """Delete a subject and its versions (missing subjects are ignored)."""
        self._call(f"deleting {subject}", lambda: self._client.delete_subject(subject), missing=None)
        with self._lock:
            self._ids = {k: v for k, v in self._ids.items() if k[0] != subject}

    def register_with_compatibility(self, subject: str, schema: dict[str, Any] | str,
                                    level: str = "BACKWARD") -> int:
        """Register and make sure the subject's rule is `level` (idempotent)."""
        schema_id = self.register(subject, schema)
        if self.get_compatibility(subject) != level:
            self.set_compatibility(subject, level)
        return schema_id


# -- schema evolution check (CI) ------------------------------------------------------------------

def check_backward_compatible(client: SchemaRegistry, old: dict[str, str],
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
        client = SchemaRegistry(args.url)
    else:
        from workers.settings import load_settings

        client = SchemaRegistry.from_settings(load_settings().schema_registry)
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

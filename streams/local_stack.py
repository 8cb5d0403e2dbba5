"""Before a Kafka benchmark spends minutes on its embedded half: is there a broker?

`make bench` with no broker running used to spend about five minutes on the embedded profiles and
then fail with a page of librdkafka connection errors. Now the transport is checked first: at
the local default address the local stack is started (as the integration tests do); anywhere
else the run stops at once, naming the address and the command that starts a local one.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from workers.errors import ConfigError
from workers.settings import KafkaSettings, Settings

ROOT = Path(__file__).resolve().parents[1]
LOCAL_UP = ROOT / "deploy" / "local" / "livedub-local.sh"
LOCAL_BOOTSTRAP = KafkaSettings().bootstrap_servers


def broker_reachable(kafka: KafkaSettings, timeout_s: float = 5.0) -> bool:
    from confluent_kafka import KafkaException

    from streams.topics import admin_client, client_config

    admin = admin_client({**client_config(kafka), "log_level": 0, "socket.connection.setup.timeout.ms": 3000})
    try:
        admin.list_topics(timeout=timeout_s)
        return True
    except KafkaException:
        return False


def ensure_kafka(settings: Settings, *, start_local: bool = True) -> None:
    """Return when `settings.kafka` reaches a broker, starting the local stack if it is the local address."""
    kafka = settings.kafka
    if broker_reachable(kafka):
        return
    if not (start_local and kafka.bootstrap_servers == LOCAL_BOOTSTRAP and LOCAL_UP.exists()):
        raise ConfigError(f"no Kafka broker answers at {kafka.bootstrap_servers}: start the local stack with "
                          f"`{LOCAL_UP.relative_to(ROOT)} up` or set LIVEDUB_KAFKA__BOOTSTRAP_SERVERS")
    print(f"no Kafka broker at {kafka.bootstrap_servers}: starting the local stack ({LOCAL_UP.relative_to(ROOT)} up)",
          flush=True)
    up = subprocess.run(["bash", str(LOCAL_UP), "up"], capture_output=True, text=True)
    if up.returncode != 0 or not broker_reachable(kafka):
        raise ConfigError(f"the local stack did not start (rc {up.returncode}):\n{up.stderr[-2000:]}")

"""Every setting has a sane range: a value that would break the runtime is one line naming it.

`EVENT_MAX_ATTEMPTS=0` used to dead-letter every event silently, `OUTBOX_POLL_MS=0` spun a
busy loop, `BUS_URL=nonsense` was ignored, and the dev profile happily listened on 0.0.0.0.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from microcommerce.config import ConfigError, load_settings

DOCKERFILE = Path(__file__).resolve().parents[2] / "docker" / "Dockerfile"


def config_error(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(flags={}, env=env)
    message = str(info.value)
    assert "\n" not in message, "a config error is one line"
    return message


@pytest.mark.parametrize(("env", "setting"), [
    ({"EVENT_MAX_ATTEMPTS": "0"}, "EVENT_MAX_ATTEMPTS"),
    ({"OUTBOX_POLL_MS": "0"}, "OUTBOX_POLL_MS"),
    ({"OUTBOX_POLL_MS": "-5"}, "OUTBOX_POLL_MS"),
    ({"OUTBOX_POLL_MS": "9"}, "OUTBOX_POLL_MS"),
    ({"RESERVATION_SWEEP_INTERVAL_MS": "1"}, "RESERVATION_SWEEP_INTERVAL_MS"),
    ({"BUS_URL": "nonsense"}, "BUS_URL"),
    ({"BUS_URL": "kafka://"}, "BUS_URL"),
    ({"BUS_URL": "kafka://broker"}, "BUS_URL"),
    ({"BUS_URL": "kafka://a:9092,"}, "BUS_URL"),
    ({"KAFKA_PARTITIONS": "0"}, "KAFKA_PARTITIONS"),
    ({"KAFKA_REPLICATION_FACTOR": "0"}, "KAFKA_REPLICATION_FACTOR"),
    ({"KAFKA_SESSION_TIMEOUT_MS": "500"}, "KAFKA_SESSION_TIMEOUT_MS"),
    ({"KAFKA_HEARTBEAT_INTERVAL_MS": "3000"}, "KAFKA_HEARTBEAT_INTERVAL_MS"),
    ({"KAFKA_MAX_POLL_INTERVAL_MS": "10"}, "KAFKA_MAX_POLL_INTERVAL_MS"),
    ({"KAFKA_GROUP_PREFIX": "bad prefix"}, "KAFKA_GROUP_PREFIX"),
    ({"WORKERS": "0"}, "WORKERS"),
    ({"MAILBOX_SIZE": "0"}, "MAILBOX_SIZE"),
    ({"GATEWAY_PORT": "0"}, "GATEWAY_PORT"),
    ({"CART_PORT": "65536"}, "CART_PORT"),
    ({"REQUEST_TIMEOUT_MS": "0"}, "REQUEST_TIMEOUT_MS"),
    ({"ORDER_TIMEOUT_MS": "0"}, "ORDER_TIMEOUT_MS"),
    ({"SUPERVISOR_WINDOW_S": "0"}, "SUPERVISOR_WINDOW_S"),
    ({"SUPERVISOR_WINDOW_S": "nan"}, "SUPERVISOR_WINDOW_S"),
    ({"SUPERVISOR_WINDOW_S": "inf"}, "SUPERVISOR_WINDOW_S"),
    ({"SUPERVISOR_MAX_RESTARTS": "-1"}, "SUPERVISOR_MAX_RESTARTS"),
    ({"RESERVATION_TTL_S": "0"}, "RESERVATION_TTL_S"),
    ({"JWT_TTL_S": "-1"}, "JWT_TTL_S"),
    ({"PASSWORD_HASH_COST": "17"}, "PASSWORD_HASH_COST"),
    ({"RATE_LIMIT_MAX": "0"}, "RATE_LIMIT_MAX"),
    ({"PROFILE": "staging"}, "PROFILE"),
    ({"HOST": " "}, "HOST"),
    ({"DATABASE_URL": "postgres://db/mc"}, "DATABASE_URL"),
    ({"BOOTSTRAP_ADMIN_PASSWORD": "😀" * 19}, "BOOTSTRAP_ADMIN_PASSWORD"),
    ({"BOOTSTRAP_ADMIN_PASSWORD": "short"}, "BOOTSTRAP_ADMIN_PASSWORD"),
    ({"BOOTSTRAP_ADMIN_EMAIL": "admin"}, "BOOTSTRAP_ADMIN_EMAIL"),
])
def test_a_value_that_breaks_the_runtime_names_its_setting(env, setting):
    assert config_error(env).startswith(f"{setting}: ")


@pytest.mark.parametrize(("env", "check"), [
    ({"EVENT_MAX_ATTEMPTS": "1"}, lambda s: s.event_max_attempts == 1),
    ({"OUTBOX_POLL_MS": "10"}, lambda s: s.outbox_poll_ms == 10),
    ({"SUPERVISOR_MAX_RESTARTS": "0"}, lambda s: s.supervisor_max_restarts == 0),
    ({"BUS_URL": "kafka://broker-1:9092,10.0.0.2:9093"}, lambda s: s.bus_url.startswith("kafka://")),
    ({"PASSWORD_HASH_COST": "16"}, lambda s: s.password_hash_cost == 16),
    ({"BOOTSTRAP_ADMIN_PASSWORD": "😀" * 18}, lambda s: len(s.bootstrap_admin_password) == 18),
    ({"GATEWAY_PORT": "1", "AUDIT_PORT": "65535"}, lambda s: s.port_of("audit") == 65535),
])
def test_the_edges_of_each_range_are_accepted(env, check):
    assert check(load_settings(flags={}, env=env))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "shop.example.com"])
def test_the_dev_profile_refuses_a_public_host(host):
    message = config_error({"HOST": host})
    assert message.startswith(f"HOST: the dev profile must not listen on {host}")
    assert "ALLOW_DEV_ON_PUBLIC_HOST" in message
    assert load_settings(flags={}, env={"HOST": host, "PROFILE": "production"}).host == host
    assert load_settings(flags={}, env={"HOST": host, "ALLOW_DEV_ON_PUBLIC_HOST": "true"}).profile == "dev"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_the_dev_profile_listens_on_loopback(host):
    assert load_settings(flags={}, env={"HOST": host}).host == host


def test_the_docker_image_does_not_run_the_dev_profile_on_its_public_host():
    env = {}
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", line))
    assert env.get("HOST") == "0.0.0.0"
    settings = load_settings(flags={}, env=env)  # the image's own settings load
    assert settings.profile == "production"

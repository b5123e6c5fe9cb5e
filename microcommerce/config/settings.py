"""Typed settings and the layered loader.

Names follow the seeds: a field `rate_limit_max` is the env var `RATE_LIMIT_MAX`; per-service
maps use `{SERVICE}_PORT`, `{SERVICE}_SERVICE_URL`, `{SERVICE}_TIMEOUT_MS`.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

SERVICE_NAMES: tuple[str, ...] = (
    "gateway",
    "user",
    "cart",
    "order",
    "product",
    "inventory",
    "search",
    "payment",
    "notification",
    "audit",
)
DEFAULT_PORTS = {name: 3000 + i for i, name in enumerate(SERVICE_NAMES)}
PROFILES = ("dev", "production")
# Timers below this spin a core for nothing (and 0 or less is a busy loop).
MIN_POLL_MS = 10
MAX_BCRYPT_BYTES = 72
_KAFKA_URL = re.compile(r"^kafka://[A-Za-z0-9.-]+:\d{1,5}(,[A-Za-z0-9.-]+:\d{1,5})*$")
_KAFKA_GROUP_PREFIX = re.compile(r"[A-Za-z0-9._-]{0,100}")
_LEDGER_URL = re.compile(r"sqlite:///.+|sqlite://memory/[A-Za-z0-9_.-]+")
PER_SERVICE_MAPS = {"ports": "_PORT", "service_urls": "_SERVICE_URL", "timeouts_ms": "_TIMEOUT_MS"}


class ConfigError(Exception):
    """Bad configuration: the message is one line naming the setting."""


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, dict=True):
    profile: str = "dev"
    host: str = "127.0.0.1"
    # The dev profile serves the dev outbox and prints secrets: never on a public interface
    # unless this is set on purpose.
    allow_dev_on_public_host: bool = False
    data_dir: str = "./var"
    ephemeral: bool = False
    # Database URL; `{service}` is replaced by the service name. Empty: SQLite under data_dir.
    database_url: str = ""
    bus_url: str = "local"
    # Kafka bus (BUS_URL=kafka://...): topics created at start, consumer groups `<prefix><service>`.
    kafka_partitions: int = 4
    kafka_replication_factor: int = 1
    kafka_session_timeout_ms: int = 6000
    kafka_heartbeat_interval_ms: int = 1000
    kafka_max_poll_interval_ms: int = 10000
    # How long a fetch may wait at the broker for data: the floor of event latency when idle.
    kafka_fetch_max_wait_ms: int = 100
    kafka_group_prefix: str = "microcommerce."
    jwt_secret: str = ""
    jwt_ttl_s: int = 86400
    internal_token: str = ""
    rate_limit_window_ms: int = 60000
    rate_limit_max: int = 120
    password_hash_cost: int = 10
    bootstrap_admin_email: str = ""
    bootstrap_admin_password: str = ""
    bootstrap_admin_name: str = "Admin"
    demo_catalog: bool = False
    workers: int = 4
    mailbox_size: int = 1000
    request_timeout_ms: int = 4000
    ports: dict[str, int] = msgspec.field(default_factory=dict)
    service_urls: dict[str, str] = msgspec.field(default_factory=dict)
    timeouts_ms: dict[str, int] = msgspec.field(default_factory=dict)
    supervisor_max_restarts: int = 5
    supervisor_window_s: float = 10.0
    event_max_attempts: int = 5
    outbox_poll_ms: int = 1000
    reservation_ttl_s: int = 900
    reservation_sweep_interval_ms: int = 5000
    # One user's hold on the catalogue: open (unpaid) orders at once, and units of one product per order.
    max_pending_orders_per_user: int = 10
    max_order_line_quantity: int = 100
    # How long an Idempotency-Key of order creation / checkout is remembered.
    idempotency_key_ttl_s: int = 86400
    # The mock payment providers' books (outside every service database). Empty: providers.sqlite
    # in data_dir, or memory when ephemeral.
    provider_ledger_url: str = ""
    payment_reconcile_interval_ms: int = 10000
    # How long the mock providers' slow tokens (tok_visa_slow, paymob_success_slow) take to
    # answer; unset: the mocks' own 3 s.
    provider_slow_delay_ms: int | None = None
    notification_channels: list[str] = msgspec.field(default_factory=lambda: ["email", "sms", "push"])
    cors_origins: list[str] = msgspec.field(default_factory=lambda: ["*"])
    expose_internal: bool = False
    access_log: bool = True
    log_level: str = "info"

    def __post_init__(self) -> None:
        _check(self.profile in PROFILES, "PROFILE", f"must be one of {', '.join(PROFILES)}")
        _check(bool(self.host.strip()), "HOST", "must not be empty")
        _check(self.profile != "dev" or self.allow_dev_on_public_host or is_loopback(self.host), "HOST",
               f"the dev profile must not listen on {self.host} (not loopback); use PROFILE=production, "
               "HOST=127.0.0.1, or ALLOW_DEV_ON_PUBLIC_HOST=true")
        _check(bool(self.data_dir.strip()), "DATA_DIR", "must not be empty")
        _check(not self.database_url or self.database_url.startswith(("sqlite://", "mysql://")),
               "DATABASE_URL", "must start with sqlite:// or mysql://")
        _check(self.bus_url == "local" or bool(_KAFKA_URL.match(self.bus_url)), "BUS_URL",
               "must be 'local' or kafka://host:port[,host:port...]")
        _check(1 <= self.kafka_partitions <= 1000, "KAFKA_PARTITIONS", "must be 1..1000")
        _check(1 <= self.kafka_replication_factor <= 10, "KAFKA_REPLICATION_FACTOR", "must be 1..10")
        _check(1000 <= self.kafka_session_timeout_ms <= 300000, "KAFKA_SESSION_TIMEOUT_MS",
               "must be 1000..300000")
        _check(100 <= self.kafka_heartbeat_interval_ms <= self.kafka_session_timeout_ms // 3,
               "KAFKA_HEARTBEAT_INTERVAL_MS", "must be 100..KAFKA_SESSION_TIMEOUT_MS/3")
        _check(1000 <= self.kafka_max_poll_interval_ms <= 3600000, "KAFKA_MAX_POLL_INTERVAL_MS",
               "must be 1000..3600000")
        _check(1 <= self.kafka_fetch_max_wait_ms <= 5000, "KAFKA_FETCH_MAX_WAIT_MS", "must be 1..5000")
        _check(_KAFKA_GROUP_PREFIX.fullmatch(self.kafka_group_prefix) is not None, "KAFKA_GROUP_PREFIX",
               "must be at most 100 of A-Z a-z 0-9 . _ -")
        _check(self.rate_limit_window_ms > 0, "RATE_LIMIT_WINDOW_MS", "must be > 0")
        _check(self.rate_limit_max > 0, "RATE_LIMIT_MAX", "must be > 0")
        _check(4 <= self.password_hash_cost <= 16, "PASSWORD_HASH_COST", "must be 4..16 (bcrypt cost)")
        _check(1 <= self.workers <= 64, "WORKERS", "must be 1..64")
        _check(self.mailbox_size >= 1, "MAILBOX_SIZE", "must be >= 1")
        _check(self.supervisor_max_restarts >= 0, "SUPERVISOR_MAX_RESTARTS", "must be >= 0")
        _check(math.isfinite(self.supervisor_window_s) and self.supervisor_window_s > 0, "SUPERVISOR_WINDOW_S",
               "must be a number > 0")
        _check(self.event_max_attempts >= 1, "EVENT_MAX_ATTEMPTS", "must be >= 1 (0 would dead-letter every event)")
        _check(self.outbox_poll_ms >= MIN_POLL_MS, "OUTBOX_POLL_MS", f"must be >= {MIN_POLL_MS}")
        _check(self.request_timeout_ms > 0, "REQUEST_TIMEOUT_MS", "must be > 0")
        _check(self.jwt_ttl_s > 0, "JWT_TTL_S", "must be > 0")
        _check(self.reservation_ttl_s > 0, "RESERVATION_TTL_S", "must be > 0")
        _check(self.reservation_sweep_interval_ms >= MIN_POLL_MS, "RESERVATION_SWEEP_INTERVAL_MS",
               f"must be >= {MIN_POLL_MS}")
        _check(len(self.bootstrap_admin_password.encode()) <= MAX_BCRYPT_BYTES, "BOOTSTRAP_ADMIN_PASSWORD",
               f"must be at most {MAX_BCRYPT_BYTES} bytes in UTF-8")
        _check(not self.bootstrap_admin_password or len(self.bootstrap_admin_password) >= 8,
               "BOOTSTRAP_ADMIN_PASSWORD", "must be at least 8 characters")
        _check(not self.bootstrap_admin_email or "@" in self.bootstrap_admin_email, "BOOTSTRAP_ADMIN_EMAIL",
               "must be an email address")
        _check(self.max_pending_orders_per_user > 0, "MAX_PENDING_ORDERS_PER_USER", "must be > 0")
        _check(self.max_order_line_quantity > 0, "MAX_ORDER_LINE_QUANTITY", "must be > 0")
        _check(self.idempotency_key_ttl_s > 0, "IDEMPOTENCY_KEY_TTL_S", "must be > 0")
        _check(self.payment_reconcile_interval_ms >= MIN_POLL_MS, "PAYMENT_RECONCILE_INTERVAL_MS",
               f"must be >= {MIN_POLL_MS}")
        _check(self.provider_slow_delay_ms is None or self.provider_slow_delay_ms >= 0, "PROVIDER_SLOW_DELAY_MS", "must be >= 0")
        _check(not self.provider_ledger_url or _LEDGER_URL.fullmatch(self.provider_ledger_url) is not None,
               "PROVIDER_LEDGER_URL", "must be sqlite:///<path> or sqlite://memory/<name>")
        _check(self.log_level in ("debug", "info", "warning", "error"), "LOG_LEVEL",
               "must be one of debug, info, warning, error")
        bad = set(self.notification_channels) - {"email", "sms", "push"}
        _check(not bad, "NOTIFICATION_CHANNELS", f"unknown channel(s) {sorted(bad)}; use email, sms, push")
        for name in (*self.ports, *self.service_urls, *self.timeouts_ms):
            _check(name in SERVICE_NAMES, name.upper(), f"unknown service; known: {', '.join(SERVICE_NAMES)}")
        for name, port in self.ports.items():
            _check(1 <= port <= 65535, f"{name.upper()}_PORT", "must be 1..65535")
        for name, timeout in self.timeouts_ms.items():
            _check(timeout > 0, f"{name.upper()}_TIMEOUT_MS", "must be > 0")
        for name, url in self.service_urls.items():
            _check(url.startswith(("http://", "https://")), f"{name.upper()}_SERVICE_URL", "must start with http:// or https://")
        if self.jwt_secret and len(self.jwt_secret) < 16:
            raise ConfigError("JWT_SECRET: must be at least 16 characters")
        # Dev convenience: secrets generated per process when not configured (remembered, so a
        # process whose peers run elsewhere can refuse to start with secrets nobody shares).
        self.generated_secrets = [name for name, value in (("JWT_SECRET", self.jwt_secret),
                                                           ("INTERNAL_TOKEN", self.internal_token)) if not value]
        if not self.jwt_secret:
            self.jwt_secret = secrets.token_urlsafe(32)
        if not self.internal_token:
            self.internal_token = secrets.token_urlsafe(24)

    def port_of(self, service: str) -> int:
        return self.ports.get(service, DEFAULT_PORTS[service])

    def url_of(self, service: str) -> str:
        return self.service_urls.get(service) or f"http://{self.host}:{self.port_of(service)}"

    def timeout_of(self, service: str) -> float:
        return self.timeouts_ms.get(service, self.request_timeout_ms) / 1000.0

    def database_url_of(self, service: str) -> str:
        if self.database_url:
            return self.database_url.replace("{service}", service)
        if self.ephemeral:
            return f"sqlite://memory/{service}-{id(self)}"
        return f"sqlite:///{Path(self.data_dir) / f'{service}.db'}"


def is_loopback(host: str) -> bool:
    """True for an interface only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # another hostname: may resolve to anything, so treat it as public


def _check(ok: bool, name: str, problem: str) -> None:
    if not ok:
        raise ConfigError(f"{name}: {problem}")


_FIELDS = {f.name for f in msgspec.structs.fields(Settings)}


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in _FIELDS - set(PER_SERVICE_MAPS):
        raw = env.get(name.upper())
        if raw is not None and raw != "":
            values[name] = _parse_env_value(name, raw)
    for field, suffix in PER_SERVICE_MAPS.items():
        found = {s: env[f"{s.upper()}{suffix}"] for s in SERVICE_NAMES if env.get(f"{s.upper()}{suffix}")}
        if found:
            values[field] = found
    return values


_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True,
               "false": False, "no": False, "off": False, "0": False}
_BOOL_FIELDS = {f.name for f in msgspec.structs.fields(Settings) if f.type is bool}


def _parse_env_value(name: str, raw: str) -> Any:
    if name in ("notification_channels", "cors_origins"):
        return [part.strip() for part in raw.split(",") if part.strip()]
    if name in _BOOL_FIELDS:
        return _BOOL_WORDS.get(raw.strip().lower(), raw)  # anything else fails validation, named
    return raw


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"--config: file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config: {path} is not valid TOML: {exc}") from None
    unknown = set(data) - _FIELDS
    if unknown:
        raise ConfigError(f"--config: unknown setting(s) in {path}: {', '.join(sorted(unknown))}")
    return data


def _merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key in PER_SERVICE_MAPS and isinstance(value, dict):
                merged[key] = {**merged.get(key, {}), **value}
            else:
                merged[key] = value
    return merged


_PATH_RE = re.compile(r"\$\.([a-z_]+)(?:\['([a-z_]+)'\])?")


def _setting_name(msg: str) -> str:
    match = _PATH_RE.search(msg)
    if not match:
        return "config"
    field, sub = match.groups()
    if field in PER_SERVICE_MAPS and sub:
        return f"{sub.upper()}{PER_SERVICE_MAPS[field]}"
    return field.upper()


_MAP_VALUE_TYPES = {"ports": int, "service_urls": str, "timeouts_ms": int}


def _check_service_maps(merged: dict[str, Any]) -> None:
    """Validate per-service maps entry by entry so the error names e.g. CART_PORT."""
    for field, suffix in PER_SERVICE_MAPS.items():
        for service, value in (merged.get(field) or {}).items():
            try:
                msgspec.convert(value, _MAP_VALUE_TYPES[field], strict=False)
            except msgspec.ValidationError:
                kind = _MAP_VALUE_TYPES[field].__name__
                raise ConfigError(f"{service.upper()}{suffix}: expected {kind}, got {value!r}") from None


def load_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
) -> Settings:
    """Layer the sources (flags win) and validate; raises ConfigError with one line."""
    env = os.environ if env is None else env
    config_file = config_file or env.get("MICROCOMMERCE_CONFIG")
    file_values = _from_toml(Path(config_file)) if config_file else {}
    merged = _merge(file_values, _from_env(env), {k: v for k, v in (flags or {}).items() if v is not None})
    _check_service_maps(merged)
    try:
        return msgspec.convert(merged, Settings, strict=False)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        problem = msg.split(" - at ")[0].replace("`", "")
        raise ConfigError(f"{_setting_name(msg)}: {problem[0].lower()}{problem[1:]}") from None

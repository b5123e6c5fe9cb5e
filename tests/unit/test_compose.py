"""docker/compose.yaml checked against the code it deploys.

No Docker engine runs where the suite runs, so the file is read the way Compose reads it
(YAML with anchors and merge keys, then `${VAR}`, `${VAR:-default}`, `${VAR:?error}`, `$$`)
and every container's command goes through the real CLI parser and its environment through
the real settings loader. `compose_problems` lists what is wrong; the mutation tests break the
file on purpose and expect the problem to be named.
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from microcommerce.cli import build_parser
from microcommerce.config import SERVICE_NAMES, ConfigError, Settings, load_settings
from microcommerce.config import settings as settings_module
from microcommerce.config.settings import DEFAULT_PORTS, PER_SERVICE_MAPS
from microcommerce.storage.urls import MysqlTarget, parse_database_url

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker" / "compose.yaml"
# What an operator exports before `docker compose up` (the file refuses to start without them).
OPERATOR_ENV = {
    "JWT_SECRET": "a-jwt-secret-of-at-least-32-chars",
    "INTERNAL_TOKEN": "an-internal-token-for-calls",
    "BOOTSTRAP_ADMIN_PASSWORD": "correct-horse-battery",
}
REQUIRED_EVERYWHERE = ("JWT_SECRET", "INTERNAL_TOKEN")
INFRA = ("kafka", "mysql", "migrate")
HEALTHY_BEFORE_START = {"kafka": "service_healthy", "mysql": "service_healthy",
                        "migrate": "service_completed_successfully"}


# -- reading the file as Compose does ------------------------------------------------------


class MissingVariable(Exception):
    """A `${VAR:?message}` whose variable is not set: Compose refuses to start."""


_VARIABLE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable substitution over every string of a loaded document."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if isinstance(value, str):
        return _VARIABLE.sub(lambda match: _substitute(match, env), value)
    return value


def _substitute(match: re.Match[str], env: dict[str, str]) -> str:
    if match.group(1):
        return "$"
    name = match.group(2) or match.group(5)
    operator, argument = match.group(3), match.group(4) or ""
    value = env.get(name)
    # `:-` / `:?` treat an empty value as unset; `-` / `?` only an unset one.
    missing = value is None or (operator is not None and operator.startswith(":") and value == "")
    if missing and operator in (":-", "-"):
        return argument
    if missing and operator in (":?", "?"):
        raise MissingVariable(f"{name}: {argument}")
    return value or ""


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {key: _env_text(value) for key, value in raw.items()}


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def accepted_env_names() -> set[str]:
    """Every variable name the settings loader reads, derived from the Settings struct."""
    plain = {f.name.upper() for f in msgspec.structs.fields(Settings) if f.name not in PER_SERVICE_MAPS}
    per_service = {f"{name.upper()}{suffix}" for name in SERVICE_NAMES for suffix in PER_SERVICE_MAPS.values()}
    return plain | per_service | {"MICROCOMMERCE_CONFIG"}


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def _published_target_port(entry: Any) -> int:
    if isinstance(entry, dict):
        return int(entry["target"])
    return int(str(entry).rsplit(":", 1)[-1].split("/")[0])


# -- the checks -----------------------------------------------------------------------------


def compose_problems(raw: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    """Everything in the compose document that disagrees with the code; [] when it matches."""
    env = dict(OPERATOR_ENV if env is None else env)
    problems: list[str] = []
    if "version" in raw:
        problems.append("top-level `version:` is obsolete in the Compose spec")
    services_raw: dict[str, Any] = raw.get("services") or {}
    problems += _required_secrets_problems(services_raw)
    try:
        doc = interpolate(raw, env)
    except MissingVariable as exc:
        return [*problems, f"compose refuses to start with the operator's env: {exc}"]
    services: dict[str, Any] = doc.get("services") or {}

    for name in INFRA:
        if name not in services:
            problems.append(f"{name}: no such container")
    if problems:
        return problems
    bus_url = _kafka_problems(services["kafka"], problems)
    root_password = environment_of(services["mysql"]).get("MYSQL_ROOT_PASSWORD", "")
    _mysql_problems(services["mysql"], problems)
    migrate_db = _migrate_problems(services["migrate"], problems)

    for name, service in services.items():
        if name not in INFRA and name not in SERVICE_NAMES:
            problems.append(f"{name}: not a service of microcommerce.config.SERVICE_NAMES")
        if service.get("ports") and name != "gateway":
            problems.append(f"{name}: publishes a port; only the gateway is reachable from the host")
        for key, value in environment_of(service).items():
            if key == "PROFILE" and value != "production":
                problems.append(f"{name}: PROFILE={value}; containers listen on 0.0.0.0, so production only")

    for name in SERVICE_NAMES:
        if name not in services:
            problems.append(f"{name}: no container for this service")
            continue
        _service_problems(name, services[name], services, problems,
                          bus_url=bus_url, root_password=root_password, migrate_db=migrate_db, env=env)
    gateway = services.get("gateway") or {}
    if not gateway.get("ports"):
        problems.append("gateway: publishes no port")
    for entry in gateway.get("ports") or []:
        if _published_target_port(entry) != DEFAULT_PORTS["gateway"]:
            problems.append(f"gateway: publishes {entry!r}, not its port {DEFAULT_PORTS['gateway']}")
    return problems


def _required_secrets_problems(services_raw: dict[str, Any]) -> list[str]:
    problems = []
    for name in (n for n in SERVICE_NAMES if n in services_raw):
        env = environment_of(services_raw[name])
        required = REQUIRED_EVERYWHERE + (("BOOTSTRAP_ADMIN_PASSWORD",) if name == "user" else ())
        for key in required:
            if not re.fullmatch(rf"\$\{{{key}:\?[^}}]+\}}", env.get(key, "")):
                problems.append(f"{name}: {key} must be required from the environment (${{{key}:?message}}), "
                                f"got {env.get(key)!r}")
    return problems


def _kafka_problems(kafka: dict[str, Any], problems: list[str]) -> str:
    env = environment_of(kafka)
    if not str(kafka.get("image", "")).startswith("apache/kafka:"):
        problems.append(f"kafka: image {kafka.get('image')!r} is not the official apache/kafka")
    if set(env.get("KAFKA_PROCESS_ROLES", "").split(",")) != {"broker", "controller"}:
        problems.append("kafka: KRaft single node needs KAFKA_PROCESS_ROLES=broker,controller")
    if env.get("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR") != "1":
        problems.append("kafka: one node needs KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR=1 (consumer groups hang)")
    node_id = env.get("KAFKA_NODE_ID", "")
    if not env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "").startswith(f"{node_id}@"):
        problems.append("kafka: KAFKA_CONTROLLER_QUORUM_VOTERS must name this node's KAFKA_NODE_ID")
    try:
        if len(base64.urlsafe_b64decode(env.get("CLUSTER_ID", "") + "==")) != 16:
            raise ValueError
    except ValueError:
        problems.append("kafka: CLUSTER_ID must be a base64url UUID (kafka-storage.sh random-uuid)")
    if "kafka-broker-api-versions" not in " ".join(_healthcheck_test(kafka)):
        problems.append("kafka: healthcheck must ask the broker (kafka-broker-api-versions.sh)")
    advertised = re.search(r"PLAINTEXT://([^,]+)", env.get("KAFKA_ADVERTISED_LISTENERS", ""))
    if advertised is None:
        problems.append("kafka: no PLAINTEXT advertised listener")
        return ""
    return f"kafka://{advertised.group(1)}"


def _mysql_problems(mysql: dict[str, Any], problems: list[str]) -> None:
    if not str(mysql.get("image", "")).startswith("mysql:8"):
        problems.append(f"mysql: image {mysql.get('image')!r} is not MySQL 8")
    if "mysqladmin ping" not in " ".join(_healthcheck_test(mysql)):
        problems.append("mysql: healthcheck must be `mysqladmin ping`")


def _migrate_problems(migrate: dict[str, Any], problems: list[str]) -> str:
    problems += _image_problems("migrate", migrate)
    command = _command(migrate)
    try:
        args = build_parser().parse_args(command[1:])
    except SystemExit:
        problems.append(f"migrate: the CLI refuses {command}")
        return ""
    if command[:1] != ["microcommerce"] or args.command != "migrate" or args.service != "all":
        problems.append(f"migrate: must run `microcommerce migrate --service all`, runs {command}")
    if (migrate.get("depends_on") or {}).get("mysql", {}).get("condition") != "service_healthy":
        problems.append("migrate: must wait for mysql to be healthy")
    return args.database_url or ""


def _image_problems(name: str, service: dict[str, Any]) -> list[str]:
    build = service.get("build") or {}
    dockerfile = COMPOSE_FILE.parent / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
    if not build or dockerfile.resolve() != (COMPOSE_FILE.parent / "Dockerfile").resolve():
        return [f"{name}: must be built from docker/Dockerfile (context: the repository)"]
    if not (COMPOSE_FILE.parent / build["context"] / "setup.cfg").exists():
        return [f"{name}: build context is not the repository root"]
    return []


def _healthcheck_test(service: dict[str, Any]) -> list[str]:
    check = service.get("healthcheck") or {}
    if check.get("disable"):
        return []
    test = check.get("test") or []
    return [test] if isinstance(test, str) else [str(part) for part in test]


def _service_problems(name: str, service: dict[str, Any], services: dict[str, Any], problems: list[str], *,
                      bus_url: str, root_password: str, migrate_db: str, env: dict[str, str]) -> None:
    port = DEFAULT_PORTS[name]
    problems += _image_problems(name, service)
    command = _command(service)
    try:
        args = build_parser().parse_args(command[1:])
    except SystemExit:
        problems.append(f"{name}: the CLI refuses {command}")
        return
    if command[:1] != ["microcommerce"] or args.command != "serve" or args.service != name:
        problems.append(f"{name}: must run `microcommerce serve --service {name}`, runs {command}")
        return
    if args.port != port:
        problems.append(f"{name}: serves on --port {args.port}, DEFAULT_PORTS says {port}")
    if args.host != "0.0.0.0":
        problems.append(f"{name}: must listen on --host 0.0.0.0 (got {args.host}): other containers could not reach it")

    container_env = environment_of(service)
    unknown = sorted(set(container_env) - accepted_env_names())
    if unknown:
        problems.append(f"{name}: the settings loader ignores {', '.join(unknown)}")
    flags = {"database_url": args.database_url, "host": args.host, "bus_url": args.bus_url,
             "ports": {name: args.port}}
    try:
        settings = load_settings(flags, env=container_env)
    except ConfigError as exc:
        problems.append(f"{name}: settings refuse the container's environment: {exc}")
        return
    if settings.profile != "production":
        problems.append(f"{name}: runs PROFILE={settings.profile}")
    if settings.bus_url != bus_url:
        problems.append(f"{name}: BUS_URL={settings.bus_url}, the broker advertises {bus_url}")
    if settings.jwt_secret != env["JWT_SECRET"] or settings.internal_token != env["INTERNAL_TOKEN"]:
        problems.append(f"{name}: JWT_SECRET / INTERNAL_TOKEN not taken from the operator's environment")
    if settings.database_url != migrate_db:
        problems.append(f"{name}: DATABASE_URL {settings.database_url!r} is not the one migrate prepared "
                        f"({migrate_db!r})")
    if name != "gateway":  # the gateway keeps no data
        target = parse_database_url(settings.database_url_of(name))
        expected = ("mysql", 3306, f"mc_{name}", root_password)
        if not isinstance(target, MysqlTarget) or (target.host, target.port, target.database,
                                                   target.password) != expected:
            problems.append(f"{name}: its database is not mc_{name} on the mysql container")
    for other in SERVICE_NAMES:
        want = f"http://{other}:{DEFAULT_PORTS[other]}"
        if settings.url_of(other) != want:
            problems.append(f"{name}: reaches {other} at {settings.url_of(other)}, its container is {want}")

    health = " ".join(_healthcheck_test(service))
    if f"127.0.0.1:{port}/health" not in health and f"localhost:{port}/health" not in health:
        problems.append(f"{name}: healthcheck must hit /health on port {port}")
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        depends = {dep: {"condition": "service_started"} for dep in depends}
    for dep, condition in HEALTHY_BEFORE_START.items():
        if (depends.get(dep) or {}).get("condition") != condition:
            problems.append(f"{name}: must depend on {dep} with condition {condition}")
    if name == "gateway":
        for other in SERVICE_NAMES:
            if other != "gateway" and (depends.get(other) or {}).get("condition") != "service_healthy":
                problems.append(f"gateway: must start after {other} is healthy")


# -- tests -----------------------------------------------------------------------------------


def test_compose_file_matches_the_code():
    assert compose_problems(load_compose()) == []


def test_accepted_env_names_are_what_the_loader_reads():
    # The derivation above must agree with the loader itself, name by name.
    for name in accepted_env_names() - {"MICROCOMMERCE_CONFIG"}:
        assert settings_module._from_env({name: "1"}), name
    assert not settings_module._from_env({"BUS_URI": "x", "CART_SERVICE_URI": "x"})


@pytest.mark.parametrize("missing", ["JWT_SECRET", "INTERNAL_TOKEN", "BOOTSTRAP_ADMIN_PASSWORD"])
def test_compose_refuses_to_start_without_a_secret(missing):
    env = {k: v for k, v in OPERATOR_ENV.items() if k != missing}
    problems = compose_problems(load_compose(), env)
    assert any("refuses to start" in p and missing in p for p in problems), problems


def _env(doc: dict[str, Any], service: str) -> dict[str, Any]:
    # A merged or aliased environment is shared between services: give this one its own copy.
    doc["services"][service]["environment"] = dict(doc["services"][service].get("environment") or {})
    return doc["services"][service]["environment"]


def _set(service: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        doc["services"][service][key] = value
    return mutate


def _set_env(service: str, key: str, value: str | None) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        env = _env(doc, service)
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return mutate


def _drop(service: str, key: str | None = None) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        if key is None:
            del doc["services"][service]
        else:
            doc["services"][service].pop(key, None)
    return mutate


def _depends(service: str, dep: str, condition: str) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        depends = dict(doc["services"][service]["depends_on"])
        depends[dep] = {"condition": condition}
        doc["services"][service]["depends_on"] = depends
    return mutate


BREAKAGES = {
    "wrong port": (_set("cart", "command", ["microcommerce", "serve", "--service", "cart", "--port", "3012",
                                            "--host", "0.0.0.0"]), "cart: serves on --port 3012"),
    "wrong service": (_set("order", "command", ["microcommerce", "serve", "--service", "cart", "--port", "3003",
                                                "--host", "0.0.0.0"]), "order: must run"),
    "loopback host": (_set("search", "command", ["microcommerce", "serve", "--service", "search", "--port",
                                                 "3006"]), "search: must listen on --host 0.0.0.0"),
    "unknown flag": (_set("audit", "command", ["microcommerce", "serve", "--service", "audit", "--prot", "3009"]),
                     "audit: the CLI refuses"),
    "wrong service url": (_set_env("gateway", "ORDER_SERVICE_URL", "http://order:3999"),
                          "gateway: reaches order at http://order:3999"),
    "missing service url": (_set_env("cart", "PRODUCT_SERVICE_URL", None), "cart: reaches product at"),
    "misspelt setting": (_set_env("inventory", "BUS_URI", "kafka://kafka:9092"),
                         "inventory: the settings loader ignores BUS_URI"),
    "bad setting value": (_set_env("payment", "WORKERS", "many"), "payment: settings refuse"),
    "bus not the broker": (_set_env("user", "BUS_URL", "kafka://broker:9092"), "user: BUS_URL=kafka://broker"),
    "dev profile": (_set_env("notification", "PROFILE", "dev"), "notification: PROFILE=dev"),
    "secret with a default": (_set_env("product", "JWT_SECRET", "${JWT_SECRET:-a-default-secret-value}"),
                              "product: JWT_SECRET must be required"),
    "other database": (_set_env("order", "DATABASE_URL", "mysql://root@mysql:3306/shop_{service}"),
                       "order: DATABASE_URL"),
    "no healthcheck": (_drop("search", "healthcheck"), "search: healthcheck must hit /health"),
    "healthcheck wrong port": (_set("audit", "healthcheck", {"test": ["CMD", "python", "-c",
                               "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/health')"]}),
                               "audit: healthcheck"),
    "migrate only started": (_depends("cart", "migrate", "service_started"), "cart: must depend on migrate"),
    "kafka only started": (_depends("user", "kafka", "service_started"), "user: must depend on kafka"),
    "gateway too early": (_depends("gateway", "payment", "service_started"), "gateway: must start after payment"),
    "published port": (_set("cart", "ports", ["3002:3002"]), "cart: publishes a port"),
    "missing container": (_drop("audit"), "audit: no container"),
    "no broker": (_drop("kafka"), "kafka: no such container"),
    "kafka without KRaft": (_set_env("kafka", "KAFKA_PROCESS_ROLES", "broker"), "KAFKA_PROCESS_ROLES"),
    "migrate elsewhere": (_set("migrate", "command", ["microcommerce", "migrate", "--service", "all", "--db",
                                                      "mysql://root@mysql:3306/other_{service}"]), "DATABASE_URL"),
    "version key": (lambda doc: doc.__setitem__("version", "3.9"), "version"),
    "other image": (_set("inventory", "build", {"context": ".", "dockerfile": "Dockerfile.other"}),
                    "inventory: must be built from docker/Dockerfile"),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_a_broken_compose_file_is_caught(breakage):
    mutate, expected = BREAKAGES[breakage]
    doc = copy.deepcopy(load_compose())
    mutate(doc)
    problems = compose_problems(doc)
    assert any(expected in p for p in problems), problems

"""`microcommerce dev | serve | migrate | create-admin | dlq`: one clear line for any bad flag or config."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import signal
import sys
from collections.abc import Sequence
from typing import Any

from microcommerce import dlq_cli
from microcommerce.actors.requests import RequestIdFilter
from microcommerce.chaos.cli import add_chaos_command, cmd_chaos
from microcommerce.config import SERVICE_NAMES, ConfigError, Settings, load_settings
from microcommerce.dlq_cli import add_dlq_commands
from microcommerce.errors import ServiceError
from microcommerce.storage import StorageError

log = logging.getLogger("microcommerce")


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        self.exit(2, f"microcommerce: error: {message} (see --help)\n")


def shown_url(url: str) -> str:
    """A database URL fit for a terminal or a log: the password is masked."""
    return re.sub(r"//([^:@/]*):[^@/]*@", r"//\1:***@", url)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML settings file (flags > env > file > defaults)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])


def _storage_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", metavar="DIR", help="SQLite files go here (default ./var)")
    parser.add_argument("--db", metavar="URL", dest="database_url",
                        help="database URL, e.g. mysql://root@127.0.0.1:3306/mc_{service}")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="microcommerce", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    dev = sub.add_parser("dev", help="all services in one process on ports 3000-3009")
    _common(dev)
    _storage_flags(dev)
    dev.add_argument("--ephemeral", action="store_true", default=None, help="keep everything in memory")
    dev.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    dev.add_argument("--demo-catalog", action="store_true", default=None, help="seed a small catalog")
    dev.add_argument("--no-access-log", dest="access_log", action="store_false", default=None)
    dev.add_argument("--services", help="comma-separated subset (default: all implemented)")

    serve = sub.add_parser("serve", help="run chosen services (per-service deployment)")
    _common(serve)
    _storage_flags(serve)
    serve.add_argument("--service", required=True, help="service name(s), comma-separated")
    serve.add_argument("--port", type=int, help="port (only with a single service)")
    serve.add_argument("--host")
    serve.add_argument("--bus", dest="bus_url", help="local (default) or kafka://host:port[,host:port]")
    serve.add_argument("--no-access-log", dest="access_log", action="store_false", default=None)

    migrate = sub.add_parser("migrate", help="apply database migrations and exit")
    _common(migrate)
    _storage_flags(migrate)
    migrate.add_argument("--service", default="all", help="service name(s) or 'all'")

    admin = sub.add_parser("create-admin", help="create (or promote) an admin in the user database")
    _common(admin)
    _storage_flags(admin)
    admin.add_argument("--email", required=True)
    admin.add_argument("--password", required=True)
    admin.add_argument("--name", default="Admin")

    add_dlq_commands(sub, _common, _storage_flags)
    add_chaos_command(sub)
    return parser


def _services_arg(value: str | None, default: list[str]) -> list[str]:
    if not value or value == "all":
        return default
    names = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [n for n in names if n not in SERVICE_NAMES]
    if unknown:
        raise ConfigError(f"--service: unknown service(s) {', '.join(unknown)}; known: {', '.join(SERVICE_NAMES)}")
    return names


def _flags(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    return {n: getattr(args, n, None) for n in names}


def _configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())  # one request can be followed through every process's log
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler])
    logging.getLogger("pykka").setLevel(logging.WARNING)


async def _run_until_stopped(node: Any, banner: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await node.start()
    print(banner(node), flush=True)
    await stop.wait()
    print("shutting down: draining mailboxes, closing pools...", flush=True)
    await node.stop()
    print("stopped", flush=True)


def cmd_dev(args: argparse.Namespace) -> None:
    from microcommerce.node import Node
    from microcommerce.services import implemented_services

    settings = load_settings(_flags(args, "data_dir", "database_url", "ephemeral", "host", "demo_catalog",
                                    "access_log", "log_level"), config_file=args.config)
    _configure_logging(settings)
    services = _services_arg(args.services, implemented_services())
    node = Node(settings, services)

    asyncio.run(_run_until_stopped(node, _dev_banner))


def _dev_banner(node: Any) -> str:
    settings = node.settings
    lines = ["", "MicroCommerce is up (all-in-one dev mode)",
             f"  storage: {'in memory' if settings.ephemeral else shown_url(settings.database_url) or settings.data_dir}"]
    for name in node.service_names:
        lines.append(f"  {name:<13} {settings.url_of(name)}")
    admin = node.ready_results.get("user")
    if admin:
        # Only a password generated for a new account is worth printing; an existing one is kept.
        if not admin["created"]:
            secret = "(existing account: password unchanged)"
        elif admin["generated"]:
            secret = admin["password"]
        else:
            secret = "(from BOOTSTRAP_ADMIN_PASSWORD)"
        lines.append(f"  bootstrap admin: {admin['email']}  password: {secret}")
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)


def cmd_serve(args: argparse.Namespace) -> None:
    from microcommerce.node import Node, open_requester
    from microcommerce.services import implemented_services

    services = _services_arg(args.service, [])
    flags = _flags(args, "data_dir", "database_url", "host", "bus_url", "access_log", "log_level")
    if args.port is not None:
        if len(services) != 1:
            raise ConfigError("--port: only with a single --service")
        flags["ports"] = {services[0]: args.port}
    settings = load_settings(flags, config_file=args.config)
    peers_remote = not set(implemented_services()) <= set(services)
    if peers_remote and settings.generated_secrets:
        raise ConfigError(f"{' and '.join(settings.generated_secrets)}: required when other services run in "
                          "other processes (every process must share them)")
    _configure_logging(settings)
    if peers_remote and settings.bus_url == "local":
        log.warning("BUS_URL=local: events stay inside this process; use kafka://… to reach services "
                    "in other processes")
    node = Node(settings, services, requester=open_requester(settings, services))
    asyncio.run(_run_until_stopped(node, _serve_banner))


def _serve_banner(node: Any) -> str:
    settings = node.settings
    where = ", ".join(f"{name} on {settings.host}:{settings.port_of(name)}" for name in node.service_names)
    return f"serving {where}; bus {shown_url(settings.bus_url)}; storage {shown_url(settings.database_url_of('{service}'))}"


def cmd_migrate(args: argparse.Namespace) -> None:
    from microcommerce.actors.bus import LocalBus
    from microcommerce.actors.system import ActorSystem
    from microcommerce.services import implemented_services, load_spec

    settings = load_settings(_flags(args, "data_dir", "database_url", "log_level"), config_file=args.config)
    _configure_logging(settings)

    async def main() -> None:
        for name in _services_arg(args.service, implemented_services()):
            spec = load_spec(name)
            if spec.logic is None:
                continue
            system = ActorSystem(name, settings, LocalBus(), spec.logic, spec.schema_dir)
            print(f"{name}: migrating {shown_url(system.database_url)} ...", flush=True)
            applied = await system.migrate()
            print(f"{name}: {'applied ' + ', '.join(applied) if applied else 'up to date'}", flush=True)

    asyncio.run(main())


def cmd_create_admin(args: argparse.Namespace) -> None:
    from microcommerce.services.user.admin import create_admin

    settings = load_settings(_flags(args, "data_dir", "database_url", "log_level"), config_file=args.config)
    _configure_logging(settings)
    created = asyncio.run(create_admin(settings, args.email, args.password, args.name))
    print(f"admin {args.email} {'created' if created else 'promoted/already admin'}")


def cmd_dlq(args: argparse.Namespace) -> None:
    from microcommerce.services import implemented_services, load_spec

    settings = load_settings(_flags(args, "data_dir", "database_url", "log_level"), config_file=args.config)
    _configure_logging(settings)
    services = [name for name in _services_arg(args.service, implemented_services())
                if load_spec(name).logic is not None]
    dlq_cli.run(settings, services, args)


COMMANDS = {"dev": cmd_dev, "serve": cmd_serve, "migrate": cmd_migrate, "create-admin": cmd_create_admin,
            "dlq": cmd_dlq, "chaos": cmd_chaos}


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except ConfigError as exc:
        sys.exit(f"microcommerce: config error: {exc}")
    except (StorageError, ValueError, ServiceError) as exc:
        sys.exit(f"microcommerce: {exc}")
    except OSError as exc:
        sys.exit(f"microcommerce: {exc.strerror or exc} (is another instance using these ports?)")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()

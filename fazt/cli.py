"""The ``fazt`` command: ``serve``, ``check`` and ``token``.

Flags override the config file, which overrides the defaults. Every refusal
(bad config, missing plugin, unusable flags) is one ``fazt: error: ...`` line
on stderr and exit status 2; ``fazt check`` exits 1 when a manifest is bad.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tornado.netutil

from fazt.config import ConfigError, KernelConfig
from fazt.kernel.kernel import Kernel, check_secret_length, load_plugin
from fazt.kernel.manifest import ManifestValidator, build_schema
from fazt.kernel.registry import AppStoreError, scan_apps
from fazt.kernel.tokens import TokenError, TokenService, load_secret

log = logging.getLogger("fazt")
DEFAULT_CONFIG = "fazt.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fazt", description="fazt: host small JS apps.")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve every app under APPS_DIR")
    serve.add_argument("apps_dir", nargs="?", default="apps", metavar="APPS_DIR")
    serve.add_argument("--port", type=int, help="TCP port (default 8080; 0 = any free port)")
    serve.add_argument("--address", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--domain", help="apps answer at <slug>.<domain> (default localhost)")
    serve.add_argument("--data", help="data folder: app uuids, jwt secret (default ./.fazt)")
    serve.add_argument("--config", help=f"JSON config file (default ./{DEFAULT_CONFIG} if present)")
    serve.add_argument(
        "--jwt-secret", help="HS256 secret (else $FAZT_JWT_SECRET or data/jwt-secret)"
    )
    serve.add_argument("--redis", help="Redis URL for the realtime backplane (redis://...)")
    serve.add_argument("--workers", type=int, help="processes sharing the port (needs --redis)")

    check = commands.add_parser("check", help="validate every app.json under APPS_DIR")
    check.add_argument("apps_dir", metavar="APPS_DIR")
    check.add_argument("--config", help="JSON config file (decides which plugins extend app.json)")
    check.add_argument(
        "--data", help="data folder whose apps.json uuids are checked (never written)"
    )

    token = commands.add_parser("token", help="mint a development token")
    token.add_argument("--sub", required=True, help="user id (the 'sub' claim)")
    token.add_argument("--name", help="display name")
    token.add_argument("--role", action="append", help="role (repeatable)")
    token.add_argument("--app", help="bind the token to this app (slug or uuid)")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.add_argument("--data", help="data folder holding the jwt secret (default ./.fazt)")
    token.add_argument(
        "--jwt-secret", help="HS256 secret (else $FAZT_JWT_SECRET or data/jwt-secret)"
    )
    token.add_argument("--config", help="JSON config file (for jwt.secret and data)")
    return parser


def load_config(path: str | None) -> KernelConfig:
    """The config file named by ``--config``, else ``./fazt.json`` when present, else {}."""
    if path is not None:
        return KernelConfig.from_file(Path(path))
    if Path(DEFAULT_CONFIG).is_file():
        return KernelConfig.from_file(Path(DEFAULT_CONFIG))
    return KernelConfig({}, source="defaults")


def serve_config(args: argparse.Namespace) -> KernelConfig:
    """Config file plus the flags given on the command line."""
    overrides: dict[str, Any] = {
        "port": args.port,
        "address": args.address,
        "domain": args.domain,
        "data": args.data,
        "redis": args.redis,
        "workers": args.workers,
    }
    if args.jwt_secret:
        overrides["jwt"] = {"secret": args.jwt_secret}
    return load_config(args.config).with_overrides(overrides)


class _EarlySignal:
    """Remembers SIGINT/SIGTERM that arrive before the IOLoop handles signals.

    Without it a signal during start-up (plugins loading, a worker just forked)
    would kill the process with the default action, skipping the stop hooks.
    """

    received = False

    @classmethod
    def install(cls) -> None:
        cls.received = False
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, cls._handle)

    @classmethod
    def _handle(cls, signum: int, _frame: object) -> None:
        cls.received = True


async def _serve_until_signal(
    apps_dir: Path, config: KernelConfig, sockets: list[socket.socket] | None
) -> None:
    kernel = Kernel(apps_dir, data_dir=config.data, domain=config.domain, config=config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if _EarlySignal.received:
        stop.set()
    try:
        try:
            await kernel.start(port=config.port, address=config.address, sockets=sockets)
        except OSError as error:
            raise ConfigError(
                f"cannot listen on {config.address}:{config.port}: {error.strerror or error}"
            ) from error
        await stop.wait()
        log.info("signal received: stopping")
    finally:
        await kernel.stop()


def _run_workers(apps_dir: Path, config: KernelConfig) -> int:
    """Fork ``workers`` processes sharing one listening socket; forward signals to them."""
    if not config.redis_url:
        raise ConfigError(
            f'--workers {config.workers} needs a Redis URL (--redis or "redis" in the config), '
            "so that the workers share realtime state"
        )
    # Assign uuids once, before forking, so every worker reads the same apps.json.
    plugins = [load_plugin(name) for name in config.plugins]
    scan_apps(apps_dir, config.data, ManifestValidator(build_schema(plugins)))
    load_secret(config.jwt.get("secret"), config.data)
    try:
        sockets = tornado.netutil.bind_sockets(config.port, config.address)
    except OSError as error:
        raise ConfigError(
            f"cannot listen on {config.address}:{config.port}: {error.strerror or error}"
        ) from error
    children: set[int] = set()

    def forward(signum: int, _frame: object) -> None:
        for child in list(children):
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                children.discard(child)

    # Installed before forking: a signal arriving mid-fork is still forwarded.
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    for _ in range(config.workers):
        # Blocked across fork, so neither side sees a signal before its handler is set.
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
        pid = os.fork()
        if pid == 0:
            _EarlySignal.install()
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
            code = 0
            try:
                asyncio.run(_serve_until_signal(apps_dir, config, sockets))
            except ConfigError as error:
                print(f"fazt: error: worker {os.getpid()}: {error}", file=sys.stderr)
                code = 2
            except BaseException:
                log.exception("worker %d failed", os.getpid())
                code = 1
            os._exit(code)
        children.add(pid)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
    for sock in sockets:
        sock.close()
    log.info("fazt: %d workers started: %s", config.workers, sorted(children))
    status = 0
    while children:
        try:
            pid, raw = os.wait()
        except ChildProcessError:
            break
        children.discard(pid)
        code = os.waitstatus_to_exitcode(raw)
        if code != 0:
            log.error("worker %d exited with %d", pid, code)
            status = 1
    return status


def cmd_serve(args: argparse.Namespace) -> int:
    config = serve_config(args)
    apps_dir = Path(args.apps_dir)
    if not apps_dir.is_dir():
        raise ConfigError(f"apps folder {apps_dir} does not exist")
    if config.workers > 1:
        return _run_workers(apps_dir, config)
    _EarlySignal.install()
    # Build plugins and the kernel inside the loop they will run on.
    asyncio.run(_serve_until_signal(apps_dir, config, None))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    plugins = [load_plugin(name) for name in config.plugins]
    config.validate_plugins(plugins)
    validator = ManifestValidator(build_schema(plugins))
    with tempfile.TemporaryDirectory(prefix="fazt-check-") as scratch:
        # Checking never writes uuids: --data is only read, and by default there is none.
        data_dir = Path(args.data) if args.data else Path(scratch)
        result = scan_apps(Path(args.apps_dir), data_dir, validator, remember=False)
    for error in result.errors:
        print(f"{error.file}: {error.json_path}: {error.reason}")
    slugs = ", ".join(app.slug for app in result.apps) or "none"
    print(f"{len(result.apps)} app(s) ok ({slugs}); {len(result.errors)} error(s)")
    return 1 if result.errors else 0


def cmd_token(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    data_dir = Path(args.data) if args.data else config.data
    secret = load_secret(args.jwt_secret or config.jwt.get("secret"), data_dir)
    check_secret_length(secret)
    roles: list[str] | None = args.role
    role: str | list[str] | None = roles[0] if roles and len(roles) == 1 else roles
    if args.ttl < 1:
        raise ConfigError("--ttl must be a positive number of seconds")
    try:
        token = TokenService(secret).issue(
            args.sub, name=args.name, role=role, app=args.app, ttl_seconds=args.ttl
        )
    except TokenError as error:
        raise ConfigError(str(error)) from error
    print(token)
    return 0


COMMANDS = {"serve": cmd_serve, "check": cmd_check, "token": cmd_token}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # One line per request is too chatty for the default level.
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, AppStoreError) as error:
        print(f"fazt: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        # The environment (permissions, disk, ports) refused: one line, no traceback.
        log.debug("fazt failed", exc_info=True)
        print(f"fazt: error: {error}", file=sys.stderr)
        return 2

"""The ``fazt`` command: ``serve``, ``check``, ``new`` and ``token``.

Flags override the config file, which overrides the defaults. Every refusal
(bad config, missing plugin, unusable flags, a busy port, an existing folder)
is one ``fazt: error: ...`` line on stderr and exit status 2, and says what to
do instead; ``fazt check`` exits 1 when a manifest is bad, or an app's code
lacks what its manifest names (a hook it does not export).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fazt import __version__
from fazt.config import ConfigError, KernelConfig
from fazt.edge.fd_limits import fit_config_to_fd_limit
from fazt.edge.redaction import install_log_redaction
from fazt.edge.server import bind_listeners
from fazt.kernel.app import App
from fazt.kernel.engine_factory import create_engine
from fazt.kernel.kernel import Kernel, check_secret_length, load_plugin
from fazt.kernel.manifest import (
    MANIFEST_NAME,
    ManifestProblem,
    ManifestValidator,
    app_errors,
    build_schema,
    manifest_warnings,
)
from fazt.kernel.plugin import Plugin
from fazt.kernel.registry import AppStoreError, scan_apps
from fazt.kernel.scaffold import ScaffoldError, create_app
from fazt.kernel.tokens import (
    SECRET_ENV_VAR,
    SECRET_FILE_NAME,
    TokenError,
    TokenService,
    load_secret,
)
from fazt.realtime.limits import Limits
from fazt.supervisor import WorkerSupervisor

log = logging.getLogger("fazt")
DEFAULT_CONFIG = "fazt.json"
DEFAULT_APPS_DIR = "apps"
#: This repository's example apps, suggested when APPS_DIR is missing and they are here.
EXAMPLES_DIR = "examples"

SERVE_DESCRIPTION = """\
Serve every app under APPS_DIR. APPS_DIR is a folder whose sub-folders are
the apps: each one holds an app.json, static files and api/*.js handlers.
It defaults to ./apps; in the fazt repository, examples/ holds two apps
(fazt serve examples). Create a new app with: fazt new hello APPS_DIR.

Each app answers at http://<slug>.localhost:PORT/ and at
http://127.0.0.1:PORT/_app/<slug>/; http://127.0.0.1:PORT/ lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fazt", description="fazt: host small JS apps.")
    parser.add_argument("--version", action="version", version=f"fazt {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve every app under APPS_DIR (default ./apps)",
        description=SERVE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "apps_dir",
        nargs="?",
        default=DEFAULT_APPS_DIR,
        metavar="APPS_DIR",
        help=f"folder of app folders (default: ./{DEFAULT_APPS_DIR})",
    )
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

    check = commands.add_parser(
        "check", help="validate every app.json under APPS_DIR; list every problem"
    )
    check.add_argument(
        "apps_dir",
        nargs="?",
        default=DEFAULT_APPS_DIR,
        metavar="APPS_DIR",
        help=f"folder of app folders (default: ./{DEFAULT_APPS_DIR})",
    )
    check.add_argument("--config", help="JSON config file (decides which plugins extend app.json)")
    check.add_argument(
        "--data", help="data folder whose apps.json uuids are checked (never written)"
    )

    new = commands.add_parser(
        "new",
        help="create a small working app in APPS_DIR/SLUG",
        description="Create APPS_DIR/SLUG with app.json, index.html, api/hello.js and a "
        "README. An existing folder is never overwritten.",
    )
    new.add_argument("slug", metavar="SLUG", help="the app's name: lower-case letters, digits, -")
    new.add_argument(
        "apps_dir",
        nargs="?",
        default=DEFAULT_APPS_DIR,
        metavar="APPS_DIR",
        help=f"folder of app folders (default: ./{DEFAULT_APPS_DIR})",
    )

    token = commands.add_parser(
        "token",
        help="mint a development token",
        description="Print a token signed with the secret `fazt serve` uses: --jwt-secret, "
        f"${SECRET_ENV_VAR}, or the {SECRET_FILE_NAME} file in its data folder (--data). "
        "It never creates a secret.",
    )
    token.add_argument("--sub", required=True, help="user id (the 'sub' claim)")
    token.add_argument("--name", help="display name")
    token.add_argument("--role", action="append", help="role (repeatable)")
    token.add_argument("--app", help="bind the token to this app (slug or uuid)")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.add_argument("--data", help="data folder of `fazt serve` (default ./.fazt)")
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


def _missing_apps_dir(apps_dir: Path) -> ConfigError:
    """The refusal for an APPS_DIR that does not exist, with what to run instead."""
    hint = f"create an app in it with `fazt new hello {apps_dir}`"
    examples = Path(EXAMPLES_DIR)
    if examples.resolve() != apps_dir.resolve() and any(examples.glob(f"*/{MANIFEST_NAME}")):
        hint = f"serve this repository's examples with `fazt serve {EXAMPLES_DIR}`, or {hint}"
    return ConfigError(f"apps folder {str(apps_dir)!r} does not exist: {hint}")


def bind(config: KernelConfig) -> list[socket.socket]:
    """The listening sockets, bound before anything starts so a busy port is a clean refusal."""
    try:
        return bind_listeners(config.port, config.address)
    except OSError as error:
        where = f"cannot listen on {config.address}:{config.port}"
        if error.errno == errno.EADDRINUSE:
            other = config.port + 1 if 0 < config.port < 65535 else 8081
            raise ConfigError(
                f"{where}: port {config.port} is already in use (another fazt serve?); "
                f"choose another port with --port {other} (scripts/demo: PORT={other} scripts/demo)"
            ) from error
        raise ConfigError(f"{where}: {error.strerror or error}") from error


def app_urls(apps: list[App], config: KernelConfig, port: int) -> list[str]:
    """One line per app with its URL in both routing styles, then the index page."""
    address = config.address
    if address in ("", "0.0.0.0", "::"):
        address = "127.0.0.1"  # bound to every interface: this one always works
    elif ":" in address:
        address = f"[{address}]"
    kernel = f"http://{address}:{port}"
    width = max((len(app.slug) for app in apps), default=0)
    lines = [
        f"{app.slug:<{width}} → http://{app.slug}.{config.domain}:{port}/ and "
        f"{kernel}/_app/{app.slug}/"
        for app in apps
    ]
    lines.append(f"every app is listed at {kernel}/")
    return lines


async def _serve_until_signal(
    apps_dir: Path, config: KernelConfig, sockets: list[socket.socket], *, announce: bool = True
) -> None:
    try:
        await _serve(apps_dir, config, sockets, announce=announce)
    finally:
        # The kernel's server closes the sockets it took; these are the ones it never
        # took (it failed before listening). Closing a closed socket does nothing.
        for sock in sockets:
            sock.close()


async def _serve(
    apps_dir: Path, config: KernelConfig, sockets: list[socket.socket], *, announce: bool
) -> None:
    kernel = Kernel(apps_dir, data_dir=config.data, domain=config.domain, config=config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if _EarlySignal.received:
        stop.set()
    try:
        port = await kernel.start(port=config.port, address=config.address, sockets=sockets)
        if announce:
            if not len(kernel.apps) and not kernel.manifest_errors:
                log.warning(
                    "no apps in %s: create one with `fazt new hello %s`", apps_dir, apps_dir
                )
            for line in app_urls(kernel.apps.all(), config, port):
                log.info("%s", line)
        await stop.wait()
        log.info("signal received: stopping")
    finally:
        await kernel.stop()


def _run_workers(apps_dir: Path, config: KernelConfig) -> int:
    """Fork ``workers`` processes sharing one listening socket, supervised (``fazt.supervisor``)."""
    if not config.redis_url:
        raise ConfigError(
            f'--workers {config.workers} needs a Redis URL (--redis or "redis" in the config), '
            "so that the workers share realtime state"
        )
    # Assign uuids once, before forking, so every worker reads the same apps.json.
    plugins = [load_plugin(name) for name in config.plugins]
    scanned = scan_apps(apps_dir, config.data, ManifestValidator(build_schema(plugins)))
    load_secret(config.jwt.get("secret"), config.data)
    sockets = bind(config)
    port = int(sockets[0].getsockname()[1])

    def announce(_workers: list[int]) -> None:
        for line in app_urls(scanned.apps, config, port):
            log.info("%s", line)

    try:
        # Exit status 2 is a config the worker refuses: restarting cannot fix it.
        return WorkerSupervisor(
            config.workers,
            lambda: _run_worker(apps_dir, config, sockets),
            final_exit_codes={2},
            on_started=announce,
        ).run()
    finally:
        for sock in sockets:
            sock.close()


def _run_worker(apps_dir: Path, config: KernelConfig, sockets: list[socket.socket]) -> int:
    """One worker (a forked child; SIGINT/SIGTERM arrive blocked): serve until a signal."""
    _EarlySignal.install()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        asyncio.run(_serve_until_signal(apps_dir, config, sockets, announce=False))
    except ConfigError as error:
        print(f"fazt: error: worker {os.getpid()}: {error}", file=sys.stderr)
        return 2
    except BaseException:
        log.exception("worker %d failed", os.getpid())
        return 1
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    config = fit_config_to_fd_limit(
        serve_config(args), default_max_realtime=Limits().maxConnectionsTotal
    )
    apps_dir = Path(args.apps_dir)
    if not apps_dir.is_dir():
        raise _missing_apps_dir(apps_dir)
    if config.workers > 1:
        return _run_workers(apps_dir, config)
    sockets = bind(config)
    _EarlySignal.install()
    # Build plugins and the kernel inside the loop they will run on.
    asyncio.run(_serve_until_signal(apps_dir, config, sockets))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    plugins = [load_plugin(name) for name in config.plugins]
    config.validate_plugins(plugins)
    validator = ManifestValidator(build_schema(plugins))
    apps_dir = Path(args.apps_dir)
    if not apps_dir.is_dir():
        raise _missing_apps_dir(apps_dir)
    with tempfile.TemporaryDirectory(prefix="fazt-check-") as scratch:
        # Checking never writes uuids: --data is only read, and by default there is none.
        data_dir = Path(args.data) if args.data else Path(scratch)
        result = scan_apps(apps_dir, data_dir, validator, remember=False)
    errors = 0
    for error in result.errors:
        for problem in error.problems:
            print(f"{error.file}: {problem.json_path}: {problem.reason}")
            errors += 1
    flawed = asyncio.run(_app_errors(result.apps, plugins, config))
    warnings = 0
    for app in result.apps:
        manifest = apps_dir / app.root.name / MANIFEST_NAME  # as the errors name it
        for problem in flawed.get(app.uuid, []):
            print(f"{manifest}: {problem.json_path}: {problem.reason}")
            errors += 1
        for problem in manifest_warnings(app.manifest, plugins):
            print(f"{manifest}: {problem.json_path}: warning: {problem.reason}")
            warnings += 1
    ok = [app.slug for app in result.apps if app.uuid not in flawed]
    summary = f"{len(ok)} app(s) ok ({', '.join(ok) or 'none'}); {errors} error(s)"
    if result.errors:
        summary += f" in {len(result.errors)} app(s) not served"
    if flawed:
        broken = ", ".join(app.slug for app in result.apps if app.uuid in flawed)
        summary += f"; {len(flawed)} app(s) served with errors ({broken})"
    print(f"{summary}; {warnings} warning(s)")
    return 1 if result.errors or flawed else 0


async def _app_errors(
    apps: list[App], plugins: list[Plugin], config: KernelConfig
) -> dict[str, list[ManifestProblem]]:
    """The plugins' errors of each app (by uuid), with a JS engine to load the apps' code."""
    engine = create_engine(config)
    try:
        found = {app.uuid: await app_errors(app, engine, plugins) for app in apps}
    finally:
        engine.close()
    return {uuid: problems for uuid, problems in found.items() if problems}


def cmd_new(args: argparse.Namespace) -> int:
    apps_dir = Path(args.apps_dir)
    try:
        folder = create_app(apps_dir, args.slug)
    except ScaffoldError as error:
        raise ConfigError(str(error)) from error
    print(f"created {folder}/ with app.json, index.html, api/hello.js and README.md")
    print(f"serve it:  fazt serve {apps_dir}")
    print(
        f"open:      http://{args.slug}.localhost:8080/  or  http://127.0.0.1:8080/_app/{args.slug}/"
    )
    return 0


def _token_secret(args: argparse.Namespace, config: KernelConfig) -> bytes:
    """The secret `fazt serve` signs with; never a new one (a new one would match no server)."""
    explicit = args.jwt_secret or config.jwt.get("secret")
    data_dir = Path(args.data) if args.data else config.data
    stored = data_dir / SECRET_FILE_NAME
    if not explicit and not os.environ.get(SECRET_ENV_VAR) and not stored.is_file():
        raise ConfigError(
            f"no JWT secret: {stored} does not exist; pass --jwt-secret "
            f"S, set {SECRET_ENV_VAR}, or --data DIR with the data folder of `fazt serve`"
        )
    return load_secret(explicit, data_dir)


def cmd_token(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    secret = _token_secret(args, config)
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


COMMANDS = {"serve": cmd_serve, "check": cmd_check, "new": cmd_new, "token": cmd_token}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    install_log_redaction()
    level = getattr(logging, str(args.log_level).upper(), logging.INFO)
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # One line per request is too chatty for the default level; DEBUG shows them.
    if not isinstance(level, int) or level > logging.DEBUG:
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

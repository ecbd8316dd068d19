"""``fazt admin``: the admin API from the command line.

Where to talk to: ``--url`` and ``--token``, else ``$FAZT_ADMIN_URL`` and
``$FAZT_ADMIN_TOKEN``, else the local ``fazt serve``: ``127.0.0.1`` (or the
configured ``admin.address``) on the configured ``admin.port``, with
``admin.token`` or the data folder's ``admin-token`` file. ``--url``,
``--token`` and ``--json`` may come before or after the subcommand.

Commands print aligned tables, or the API's JSON with ``--json``. Every
failure is one ``fazt: error: ...`` line and exit status 1 (2 for a command
line argparse refuses).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any, Final

URL_ENV: Final = "FAZT_ADMIN_URL"
TOKEN_ENV: Final = "FAZT_ADMIN_TOKEN"
TIMEOUT_SECONDS: Final = 10.0


class AdminCliError(Exception):
    """A failure of ``fazt admin``; ``str()`` is the one line to print."""


def add_admin_parser(commands: Any) -> None:
    """Add ``fazt admin`` and its subcommands to the ``fazt`` parser's subcommands."""
    admin = commands.add_parser(
        "admin",
        help="talk to a running fazt's admin API (status, channels, kick, broadcast)",
        description="Talk to the admin API of a running `fazt serve --admin-port P`. "
        f"Defaults: --url from ${URL_ENV} or http://127.0.0.1:<admin.port>; --token from "
        f"${TOKEN_ENV}, admin.token, or the data folder's admin-token file.",
    )
    _connection_options(admin, top=True)
    admin.add_argument("--config", help="JSON config file (for admin.port, admin.token, data)")
    admin.add_argument("--data", help="data folder of `fazt serve` (default ./.fazt)")
    sub = admin.add_subparsers(dest="admin_command", required=True, metavar="COMMAND")

    status = sub.add_parser("status", help="one row per app: connections and channels")
    _connection_options(status)

    channels = sub.add_parser("channels", help="an app's channels, busiest first")
    channels.add_argument("slug", metavar="SLUG")
    channels.add_argument("--limit", type=int, help="at most N channels")
    _connection_options(channels)

    channel = sub.add_parser("channel", help="one channel's subscribers and members")
    channel.add_argument("slug", metavar="SLUG")
    channel.add_argument("channel", metavar="CHANNEL")
    _connection_options(channel)

    kick = sub.add_parser("kick", help="close a client, or every connection of a user (4003)")
    kick.add_argument("slug", metavar="SLUG")
    target = kick.add_mutually_exclusive_group(required=True)
    target.add_argument("--client", metavar="ID", help="a clientId")
    target.add_argument("--user", metavar="ID", help="a user id (token sub): all their connections")
    kick.add_argument("--reason", help="sent to the client in the kicked message")
    _connection_options(kick)

    broadcast = sub.add_parser(
        "broadcast",
        help="send JSON to a channel, or to every connection of the app",
        description="fazt admin broadcast SLUG [CHANNEL] JSON",
    )
    broadcast.add_argument("slug", metavar="SLUG")
    broadcast.add_argument("first", metavar="CHANNEL|JSON")
    broadcast.add_argument("second", metavar="JSON", nargs="?")
    _connection_options(broadcast)


def _connection_options(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    # On the subcommands, an option not given must not overwrite the one given
    # before the subcommand: their default is "absent".
    default: Any = None if top else argparse.SUPPRESS
    parser.add_argument("--url", default=default, help=f"admin API URL (else ${URL_ENV})")
    parser.add_argument("--token", default=default, help=f"admin token (else ${TOKEN_ENV})")
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="print the API's JSON instead of a table",
    )


def run_admin(
    args: argparse.Namespace,
    *,
    default_url: str | None,
    default_token: Callable[[], str | None],
    print_line: Callable[[str], None] = print,
) -> int:
    """Run one ``fazt admin`` command; raises ``AdminCliError`` for every failure."""
    url = args.url or os.environ.get(URL_ENV) or default_url
    if not url:
        raise AdminCliError(
            f"no admin URL: pass --url, set ${URL_ENV}, or set admin.port in the config "
            "(fazt serve --admin-port P)"
        )
    token = args.token or os.environ.get(TOKEN_ENV) or default_token()
    if not token:
        raise AdminCliError(
            f"no admin token: pass --token, set ${TOKEN_ENV}, or run where the data folder "
            "of `fazt serve` is (its admin-token file)"
        )
    client = AdminClient(url, token)
    command = args.admin_command
    if command == "status":
        apps = client.get("/admin/apps")
        rows = [[a["slug"], a["connections"], a["channels"]] for a in apps]
        _show(args, apps, ["APP", "CONNECTIONS", "CHANNELS"], rows, print_line)
    elif command == "channels":
        query = f"?limit={args.limit}" if args.limit is not None else ""
        found = client.get(f"/admin/apps/{_segment(args.slug)}/channels{query}")
        rows = [[c["channel"], c["subscribers"], c.get("members", "")] for c in found]
        _show(args, found, ["CHANNEL", "SUBSCRIBERS", "MEMBERS"], rows, print_line)
    elif command == "channel":
        path = f"/admin/apps/{_segment(args.slug)}/channels/{_segment(args.channel)}"
        found = client.get(path)
        rows = [[s["clientId"], _user_text(s.get("user"))] for s in found["subscribers"]]
        _show(args, found, ["CLIENT", "USER"], rows, print_line)
        if not args.json and "members" in found:
            members = ", ".join(_user_text(member) for member in found["members"]) or "none"
            print_line(f"members: {members}")
    elif command == "kick":
        body: dict[str, Any] = {"clientId": args.client} if args.client else {"user": args.user}
        if args.reason:
            body["reason"] = args.reason
        result = client.post(f"/admin/apps/{_segment(args.slug)}/kick", body)
        _show(args, result, None, [[f"kicked {result['kicked']} connection(s)"]], print_line)
    elif command == "broadcast":
        channel, text = (args.first, args.second) if args.second is not None else (None, args.first)
        try:
            data = json.loads(text)
        except ValueError as error:
            raise AdminCliError(f"the message is not valid JSON: {error}") from error
        body = {"data": data} if channel is None else {"channel": channel, "data": data}
        result = client.post(f"/admin/apps/{_segment(args.slug)}/broadcast", body)
        where = f"channel {channel}" if channel else "every connection of the app"
        _show(args, result, None, [[f"sent to {where}"]], print_line)
    return 0


class AdminClient:
    """A tiny JSON client of the admin API (standard library only)."""

    def __init__(self, url: str, token: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise AdminCliError(f"bad admin URL {url!r}: use http://host:port")
        self.base = url.rstrip("/")
        self._token = token

    def get(self, path: str) -> Any:
        return self._call("GET", path, None)

    def post(self, path: str, body: object) -> Any:
        return self._call("POST", path, json.dumps(body).encode())

    def _call(self, method: str, path: str, body: bytes | None) -> Any:
        request = urllib.request.Request(self.base + path, data=body, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        if body is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise AdminCliError(_http_failure(error)) from None
        except urllib.error.URLError as error:
            raise AdminCliError(
                f"cannot reach the admin API at {self.base}: {_reason(error.reason)} "
                "(is `fazt serve --admin-port P` running there?)"
            ) from None
        except (TimeoutError, OSError) as error:
            raise AdminCliError(f"the admin API at {self.base} failed: {error}") from None
        except ValueError as error:
            raise AdminCliError(
                f"the admin API answered something that is not JSON: {error}"
            ) from None


def _http_failure(error: urllib.error.HTTPError) -> str:
    try:
        message = json.loads(error.read()).get("error")
    except (ValueError, AttributeError, OSError):
        message = None
    if error.code == 401:
        return (
            f"the admin API refused the token (401): pass --token, set ${TOKEN_ENV}, or use "
            "the data folder's admin-token file"
        )
    return f"{message or error.reason} (HTTP {error.code})"


def _reason(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "unknown host"
    return str(reason)


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _user_text(user: object) -> str:
    if not isinstance(user, dict):
        return ""
    name = user.get("name")
    return f"{user.get('id')} ({name})" if isinstance(name, str) else str(user.get("id"))


def _show(
    args: argparse.Namespace,
    value: Any,
    header: Sequence[str] | None,
    rows: list[list[Any]],
    print_line: Callable[[str], None],
) -> None:
    if args.json:
        print_line(json.dumps(value, indent=2, ensure_ascii=False))
        return
    for line in table(header, rows):
        print_line(line)


def table(header: Sequence[str] | None, rows: list[list[Any]]) -> list[str]:
    """Aligned columns: text left, numbers right; a header line when given."""
    lines = [list(header)] if header else []
    lines += [[str(cell) for cell in row] for row in rows]
    if not lines:
        return []
    numeric = [
        all(isinstance(row[i], int) for row in rows if i < len(row)) and bool(rows)
        for i in range(len(lines[0]))
    ]
    widths = [max(len(line[i]) for line in lines if i < len(line)) for i in range(len(lines[0]))]
    out = []
    for line in lines:
        cells = [
            cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ]
        out.append("  ".join(cells).rstrip())
    return out

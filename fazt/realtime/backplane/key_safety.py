"""Key safety: checks on the names every backplane puts into its keys and topics.

A backplane builds its keys and topics as ``<prefix>:app:<app_uuid>:...``, so an
app uuid must never contain the separator: an app named ``a:ch:x`` could
otherwise reach into app ``a``'s key space. Node ids travel in message
envelopes and key names, so they are held to the same rule.
"""

from __future__ import annotations

import re
import secrets

# Wide enough for uuid4 text, slugs and test names; no ':' (the key separator),
# no whitespace or control characters (they would split envelopes).
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,128}")


def check_app_uuid(app_uuid: object) -> str:
    """Return ``app_uuid`` when it is safe inside a key; raise ``ValueError`` otherwise."""
    if not isinstance(app_uuid, str) or not _NAME.fullmatch(app_uuid):
        raise ValueError(
            f"invalid app uuid {app_uuid!r}: expected 1-128 characters from [A-Za-z0-9_.-]"
        )
    return app_uuid


def check_node_id(node_id: object) -> str:
    """Return ``node_id`` when it is a valid node id; raise ``ValueError`` otherwise."""
    if not isinstance(node_id, str) or not _NAME.fullmatch(node_id):
        raise ValueError(
            f"invalid node id {node_id!r}: expected 1-128 characters from [A-Za-z0-9_.-]"
        )
    return node_id


def new_node_id() -> str:
    """A random node id: 96 bits, so two processes never pick the same one."""
    return secrets.token_hex(12)

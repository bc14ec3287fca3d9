"""The server <-> egress proxy protocol, version 1: the check of every
server message and the proxy's own messages. The spec is the docstring of
egress_proxy.py."""

import json

from egress_address import parse_networks

PROTOCOL = 1


class ProtocolError(ValueError):
    """A server message that breaks the spec; `request_id` when it names a
    connection (a decision), so that connection can be refused at once."""

    def __init__(self, message, request_id=None):
        super().__init__(message)
        self.request_id = request_id


def parse_server_message(line):
    """The server's message on `line` (bytes), checked against the spec.
    A configure comes back with "networks" (the parsed allow_private)."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError) as error:
        raise ProtocolError("unreadable line: %s" % error)
    if not isinstance(message, dict):
        raise ProtocolError("unreadable line: not a JSON object")
    kind = message.get("type")
    request_id = message.get("id") if isinstance(message.get("id"), str) else None
    try:
        if kind == "configure":
            check_configure(message)
        elif kind == "decision":
            check_decision(message)
        else:
            raise ValueError("unknown type %r" % (kind,))
    except ValueError as error:
        raise ProtocolError("invalid %s message: %s" % (kind, error), request_id)
    return message


def field(message, name, kind, optional=False):
    """message[name], checked to be a `kind` (ints: not negative, not bool);
    an optional field may be absent or null."""
    value = message.get(name)
    if value is None and optional:
        return None
    if name not in message:
        raise ValueError("%r is missing" % name)
    if kind is int:
        right = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    else:
        right = isinstance(value, kind)
    if not right:
        raise ValueError("%r is not a valid %s: %r" % (name, kind.__name__, value))
    return value


def check_configure(message):
    values = field(message, "allow_private", list)
    if not all(isinstance(value, str) for value in values):
        raise ValueError("'allow_private' must hold strings")
    message["networks"] = parse_networks(values)
    field(message, "ask_timeout_ms", int)


def check_decision(message):
    field(message, "id", str)
    field(message, "host", str, optional=True)
    field(message, "port", int, optional=True)
    if field(message, "allow", bool):
        field(message, "session", str)
        field(message, "budget_bytes", int)
        field(message, "private", bool, optional=True)
    else:
        field(message, "reason", str)
        field(message, "session", str, optional=True)


# ---------------------------------------------------------------- proxy -> server


def encode(message):
    return (json.dumps(message, ensure_ascii=False) + "\n").encode("utf-8", "replace")


def ready(listen):
    return {"type": "ready", "protocol": PROTOCOL, "listen": listen}


def ask(request_id, client, via, method, host, port):
    return {
        "type": "ask",
        "id": request_id,
        "client": client,
        "via": via,
        "method": method,
        "host": host,
        "port": port,
    }


def closed(request_id, outcome):
    """The `closed` report of a connection; `outcome` has every other field."""
    message = {"type": "closed", "id": request_id}
    for name in CLOSED_FIELDS:
        message[name] = outcome[name]
    return message


CLOSED_FIELDS = (
    "session",
    "host",
    "port",
    "address",
    "allowed",
    "reason",
    "bytes_up",
    "bytes_down",
    "duration_ms",
)

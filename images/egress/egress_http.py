"""The little HTTP the egress proxy speaks with sandbox code: reading and
checking a request head (`CONNECT host:port` or an absolute-form plain-HTTP
request), the head forwarded to the origin, and the proxy's own answers
(each with a one-line plain-text body that says why)."""

import asyncio
import re
from dataclasses import dataclass

from egress_address import canonical, parse_literal

MAX_HEAD_BYTES = 16384
VERSIONS = ("HTTP/1.0", "HTTP/1.1")
TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
# Headers that belong to one hop (RFC 9110 7.6.1), and Host, which is set
# from the request's own target so the origin sees the host that was checked.
DROPPED = {"connection", "keep-alive", "te", "upgrade", "host"}
STATUS = {
    200: "Connection established",
    400: "Bad Request",
    403: "Forbidden",
    405: "Method Not Allowed",
    408: "Request Timeout",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class BadRequest(ValueError):
    """A request the proxy refuses to read further: answered with `status`."""

    def __init__(self, reason, status=400):
        super().__init__(reason)
        self.status = status


@dataclass
class Request:
    method: str
    host: str  # lower-cased, no trailing dot; IP literals canonical, IPv6 without brackets
    port: int
    path: str  # origin-form for plain HTTP; "" for CONNECT
    version: str
    headers: list  # (name, value) pairs as received

    @property
    def target(self):
        """host:port as a client writes it (IPv6 in brackets)."""
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "%s:%d" % (host, self.port)


async def read_head(reader, max_bytes=MAX_HEAD_BYTES):
    """The request head (up to and without its empty line), or None when the
    client left before sending a whole line. Lines may end in LF or CRLF."""
    lines = []
    size = 0
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise BadRequest("request header larger than %d bytes" % max_bytes)
        except asyncio.IncompleteReadError as partial:
            if size + len(partial.partial) > max_bytes:
                raise BadRequest("request header larger than %d bytes" % max_bytes)
            return None
        size += len(line)
        if size > max_bytes:
            raise BadRequest("request header larger than %d bytes" % max_bytes)
        line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        if not line:
            if not lines:
                continue  # a stray empty line before the request line
            return lines
        lines.append(line)


def parse_head(lines):
    """The Request in `lines` (bytes, without line ends), checked."""
    text = [line.decode("latin-1") for line in lines]
    # tabs may separate a header's value, never the request line's parts
    if CONTROL.search(text[0]) or any(CONTROL.search(line.replace("\t", "")) for line in text[1:]):
        raise BadRequest("control character in the request header")
    parts = text[0].split(" ")
    if len(parts) != 3:
        raise BadRequest("the request line is not METHOD TARGET VERSION")
    method, target, version = parts
    if not TOKEN.match(method):
        raise BadRequest("the method is not a token")
    if version not in VERSIONS:
        raise BadRequest("unsupported protocol version %r" % version[:20])
    headers = [parse_header(line) for line in text[1:]]
    if method == "CONNECT":
        host, port = parse_authority(target, None)
        return Request(method, host, port, "", version, headers)
    if method == "TRACE":
        raise BadRequest("TRACE is not forwarded", 405)
    lowered = target[:8].lower()
    if lowered.startswith("https://"):
        raise BadRequest("https:// targets go through CONNECT")
    if not lowered.startswith("http://"):
        raise BadRequest("not a proxy request: the target must be http://host/path, or CONNECT host:port")
    rest = target[len("http://") :]
    end = min([index for index in (rest.find(c) for c in "/?#") if index >= 0], default=len(rest))
    host, port = parse_authority(rest[:end], 80)
    path = rest[end:].split("#", 1)[0]
    if not path.startswith("/"):
        path = "/" + path
    return Request(method, host, port, path, version, headers)


def parse_header(line):
    if line[:1] in (" ", "\t"):
        raise BadRequest("folded header lines are not accepted")
    name, colon, value = line.partition(":")
    if not colon or not TOKEN.match(name):
        raise BadRequest("malformed header line")
    return name, value.strip(" \t")


def parse_authority(text, default_port):
    """(host, port) of `host:port`, `[v6]:port` or, with a default port,
    `host`. Host names are lower-cased, without one trailing dot, and must
    be DNS-like; IP literals come back canonical (egress_address.canonical),
    IPv6 without brackets. A numeric name
    that is not a plain IP address (2130706433, 127.1, 0x7f.1) is refused,
    because the resolver would read it as an address."""
    if "@" in text:
        raise BadRequest("credentials in the target are not supported")
    if text.startswith("["):
        inside, bracket, port_text = text[1:].partition("]")
        if not bracket or (port_text and not port_text.startswith(":")):
            raise BadRequest("malformed IPv6 literal in the target")
        host = inside.lower()
        literal = parse_literal(host)
        if literal is None or literal.version != 6 or "%" in host:
            raise BadRequest("malformed IPv6 literal in the target")
        port_text = port_text[1:]
        has_port = bool(port_text)
        host = canonical(literal)
    else:
        host, has_port, port_text = text.rpartition(":") if ":" in text else (text, "", "")
        host = host.lower()
        if ":" in host:
            raise BadRequest("an IPv6 literal must be in brackets")
        check_host_name(host)
        host = host[:-1] if host.endswith(".") else host
    if not has_port or not port_text:
        if default_port is None:
            raise BadRequest("the target needs a port (host:port)")
        return host, default_port
    if not re.fullmatch(r"[0-9]{1,5}", port_text) or not 0 < int(port_text) < 65536:
        raise BadRequest("invalid port %r" % port_text[:10])
    return host, int(port_text)


def check_host_name(host):
    literal = parse_literal(host)
    if literal is not None:
        if literal.version != 4:
            raise BadRequest("an IPv6 literal must be in brackets")
        return
    if not host or len(host) > 253:
        raise BadRequest("missing or overlong host name")
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if not all(LABEL.match(label) for label in labels):
        raise BadRequest("%r is not a valid host name" % host[:80])
    if NUMERIC_LABEL.match(labels[-1]):
        raise BadRequest("%r is neither a host name nor a plain IP address" % host[:80])


def origin_head(request):
    """The head sent to the origin: origin-form request line, Host set from
    the target, hop-by-hop and Proxy-* headers dropped, `Connection: close`
    (one request per connection)."""
    listed = set()
    for name, value in request.headers:
        if name.lower() == "connection":
            listed.update(item.strip().lower() for item in value.split(","))
    host = request.target if request.port != 80 else request.target.rsplit(":", 1)[0]
    lines = ["%s %s %s" % (request.method, request.path, request.version), "Host: " + host]
    for name, value in request.headers:
        lowered = name.lower()
        if lowered in DROPPED or lowered in listed or lowered.startswith("proxy-"):
            continue
        lines.append("%s: %s" % (name, value))
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def answer(status, text=None):
    """The proxy's own response; `text` is its one-line body."""
    head = "HTTP/1.1 %d %s\r\n" % (status, STATUS[status])
    if text is None:
        return (head + "\r\n").encode("latin-1")
    body = ("multilang-sandbox egress: %s\n" % " ".join(text.split())).encode("utf-8", "replace")
    head += "Content-Type: text/plain; charset=utf-8\r\n"
    head += "Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    return head.encode("latin-1") + body

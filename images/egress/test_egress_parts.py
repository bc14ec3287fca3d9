"""Tests of the egress proxy's pure parts (standard library only): which
addresses are refused and why (and what a decision's `private` opens), how
request targets are read, the head sent to an origin, the check of the
server's messages and the open files limit. Sandbox networks are in
test_egress_networks.py. The proxy as a whole is tested in
test_egress_proxy.py."""

import io
import ipaddress
import json
import os
import subprocess
import sys
import unittest
from contextlib import redirect_stderr

import egress_address as address
import egress_protocol as protocol
from egress_address import address_class, parse_networks, refusal
from egress_http import BadRequest, Request, answer, origin_head, parse_authority
from egress_proxy import Settings, parse_arguments


def ip(text):
    return ipaddress.ip_address(text)


# The cases of the server's own tests (src/security/egress/tests/address.rs),
# so the proxy and the server class every address alike.
RUST_CLASSES = (
    ("8.8.8.8", "Global"),
    ("140.82.112.3", "Global"),
    ("1.1.1.1", "Global"),
    ("100.63.255.255", "Global"),
    ("100.128.0.0", "Global"),
    ("172.32.0.1", "Global"),
    ("169.253.255.255", "Global"),
    ("223.255.255.255", "Global"),
    ("2606:4700:4700::1111", "Global"),
    ("2a00:1450:4001::200e", "Global"),
    ("127.0.0.1", "Loopback"),
    ("127.255.255.254", "Loopback"),
    ("::1", "Loopback"),
    ("10.0.0.1", "Private"),
    ("172.16.0.1", "Private"),
    ("172.31.255.255", "Private"),
    ("192.168.1.1", "Private"),
    ("169.254.169.254", "LinkLocal"),
    ("169.254.0.1", "LinkLocal"),
    ("fe80::1", "LinkLocal"),
    ("100.64.0.1", "SharedCgnat"),
    ("100.127.255.254", "SharedCgnat"),
    ("fd00::1", "UniqueLocal"),
    ("fc00::1", "UniqueLocal"),
    ("fd12:3456:789a::1", "UniqueLocal"),
    ("224.0.0.1", "Multicast"),
    ("239.255.255.250", "Multicast"),
    ("ff02::1", "Multicast"),
    ("0.0.0.0", "Unspecified"),
    ("::", "Unspecified"),
    ("255.255.255.255", "Broadcast"),
    ("192.0.2.1", "Documentation"),
    ("198.51.100.7", "Documentation"),
    ("203.0.113.9", "Documentation"),
    ("2001:db8::1", "Documentation"),
    ("3fff::1", "Documentation"),
    ("0.1.2.3", "Reserved"),
    ("240.0.0.1", "Reserved"),
    ("255.255.255.254", "Reserved"),
    ("198.18.0.1", "Reserved"),
    ("192.0.0.8", "Reserved"),
    ("192.88.99.1", "Reserved"),
    ("100::1", "Reserved"),
    ("2001::1", "Reserved"),
    ("fec0::1", "Reserved"),
    ("4000::1", "Reserved"),
    ("::ffff:0:1:2", "Reserved"),
    ("64:ff9b:1::1", "Reserved"),
)
RUST_EMBEDDED = (
    ("::ffff:127.0.0.1", "127.0.0.1", "Loopback"),
    ("::ffff:169.254.169.254", "169.254.169.254", "LinkLocal"),
    ("::ffff:10.1.2.3", "10.1.2.3", "Private"),
    ("::ffff:8.8.8.8", "8.8.8.8", "Global"),
    ("::ffff:0.0.0.0", "0.0.0.0", "Unspecified"),
    ("::127.0.0.1", "127.0.0.1", "Loopback"),
    ("::10.0.0.1", "10.0.0.1", "Private"),
    ("64:ff9b::a9fe:a9fe", "169.254.169.254", "LinkLocal"),
    ("64:ff9b::808:808", "8.8.8.8", "Global"),
    ("2002:c0a8:0101::1", "192.168.1.1", "Private"),
    ("2002:7f00:1::", "127.0.0.1", "Loopback"),
)
CLASSES = {
    "Global": address.GLOBAL,
    "Loopback": address.LOOPBACK,
    "Private": address.PRIVATE,
    "LinkLocal": address.LINK_LOCAL,
    "SharedCgnat": address.SHARED_CGNAT,
    "UniqueLocal": address.UNIQUE_LOCAL,
    "Multicast": address.MULTICAST,
    "Unspecified": address.UNSPECIFIED,
    "Broadcast": address.BROADCAST,
    "Documentation": address.DOCUMENTATION,
    "Reserved": address.RESERVED,
}


class AddressTest(unittest.TestCase):
    def test_classes_are_the_servers(self):
        for text, kind in RUST_CLASSES:
            with self.subTest(text):
                self.assertEqual(address_class(ip(text)), CLASSES[kind])

    def test_ipv6_forms_that_carry_an_ipv4_address_are_judged_as_it(self):
        for text, inner, kind in RUST_EMBEDDED:
            with self.subTest(text):
                self.assertEqual(address.embedded_ipv4(ip(text)), ip(inner))
                self.assertEqual(address_class(ip(text)), CLASSES[kind])
        for text in ("::", "::1", "2001:db8::1", "fd00::1"):
            with self.subTest(text):
                self.assertIsNone(address.embedded_ipv4(ip(text)))

    def test_canonical_text(self):
        for text, expected in (
            ("::FFFF:169.254.169.254", "::ffff:169.254.169.254"),
            ("::ffff:a9fe:a9fe", "::ffff:169.254.169.254"),
            ("0:0:0:0:0:0:0:1", "::1"),
            ("2001:DB8:0::1", "2001:db8::1"),
            ("10.0.0.1", "10.0.0.1"),
        ):
            with self.subTest(text):
                self.assertEqual(address.canonical(ip(text)), expected)

    def test_allow_private_opens_only_the_networks_it_names(self):
        networks = parse_networks(["10.9.0.1/16", "fd12::/64", "172.20.0.5", "127.0.0.0/8"])
        for text in ("10.9.255.1", "::ffff:10.9.0.3", "fd12::5", "172.20.0.5", "8.8.8.8"):
            with self.subTest(text):
                self.assertIsNone(refusal(ip(text), networks))
        for text, why in (
            ("10.8.0.1", "not a public address (private), and egress.allow_private does not include it"),
            ("172.20.0.6", "not a public address (private), and egress.allow_private does not include it"),
            ("169.254.169.254", "not a public address (link-local (cloud metadata)), and egress.allow_private "
             "does not include it"),
            ("::ffff:169.254.169.254", "not a public address (link-local (cloud metadata)), and "
             "egress.allow_private does not include it"),
        ):
            with self.subTest(text):
                self.assertEqual(refusal(ip(text), networks), why)

    def test_loopback_unspecified_broadcast_and_multicast_are_never_destinations(self):
        everything = parse_networks(["0.0.0.0/0", "::/0"])
        self.assertIsNone(refusal(ip("10.0.0.1"), everything))
        for text in ("127.0.0.1", "127.9.8.7", "::1", "::ffff:127.0.0.1", "::127.0.0.1", "2002:7f00:1::",
                     "0.0.0.0", "::", "255.255.255.255", "::ffff:255.255.255.255", "224.0.0.1", "ff02::1",
                     "::ffff:0.0.0.0", "::ffff:224.0.0.1"):
            for networks in (everything, parse_networks(["127.0.0.0/8", "::1/128", "64.0.0.0/2"])):
                with self.subTest(text, networks=networks):
                    self.assertIn("never a destination", refusal(ip(text), networks))
        # only the project's own tests open loopback, and only where allow_private says
        self.assertIsNone(refusal(ip("127.0.0.1"), parse_networks(["127.0.0.0/8"]), allow_loopback=True))
        self.assertIn("does not include it", refusal(ip("::1"), parse_networks(["127.0.0.0/8"]), True))
        self.assertIn("never a destination", refusal(ip("0.0.0.0"), everything, True))

    def test_private_opens_the_non_global_classes_but_link_local(self):
        # link-local (cloud metadata) only through a network that names it
        for text in ("169.254.169.254", "fe80::1", "::ffff:169.254.169.254"):
            with self.subTest(text):
                self.assertIn("does not include it", refusal(ip(text), [], private=True))
                self.assertIsNone(refusal(ip(text), parse_networks(["169.254.0.0/16", "fe80::/10"]), private=True))
        for text in ("10.1.2.3", "172.30.0.3", "192.168.1.1", "100.64.0.1",
                     "fd00::1", "192.0.2.1", "2001:db8::1", "240.0.0.1", "198.18.0.1", "::ffff:10.1.2.3",
                     "64:ff9b::a01:203"):
            with self.subTest(text):
                self.assertIsNone(refusal(ip(text), [], private=True))
                # absent (the default) or false: only the configured networks
                for private in (None, False):
                    self.assertIn("egress.allow_private does not include it", refusal(ip(text), [], False, private))
                self.assertIn("does not include it", refusal(ip(text), []))
        for text in ("127.0.0.1", "::1", "::ffff:127.0.0.1", "0.0.0.0", "::", "255.255.255.255", "224.0.0.1",
                     "ff02::1", "::ffff:224.0.0.1"):
            with self.subTest(text):
                self.assertIn("never a destination", refusal(ip(text), [], private=True))
                self.assertIn("never a destination", refusal(ip(text), parse_networks(["0.0.0.0/0"]), private=True))
        self.assertIsNone(refusal(ip("8.8.8.8"), [], private=True))

    def test_own_addresses_are_local(self):
        self.assertTrue(address.is_local(ip("127.0.0.1")))
        self.assertTrue(address.is_local(ip("::ffff:127.0.0.1")))
        self.assertFalse(address.is_local(ip("192.0.2.1")))

    def test_bad_networks_are_named(self):
        with self.assertRaisesRegex(ValueError, "'10.0.0.0/33'"):
            parse_networks(["10.0.0.0/33"])


class TargetTest(unittest.TestCase):
    def test_authorities(self):
        for text, default, expected in (
            ("api.github.com:443", None, ("api.github.com", 443)),
            ("API.GitHub.com:443", None, ("api.github.com", 443)),
            ("example.org", 80, ("example.org", 80)),
            ("example.org.", 80, ("example.org", 80)),
            ("[0:0:0:0:0:0:0:1]:443", None, ("::1", 443)),
            ("[::FFFF:A9FE:A9FE]:80", None, ("::ffff:169.254.169.254", 80)),
            ("my_host.internal:8080", 80, ("my_host.internal", 8080)),
            ("10.0.0.1:22", None, ("10.0.0.1", 22)),
            ("[::1]:443", None, ("::1", 443)),
            ("[2001:DB8::1]", 80, ("2001:db8::1", 80)),
            ("[::ffff:169.254.169.254]:80", None, ("::ffff:169.254.169.254", 80)),
        ):
            with self.subTest(text):
                self.assertEqual(parse_authority(text, default), expected)

    def test_bad_authorities(self):
        for text, default in (
            ("example.org", None),
            ("example.org:", None),
            ("example.org:0", None),
            ("example.org:65536", None),
            ("example.org:+443", None),
            ("example.org:\u00b2", None),
            ("example.org:44\u0663", None),
            ("example.org..:443", None),
            ("", 80),
            ("a..b:443", None),
            ("-a.example:443", None),
            ("a.example/:443", None),
            ("a%2eexample:443", None),
            ("x" * 64 + ".example:443", None),
            ("2130706433:443", None),
            ("0x7f.1:443", None),
            ("127.000.000.001:443", None),
            ("1.2.3:443", None),
            ("::1:443", None),
            ("[::1", None),
            ("[::1]443", None),
            ("[127.0.0.1]:443", None),
            ("[fe80::1%eth0]:443", None),
            ("user:pass@example.org:443", None),
        ):
            with self.subTest(text), self.assertRaises(BadRequest):
                parse_authority(text, default)

    def test_the_origin_head(self):
        request = Request(
            "POST",
            "example.org",
            80,
            "/a?b=1",
            "HTTP/1.1",
            [
                ("Host", "elsewhere.example"),
                ("Connection", "Keep-Alive, X-Private"),
                ("X-Private", "1"),
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Authorization", "Basic abc"),
                ("proxy-connection", "keep-alive"),
                ("TE", "trailers"),
                ("Upgrade", "websocket"),
                ("Content-Length", "3"),
                ("Accept", "*/*"),
            ],
        )
        self.assertEqual(
            origin_head(request),
            b"POST /a?b=1 HTTP/1.1\r\nHost: example.org\r\nContent-Length: 3\r\nAccept: */*\r\n"
            b"Connection: close\r\n\r\n",
        )
        request.port = 8080
        self.assertTrue(origin_head(request).startswith(b"POST /a?b=1 HTTP/1.1\r\nHost: example.org:8080\r\n"))
        request.host, request.port = "::1", 80
        self.assertTrue(origin_head(request).startswith(b"POST /a?b=1 HTTP/1.1\r\nHost: [::1]\r\n"))

    def test_answers_have_a_one_line_body(self):
        text = answer(403, "a.example:443 is not allowed for this sandbox: line one\nline two\r\n")
        head, body = text.split(b"\r\n\r\n")
        self.assertEqual(
            body, b"multilang-sandbox egress: a.example:443 is not allowed for this sandbox: line one line two\n"
        )
        self.assertIn(b"Content-Length: %d\r\n" % len(body), head)
        self.assertEqual(answer(200), b"HTTP/1.1 200 Connection established\r\n\r\n")


class ServerMessageTest(unittest.TestCase):
    CONFIGURE = {"type": "configure", "allow_private": ["10.9.0.0/16"], "ask_timeout_ms": 60000}
    ALLOW = {"type": "decision", "id": "c-1", "allow": True, "session": "calc", "budget_bytes": 1 << 30}
    DENY = {"type": "decision", "id": "c-1", "allow": False, "reason": "not granted"}

    def parse(self, message):
        return protocol.parse_server_message(json.dumps(message).encode())

    def test_valid_messages(self):
        self.assertEqual(self.parse(self.CONFIGURE)["networks"], [ipaddress.ip_network("10.9.0.0/16")])
        self.assertEqual(self.parse(self.ALLOW)["session"], "calc")
        self.assertNotIn("private", self.parse(self.ALLOW))
        for private in (True, False, None):
            self.assertIs(self.parse(dict(self.ALLOW, private=private))["private"], private)
        self.assertEqual(self.parse(dict(self.DENY, session="calc"))["reason"], "not granted")
        self.assertEqual(self.parse(dict(self.DENY, session=None))["reason"], "not granted")
        self.assertEqual(self.parse(dict(self.ALLOW, host="a.example", port=443))["port"], 443)
        self.assertEqual(self.parse(dict(self.DENY, host=None, port=None))["reason"], "not granted")

    def test_every_required_field_is_required(self):
        for message in (self.CONFIGURE, self.ALLOW, self.DENY):
            for key in message:
                partial = {k: v for k, v in message.items() if k != key}
                with self.subTest(type=message["type"], key=key):
                    with self.assertRaises(protocol.ProtocolError) as refused:
                        self.parse(partial)
                    if key != "id" and message["type"] == "decision":
                        # so the connection it names is refused at once
                        self.assertEqual(refused.exception.request_id, "c-1")

    def test_wrong_types_are_refused(self):
        for message in (
            dict(self.CONFIGURE, allow_private="10.0.0.0/8"),
            dict(self.CONFIGURE, allow_private=[10]),
            dict(self.CONFIGURE, allow_private=["10.0.0.0/33"]),
            dict(self.CONFIGURE, ask_timeout_ms=-1),
            dict(self.CONFIGURE, ask_timeout_ms=True),
            dict(self.CONFIGURE, ask_timeout_ms=1.5),
            dict(self.ALLOW, allow="yes"),
            dict(self.ALLOW, budget_bytes=-1),
            dict(self.ALLOW, session=None),
            dict(self.DENY, reason=None),
            dict(self.DENY, id=17),
            dict(self.ALLOW, host=5),
            dict(self.ALLOW, port="443"),
            dict(self.ALLOW, port=True),
            dict(self.ALLOW, private="true"),
            dict(self.ALLOW, private=1),
            dict(self.ALLOW, private=[True]),
            {"type": "bogus"},
            {"no": "type"},
        ):
            with self.subTest(message=message), self.assertRaises(protocol.ProtocolError):
                self.parse(message)
        for line in (b"", b"{", b"[]", b"\xff", b"null", b"[" * 100000):
            with self.subTest(line=line[:10]), self.assertRaises(protocol.ProtocolError):
                protocol.parse_server_message(line)

    def test_the_proxys_messages(self):
        ready = protocol.ready("0.0.0.0:3128")
        self.assertEqual(ready, {"type": "ready", "protocol": 1, "listen": "0.0.0.0:3128"})
        outcome = dict.fromkeys(protocol.CLOSED_FIELDS, 0)
        self.assertEqual(list(protocol.closed("c-1", outcome)), ["type", "id"] + list(protocol.CLOSED_FIELDS))
        line = protocol.encode(protocol.ask("c-1", "172.30.0.3", "172.30.0.2", "CONNECT", "a.example", 443))
        self.assertTrue(line.endswith(b"}\n"))
        self.assertEqual(line.count(b"\n"), 1)
        self.assertEqual(json.loads(line)["host"], "a.example")
        refused = dict(outcome, reason="grant refusé")
        self.assertIn("grant refusé".encode(), protocol.encode(protocol.closed("c-1", refused)))


class ArgumentsTest(unittest.TestCase):
    def test_defaults_and_listen_forms(self):
        self.assertEqual(parse_arguments([]), Settings("0.0.0.0", 3128, 10.0, 10.0, 600.0))
        settings = parse_arguments(["--listen", "[::]:8080", "--idle-timeout", "30"])
        self.assertEqual((settings.host, settings.port, settings.idle_timeout), ("::", 8080, 30.0))
        self.assertEqual(parse_arguments(["--listen", "127.0.0.1:0"]).port, 0)
        defaults = parse_arguments([])
        self.assertEqual((defaults.max_connections, defaults.max_pending_asks), (1024, 256))
        self.assertIs(defaults.test_allow_loopback, False)
        settings = parse_arguments(["--max-connections", "3", "--max-pending-asks", "2", "--test-allow-loopback"])
        self.assertEqual((settings.max_connections, settings.max_pending_asks), (3, 2))
        self.assertIs(settings.test_allow_loopback, True)

    def test_bad_arguments_are_refused(self):
        for arguments in (["--listen", "3128"], ["--listen", "proxy:3128"], ["--listen", "1.2.3.4:70000"],
                          ["--listen", "1.2.3.4:\u00b2"], ["--max-connections", "0"], ["--max-pending-asks", "x"],
                          ["--idle-timeout", "0"], ["--connect-timeout", "-1"]):
            with self.subTest(arguments), self.assertRaises(SystemExit), redirect_stderr(io.StringIO()):
                parse_arguments(arguments)


class OpenFilesTest(unittest.TestCase):
    def test_the_soft_limit_is_raised_within_the_hard_one(self):
        # in a child, whose limits the test may lower
        code = (
            "import resource, egress_proxy\n"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 2048))\n"
            "egress_proxy.raise_open_files(100)\n"
            "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
            "egress_proxy.raise_open_files(1024)\n"
            "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
        )
        here = os.path.dirname(os.path.abspath(__file__))
        done = subprocess.run([sys.executable, "-c", code], cwd=here, capture_output=True, text=True, timeout=30)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.split(), ["896", "2048"])  # 100 * 8 + 32 + 64, then the hard limit
        self.assertIn("open files limited to 2048: fewer than 1024 connections", done.stderr)


if __name__ == "__main__":
    unittest.main()

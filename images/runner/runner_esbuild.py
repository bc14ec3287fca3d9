"""esbuild kept running: one `esbuild --service` process per runner in an
image that has esbuild (TypeScript), so stripping a program's types is a
request over a pipe (well under a millisecond) instead of a fresh esbuild
process (about 7 ms). This module speaks esbuild's own service protocol
(the one its JavaScript API uses): length-prefixed packets of typed values.

A step served here ends as `esbuild <source> --outfile=<output> <flags>`
would: the same output file, esbuild's own messages (formatted by esbuild)
on stderr, exit code 1 when there are errors. When the service cannot
start, dies, or answers something unexpected, the step runs its argv as a
fresh process instead; nothing is lost but the time.

The service runs as the code's user, so code in a session can reach it
through /proc as it could run esbuild itself: it gains nothing by that,
and an answer the runner does not expect turns the service off (the
session's later steps run esbuild themselves).
"""

import os
import select
import struct
import subprocess
import time

from runner_channel import log

# How long the service may take to start and say its version.
START_TIMEOUT_S = 10
# Most bytes one packet from the service may have (a transformed program).
MAX_PACKET_BYTES = 256 * 1024 * 1024
# What the first transform strips: a little of most of TypeScript, with the
# flags a program's transform has.
WARM_FLAGS = [
    "--loader=ts",
    "--format=cjs",
    "--platform=node",
    "--target=node20",
    '--tsconfig-raw={"compilerOptions":{"alwaysStrict":true}}',
]
WARM_CODE = b"""interface Shape { area(): number }
enum Kind { Round, Square }
class Circle implements Shape {
    constructor(private readonly r: number, public kind: Kind = Kind.Round) {}
    area(): number { return Math.PI * this.r ** 2 }
}
const shapes: Array<Shape> = [new Circle(1)];
function total<T extends Shape>(items: T[]): number { return items.reduce((sum, s) => sum + s.area(), 0) }
console.log(`${total(shapes)}`, typeof shapes as string);
"""


class ServiceError(Exception):
    """The service is gone or said something that is not its protocol."""


def encode_value(value, out):
    """Appends `value` in the protocol's encoding: a kind byte, then the
    value (numbers and lengths as little-endian 32-bit integers)."""
    if value is None:
        out.append(0)
    elif isinstance(value, bool):
        out += bytes((1, 1 if value else 0))
    elif isinstance(value, int):
        out.append(2)
        out += struct.pack("<I", value & 0xFFFFFFFF)
    elif isinstance(value, str):
        encoded = value.encode("utf-8")
        out.append(3)
        out += struct.pack("<I", len(encoded)) + encoded
    elif isinstance(value, (bytes, bytearray)):
        out.append(4)
        out += struct.pack("<I", len(value)) + value
    elif isinstance(value, list):
        out.append(5)
        out += struct.pack("<I", len(value))
        for item in value:
            encode_value(item, out)
    elif isinstance(value, dict):
        out.append(6)
        out += struct.pack("<I", len(value))
        for key in sorted(value):
            name = key.encode("utf-8")
            out += struct.pack("<I", len(name)) + name
            encode_value(value[key], out)
    else:
        raise TypeError("esbuild's protocol has no %s" % type(value).__name__)


def encode_packet(packet_id, is_request, value):
    body = bytearray(struct.pack("<I", (packet_id << 1) | (0 if is_request else 1)))
    encode_value(value, body)
    return struct.pack("<I", len(body)) + bytes(body)


class Decoder:
    """Reads one packet's body (after its length)."""

    def __init__(self, data):
        self.data = data
        self.offset = 0

    def take(self, count):
        if self.offset + count > len(self.data):
            raise ServiceError("a packet from esbuild ends early")
        chunk = self.data[self.offset:self.offset + count]
        self.offset += count
        return chunk

    def uint32(self):
        return struct.unpack("<I", self.take(4))[0]

    def value(self, depth=0):
        if depth > 64:
            raise ServiceError("a packet from esbuild nests too deep")
        kind = self.take(1)[0]
        if kind == 0:
            return None
        if kind == 1:
            return self.take(1)[0] != 0
        if kind == 2:
            return struct.unpack("<i", self.take(4))[0]
        if kind == 3:
            return self.take(self.uint32()).decode("utf-8", "replace")
        if kind == 4:
            return bytes(self.take(self.uint32()))
        if kind == 5:
            return [self.value(depth + 1) for _ in range(self.uint32())]
        if kind == 6:
            result = {}
            for _ in range(self.uint32()):
                key = self.take(self.uint32()).decode("utf-8", "replace")
                result[key] = self.value(depth + 1)
            return result
        raise ServiceError("esbuild sent a value of unknown kind %d" % kind)


def decode_packet(body):
    """(id, is_request, value) of a packet's body."""
    decoder = Decoder(body)
    word = decoder.uint32()
    value = decoder.value()
    if decoder.offset != len(body):
        raise ServiceError("a packet from esbuild has bytes after its value")
    return word >> 1, (word & 1) == 0, value


class EsbuildService:
    """One `esbuild --service` process and the requests sent to it, one at
    a time (the runner runs one step at a time)."""

    def __init__(self, executable):
        self.executable = executable
        self.process = None
        self.buffer = bytearray()
        self.next_id = 0

    @classmethod
    def started(cls, executable):
        """A started service of `executable`, else None (logged)."""
        service = cls(executable)
        try:
            service.start()
        except (OSError, ServiceError, subprocess.SubprocessError) as error:
            log("esbuild service did not start (steps run esbuild itself): %s" % error)
            service.stop()
            return None
        return service

    def start(self):
        version = subprocess.run(
            [self.executable, "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=START_TIMEOUT_S,
            check=True,
        ).stdout.decode("utf-8", "replace").strip()
        self.process = subprocess.Popen(
            [self.executable, "--service=%s" % version],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.set_blocking(self.process.stdout.fileno(), False)
        os.set_blocking(self.process.stdin.fileno(), False)
        # The protocol starts with the service's version, length-prefixed.
        said = self.read_packet(time.monotonic() + START_TIMEOUT_S).decode("utf-8", "replace")
        if said != version:
            raise ServiceError("esbuild says version %r, expected %r" % (said, version))
        # esbuild sets itself up on its first transform (about 6 ms): done
        # here, so a program's own is the fast one.
        self.request(
            {"command": "transform", "flags": WARM_FLAGS, "input": WARM_CODE, "inputFS": False},
            time.monotonic() + START_TIMEOUT_S,
        )

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def stop(self):
        if self.process is None:
            return
        try:
            self.process.stdin.close()
        except OSError:
            pass
        self.process.kill()
        self.process.wait()
        self.process.stdout.close()
        self.process = None

    def read_packet(self, deadline):
        """The next packet's body, waiting until `deadline` at most."""
        fd = self.process.stdout.fileno()
        while True:
            if len(self.buffer) >= 4:
                (length,) = struct.unpack("<I", self.buffer[:4])
                if length > MAX_PACKET_BYTES:
                    raise ServiceError("esbuild sent a packet of %d bytes" % length)
                if len(self.buffer) >= 4 + length:
                    body = bytes(self.buffer[4:4 + length])
                    del self.buffer[:4 + length]
                    return body
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServiceError("esbuild did not answer in time")
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            except OSError as error:
                raise ServiceError("cannot read esbuild's service: %s" % error) from error
            if not data:
                raise ServiceError("esbuild's service ended")
            self.buffer += data

    def write(self, data, deadline):
        """Writes `data` to the service, waiting until `deadline` at most."""
        fd = self.process.stdin.fileno()
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServiceError("esbuild did not read its request in time")
            _, ready, _ = select.select([], [fd], [], remaining)
            if not ready:
                continue
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                continue
            except OSError as error:
                raise ServiceError("cannot write to esbuild's service: %s" % error) from error

    def request(self, value, deadline):
        """Sends one request and returns its response's value."""
        packet_id = self.next_id
        self.next_id += 1
        self.write(encode_packet(packet_id, True, value), deadline)
        while True:
            answer_id, is_request, answer = decode_packet(self.read_packet(deadline))
            if is_request:
                # The service asks nothing of a host that did not ask for
                # pings; answer anything with an empty map, as its own
                # JavaScript host does for pings.
                self.write(encode_packet(answer_id, False, {}), deadline)
                continue
            if answer_id != packet_id or not isinstance(answer, dict):
                raise ServiceError("esbuild answered another request")
            if isinstance(answer.get("error"), str):
                raise ServiceError("esbuild failed: %s" % answer["error"])
            return answer

    def formatted(self, messages, is_warning, deadline):
        """esbuild's own text for its messages, as its command line prints them."""
        if not messages:
            return ""
        answer = self.request(
            {"command": "format-msgs", "messages": messages, "isWarning": is_warning, "color": False},
            deadline,
        )
        texts = answer.get("messages")
        if not isinstance(texts, list):
            raise ServiceError("esbuild sent no formatted messages")
        return "".join(text for text in texts if isinstance(text, str))

    def transform(self, transform, deadline):
        """Runs one `transform` step: (exit_code, stderr text). Writes the
        output file when there are no errors. Raises ServiceError when the
        service failed, OSError when a file could not be read or written."""
        source = transform["source"]
        with open(source, "rb") as handle:
            code = handle.read()
        flags = [flag for flag in transform["flags"] if not flag.startswith("--log-level=")]
        flags += ["--sourcefile=%s" % source, "--log-level=silent"]
        if not any(flag.startswith("--loader=") for flag in flags):
            flags.append("--loader=%s" % loader_of(source))
        answer = self.request(
            {"command": "transform", "flags": flags, "input": code, "inputFS": False},
            deadline,
        )
        errors, warnings = answer.get("errors"), answer.get("warnings")
        if not isinstance(errors, list) or not isinstance(warnings, list):
            raise ServiceError("esbuild's answer has no message lists")
        messages = self.formatted(warnings, True, deadline) + self.formatted(errors, False, deadline)
        if errors:
            return 1, messages
        output = answer.get("code")
        if isinstance(output, bytes):
            output = output.decode("utf-8", "replace")
        if not isinstance(output, str):
            raise ServiceError("esbuild's answer has no code")
        with open(transform["output"], "w", encoding="utf-8") as handle:
            handle.write(output)
        return 0, messages


def loader_of(path):
    """esbuild's loader for a file, by its extension, as its command line picks it."""
    extension = os.path.splitext(path)[1].lstrip(".")
    return {"ts": "ts", "mts": "ts", "cts": "ts", "tsx": "tsx", "jsx": "jsx"}.get(extension, "js")

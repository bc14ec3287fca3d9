"""Tests of runner_esbuild.py's encoding of esbuild's service protocol (the
service itself is exercised through Docker: tests/execute.rs)."""

import struct
import unittest

from runner_esbuild import Decoder, ServiceError, decode_packet, encode_packet, encode_value, loader_of


class EncodingTest(unittest.TestCase):
    def test_every_kind_of_value_round_trips(self):
        value = {
            "command": "transform",
            "flags": ["--format=cjs", "--loader=ts"],
            "input": b"const x: number = 1\n",
            "inputFS": False,
            "count": 7,
            "negative": -1,
            "nothing": None,
            "nested": [{"é": [True, None, 0]}],
        }
        packet = encode_packet(5, True, value)
        (length,) = struct.unpack("<I", packet[:4])
        self.assertEqual(length, len(packet) - 4)
        self.assertEqual(decode_packet(packet[4:]), (5, True, value))

    def test_a_response_is_marked_as_one(self):
        packet_id, is_request, value = decode_packet(encode_packet(3, False, {})[4:])
        self.assertEqual((packet_id, is_request, value), (3, False, {}))

    def test_map_keys_go_in_sorted_order(self):
        out = bytearray()
        encode_value({"b": None, "a": None}, out)
        self.assertEqual(bytes(out), b"\x06" + struct.pack("<I", 2) + struct.pack("<I", 1) + b"a\x00" + struct.pack("<I", 1) + b"b\x00")

    def test_broken_packets_are_refused(self):
        whole = encode_packet(1, False, {"code": "x"})[4:]
        for body in (whole[:-1], whole + b"\x00", struct.pack("<I", 2) + b"\x09"):
            with self.subTest(body=body), self.assertRaises(ServiceError):
                decode_packet(body)
        deep = b"\x05\x01\x00\x00\x00" * 100 + b"\x00"
        with self.assertRaises(ServiceError):
            Decoder(deep).value()

    def test_values_the_protocol_has_no_kind_for_are_refused(self):
        with self.assertRaises(TypeError):
            encode_value(1.5, bytearray())


class LoaderTest(unittest.TestCase):
    def test_loader_follows_the_extension(self):
        self.assertEqual(loader_of("/tmp/run/main.ts"), "ts")
        self.assertEqual(loader_of("/tmp/run/view.tsx"), "tsx")
        self.assertEqual(loader_of("/tmp/run/main.js"), "js")


if __name__ == "__main__":
    unittest.main()

"""Status as JSON (rtda_client.control.status_json): protobuf's JSON mapping (the same
document json_format.MessageToDict gives, proto field names), laid out as the C++ printer
lays it out. That both programs print the same bytes for one server is checked against the
running service in tests/service/python_client_test.py."""

import json
import unittest

from google.protobuf import json_format

import rtda_client as rc
from rtda_client.control import _double_text


def sample():
    st = rc.pb.Status(server_version="0.1.0", state="running", uptime_seconds=12.5,
                      filter="letkf", config_hash="00ff", last_cycle=3,
                      last_valid_time_seconds=25920000.0, next_cycle=4, open_windows=2,
                      latency_p50_seconds=1.0 / 3.0, latency_p99_seconds=0.1,
                      newest_checkpoint_cycle=-1, data_dir='/tmp/a "quoted" <dir>\n',
                      log_bytes=123456789012, log_segments=1, ingest_state="ok")
    st.workers.connected = True
    st.workers.ranks = 2
    st.workers.cycle_in_flight = -1
    st.counters.add(name="observations_accepted", value=6144)
    st.counters.add(name="batches_duplicate", value=0)
    st.sources.add(source="feeder-1", durable_seq=9, observations_accepted=6144)
    return st


class StatusJsonTest(unittest.TestCase):
    def test_same_document_as_json_format(self):
        st = sample()
        text = rc.status_json(st)
        self.assertEqual(json.loads(text),
                         json_format.MessageToDict(st, preserving_proto_field_name=True))
        self.assertEqual(json.loads(text), json.loads(
            json_format.MessageToJson(st, preserving_proto_field_name=True)))

    def test_layout(self):
        lines = rc.status_json(sample()).splitlines()
        self.assertEqual(lines[0], "{")
        self.assertEqual(lines[1], ' "server_version": "0.1.0",')
        self.assertIn(' "last_valid_time_seconds": 25920000,', lines)
        self.assertIn(' "latency_p50_seconds": 0.33333333333333331,', lines)
        self.assertIn(' "latency_p99_seconds": 0.1,', lines)
        self.assertIn(' "log_bytes": "123456789012",', lines)   # 64-bit: a string
        self.assertIn(' "last_cycle": "3",', lines)
        self.assertIn(' "workers": {', lines)
        self.assertIn('  "connected": true,', lines)
        self.assertIn('  {', lines)
        self.assertIn('   "name": "observations_accepted",', lines)
        self.assertIn('   "name": "batches_duplicate"', lines)  # value 0: left out
        self.assertIn(' "data_dir": "/tmp/a \\"quoted\\" \\u003cdir\\u003e\\n",', lines)
        self.assertEqual(lines[-1], "}")
        self.assertNotIn("closed_windows_waiting", "".join(lines))  # defaults left out

    def test_doubles_as_cpp_prints_them(self):
        for v, text in ((0.1, "0.1"), (1.0 / 3.0, "0.33333333333333331"), (3.0, "3"),
                        (1e21, "1e+21"), (1.5e-7, "1.5e-07"), (-0.0, "-0"),
                        (float("inf"), '"Infinity"'), (float("nan"), '"NaN"')):
            self.assertEqual(_double_text(v), text)
            if v == v:  # not NaN
                self.assertEqual(float(json.loads(text)), v)

    def test_empty_status(self):
        self.assertEqual(rc.status_json(rc.pb.Status()), "{}")


if __name__ == "__main__":
    unittest.main()

"""CURVE key files in Python (rtda_client.keys) read what `rtda keys` writes (net/keys.cpp),
with the same refusals as the C++ programs: a missing file, a malformed key (line named), a
public file where a secret one is needed, a secret file others may read. `rtda keys` makes
the directory it is given. RTDA_CLI names the rtda binary."""

import os
import subprocess
import tempfile
import unittest
from pathlib import Path

import zmq

import rtda_client as rc
from rtda_client.keys import KeyFileError, read_key_file, z85_key_problem

RTDA = os.environ.get("RTDA_CLI", "rtda")


class KeysTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="rtda-keys-")
        self.dir = Path(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def make(self, base):
        r = subprocess.run([RTDA, "keys", "--out", str(base)], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_reads_rtda_keys_files(self):
        out = self.make(self.dir / "nested" / "deeper" / "server")  # parents are made
        pub_file = self.dir / "nested" / "deeper" / "server.key"
        sec_file = self.dir / "nested" / "deeper" / "server.key_secret"
        self.assertTrue(pub_file.is_file() and sec_file.is_file())
        printed = out.split()[2]  # "public key <Z85>"
        self.assertEqual(rc.load_public_key(pub_file), printed)
        self.assertEqual(rc.load_public_key(sec_file), printed)
        public, secret = rc.load_keypair(sec_file)
        self.assertEqual(public, printed)
        # The pair is a real CURVE pair: the secret key derives the public one.
        self.assertEqual(zmq.curve_public(secret.encode()).decode(), public)
        self.assertNotIn("secret", read_key_file(pub_file))
        self.assertEqual(rc.load_public_key(printed), printed)  # Z85 text itself

    def test_curve_keys_apply_to_a_socket(self):
        self.make(self.dir / "server")
        self.make(self.dir / "client")
        keys = rc.CurveKeys.from_files(self.dir / "server.key", self.dir / "client.key_secret")
        s = zmq.Context.instance().socket(zmq.DEALER)
        try:
            keys.apply(s)
            self.assertEqual(s.getsockopt(zmq.MECHANISM), zmq.CURVE)
            self.assertEqual(keys.server_public, rc.load_public_key(self.dir / "server.key"))
            self.assertEqual(keys.public, rc.load_public_key(self.dir / "client.key"))
        finally:
            s.close(0)
        fresh = rc.CurveKeys.from_files(self.dir / "server.key")
        self.assertEqual(zmq.curve_public(fresh.secret.encode()).decode(), fresh.public)
        self.assertIsNone(rc.curve_from_options(None, None))
        with self.assertRaisesRegex(KeyFileError, "needs --server-key"):
            rc.curve_from_options(None, self.dir / "client.key_secret")

    def test_refusals_name_file_and_problem(self):
        self.make(self.dir / "k")
        with self.assertRaisesRegex(KeyFileError, r"missing\.key: no such file"):
            rc.load_public_key(self.dir / "missing.key")
        with self.assertRaisesRegex(KeyFileError, r"k\.key: no secret-key line"):
            rc.load_keypair(self.dir / "k.key")
        os.chmod(self.dir / "k.key_secret", 0o644)
        with self.assertRaisesRegex(KeyFileError, r"mode 0644 lets other users read"):
            rc.load_keypair(self.dir / "k.key_secret")
        bad = self.dir / "bad.key"
        bad.write_text('metadata\ncurve\n    public-key = "tooshort"\n')
        with self.assertRaisesRegex(KeyFileError, r"bad\.key line 3: public-key: key is 8 "
                                    r"characters"):
            rc.load_public_key(bad)
        with self.assertRaisesRegex(KeyFileError, "is a directory"):
            rc.load_public_key(self.dir)

    def test_z85_check(self):
        pub, _ = (k.decode() for k in zmq.curve_keypair())
        self.assertIsNone(z85_key_problem(pub))
        self.assertIn("outside the Z85 alphabet", z85_key_problem("~" + pub[1:]))
        self.assertIn("out of range", z85_key_problem("#####" + pub[5:]))


if __name__ == "__main__":
    unittest.main()

"""CURVE keys for the client side, read from the files `rtda keys --out NAME` writes
(net/keys.hpp): NAME.key holds the public key, NAME.key_secret both keys, in the ZeroMQ zcert
text style, e.g.

    metadata
    curve
        public-key = "<40 characters of Z85>"
        secret-key = "<40 characters of Z85>"

Only the `public-key` and `secret-key` entries matter. A secret key file that group or others
may read is refused, as the C++ programs refuse it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import zmq

_Z85 = ("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
        ".-:+=^!/*?&<>()[]{}@%$#")
_Z85_INDEX = {c: i for i, c in enumerate(_Z85)}


class KeyFileError(RuntimeError):
    """A key file or key that cannot be used; the message names the file and the problem."""


def z85_key_problem(key: str) -> Optional[str]:
    """Why `key` is not a 40-character Z85 key, or None when it is one."""
    if len(key) != 40:
        return f"key is {len(key)} characters, expected 40 characters of Z85"
    for i in range(0, 40, 5):
        value = 0
        for c in key[i:i + 5]:
            if c not in _Z85_INDEX:
                return f"key is not valid Z85: character {c!r} is outside the Z85 alphabet"
            value = value * 85 + _Z85_INDEX[c]
        if value > 0xFFFFFFFF:
            return f"key is not valid Z85: group {key[i:i + 5]!r} is out of range"
    return None


def read_key_file(path) -> dict:
    """{'public': ..., 'secret': ...} (each present only when the file has that entry)."""
    p = Path(path)
    if not p.exists():
        raise KeyFileError(f"key file {p}: no such file")
    if p.is_dir():
        raise KeyFileError(f"key file {p}: is a directory")
    try:
        text = p.read_text()
    except OSError as e:
        raise KeyFileError(f"key file {p}: cannot open for reading ({e.strerror})") from e
    out = {}
    for number, line in enumerate(text.splitlines(), 1):
        t = line.strip()
        if not t or t.startswith("#") or "=" not in t:
            continue  # comments and the section names (metadata, curve)
        name, value = (s.strip() for s in t.split("=", 1))
        if name not in ("public-key", "secret-key"):
            continue
        if len(value) >= 2 and value[0] in "\"'" and value[-1] == value[0]:
            value = value[1:-1]
        problem = z85_key_problem(value)
        if problem:
            raise KeyFileError(f"key file {p} line {number}: {name}: {problem}")
        out["public" if name == "public-key" else "secret"] = value
    return out


def load_public_key(path_or_key) -> str:
    """The public key in a .key or .key_secret file, or `path_or_key` itself when no such file
    exists and it is a 40-character Z85 key."""
    text = str(path_or_key)
    if len(text) == 40 and not os.path.exists(text) and z85_key_problem(text) is None:
        return text
    keys = read_key_file(text)
    if "public" not in keys:
        raise KeyFileError(f"key file {text}: no public-key line")
    return keys["public"]


def load_keypair(secret_file) -> tuple:
    """(public, secret) from a .key_secret file that only its owner may read."""
    keys = read_key_file(secret_file)
    if "public" not in keys:
        raise KeyFileError(f"key file {secret_file}: no public-key line")
    if "secret" not in keys:
        raise KeyFileError(f"key file {secret_file}: no secret-key line (a public .key file? "
                        "pass the .key_secret file)")
    mode = stat.S_IMODE(os.stat(secret_file).st_mode)
    if mode & 0o077:
        raise KeyFileError(f"key file {secret_file}: mode {mode:04o} lets other users read the "
                        "secret key; run chmod 600 on it (or make a new pair with `rtda keys`)")
    return keys["public"], keys["secret"]


@dataclass(frozen=True)
class CurveKeys:
    """What a CURVE client needs: the server's public key and its own key pair."""
    server_public: str
    public: str
    secret: str

    @classmethod
    def from_files(cls, server_key, client_key=None) -> "CurveKeys":
        """`server_key`: the server's .key file (or its Z85 text); `client_key`: this client's
        .key_secret file, or None for a fresh key pair (enough where the server lets any key
        connect)."""
        server_public = load_public_key(server_key)
        if client_key:
            public, secret = load_keypair(client_key)
        else:
            public, secret = (k.decode() for k in zmq.curve_keypair())
        return cls(server_public, public, secret)

    def apply(self, sock) -> None:
        """Makes `sock` a CURVE client; call before connect()."""
        sock.curve_serverkey = self.server_public.encode()
        sock.curve_publickey = self.public.encode()
        sock.curve_secretkey = self.secret.encode()


def curve_from_options(server_key=None, client_key=None) -> Optional[CurveKeys]:
    """CurveKeys when a server key is given; None (plain TCP/IPC) otherwise. A client key
    without a server key is an error."""
    if not server_key:
        if client_key:
            raise KeyFileError(f"--client-key {client_key}: needs --server-key (the server's "
                            "public .key file)")
        return None
    return CurveKeys.from_files(server_key, client_key)

"""Build step of the rtda_client package: protoc turns proto/rtda.proto into
rtda_client/rtda_pb2.py inside the built package (the metadata is in pyproject.toml).

The schema is looked up as $RTDA_PROTO_FILE, else ../../proto/rtda.proto next to this file
(the repository layout); protoc as $PROTOC, else `protoc` on PATH (Debian: protobuf-compiler).
"""
import os
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def proto_file() -> Path:
    given = os.environ.get("RTDA_PROTO_FILE")
    path = Path(given) if given else HERE.parent.parent / "proto" / "rtda.proto"
    if not path.is_file():
        raise SystemExit(f"rtda_client build: {path}: no such file (the wire schema "
                         "proto/rtda.proto; set RTDA_PROTO_FILE to its path)")
    return path.resolve()


def protoc() -> str:
    exe = os.environ.get("PROTOC") or shutil.which("protoc")
    if not exe:
        raise SystemExit("rtda_client build: protoc not found (Debian: apt-get install "
                         "protobuf-compiler, or set PROTOC)")
    return exe


class BuildPyWithProto(build_py):
    """build_py, then protoc --python_out into the built package directory."""

    def run(self):
        super().run()
        src = proto_file()
        out = Path(self.build_lib) / "rtda_client"
        out.mkdir(parents=True, exist_ok=True)
        cmd = [protoc(), f"--proto_path={src.parent}", f"--python_out={out}", str(src)]
        self.announce(" ".join(cmd), level=2)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"rtda_client build: {' '.join(cmd)} failed "
                             f"(exit {r.returncode}): {r.stderr.strip()}")
        if not (out / "rtda_pb2.py").is_file():
            raise SystemExit(f"rtda_client build: protoc wrote no {out / 'rtda_pb2.py'}")

    def get_outputs(self, include_bytecode=1):
        return super().get_outputs(include_bytecode) + [
            str(Path(self.build_lib) / "rtda_client" / "rtda_pb2.py")]


setup(cmdclass={"build_py": BuildPyWithProto})

#!/bin/sh
# The CTest fixture rtda_python_venv: a venv over Debian's interpreter (its numpy, h5py, zmq,
# protobuf, xarray, pandas, matplotlib are visible through --system-site-packages) with
# client/python installed offline, and a Jupyter kernel that runs the venv's interpreter.
#   make_venv.sh SYSTEM_PYTHON REPO_ROOT VENV_DIR STAGE_DIR
# The package is installed from a copy of client/python and proto/rtda.proto under STAGE_DIR,
# so the build (setuptools' build/ and egg-info) stays out of the source tree.
set -eu
py=$1 root=$2 venv=$3 stage=$4
rm -rf "$venv" "$stage"
mkdir -p "$stage/client" "$stage/proto"
cp -R "$root/client/python" "$stage/client/python"
rm -rf "$stage/client/python/build" "$stage/client/python"/*.egg-info \
       "$stage/client/python/rtda_client/rtda_pb2.py"
cp "$root/proto/rtda.proto" "$stage/proto/rtda.proto"
"$py" -m venv --system-site-packages "$venv"
PIP_ROOT_USER_ACTION=ignore "$venv/bin/pip" install --disable-pip-version-check --no-cache-dir \
  --no-build-isolation --no-index -q "$stage/client/python"
if "$venv/bin/python" -c "import ipykernel" 2>/dev/null; then
  "$venv/bin/python" -m ipykernel install --prefix "$venv" --name python3 >/dev/null
fi
# From the stage's parent, so the source tree cannot shadow the installed package.
cd "$stage"
"$venv/bin/python" -c "
import rtda_client, rtda_client.rtda_pb2 as pb, sys
assert rtda_client.__file__.startswith(sys.prefix), rtda_client.__file__
print('installed', rtda_client.__file__, 'protocol', pb.PROTOCOL_VERSION_1)"

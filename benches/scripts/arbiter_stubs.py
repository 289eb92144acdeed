"""The Python gRPC stubs of proto/arbiter/v1/authorizer.proto, generated with grpcio-tools into a temporary
directory, for the bench scripts beside this file."""

import atexit
import os
import shutil
import sys
import tempfile

import grpc_tools
from grpc_tools import protoc


def stubs():
    """Generates the stubs and returns the `authorizer_pb2` and `authorizer_pb2_grpc` modules."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")
    out = tempfile.mkdtemp(prefix="arbiter-py-")
    # The modules are in memory once imported; the directory goes when the process ends.
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    protoc.main(["protoc", f"-I{root}", f"-I{well_known}", f"--python_out={out}", f"--grpc_python_out={out}",
                 "arbiter/v1/authorizer.proto"])
    sys.path.insert(0, out)
    from arbiter.v1 import authorizer_pb2, authorizer_pb2_grpc
    return authorizer_pb2, authorizer_pb2_grpc

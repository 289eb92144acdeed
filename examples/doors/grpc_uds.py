#!/usr/bin/env python3
"""A stock Python gRPC client (grpcio) asking Arbiter over its Unix socket, with default channel options.

Run from the repository root, with the sidecar serving the default pack on a socket:

    cargo run --release -- serve --uds /tmp/arbiter.sock --listen 127.0.0.1:50051 --http-listen 127.0.0.1:8080
    pip install grpcio grpcio-tools
    python3 examples/doors/grpc_uds.py                          # unix:/tmp/arbiter.sock
    python3 examples/doors/grpc_uds.py unix:/run/arbiter.sock   # another target; TCP works too: 127.0.0.1:50051
    TOKEN=eyJ... python3 examples/doors/grpc_uds.py             # also ask with a token (needs --jwks/--jwt-key)

gRPC C-core sends the socket's path as `:authority` (`tmp%2Farbiter.sock`); Arbiter accepts any authority, so no
`grpc.default_authority` option is needed. The stubs are generated from proto/ at start-up with grpcio-tools.
"""

import os
import sys
import tempfile

import grpc
import grpc_tools
from google.protobuf.struct_pb2 import Struct
from grpc_tools import protoc

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def stubs():
    """Generates arbiter/v1/authorizer_pb2{,_grpc}.py into a temporary directory and imports them."""
    out = tempfile.mkdtemp(prefix="arbiter-py-")
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    rc = protoc.main([
        "protoc", f"-I{os.path.join(ROOT, 'proto')}", f"-I{well_known}",
        f"--python_out={out}", f"--grpc_python_out={out}", "arbiter/v1/authorizer.proto",
    ])
    if rc != 0:
        sys.exit(f"protoc failed ({rc})")
    sys.path.insert(0, out)
    from arbiter.v1 import authorizer_pb2, authorizer_pb2_grpc
    return authorizer_pb2, authorizer_pb2_grpc


def main() -> int:
    target = sys.argv[1] if len(sys.argv) > 1 else "unix:/tmp/arbiter.sock"
    pb, rpc = stubs()
    with grpc.insecure_channel(target) as channel:  # default options
        stub = rpc.AuthorizerStub(channel)

        # carol (group hr) encrypts with bob's key, whose permissions grant hr EncryptWithKey:
        # ALLOW key-group-usage-grant. Attribute maps are google.protobuf.Struct.
        attributes = Struct()
        attributes.update({"permissions": {"EncryptWithKey": ["hr"]}})
        r = stub.Authorize(pb.AuthorizeRequest(
            principal=pb.Principal(id="carol", groups=["hr"]),
            action="EncryptWithKey",
            resource=pb.Resource(uri="kylo:kylo:vault:keys:k2", owner="bob", attributes=attributes),
        ), timeout=5)
        print("carol EncryptWithKey k2:", pb.Decision.Name(r.decision), r.reason, list(r.policies))

        # A batch for one principal: bob owns k1, not k2.
        batch = stub.AuthorizeBatch(pb.AuthorizeBatchRequest(
            principal=pb.Principal(id="bob"),
            checks=[
                pb.Check(action="DeleteKey", resource=pb.Resource(uri="kylo:kylo:vault:keys:k1", owner="bob")),
                pb.Check(action="DeleteKey", resource=pb.Resource(uri="kylo:kylo:vault:keys:k2", owner="carol")),
            ],
        ), timeout=5)
        print("bob DeleteKey k1, k2:", [r.reason for r in batch.results])

        # A token instead of an id: its claims are the principal. A bad one is DENY `unauthenticated`, with the
        # cause in explanation / explanation_struct (never the token).
        r = stub.Authorize(pb.AuthorizeRequest(
            principal=pb.Principal(token=os.environ.get("TOKEN", "not-a-token")),
            action="ReadKey",
            resource=pb.Resource(uri="kylo:kylo:vault:keys:k1"),
        ), timeout=5)
        print("token ReadKey k1:", pb.Decision.Name(r.decision), r.reason, r.explanation)

        # Bad input is INVALID_ARGUMENT naming the field.
        try:
            stub.Authorize(pb.AuthorizeRequest(principal=pb.Principal(id=""), action="ReadKey"), timeout=5)
        except grpc.RpcError as e:
            print("empty id:", e.code().name, e.details())

        print("serving revision", stub.GetStatus(pb.GetStatusRequest(), timeout=5).revision)
    return 0


if __name__ == "__main__":
    sys.exit(main())

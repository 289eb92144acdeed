"""A stock Python gRPC client (grpcio, gRPC C-core) for the Unix-socket test.

Usage: grpc_uds_client.py PROTO_ROOT TARGET

Generates the stubs from the repository's proto with grpcio-tools, opens `grpc.insecure_channel(TARGET)` with
default options (so C-core sends the socket path as `:authority`), makes several calls on the one channel (later
ones send `:authority` as a reference into the HPACK dynamic table), and prints what it got as JSON.
"""

import json
import atexit
import os
import shutil
import sys
import tempfile

import grpc
import grpc_tools
from grpc_tools import protoc


def main() -> int:
    proto_root, target = sys.argv[1], sys.argv[2]
    out = tempfile.mkdtemp(prefix="arbiter-py-")
    # The modules are in memory once imported; the directory goes when the process ends.
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    rc = protoc.main([
        "protoc", f"-I{proto_root}", f"-I{well_known}", f"--python_out={out}", f"--grpc_python_out={out}",
        "arbiter/v1/authorizer.proto",
    ])
    if rc != 0:
        print(f"protoc failed with {rc}", file=sys.stderr)
        return 2
    sys.path.insert(0, out)
    from arbiter.v1 import authorizer_pb2 as pb  # noqa: E402
    from arbiter.v1 import authorizer_pb2_grpc as rpc  # noqa: E402

    channel = grpc.insecure_channel(target)
    stub = rpc.AuthorizerStub(channel)
    result = {"decisions": []}
    for action in ["ReadKey", "DeleteKey", "ReadKey", "ReadKey"]:
        r = stub.Authorize(pb.AuthorizeRequest(
            principal=pb.Principal(id="alice"),
            action=action,
            resource=pb.Resource(uri="kylo:kylo:vault:keys:k1"),
        ), timeout=30)
        result["decisions"].append({"action": action, "decision": pb.Decision.Name(r.decision), "reason": r.reason})
    batch = stub.AuthorizeBatch(pb.AuthorizeBatchRequest(
        principal=pb.Principal(id="alice"),
        checks=[pb.Check(action="ReadKey"), pb.Check(action="DeleteKey")],
    ), timeout=30)
    result["batch"] = [r.reason for r in batch.results]
    # The query plan: ReadKey is allowed everywhere, DeleteKey nowhere; the SQL of an "always" plan is constant.
    plans = {}
    for action in ["ReadKey", "DeleteKey"]:
        p = stub.PlanResources(pb.PlanResourcesRequest(
            principal=pb.Principal(id="alice"), action=action, sql=pb.SqlMapping(),
        ), timeout=30)
        plans[action] = {"kind": pb.PlanKind.Name(p.kind), "filter": p.filter.bool_value,
                         "where": getattr(p.sql, "where"), "exact": p.sql.exact, "revision": p.revision}
    result["plans"] = plans
    result["revision"] = stub.GetStatus(pb.GetStatusRequest(), timeout=30).revision
    try:
        stub.Authorize(pb.AuthorizeRequest(principal=pb.Principal(id=""), action="ReadKey"), timeout=30)
        result["invalid"] = "no error"
    except grpc.RpcError as e:
        result["invalid"] = e.code().name
        result["invalid_message"] = e.details()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

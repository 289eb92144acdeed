"""Start-up to the first decision, and edit to the first changed decision, of `arbiter serve` on a policy directory.

Usage: start_and_reload.py ARBITER POLICY_DIR [ROUNDS] [DEBOUNCE_MS]

Generates the Python stubs from proto/ (grpcio-tools). Then:
- start-up: ROUNDS times, starts `ARBITER serve --policies POLICY_DIR` on a free port and polls `Authorize` with a
  fresh channel per attempt (a single channel would wait out gRPC's reconnect back-off) until a decision comes
  back; the time from the process start to that decision;
- reload pick-up: one server; ROUNDS times, appends a policy that allows a new principal to the last file of the
  directory (written to a temporary name, then renamed over the file: a one-file edit) and polls until that
  principal is allowed; the time from the rename to the first allow, debounce (DEBOUNCE_MS, 100 by default) and
  the lockout check included.
Prints every round and the medians. The directory's last file is restored at the end.
"""

import os
import socket
import statistics
import subprocess
import sys
import time

import grpc

from arbiter_stubs import stubs


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(pb, who):
    return pb.AuthorizeRequest(
        principal=pb.Principal(id=who),
        action="ReadKey",
        resource=pb.Resource(uri=f"kylo:kylo:vault:keys:{who}"),
    )


def decide(pb, rpc, port, who, channel=None):
    """The decision, or None when the server does not answer yet."""
    own = channel is None
    channel = channel or grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        response = rpc.AuthorizerStub(channel).Authorize(request(pb, who), timeout=0.5)
        return response.decision == pb.DECISION_ALLOW
    except grpc.RpcError:
        return None
    finally:
        if own:
            channel.close()


def serve(arbiter, policy_dir, port, debounce_ms):
    return subprocess.Popen(
        [arbiter, "serve", "--policies", policy_dir, "--listen", f"127.0.0.1:{port}",
         "--debounce-ms", str(debounce_ms), "--log", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    arbiter, policy_dir = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 7
    debounce_ms = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    pb, rpc = stubs()

    starts = []
    for n in range(rounds):
        port = free_port()
        began = time.perf_counter()
        server = serve(arbiter, policy_dir, port, debounce_ms)
        try:
            while decide(pb, rpc, port, "start-probe") is None:
                if server.poll() is not None:
                    sys.exit(f"arbiter serve exited with {server.returncode}")
                time.sleep(0.002)
            starts.append(time.perf_counter() - began)
        finally:
            server.kill()
            server.wait()
        print(f"start-up {n + 1}: {starts[-1] * 1000:.1f} ms", flush=True)

    last = sorted(f for f in os.listdir(policy_dir) if f.endswith((".yaml", ".yml")))[-1]
    path = os.path.join(policy_dir, last)
    original = open(path).read()
    port = free_port()
    server = serve(arbiter, policy_dir, port, debounce_ms)
    pickups = []
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        while decide(pb, rpc, port, "start-probe", channel) is None:
            time.sleep(0.01)
        text = original
        for n in range(rounds):
            who = f"reload-probe-{n}"
            if decide(pb, rpc, port, who, channel):
                sys.exit(f"{who} is allowed before the edit")
            text += (f"---\nkind: Policy\nid: {who}\neffect: allow\nactions: [ReadKey]\nresources: [\"*\"]\n"
                     f"---\nkind: PolicyAttachment\nid: {who}\npolicy: {who}\nprincipal_selector: {{id: [{who}]}}\n")
            staged = path + ".tmp~"
            with open(staged, "w") as f:
                f.write(text)
            renamed = time.perf_counter()
            os.replace(staged, path)
            deadline = renamed + 30
            while not decide(pb, rpc, port, who, channel):
                if time.perf_counter() > deadline:
                    sys.exit(f"{who} was never allowed")
                time.sleep(0.001)
            pickups.append(time.perf_counter() - renamed)
            print(f"reload pick-up {n + 1}: {pickups[-1] * 1000:.1f} ms", flush=True)
            time.sleep(0.3)
    finally:
        server.kill()
        server.wait()
        with open(path, "w") as f:
            f.write(original)

    print(f"median start-up to first decision: {statistics.median(starts) * 1000:.1f} ms ({rounds} rounds)")
    print(f"median edit to first changed decision: {statistics.median(pickups) * 1000:.1f} ms "
          f"(debounce {debounce_ms} ms included)")


if __name__ == "__main__":
    main()

"""Resident memory of `arbiter serve` around a burst of concurrent `Simulate` calls.

Usage: simulate_rss.py PORT PID POLICY_DIR [CALLS]

Generates the Python stubs from proto/ (grpcio-tools), proposes every .yaml file of POLICY_DIR as the new set
in CALLS concurrent calls (24 by default), and prints the server's VmRSS / VmHWM before, right after, and 5 s
after the burst, with the calls' outcomes.
"""

import concurrent.futures
import os
import sys
import time

import grpc

from arbiter_stubs import stubs


def memory(pid):
    with open(f"/proc/{pid}/status") as f:
        return {l.split(":")[0]: l.split(":")[1].strip() for l in f if l.startswith(("VmRSS", "VmHWM"))}


def main():
    port, pid, policy_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    calls = int(sys.argv[4]) if len(sys.argv) > 4 else 24
    pb, rpc = stubs()

    files = {n: open(os.path.join(policy_dir, n)).read() for n in os.listdir(policy_dir) if n.endswith(".yaml")}
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 64 << 20)])
    stub = rpc.AuthorizerStub(channel)
    print("before", memory(pid))

    def one(_):
        try:
            return "ok" if stub.Simulate(pb.SimulateRequest(files=files), timeout=120).valid else "invalid"
        except grpc.RpcError as e:
            return e.code().name

    with concurrent.futures.ThreadPoolExecutor(calls) as pool:
        outcomes = list(pool.map(one, range(calls)))
    print("outcomes", {k: outcomes.count(k) for k in set(outcomes)})
    print("after", memory(pid))
    time.sleep(5)
    print("5 s later", memory(pid))


if __name__ == "__main__":
    main()

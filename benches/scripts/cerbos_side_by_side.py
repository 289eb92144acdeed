"""Arbiter and Cerbos side by side, over the wire, on the same workload: this file owns the Cerbos translation of
the workload generator's policy sets, the agreement check, and the timed comparison (throughput, latency at
concurrency 1, AuthorizeBatch against multi-resource CheckResources, idle RSS, start-up and hot-reload pick-up).

Usage:
    python3 benches/scripts/cerbos_side_by_side.py --loadgen BIN --arbiter BIN \
        [--sizes 10,1000,10000] [--rounds 3] [--duration 5] [--out results.md]

--loadgen is the `loadgen` bench binary (`cargo bench --bench loadgen --no-run` builds it under
target/release/deps/loadgen-*), --arbiter the release `arbiter` binary.

Needs: Python 3.11, `pip install grpcio grpcio-tools grpcio-reflection protobuf`, h2load
(`apt-get install -y nghttp2-client`) and npm (only to fetch Cerbos once). The Cerbos server binary is fetched
here, never by CI or the tests: `npm pack @cerbos/cerbos-linux-<arch>@<version>` into
~/.cache/arbiter-bench/cerbos/<version>/ (or --cerbos BIN to use one you have); its `--version` is checked.

For each size the loadgen binary writes the Arbiter policy directory, `frame.bin` (request 0, gRPC-framed),
`batch.bin` (AuthorizeBatch: principal and environment of request 0, 16 checks) and `model.json` (the whole
workload in neutral form, with Arbiter's in-process outcome of 256 requests). This script then:
1. translates model.json to one Cerbos resource policy (resource kind `key`) plus a principal policy for the
   superuser, and writes a minimal Cerbos config (disk store watching the directory, audit off);
2. starts both servers and sends all 256 requests to each (Arbiter's HTTP door `/v1/authorize`, Cerbos's
   `POST /api/check/resources`); any answer that differs from model.json's outcome aborts the run, printing the
   request. The exact bytes that h2load will send (Arbiter's frame.bin and batch.bin, and the CheckResources
   messages built here from descriptors read by gRPC server reflection) are also sent over gRPC to both, and the
   two servers' answers to the batch must agree check by check;
3. measures with h2load (gRPC over h2c, `-c4 -m32`, one h2load thread), in alternating rounds Arbiter, Cerbos,
   Arbiter, Cerbos...: single decisions, AuthorizeBatch vs CheckResources with the same 16 checks, and latency at
   `-c1 -m1` (p50/p99 from h2load's per-request `--log-file`: client-side time to the end of the response, the
   same tool and path for both). Every run sends a fixed number of calls (`-n`): the server's rate in a
   calibration run (which also warms it up) times --duration, so each run lasts about --duration seconds. A
   deadline (`-D`) would cut up to 128 calls in flight, which under-counts a slow server and leaves its counters
   mid-call. Medians of the rounds are reported;
4. after every run, confirms with each server's own Prometheus counters that every call was decided: Arbiter's
   `arbiter_decisions_total{decision}` grew by exactly calls x checks, with exactly the allow/deny split of the
   benchmarked request(s); Cerbos's `rpc_server_call_duration_seconds_count{rpc_method=CheckResources,
   rpc_response_status_code=OK}` and engine check count grew by exactly the calls (no other status), and
   `cerbos_dev_engine_check_batch_size_sum` by calls x checks. Cerbos exports no allow/deny counter (with audit
   off), so its decisions are confirmed by sending the same bytes over gRPC after every run. h2load must report
   every call done and succeeded with HTTP 200 (h2load cannot see grpc-status, hence the counters);
5. at the largest size, start-up to the first decision (a fresh gRPC channel per poll) and hot-reload pick-up
   (a rule or policy allowing a new principal appended to a policy file, written to a temporary name and renamed
   over it; time from the rename to that principal's first ALLOW), alternating the servers, --rounds times each.

Prints markdown tables and the list of places where the Cerbos translation differs (also written to --out).
"""

import argparse
import glob
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

try:
    import grpc
    from google.protobuf import descriptor_pool, json_format, message_factory
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
    from arbiter_stubs import stubs
except ImportError as e:  # pragma: no cover - a message for the user
    sys.exit(f"missing Python package ({e}): pip install grpcio grpcio-tools grpcio-reflection protobuf")

DEFAULT_CERBOS_VERSION = "0.55.0"
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "arbiter-bench", "cerbos")
KEYS = "kylo:kylo:vault:keys:"
ARBITER_PATH = "/arbiter.v1.Authorizer/Authorize"
ARBITER_BATCH_PATH = "/arbiter.v1.Authorizer/AuthorizeBatch"
CERBOS_PATH = "/cerbos.svc.v1.CerbosService/CheckResources"
SUPERUSER = "admin"  # `arbiter serve --superuser` default
ID_ROLE = "principal:"  # + principal id: the Cerbos role that stands for an `{id: ...}` selector

# Every place the Cerbos translation (or the way Cerbos is measured) differs from Arbiter's, printed with the results.
DIFFERENCES = [
    "Policy layout: the whole set is ONE Cerbos resource policy (resource kind `key`, version `default`) with one "
    "rule per attachment (per action for the permissions grant, below), in one file: Cerbos allows one resource "
    "policy per kind, version and scope. Arbiter reads the generator's files of at most 500 policies. The "
    "hot-reload edit therefore rewrites a 500-policy file for Arbiter and the whole set's file for Cerbos.",
    "Group membership: Cerbos has no directory. The effective groups (the request's groups united with the "
    "`kind: Group` members listing the principal) are computed by this script and sent in the request, as "
    "Cerbos roles (selecting allows) and as `P.attr.groups` (read by deny selectors and the permissions "
    "condition). Arbiter is sent "
    "only the request's groups and computes the union itself. This spares Cerbos work.",
    "Principal selectors of allows become roles, the only principal dimension Cerbos indexes rules by: `{group: g}` "
    "is `roles: [g]`, `{id: x}` is `roles: [\"principal:x\"]`, `{}` is `roles: [\"*\"]`; every principal is sent the "
    "roles of its effective groups plus `principal:<id>`. Cerbos's rule table then skips the allows of other groups "
    "and principals without evaluating a condition, as Arbiter's attachment index does. Denies cannot be written "
    "that way: Cerbos decides each of a principal's roles separately and allows when any role allows, so a deny on "
    "role `team0` would not override an allow reached through another role (the agreement check fails on such a "
    "request). Every deny therefore has `roles: [\"*\"]` (it binds under every role) and its selector in CEL: "
    "`\"g\" in P.attr.groups` or `P.id == \"x\"`; Cerbos evaluates it for every request with its action.",
    "Action globs are expanded over the 13 key actions, as for Cedar (every benchmark request uses one of them); "
    "`*` stays `*`. A policy whose globs cover no key action would get no rule (none does in this workload).",
    "Resource globs on the URI: the resource's Cerbos id is the URI; `*` adds no condition, a glob without `*` "
    "becomes `R.id == \"...\"`, a glob with one trailing `*` (every glob in this workload) `R.id.startsWith(...)`, "
    "one leading `*` `R.id.endsWith(...)`, any other glob `R.id.matches(\"^...$\")` (RE2, `*` as `.*`, the rest "
    "escaped). The same meaning as Arbiter's anchored `*`-only globs.",
    "`resource.permissions.${action} equals ${principal.groups}` (one allow, the default pack's group grant): CEL "
    "has no access to the action being checked, so the rule is split into one rule per key action it covers, each "
    "`\"A\" in R.attr.permissions && R.attr.permissions[\"A\"].exists(g, g in P.attr.groups)`, as Cedar's "
    "translation does with one disjunct per action.",
    "Environment: `environment.time` and `environment.source_ip` are sent as principal attributes `P.attr.time` "
    "(RFC 3339 text, parsed with CEL `timestamp()` in the policy variable `V.time`) and `P.attr.source_ip`, so both "
    "servers decide at the request's instant (deterministic) and a batch shares one environment, as in "
    "AuthorizeBatch. Cerbos's own `now()` is not used.",
    "time_of_day windows: minute of the day `V.time.getHours(\"UTC\") * 60 + V.time.getMinutes(\"UTC\")` in the "
    "half-open window [start, end) (a window that wraps midnight would be an `||`; none does here). `after`: "
    "`V.time > timestamp(\"...\")` (strict). CIDR: `P.attr.source_ip.inIPAddrRange(\"10.0.0.0/8\")`, negated with "
    "`!` (Arbiter's IPv4-mapped IPv6 rule is not reproduced; every request is IPv4). Classification: `==` / `!=`.",
    "Missing attributes: Arbiter's undetermined deny (a deny whose attribute is missing applies) has no Cerbos "
    "equivalent (a CEL error makes a condition false). The generator guarantees that every attribute a deny reads "
    "is present in every request, so no benchmark request reaches that difference.",
    "Decision: Cerbos resource policies give DENY precedence over ALLOW and deny when no rule matches, i.e. "
    "Arbiter's deny-overrides and default deny (checked on every request). The `admin` group's full access is an "
    "ordinary allow rule on role `admin`, so denies still override it, as in Arbiter. Arbiter's superuser (principal "
    "id `admin`, allowed whatever the policies say) is a Cerbos principal policy for principal `admin` allowing "
    "every action on every resource (principal policies take precedence over resource policies); one extra probe "
    "(the superuser deleting a frozen key after the freeze) checks it.",
    "Determining policies: only the decision (allowed or not) of Cerbos is compared; Arbiter's HTTP answers are also "
    "compared with its in-process determining policy ids.",
    "Counters: Cerbos exports no allow/deny counter with audit off (its decision log is off, as Arbiter's decision "
    "log is), so the Cerbos split is confirmed by re-sending the benchmarked bytes after every run, and the count by "
    "its gRPC OK calls and engine checks; Arbiter's counters confirm count and split.",
    "Hot reload: Arbiter's watcher debounces 100 ms (its default) and lockout-checks the new set; Cerbos's disk "
    "store runs with `watchForChanges: true` and its defaults, and its directory watcher waits out a built-in "
    "cool-down that has no configuration key. Both figures include those.",
]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------------------------
# Fetching Cerbos


def fetch_cerbos(version):
    """The Cerbos server binary of `version`, from its npm package, cached under ~/.cache/arbiter-bench/cerbos."""
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower())
    if sys.platform != "linux" or arch is None:
        sys.exit(f"no Cerbos npm package known for {sys.platform}/{platform.machine()}; pass --cerbos BIN")
    package = f"@cerbos/cerbos-linux-{arch}"
    dest = os.path.join(CACHE, version)
    binary = os.path.join(dest, "cerbos")
    if not os.path.exists(binary):
        if shutil.which("npm") is None:
            sys.exit("npm is needed once to fetch Cerbos (apt-get install -y npm), or pass --cerbos BIN")
        os.makedirs(dest, exist_ok=True)
        log(f"fetching {package}@{version} with npm pack into {dest}")
        subprocess.run(["npm", "pack", f"{package}@{version}", "--pack-destination", dest, "--silent"],
                       check=True, stdout=subprocess.DEVNULL)
        tgz = sorted(glob.glob(os.path.join(dest, "*.tgz")))
        if not tgz:
            sys.exit(f"npm pack left no tarball in {dest}")
        with tarfile.open(tgz[-1]) as tar:
            member = tar.getmember(f"package/cerbos-linux-{arch}")
            with tar.extractfile(member) as src, open(binary + ".part", "wb") as out:
                shutil.copyfileobj(src, out)
        os.chmod(binary + ".part", 0o755)
        os.replace(binary + ".part", binary)
    return binary, package


def cerbos_version(binary):
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    return out.split()[0] if out.split() else "?"


# ---------------------------------------------------------------------------------------------------------------
# Translation


def q(s):
    """A CEL (and YAML double-quoted) string literal."""
    return json.dumps(s)


def glob_cel(field, pattern):
    """The CEL test of an Arbiter glob (`*` only, anchored) on `field`; None for `*` (no condition)."""
    if pattern == "*":
        return None
    stars = pattern.count("*")
    if stars == 0:
        return f"{field} == {q(pattern)}"
    if stars == 1 and pattern.endswith("*"):
        return f"{field}.startsWith({q(pattern[:-1])})"
    if stars == 1 and pattern.startswith("*"):
        return f"{field}.endsWith({q(pattern[1:])})"
    regex = "^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$"
    return f"{field}.matches({q(regex)})"


def cond_cel(c):
    kind = c["kind"]
    if kind == "owner_is_principal":
        return "R.attr.owner == P.id"
    if kind == "global_true":
        return "R.attr.global == true"
    if kind == "time_of_day":
        start, end = c["start_minute"], c["end_minute"]
        if start < end:
            return f"(V.minute_of_day >= {start} && V.minute_of_day < {end})"
        return f"(V.minute_of_day >= {start} || V.minute_of_day < {end})"
    if kind == "after":
        return f"V.time > timestamp({q(c['instant'])})"
    if kind == "cidr":
        e = f"P.attr.source_ip.inIPAddrRange({q(c['cidr'])})"
        return f"!{e}" if c["negate"] else e
    if kind == "classification":
        return f"R.attr.classification {'!=' if c['negate'] else '=='} {q(c['value'])}"
    raise SystemExit(f"condition kind {kind!r} has no Cerbos translation")


def permission_cel(action):
    return f"{q(action)} in R.attr.permissions && R.attr.permissions[{q(action)}].exists(g, g in P.attr.groups)"


def cerbos_rules(model):
    """One Cerbos rule per attachment (per attachment and action for the permissions grant)."""
    policies = {p["id"]: p for p in model["policies"]}
    group_names = {g["name"] for g in model["groups"]}
    if any(g.startswith(ID_ROLE) for g in group_names):
        raise SystemExit(f"a group name starts with {ID_ROLE!r}, the prefix of the principal id roles")
    rules = []
    for a in model["attachments"]:
        p = policies[a["policy"]]
        sel = a["selector"]
        exprs = []
        if p["effect"] == "allow":
            roles = [sel["group"]] if "group" in sel else [ID_ROLE + sel["id"]] if "id" in sel else ["*"]
        else:
            # A deny binds under every role: Cerbos allows when any of the principal's roles allows.
            roles = ["*"]
            if "group" in sel:
                exprs.append(f"{q(sel['group'])} in P.attr.groups")
            if "id" in sel:
                exprs.append(f"P.id == {q(sel['id'])}")
        tests = [glob_cel("R.id", r) for r in p["resources"]]
        if None not in tests:
            exprs.append(tests[0] if len(tests) == 1 else "(" + " || ".join(tests) + ")")
        per_action = False
        for c in p["conditions"]:
            if c["kind"] == "permissions_have_group":
                per_action = True
            else:
                exprs.append(cond_cel(c))
        effect = "EFFECT_ALLOW" if p["effect"] == "allow" else "EFFECT_DENY"
        actions = p["key_actions"] if p["key_actions"] is not None else ["*"]
        if not actions:
            continue
        if per_action:
            if p["key_actions"] is None:
                raise SystemExit(f"{p['id']}: a permissions grant on `*` has no per-action translation")
            for action in actions:
                rules.append((f"{a['id']}-{action}", [action], effect, roles, exprs + [permission_cel(action)]))
        else:
            rules.append((a["id"], actions, effect, roles, exprs))
    return rules


def rule_yaml(name, actions, effect, roles, exprs):
    text = (f"    - name: {q(name)}\n      actions: {json.dumps(actions)}\n      effect: {effect}\n"
            f"      roles: {json.dumps(roles)}\n")
    if exprs:
        text += f"      condition:\n        match:\n          expr: {q(' && '.join(exprs))}\n"
    return text


def write_cerbos_policies(model, directory):
    os.makedirs(directory, exist_ok=True)
    text = ("# Generated by benches/scripts/cerbos_side_by_side.py from the workload model.\n"
            "apiVersion: api.cerbos.dev/v1\n"
            "resourcePolicy:\n"
            "  version: default\n"
            "  resource: key\n"
            "  variables:\n"
            "    local:\n"
            "      time: timestamp(P.attr.time)\n"
            "      minute_of_day: V.time.getHours(\"UTC\") * 60 + V.time.getMinutes(\"UTC\")\n"
            "  rules:\n")
    rules = cerbos_rules(model)
    text += "".join(rule_yaml(*r) for r in rules)
    with open(os.path.join(directory, "key.yaml"), "w") as f:
        f.write(text)
    with open(os.path.join(directory, "superuser.yaml"), "w") as f:
        f.write("# Arbiter's superuser: always allowed, whatever the resource policy says.\n"
                "apiVersion: api.cerbos.dev/v1\n"
                "principalPolicy:\n"
                "  version: default\n"
                f"  principal: {q(SUPERUSER)}\n"
                "  rules:\n"
                "    - resource: \"*\"\n"
                "      actions:\n"
                "        - action: \"*\"\n"
                "          effect: EFFECT_ALLOW\n"
                "          name: superuser\n")
    return len(rules)


def cerbos_append_probe(text, who):
    return text + rule_yaml(who, ["ReadKey"], "EFFECT_ALLOW", [ID_ROLE + who], [])


def arbiter_append_probe(text, who):
    return text + (f"---\nkind: Policy\nid: {who}\neffect: allow\nactions: [ReadKey]\nresources: [\"*\"]\n"
                   f"---\nkind: PolicyAttachment\nid: {who}\npolicy: {who}\nprincipal_selector: {{id: [{who}]}}\n")


def membership(model):
    m = {}
    for g in model["groups"]:
        for member in g["members"]:
            m.setdefault(member, []).append(g["name"])
    return m


def effective_groups(principal, member_of):
    groups = list(principal.get("groups", []))
    for g in member_of.get(principal["id"], []):
        if g not in groups:
            groups.append(g)
    return groups


def cerbos_principal(req, member_of):
    groups = effective_groups(req["principal"], member_of)
    return {"id": req["principal"]["id"], "roles": groups + [ID_ROLE + req["principal"]["id"]],
            "attr": {"groups": groups, "time": req["environment"]["time"],
                     "source_ip": req["environment"]["source_ip"]}}


def cerbos_resource(req):
    attr = {"owner": req["resource"]["owner"], **req["resource"].get("attributes", {})}
    return {"actions": [req["action"]], "resource": {"kind": "key", "id": req["resource"]["uri"], "attr": attr}}


def cerbos_request(req, member_of):
    """CheckResources JSON of one request (the HTTP API body and, parsed, the gRPC message)."""
    return {"principal": cerbos_principal(req, member_of), "resources": [cerbos_resource(req)]}


def cerbos_batch(reqs, member_of):
    """CheckResources of the batch: the principal and environment of reqs[0], the action and resource of each."""
    return {"principal": cerbos_principal(reqs[0], member_of), "resources": [cerbos_resource(r) for r in reqs]}


# ---------------------------------------------------------------------------------------------------------------
# Servers


def http_json(url, body=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def http_text(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def grpc_unary(port, method, payload, channel=None, timeout=2.0):
    """Sends raw message bytes; returns the response bytes (raises grpc.RpcError)."""
    own = channel is None
    channel = channel or grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        return channel.unary_unary(method)(payload, timeout=timeout)
    finally:
        if own:
            channel.close()


class Server:
    name = ""

    def __init__(self, work, tag):
        self.work = work
        self.tag = tag
        self.proc = None
        self.logf = None

    def settled_counters(self):
        """The counters once nothing is in flight any more (two equal reads 100 ms apart)."""
        last = self.counters()
        for _ in range(50):
            time.sleep(0.1)
            now = self.counters()
            if now == last:
                return now
            last = now
        return last

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.logf:
            self.logf.close()
            self.logf = None

    def wait_first_decision(self, deadline_s=120):
        """Polls with a fresh gRPC channel per attempt; returns seconds from process start to the first decision."""
        while True:
            try:
                self.decide_payload(self.path, self.probe_payload, channel=None, timeout=0.5)
                return time.perf_counter() - self.began
            except grpc.RpcError:
                pass
            if self.proc.poll() is not None:
                sys.exit(f"{self.name} exited with {self.proc.returncode}; see {self.logfile}")
            if time.perf_counter() - self.began > deadline_s:
                sys.exit(f"{self.name} gave no decision within {deadline_s} s; see {self.logfile}")
            time.sleep(0.002)


class Arbiter(Server):
    name = "Arbiter"
    path = ARBITER_PATH
    batch_path = ARBITER_BATCH_PATH

    def __init__(self, binary, policy_dir, work, tag, pb):
        super().__init__(work, tag)
        self.binary, self.policy_dir, self.pb = binary, policy_dir, pb

    def start(self, probe_payload, doors=True):
        self.port = free_port()
        cmd = [self.binary, "serve", "--policies", self.policy_dir, "--listen", f"127.0.0.1:{self.port}",
               "--log", "error"]
        if doors:
            self.http, self.metrics = free_port(), free_port()
            cmd += ["--http-listen", f"127.0.0.1:{self.http}", "--metrics-listen", f"127.0.0.1:{self.metrics}"]
        self.logfile = os.path.join(self.work, f"arbiter-{self.tag}.log")
        self.probe_payload = probe_payload
        self.began = time.perf_counter()
        self.logf = open(self.logfile, "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.logf)
        return self.wait_first_decision()

    def decide_json(self, req):
        out = http_json(f"http://127.0.0.1:{self.http}/v1/authorize", req)
        return out["decision"] == "allow", sorted(out.get("policies", []))

    def decide_payload(self, method, payload, channel=None, timeout=2.0):
        """The list of allowed flags of a gRPC call with raw request bytes."""
        raw = grpc_unary(self.port, method, payload, channel, timeout)
        if method == ARBITER_BATCH_PATH:
            resp = self.pb.AuthorizeBatchResponse.FromString(raw)
            return [r.decision == self.pb.DECISION_ALLOW for r in resp.results]
        return [self.pb.AuthorizeResponse.FromString(raw).decision == self.pb.DECISION_ALLOW]

    def counters(self):
        m = prometheus(http_text(f"http://127.0.0.1:{self.metrics}/metrics"))
        return {"allow": m.get(("arbiter_decisions_total", (("decision", "allow"),)), 0.0),
                "deny": m.get(("arbiter_decisions_total", (("decision", "deny"),)), 0.0)}


class Cerbos(Server):
    name = "Cerbos"
    path = CERBOS_PATH
    batch_path = CERBOS_PATH

    def __init__(self, binary, policy_dir, work, tag, msgs):
        super().__init__(work, tag)
        self.binary, self.policy_dir, self.msgs = binary, policy_dir, msgs

    def start(self, probe_payload, doors=True):
        self.port, self.http = free_port(), free_port()
        config = os.path.join(self.work, f"cerbos-{self.tag}.yaml")
        with open(config, "w") as f:
            f.write(f"server:\n  httpListenAddr: \"127.0.0.1:{self.http}\"\n"
                    f"  grpcListenAddr: \"127.0.0.1:{self.port}\"\n"
                    f"storage:\n  driver: disk\n  disk:\n    directory: {q(self.policy_dir)}\n"
                    f"    watchForChanges: true\n"
                    f"audit:\n  enabled: false\n"
                    f"telemetry:\n  disabled: true\n")
        self.logfile = os.path.join(self.work, f"cerbos-{self.tag}.log")
        self.probe_payload = probe_payload
        env = dict(os.environ, CERBOS_NO_TELEMETRY="1")
        self.began = time.perf_counter()
        self.logf = open(self.logfile, "ab")
        self.proc = subprocess.Popen([self.binary, "server", f"--config={config}", "--log-level=error"],
                                     stdout=subprocess.DEVNULL, stderr=self.logf, env=env)
        return self.wait_first_decision()

    def decide_json(self, req):
        out = http_json(f"http://127.0.0.1:{self.http}/api/check/resources", req)
        return [r["actions"][req["resources"][i]["actions"][0]] == "EFFECT_ALLOW"
                for i, r in enumerate(out["results"])]

    def decide_payload(self, method, payload, channel=None, timeout=2.0):
        raw = grpc_unary(self.port, method, payload, channel, timeout)
        resp = self.msgs["response"].FromString(raw)
        allow = self.msgs["allow"]
        return [all(effect == allow for effect in r.actions.values()) for r in resp.results]

    def counters(self):
        m = prometheus(http_text(f"http://127.0.0.1:{self.http}/_cerbos/metrics"))
        ok = bad = 0.0
        for (name, labels), value in m.items():
            if name == "rpc_server_call_duration_seconds_count" \
                    and dict(labels).get("rpc_method") == CERBOS_PATH.lstrip("/"):
                if dict(labels).get("rpc_response_status_code") == "OK":
                    ok += value
                else:
                    bad += value
        engine = sum(v for (n, _), v in m.items() if n == "cerbos_dev_engine_check_latency_milliseconds_count")
        checks = sum(v for (n, _), v in m.items() if n == "cerbos_dev_engine_check_batch_size_sum")
        return {"ok": ok, "bad": bad, "engine": engine, "checks": checks}


def prometheus(text):
    """Prometheus text format -> {(name, sorted label pairs): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)', line)
        if not m:
            continue
        labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or "")))
        try:
            out[(m.group(1), labels)] = float(m.group(3))
        except ValueError:
            pass
    return out


def cerbos_messages(port):
    """CheckResourcesRequest/Response classes built from the descriptors Cerbos serves by gRPC reflection."""
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    def ask(**kw):
        req = reflection_pb2.ServerReflectionRequest(**kw)
        resp = next(iter(stub.ServerReflectionInfo(iter([req]), timeout=10)))
        if resp.HasField("error_response"):
            sys.exit(f"Cerbos reflection: {resp.error_response.error_message}")
        return list(resp.file_descriptor_response.file_descriptor_proto)

    from google.protobuf import descriptor_pb2
    files = {}

    def take(blobs):
        for blob in blobs:
            fd = descriptor_pb2.FileDescriptorProto.FromString(blob)
            files.setdefault(fd.name, (fd, blob))

    take(ask(file_containing_symbol="cerbos.svc.v1.CerbosService"))
    while True:
        missing = [d for fd, _ in list(files.values()) for d in fd.dependency if d not in files]
        if not missing:
            break
        take(ask(file_by_filename=missing[0]))
    channel.close()
    pool = descriptor_pool.DescriptorPool()
    added = set()

    def add(name):
        if name in added:
            return
        added.add(name)
        for dep in files[name][0].dependency:
            add(dep)
        pool.AddSerializedFile(files[name][1])

    for name in files:
        add(name)
    cls = lambda n: message_factory.GetMessageClass(pool.FindMessageTypeByName(n))  # noqa: E731
    effect = pool.FindEnumTypeByName("cerbos.effect.v1.Effect")
    return {"request": cls("cerbos.request.v1.CheckResourcesRequest"),
            "response": cls("cerbos.response.v1.CheckResourcesResponse"),
            "allow": effect.values_by_name["EFFECT_ALLOW"].number}


def frame(message_bytes):
    return b"\x00" + len(message_bytes).to_bytes(4, "big") + message_bytes


# ---------------------------------------------------------------------------------------------------------------
# h2load


def h2load(port, path, frame_file, conns, streams, n, log_file=None):
    """One h2load run of exactly `n` calls (so that the servers' counters must grow by exactly `n`)."""
    cmd = ["h2load", f"-c{conns}", f"-m{streams}", "-t1", "-n", str(n), "-d", frame_file,
           "-H", "content-type: application/grpc", "-H", "te: trailers"]
    if log_file:
        cmd.append(f"--log-file={log_file}")
    cmd.append(f"http://127.0.0.1:{port}{path}")
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    m = re.search(r"finished in ([\d.]+)(\w+), ([\d.]+) req/s", out)
    r = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", out)
    s = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if not (m and r and s):
        sys.exit(f"cannot read h2load's output:\n{out}")
    total, started, done, succeeded, failed, errored, timeout = map(int, r.groups())
    ok, *other = map(int, s.groups())
    if failed or errored or timeout or any(other) or not total == started == done == succeeded == ok == n:
        sys.exit(f"h2load reported failures against {path}:\n{out}")
    seconds = float(m.group(1)) * {"s": 1.0, "ms": 1e-3, "us": 1e-6}.get(m.group(2), 1.0)
    return {"rps": float(m.group(3)), "n": n, "seconds": seconds}


def latencies_us(log_file):
    values = []
    with open(log_file) as f:
        for line in f:
            cols = line.split("\t")
            if len(cols) >= 3 and cols[1] == "200":
                values.append(int(cols[2]))
    values.sort()
    return values


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * p // 100))  # nearest rank
    return sorted_values[int(rank) - 1]


def confirm(server, before, after, run, checks_per_call, allows_per_call, payload, path):
    """Checks the server's own counters against h2load's count, then re-sends the bytes to confirm the decision."""
    calls = run["n"]
    if isinstance(server, Arbiter):
        allow, deny = after["allow"] - before["allow"], after["deny"] - before["deny"]
        if allow != calls * allows_per_call or deny != calls * (checks_per_call - allows_per_call):
            sys.exit(f"Arbiter counters disagree with h2load: +{allow:.0f} allow, +{deny:.0f} deny for {calls} "
                     f"calls of {checks_per_call} checks with {allows_per_call} allowed each")
        counted = f"+{allow:.0f} allow +{deny:.0f} deny"
    else:
        ok, bad = after["ok"] - before["ok"], after["bad"] - before["bad"]
        engine, checks = after["engine"] - before["engine"], after["checks"] - before["checks"]
        if ok != calls or bad != 0 or engine != calls or checks != calls * checks_per_call:
            sys.exit(f"Cerbos counters disagree with h2load: +{ok:.0f} OK calls, +{bad:.0f} other, +{engine:.0f} "
                     f"engine checks of +{checks:.0f} resources, for {calls} calls of {checks_per_call} checks")
        counted = f"+{ok:.0f} OK calls, +{checks:.0f} resources checked"
    decided = server.decide_payload(path, payload)
    if len(decided) != checks_per_call or sum(decided) != allows_per_call:
        sys.exit(f"{server.name} decided the benchmarked bytes differently after the run: {decided}")
    return counted


# ---------------------------------------------------------------------------------------------------------------
# One size


def fmt_rate(v):
    return f"{v:,.0f}"


def fmt_ms(us):
    return f"{us / 1000:.3f}"


def run_size(size, args, work, pb, cerbos_bin, state):
    d = os.path.join(work, str(size))
    arbiter_dir, cerbos_dir = os.path.join(d, "arbiter"), os.path.join(d, "cerbos")
    os.makedirs(d, exist_ok=True)
    files = {k: os.path.join(d, f"{k}.bin") for k in ("frame", "batch", "cerbos-frame", "cerbos-batch")}
    model_file = os.path.join(d, "model.json")
    subprocess.run([args.loadgen, "--policies", str(size), "--write-dir", arbiter_dir,
                    "--write-frame", files["frame"], "--write-batch-frame", files["batch"],
                    "--write-model", model_file], check=True, stdout=subprocess.DEVNULL)
    with open(model_file) as f:
        model = json.load(f)
    rules = write_cerbos_policies(model, cerbos_dir)
    log(f"[{size}] {len(model['policies'])} policies, {len(model['attachments'])} attachments -> "
        f"{rules} Cerbos rules")
    member_of = membership(model)
    reqs = [r["request"] for r in model["requests"]]

    # The Arbiter frames, checked against model.json's requests.
    with open(files["frame"], "rb") as f:
        arbiter_single = f.read()[5:]
    with open(files["batch"], "rb") as f:
        arbiter_batch = f.read()[5:]
    expected0 = json_format.ParseDict(reqs[0], pb.AuthorizeRequest())
    if pb.AuthorizeRequest.FromString(arbiter_single) != expected0:
        sys.exit("frame.bin is not model.json's request 0")
    batch_msg = pb.AuthorizeBatchRequest.FromString(arbiter_batch)
    if batch_msg.principal != expected0.principal or batch_msg.environment != expected0.environment:
        sys.exit("batch.bin's principal or environment is not request 0's")
    batch_n = len(batch_msg.checks)
    for i, check in enumerate(batch_msg.checks):
        want = json_format.ParseDict(reqs[i], pb.AuthorizeRequest())
        if check.action != want.action or check.resource != want.resource:
            sys.exit(f"batch.bin's check {i} is not request {i}'s action and resource")
    batch_reqs = [dict(reqs[i], principal=reqs[0]["principal"], environment=reqs[0]["environment"])
                  for i in range(batch_n)]

    probe = dict(reqs[0], principal={"id": "start-probe", "groups": []}, action="ReadKey")
    arbiter = Arbiter(args.arbiter, arbiter_dir, d, "main", pb)
    cerbos = Cerbos(cerbos_bin, cerbos_dir, d, "main", None)
    result = {"size": size}
    try:
        arbiter.start(arbiter_single)
        if state.get("msgs") is None:
            # Cerbos's descriptors are read once, from a first server started without a probe payload.
            cerbos.probe_payload = None
            state["msgs"] = bootstrap_cerbos_messages(cerbos)
        cerbos.msgs = state["msgs"]
        msgs = state["msgs"]
        cerbos_single = json_format.ParseDict(cerbos_request(reqs[0], member_of), msgs["request"]()) \
            .SerializeToString()
        cerbos_batch_bytes = json_format.ParseDict(cerbos_batch(batch_reqs, member_of), msgs["request"]()) \
            .SerializeToString()
        with open(files["cerbos-frame"], "wb") as f:
            f.write(frame(cerbos_single))
        with open(files["cerbos-batch"], "wb") as f:
            f.write(frame(cerbos_batch_bytes))
        cerbos.start(cerbos_single)

        # Agreement: every benchmark request, against model.json's outcome.
        agree = 0
        for i, r in enumerate(model["requests"]):
            want = r["allowed"]
            a_allowed, a_policies = arbiter.decide_json(r["request"])
            (c_allowed,) = cerbos.decide_json(cerbos_request(r["request"], member_of))
            if a_allowed != want or a_policies != sorted(r["policies"]) or c_allowed != want:
                sys.exit(f"[{size}] disagreement on request {i}: expected allowed={want} policies={r['policies']}, "
                         f"Arbiter allowed={a_allowed} policies={a_policies}, Cerbos allowed={c_allowed}\n"
                         f"request: {json.dumps(r['request'])}\n"
                         f"Cerbos request: {json.dumps(cerbos_request(r['request'], member_of))}")
            agree += 1
        su = dict(reqs[0], principal={"id": SUPERUSER, "groups": []}, action="DeleteKey",
                  resource=dict(reqs[0]["resource"], uri=f"{KEYS}team0-frozen-k0"),
                  environment=dict(reqs[0]["environment"], time="2026-12-05T08:15:00Z"))
        a_su, _ = arbiter.decide_json(su)
        (c_su,) = cerbos.decide_json(cerbos_request(su, member_of))
        if not (a_su and c_su):
            sys.exit(f"[{size}] superuser probe: Arbiter allowed={a_su}, Cerbos allowed={c_su}")
        # The exact bytes h2load sends.
        want0 = model["requests"][0]["allowed"]
        for server, payload in ((arbiter, arbiter_single), (cerbos, cerbos_single)):
            if server.decide_payload(server.path, payload) != [want0]:
                sys.exit(f"[{size}] {server.name} decides the benchmark frame differently from model.json")
        a_batch = arbiter.decide_payload(ARBITER_BATCH_PATH, arbiter_batch)
        c_batch = cerbos.decide_payload(CERBOS_PATH, cerbos_batch_bytes)
        if a_batch != c_batch or len(a_batch) != batch_n:
            sys.exit(f"[{size}] the servers disagree on the batch: Arbiter {a_batch}, Cerbos {c_batch}")
        if a_batch[0] != want0:
            sys.exit(f"[{size}] the batch's first check is not decided like request 0")
        batch_allows = sum(a_batch)
        log(f"[{size}] agreement {agree}/{len(model['requests'])} (+ superuser probe, frames, batch of {batch_n} "
            f"with {batch_allows} allowed)")
        result["agree"] = f"{agree}/{len(model['requests'])}"
        result["batch"] = f"{batch_n} checks, {batch_allows} allowed"
        result["decision0"] = "allow" if want0 else "deny"

        time.sleep(1.0)
        result["rss"] = {"Arbiter": rss_mib(arbiter.proc.pid), "Cerbos": rss_mib(cerbos.proc.pid)}

        plans = {
            arbiter: {"single": (files["frame"], arbiter_single), "batch": (files["batch"], arbiter_batch)},
            cerbos: {"single": (files["cerbos-frame"], cerbos_single),
                     "batch": (files["cerbos-batch"], cerbos_batch_bytes)},
        }
        # Each (server, kind) gets a fixed call count: its rate in a calibration run (which also warms it up)
        # times --duration. A fixed count, unlike h2load -D, never cuts calls in flight at a deadline, which
        # would under-count a slow server's throughput and leave its counters mid-call.
        shapes = {"single": (4, 32), "batch": (4, 32), "c1": (1, 1)}
        counts = {}
        samples = {(s.name, k): [] for s in (arbiter, cerbos) for k in ("single", "batch", "p50", "p99")}

        def measure(server, kind, n, label):
            plan = "batch" if kind == "batch" else "single"
            frame_file, payload = plans[server][plan]
            path = server.batch_path if kind == "batch" else server.path
            checks = batch_n if kind == "batch" else 1
            allows = batch_allows if kind == "batch" else int(want0)
            conns, streams = shapes[kind]
            before = server.settled_counters()
            lf = os.path.join(d, f"latency-{server.name}.tsv") if kind == "c1" else None
            run = h2load(server.port, path, frame_file, conns, streams, n, lf)
            counted = confirm(server, before, server.settled_counters(), run, checks, allows, payload, path)
            if lf:
                lat = latencies_us(lf)
                os.remove(lf)
                run["p50"], run["p99"] = percentile(lat, 50), percentile(lat, 99)
                log(f"[{size}] {label} c=1    {server.name:7} p50 {fmt_ms(run['p50'])} ms p99 "
                    f"{fmt_ms(run['p99'])} ms ({n} calls; {counted})")
            else:
                log(f"[{size}] {label} {kind:6} {server.name:7} {run['rps'] * checks:>12,.0f} decisions/s "
                    f"({n} calls in {run['seconds']:.2f} s; {counted})")
            run["decisions_per_s"] = run["rps"] * checks
            return run

        for kind, (conns, streams) in shapes.items():
            for server in (arbiter, cerbos):
                n = max(conns * streams, 20)
                for _ in range(4):  # grow the trial until it lasts a quarter of --duration
                    trial = measure(server, kind, n, "calibration")
                    if trial["seconds"] >= args.duration / 4:
                        break
                    n = max(n, round(trial["rps"] * args.duration / 3))
                floor = 200 if kind == "c1" else conns * streams
                counts[(server.name, kind)] = max(floor, round(trial["rps"] * args.duration))
        for rnd in range(args.rounds):
            for kind in shapes:
                for server in (arbiter, cerbos):
                    run = measure(server, kind, counts[(server.name, kind)], f"round {rnd + 1}")
                    if kind == "c1":
                        samples[(server.name, "p50")].append(run["p50"])
                        samples[(server.name, "p99")].append(run["p99"])
                    else:
                        samples[(server.name, kind)].append(run["decisions_per_s"])
        result["median"] = {k: statistics.median(v) for k, v in samples.items()}
    finally:
        arbiter.stop()
        cerbos.stop()
    result["dirs"] = (arbiter_dir, cerbos_dir)
    result["probe"] = probe
    result["member_of"] = member_of
    return result


def bootstrap_cerbos_messages(cerbos):
    """Starts Cerbos, waits for its gRPC port, and reads the CheckResources descriptors by reflection."""
    cerbos.port, cerbos.http = free_port(), free_port()
    config = os.path.join(cerbos.work, "cerbos-reflect.yaml")
    with open(config, "w") as f:
        f.write(f"server:\n  httpListenAddr: \"127.0.0.1:{cerbos.http}\"\n"
                f"  grpcListenAddr: \"127.0.0.1:{cerbos.port}\"\n"
                f"storage:\n  driver: disk\n  disk:\n    directory: {q(cerbos.policy_dir)}\n"
                f"audit:\n  enabled: false\ntelemetry:\n  disabled: true\n")
    logfile = os.path.join(cerbos.work, "cerbos-reflect.log")
    logf = open(logfile, "ab")
    proc = subprocess.Popen([cerbos.binary, "server", f"--config={config}", "--log-level=error"],
                            stdout=subprocess.DEVNULL, stderr=logf, env=dict(os.environ, CERBOS_NO_TELEMETRY="1"))
    try:
        deadline = time.time() + 120
        while True:
            if proc.poll() is not None:
                sys.exit(f"Cerbos exited with {proc.returncode}; see {logfile}")
            channel = grpc.insecure_channel(f"127.0.0.1:{cerbos.port}")
            try:
                grpc.channel_ready_future(channel).result(timeout=0.5)
            except grpc.FutureTimeoutError:
                if time.time() > deadline:
                    sys.exit(f"Cerbos's gRPC port never opened; see {logfile}")
                continue
            finally:
                channel.close()
            return cerbos_messages(cerbos.port)
    finally:
        proc.terminate()
        proc.wait()
        logf.close()


# ---------------------------------------------------------------------------------------------------------------
# Start-up and reload at the largest size


def probe_payloads(pb, msgs, probe, member_of):
    a = json_format.ParseDict(probe, pb.AuthorizeRequest()).SerializeToString()
    c = json_format.ParseDict(cerbos_request(probe, member_of), msgs["request"]()).SerializeToString()
    return a, c


def startup_and_reload(args, work, pb, cerbos_bin, msgs, last):
    size = last["size"]
    arbiter_dir, cerbos_dir = last["dirs"]
    d = os.path.join(work, str(size))
    member_of = last["member_of"]
    start_a, start_c = probe_payloads(pb, msgs, last["probe"], member_of)
    starts = {"Arbiter": [], "Cerbos": []}
    for n in range(args.rounds):
        for server in (Arbiter(args.arbiter, arbiter_dir, d, f"start{n}", pb),
                       Cerbos(cerbos_bin, cerbos_dir, d, f"start{n}", msgs)):
            try:
                took = server.start(start_a if isinstance(server, Arbiter) else start_c, doors=False)
            finally:
                server.stop()
            starts[server.name].append(took)
            log(f"[{size}] start-up {n + 1} {server.name:7} {took * 1000:8.1f} ms")
            time.sleep(0.2)

    arbiter_file = os.path.join(arbiter_dir, sorted(f for f in os.listdir(arbiter_dir)
                                                    if f.endswith((".yaml", ".yml")))[-1])
    cerbos_file = os.path.join(cerbos_dir, "key.yaml")
    pickups = {"Arbiter": [], "Cerbos": []}
    servers = [(Arbiter(args.arbiter, arbiter_dir, d, "reload", pb), arbiter_file, arbiter_append_probe, start_a),
               (Cerbos(cerbos_bin, cerbos_dir, d, "reload", msgs), cerbos_file, cerbos_append_probe, start_c)]
    originals = {}
    try:
        for server, path, _, payload in servers:
            originals[path] = open(path).read()
            server.start(payload, doors=False)
            server.channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        texts = dict(originals)
        for n in range(args.rounds):
            for server, path, append, _ in servers:
                who = f"reload-probe-{n}"
                req = dict(last["probe"], principal={"id": who, "groups": []},
                           resource=dict(last["probe"]["resource"], uri=f"{KEYS}{who}"))
                payload = probe_payloads(pb, msgs, req, member_of)[0 if isinstance(server, Arbiter) else 1]
                if server.decide_payload(server.path, payload, server.channel) != [False]:
                    sys.exit(f"{server.name}: {who} is allowed before the edit")
                texts[path] = append(texts[path], who)
                staged = path + ".tmp~"
                with open(staged, "w") as f:
                    f.write(texts[path])
                renamed = time.perf_counter()
                os.replace(staged, path)
                while True:
                    try:
                        if server.decide_payload(server.path, payload, server.channel) == [True]:
                            break
                    except grpc.RpcError:
                        pass
                    if time.perf_counter() - renamed > 60:
                        sys.exit(f"{server.name}: {who} was never allowed; see {server.logfile}")
                    time.sleep(0.001)
                took = time.perf_counter() - renamed
                pickups[server.name].append(took)
                log(f"[{size}] reload pick-up {n + 1} {server.name:7} {took * 1000:8.1f} ms")
                time.sleep(0.5)
    finally:
        for server, path, _, _ in servers:
            if getattr(server, "channel", None):
                server.channel.close()
            server.stop()
            if path in originals:
                with open(path, "w") as f:
                    f.write(originals[path])
    return {k: statistics.median(v) for k, v in starts.items()}, {k: statistics.median(v) for k, v in pickups.items()}


# ---------------------------------------------------------------------------------------------------------------


def report(args, results, starts, pickups, versions):
    lines = []
    w = lines.append
    w(f"Arbiter vs Cerbos {versions['cerbos']} (npm `{versions['package']}`), over the wire, gRPC over h2c, "
      f"h2load {versions['h2load']} (`-c4 -m32`, one thread), {args.rounds} alternating rounds of "
      f"about {args.duration:g} s per run (a fixed call count per server), medians. Command: `{versions['command']}`")
    w("")
    w("| policies | Arbiter req/s | Cerbos req/s | ratio | Arbiter p50 / p99 (c=1) | Cerbos p50 / p99 (c=1) "
      "| Arbiter RSS idle | Cerbos RSS idle |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        m = r["median"]
        a, c = m[("Arbiter", "single")], m[("Cerbos", "single")]
        w(f"| {r['size']:,} | {fmt_rate(a)} | {fmt_rate(c)} | {a / c:.1f}x "
          f"| {fmt_ms(m[('Arbiter', 'p50')])} / {fmt_ms(m[('Arbiter', 'p99')])} ms "
          f"| {fmt_ms(m[('Cerbos', 'p50')])} / {fmt_ms(m[('Cerbos', 'p99')])} ms "
          f"| {r['rss']['Arbiter']:.1f} MiB | {r['rss']['Cerbos']:.1f} MiB |")
    w("")
    w("| policies | Arbiter AuthorizeBatch decisions/s | Cerbos CheckResources decisions/s | ratio | batch |")
    w("|---:|---:|---:|---:|---|")
    for r in results:
        m = r["median"]
        a, c = m[("Arbiter", "batch")], m[("Cerbos", "batch")]
        w(f"| {r['size']:,} | {fmt_rate(a)} | {fmt_rate(c)} | {a / c:.1f}x | {r['batch']} |")
    if starts:
        size = results[-1]["size"]
        w("")
        w(f"| at {size:,} policies | Arbiter | Cerbos |")
        w("|---|---:|---:|")
        w(f"| start-up to first decision (fresh gRPC channel per poll) | {starts['Arbiter'] * 1000:.1f} ms "
          f"| {starts['Cerbos'] * 1000:.1f} ms |")
        w(f"| hot reload: rename of a policy file to first changed decision | {pickups['Arbiter'] * 1000:.1f} ms "
          f"| {pickups['Cerbos'] * 1000:.1f} ms |")
    w("")
    w("Checks: " + "; ".join(f"{r['size']:,} policies: {r['agree']} requests agree with Arbiter's in-process "
                             f"outcome on both servers (benchmarked request: {r['decision0']})" for r in results)
      + ". Every timed run was confirmed by the servers' own counters (see the script's docstring); "
        "p50/p99 are h2load's per-request times at `-c1 -m1` (client side, to the end of the response); RSS idle is "
        "VmRSS after start-up and the agreement check, 1 s idle, before any load.")
    w("")
    w("Translation differences (Cerbos vs Arbiter):")
    w("")
    for diff in DIFFERENCES:
        w(f"- {diff}")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loadgen", required=True, help="the loadgen bench binary (writes the workload)")
    parser.add_argument("--arbiter", required=True, help="the arbiter binary")
    parser.add_argument("--sizes", default="10,1000,10000", help="policy counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per measurement")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per h2load run")
    parser.add_argument("--out", help="also write the markdown here")
    parser.add_argument("--cerbos", help="a Cerbos server binary to use instead of fetching one")
    parser.add_argument("--cerbos-version", default=DEFAULT_CERBOS_VERSION, help="the Cerbos version to fetch")
    parser.add_argument("--skip-startup-reload", action="store_true", help="skip start-up and reload timings")
    parser.add_argument("--workdir", help="keep the generated files here (default: a temporary directory)")
    args = parser.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    if shutil.which("h2load") is None:
        sys.exit("h2load is needed: apt-get install -y nghttp2-client")
    for b in (args.loadgen, args.arbiter):
        if not os.access(b, os.X_OK):
            sys.exit(f"not an executable: {b}")
    if args.cerbos:
        cerbos_bin, package = args.cerbos, "(given with --cerbos)"
    else:
        cerbos_bin, package = fetch_cerbos(args.cerbos_version)
    version = cerbos_version(cerbos_bin)
    if not args.cerbos and version != args.cerbos_version:
        sys.exit(f"{cerbos_bin} reports version {version}, not {args.cerbos_version}")
    h2 = subprocess.run(["h2load", "--version"], capture_output=True, text=True).stdout.split()
    versions = {"cerbos": version, "package": f"{package}@{version}" if not args.cerbos else package,
                "h2load": h2[-1].split("/")[-1] if h2 else "?",
                "command": "python3 benches/scripts/cerbos_side_by_side.py " + " ".join(sys.argv[1:])}
    log(f"Cerbos {version} ({cerbos_bin})")

    pb, _ = stubs()
    work = args.workdir or tempfile.mkdtemp(prefix="cerbos-side-by-side-")
    os.makedirs(work, exist_ok=True)
    state = {}
    try:
        results = [run_size(size, args, work, pb, cerbos_bin, state) for size in sizes]
        starts = pickups = None
        if not args.skip_startup_reload and results:
            starts, pickups = startup_and_reload(args, work, pb, cerbos_bin, state["msgs"], results[-1])
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    text = report(args, results, starts, pickups, versions)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()

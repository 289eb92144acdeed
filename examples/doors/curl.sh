#!/usr/bin/env bash
# The HTTP/JSON door with plain curl. Start the sidecar on the default pack, from the repository root:
#
#   cargo run --release -- serve --http-listen 127.0.0.1:8080
#
# then run:  bash examples/doors/curl.sh           (ARBITER_HTTP=http://host:port to point elsewhere)
# The `Authorization: Bearer` calls use $TOKEN when it is set (and the server was started with --jwks or
# --jwt-key), else a junk token that shows the `unauthenticated` answer; examples/doors/README.md shows how to
# make a demo key and token with openssl.
#
# Decisions are 200 whether ALLOW or DENY; errors are JSON {"error": {"code", "field", "message"}} with 400, 404,
# 405, 413, 415, 503 (no policy set yet, or stopping) or 500 (never expected; never an ALLOW).
set -euo pipefail

BASE="${ARBITER_HTTP:-http://127.0.0.1:8080}"
JSON=(-H 'Content-Type: application/json')

say() { printf '\n== %s\n' "$*"; }
# curl without -f: an error status is an answer to show, not a failure of the script.
call() { curl -sS -w '\n(HTTP %{http_code})\n' "$@"; }

say "readiness (503 until the first policy set is loaded)"
call "$BASE/readyz"

say "one decision: carol (hr) encrypts with bob's key, whose permissions grant hr -> allow"
call "${JSON[@]}" "$BASE/v1/authorize" -d '{
  "principal": {"id": "carol", "groups": ["hr"]},
  "action": "EncryptWithKey",
  "resource": {"uri": "kylo:kylo:vault:keys:k2", "owner": "bob",
               "attributes": {"permissions": {"EncryptWithKey": ["hr"]}}},
  "environment": {"source_ip": "10.1.2.3", "port": 443}
}'

say "the same for dave (finance), with the explanation -> deny no_applicable_policy"
call "${JSON[@]}" "$BASE/v1/authorize" -d '{
  "principal": {"id": "dave", "groups": ["finance"]},
  "action": "EncryptWithKey",
  "resource": {"uri": "kylo:kylo:vault:keys:k2", "owner": "bob",
               "attributes": {"permissions": {"EncryptWithKey": ["hr"]}}},
  "explain": true
}'

say "a batch: one principal, checks decided in order against one snapshot"
call "${JSON[@]}" "$BASE/v1/authorize/batch" -d '{
  "principal": {"id": "bob"},
  "checks": [
    {"action": "DeleteKey", "resource": {"uri": "kylo:kylo:vault:keys:k1", "owner": "bob"}},
    {"action": "DeleteKey", "resource": {"uri": "kylo:kylo:vault:keys:k2", "owner": "carol"}},
    {"action": "CreateKey", "resource": {"uri": "kylo:kylo:vault:keys:k3"}}
  ]
}'

say "a token in Authorization: Bearer (its claims are the principal; a bad one is deny unauthenticated)"
call "${JSON[@]}" -H "Authorization: Bearer ${TOKEN:-not.a.token}" "$BASE/v1/authorize" -d '{
  "action": "DeleteKey",
  "resource": {"uri": "kylo:kylo:vault:keys:k1"}
}'

say "status: the loaded set, reload history, token keys"
call "$BASE/v1/status"

say "liveness"
call "$BASE/healthz"

say "the OpenAPI document (first lines)"
curl -sS "$BASE/v1/openapi.json" | sed -n '1,5p'   # sed reads it all: no SIGPIPE under pipefail

say "bad request: an empty principal.id -> 400 naming the field"
call "${JSON[@]}" "$BASE/v1/authorize" -d '{"principal": {"id": ""}, "action": "ReadKey"}'

say "bad request: not application/json -> 415"
call -H 'Content-Type: text/plain' "$BASE/v1/authorize" -d 'hello'

say "wrong method -> 405 (with Allow: POST)"
call "$BASE/v1/authorize"

# Needs examples/doors/mapping.yaml in the policy directory: without an HttpMapping every path is unmapped (403).
# With it: 401 without credentials, 200 or 403 with a token.
say "forward-auth, as nginx asks it: DELETE /api/v1/vault/keys2/k1"
AUTH=()
if [[ -n "${TOKEN:-}" ]]; then AUTH=(-H "Authorization: Bearer $TOKEN"); fi
call -i -H 'X-Original-Method: DELETE' -H 'X-Original-URI: /api/v1/vault/keys2/k1' ${AUTH[@]+"${AUTH[@]}"} \
  "$BASE/v1/forward-auth"

#!/usr/bin/env bash
# gRPC with grpcurl, over TCP and over the Unix socket. Server reflection is on, so no proto file is needed.
# Start the sidecar on the default pack with both listeners, from the repository root:
#
#   cargo run --release -- serve --listen 127.0.0.1:50051 --uds /tmp/arbiter.sock --http-listen 127.0.0.1:8080
#
# then run:  bash examples/doors/grpcurl.sh       (ARBITER_GRPC=host:port and ARBITER_UDS=/path to point elsewhere)
# The token call uses $TOKEN when it is set (with the server started with --jwks or --jwt-key; see
# examples/doors/README.md for a demo key and token), else a junk token that shows the `unauthenticated` answer.
set -euo pipefail

TCP="${ARBITER_GRPC:-127.0.0.1:50051}"
SOCK="${ARBITER_UDS:-/tmp/arbiter.sock}"

say() { printf '\n== %s\n' "$*"; }

say "services over TCP"
grpcurl -plaintext "$TCP" list

say "services over the Unix socket (any :authority is accepted)"
grpcurl -plaintext -unix "$SOCK" list

say "Authorize over the socket: carol (hr) encrypts with bob's key, whose permissions grant hr"
grpcurl -plaintext -unix -d '{
  "principal": {"id": "carol", "groups": ["hr"]},
  "action": "EncryptWithKey",
  "resource": {"uri": "kylo:kylo:vault:keys:k2", "owner": "bob",
               "attributes": {"permissions": {"EncryptWithKey": ["hr"]}}},
  "environment": {"sourceIp": "10.1.2.3", "port": 443}
}' "$SOCK" arbiter.v1.Authorizer/Authorize

say "Authorize with a token instead of an id: the claims are the principal (sub -> id, groups -> groups)"
# A bad token is DENY `unauthenticated`, the cause in `explanation` and `explanationStruct` (never the token).
# Giving `id` or `groups` beside a token is INVALID_ARGUMENT.
grpcurl -plaintext -d "{
  \"principal\": {\"token\": \"${TOKEN:-not-a-token}\"},
  \"action\": \"DeleteKey\",
  \"resource\": {\"uri\": \"kylo:kylo:vault:keys:k1\"}
}" "$TCP" arbiter.v1.Authorizer/Authorize

say "AuthorizeBatch: one principal, checks in order"
grpcurl -plaintext -d '{
  "principal": {"id": "bob"},
  "checks": [
    {"action": "DeleteKey", "resource": {"uri": "kylo:kylo:vault:keys:k1", "owner": "bob"}},
    {"action": "DeleteKey", "resource": {"uri": "kylo:kylo:vault:keys:k2", "owner": "carol"}}
  ]
}' "$TCP" arbiter.v1.Authorizer/AuthorizeBatch

say "GetStatus and health over the socket"
grpcurl -plaintext -unix "$SOCK" arbiter.v1.Authorizer/GetStatus
grpcurl -plaintext -unix -d '{"service": "arbiter.v1.Authorizer"}' "$SOCK" grpc.health.v1.Health/Check

say "bad input: INVALID_ARGUMENT naming the field (grpcurl exits non-zero; shown, not fatal)"
grpcurl -plaintext -d '{"principal": {"id": ""}, "action": "ReadKey"}' "$TCP" arbiter.v1.Authorizer/Authorize || true

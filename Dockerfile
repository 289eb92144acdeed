# Arbiter as a container image: a static binary and the CA certificates, nothing else, run as a non-root user.
#
#   docker build -t arbiter .
#   docker run --rm -v "$PWD/policies:/policies:ro" -p 50051:50051 arbiter
#
# Stage 1 builds a fully static binary against musl (jemalloc and ring are compiled in).
FROM rust:1.88-alpine3.22 AS build
# The C parts (jemalloc's configure and make, ring's assembly) need a compiler, make and musl's headers. The
# base image's tag pins the Alpine release; exact package pins would break on each Alpine rebuild.
# hadolint ignore=DL3018
RUN apk add --no-cache gcc make musl-dev
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin arbiter \
    && strip target/release/arbiter \
    && install -D -m 0755 target/release/arbiter /out/arbiter \
    && install -D -m 0644 /etc/ssl/certs/ca-certificates.crt /out/ca-certificates.crt

# Stage 2: an empty image with the binary and the CA certificates (for TLS client-CA and JWKS files).
FROM scratch
COPY --from=build /out/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/arbiter /usr/local/bin/arbiter
# An unprivileged user and group with no entry in /etc/passwd: nothing in the image needs one.
USER 65532:65532
EXPOSE 50051
ENTRYPOINT ["/usr/local/bin/arbiter"]
CMD ["serve", "--policies", "/policies", "--listen", "0.0.0.0:50051"]

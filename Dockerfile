# syntax=docker/dockerfile:1.7
# The four services, built once from this workspace:
#   builder   the pinned Rust toolchain and the C headers the build needs (as scripts/dev/deps.sh
#             installs them), then `cargo build --release --locked` of the four binaries
#   runtime   debian:bookworm-slim with the shared libraries they link (libssl3 for native-tls;
#             zlib, libgcc and libc are in the base), all four binaries and a health check, as
#             the unprivileged user `cdc`
#   extractor, transformer, loader, reconciler
#             the runtime with that service's entrypoint, ports and health check: the targets
#             compose/docker-compose.yml builds (`docker build --target loader .`); the last
#             stage, `pipeline`, is the runtime itself (`docker run … cdc-loader --config …`)
# BuildKit cache mounts keep the cargo registry and target directory between builds, so a
# rebuild after a source change recompiles only the workspace's own crates.

FROM rust:1.95.0-bookworm AS builder
# cmake and the curl/OpenSSL headers for librdkafka's bundled build and native-tls, as
# scripts/dev/deps.sh installs them; protoc comes from the protoc-bin-vendored crate.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      cmake libcurl4-openssl-dev libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock rust-toolchain.toml ./
COPY proto proto
COPY libs libs
COPY services services
COPY tests tests
COPY tools tools
# The toolchain is the one rust-toolchain.toml pins (the image's own); naming it through
# RUSTUP_TOOLCHAIN keeps rustup from fetching the file's lint components, which a build does
# not use. The binaries leave the cache-mounted target directory before the step ends.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    export RUSTUP_TOOLCHAIN="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)" \
 && cargo build --release --locked -p cdc-extractor -p cdc-transformer -p cdc-loader -p cdc-reconciler --bins \
 && mkdir -p /out \
 && cp target/release/cdc-extractor target/release/cdc-transformer \
       target/release/cdc-loader target/release/cdc-reconciler /out/

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10000 cdc \
 && useradd --system --uid 10000 --gid cdc --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin cdc
COPY --from=builder /out/ /usr/local/bin/
# `cdc-healthcheck PORT [PATH]`: exit 0 when the service's metrics endpoint on 127.0.0.1:PORT
# answers PATH (default /healthz) with 200; bash's /dev/tcp, so the image needs no curl.
COPY --chmod=0755 <<'EOF' /usr/local/bin/cdc-healthcheck
#!/bin/bash
set -u
port=${1:?usage: cdc-healthcheck PORT [PATH]}
path=${2:-/healthz}
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
IFS= read -r -t 5 status <&3 || exit 1
[[ $status == "HTTP/1."[01]" 200"* ]]
EOF
# glibc gives each thread that allocates an arena of its own (up to eight per core) and keeps
# their freed memory; two arenas cut the extractor's and the transformer's RSS by a third at
# the same throughput. It also raises the size from which a block is mapped of its own to the
# largest block freed so far (up to 32 MiB), after which batch-sized buffers stay in the heap;
# a fixed 128 KiB took the loader's peak RSS from 88 - 97 to 70 - 79 MB (README, end-to-end
# benchmark). An operator may override either.
ENV MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072
USER cdc:cdc
WORKDIR /tmp

FROM runtime AS extractor
EXPOSE 50051 9101
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s CMD ["cdc-healthcheck", "9101"]
ENTRYPOINT ["/usr/local/bin/cdc-extractor"]
CMD ["--config", "/etc/cdc/extractor.toml"]

FROM runtime AS transformer
EXPOSE 50052 9102
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s CMD ["cdc-healthcheck", "9102"]
ENTRYPOINT ["/usr/local/bin/cdc-transformer"]
CMD ["--config", "/etc/cdc/transformer.toml"]

FROM runtime AS loader
EXPOSE 50053 9103
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s CMD ["cdc-healthcheck", "9103"]
ENTRYPOINT ["/usr/local/bin/cdc-loader"]
CMD ["--config", "/etc/cdc/loader.toml"]

FROM runtime AS reconciler
EXPOSE 50054 9104
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s CMD ["cdc-healthcheck", "9104"]
ENTRYPOINT ["/usr/local/bin/cdc-reconciler"]
CMD ["--config", "/etc/cdc/reconciler.toml"]

FROM runtime AS pipeline
CMD ["cdc-extractor", "--help"]

# The peerchain node image: build with the Rust toolchain, run as a non-root user on a slim
# base. Both bases are build arguments, so a registry mirror or a base made locally can stand
# in (docs/DEPLOY.md; CI builds deploy/docker/Dockerfile.prebuilt from a base made here).
#
#   docker build -t peerchain:local .
#   docker run --rm -p 8710:8710 -p 7710:7710 peerchain:local node --dev
ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p peerchain \
    && install -D -m 0755 target/release/peerchain /out/usr/local/bin/peerchain \
    && mkdir -p /out/owned/data

# The runtime stage runs nothing at build time (no RUN), so any base with glibc works, a
# `FROM scratch` root filesystem included.
FROM ${RUNTIME_IMAGE}
COPY --from=build /out/usr/local/bin/peerchain /usr/local/bin/peerchain
# /data is an entry of the copied directory, so it gets the owner too.
COPY --from=build --chown=10001:10001 /out/owned/ /
USER 10001:10001
VOLUME ["/data"]
# P2P (libp2p TCP) and HTTP (API, explorer, /metrics).
EXPOSE 7710 8710
ENV PEERCHAIN_DATA_DIR=/data \
    PEERCHAIN_P2P_LISTEN=/ip4/0.0.0.0/tcp/7710 \
    PEERCHAIN_RPC_LISTEN=0.0.0.0:8710 \
    PEERCHAIN_LOG_FORMAT=json
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/peerchain", "status", "--rpc", "http://127.0.0.1:8710", "--format", "line"]
ENTRYPOINT ["/usr/local/bin/peerchain"]
CMD ["node"]

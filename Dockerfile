# syntax=docker/dockerfile:1.7
# The control plane's image: `stackspin serve` and nothing else, as user 10001, for the
# read-only root filesystem the chart (charts/stackspin) runs it with.
# Build: docker build -t ghcr.io/stackspin/stackspin:TAG .
# Not built by the test suite: this machine has no container engine.

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
# The cache mounts keep the registry and the build folder between builds, so a change to our
# code does not rebuild the dependencies.
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY catalog ./catalog
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p stackspin \
 && install -D -m 0755 target/release/stackspin /out/stackspin

# glibc and CA certificates only (the binary links rustls; certificates are for SMTP and
# the OIDC peers it calls), no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/stackspin /usr/local/bin/stackspin
USER 10001:10001
EXPOSE 8080
ENV STACKSPIN_LISTEN=0.0.0.0:8080 \
    STACKSPIN_DATA_DIR=/data \
    STACKSPIN_LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/stackspin"]
CMD ["serve"]

# Multi-stage build: a Rust builder with cmake (pingora builds zlib-ng with it; OpenSSL is
# vendored and needs perl + make), then a slim runtime with CA certificates, as a non-root user.
FROM rust:1-bookworm AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake perl make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
COPY routes ./routes
COPY openapi ./openapi
# The image is a production build: no vendor sandboxes, no `switchboard demo` (cargo feature
# `sandbox`). `--build-arg CARGO_FEATURES=` keeps them.
ARG CARGO_FEATURES=--no-default-features
RUN cargo build --release --locked $CARGO_FEATURES

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin switchboard
COPY --from=builder /src/target/release/switchboard /usr/local/bin/switchboard
COPY config /etc/switchboard/config
COPY routes /etc/switchboard/routes
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_DIR=/etc/ssl/certs
USER switchboard
EXPOSE 8080 9090
# config/switchboard.yaml sets grace_period_seconds: 10 and graceful_shutdown_timeout_seconds: 5;
# give `docker stop` more than their sum (e.g. `docker stop -t 20`, or stop_grace_period: 20s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["switchboard"]
CMD ["run", "--config", "/etc/switchboard/config/switchboard.yaml", "--pid-file", "/tmp/switchboard.pid", "--upgrade-sock", "/tmp/switchboard_upgrade.sock"]

# Builds the single `sesame` binary; used by docker-compose.yml.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin sesame

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /var/lib/sesame sesame \
    && mkdir -p /var/lib/sesame && chown sesame /var/lib/sesame
COPY --from=build /src/target/release/sesame /usr/local/bin/sesame
USER sesame
ENTRYPOINT ["sesame"]
# Off loopback, Sesame serves TLS only: mount the certificate and key at /etc/sesame/tls
# (docker-compose.yml shows how to make them), or add --allow-plain-http behind a proxy that
# terminates TLS.
CMD ["serve", "--s3-addr", "0.0.0.0:9440", "--api-addr", "0.0.0.0:9441", "--data-dir", "/var/lib/sesame", \
     "--tls-cert", "/etc/sesame/tls/cert.pem", "--tls-key", "/etc/sesame/tls/key.pem"]

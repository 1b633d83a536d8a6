# syntax=docker/dockerfile:1
# rolerelay: a static (musl) binary on an empty base with CA certificates, run as a non-root
# numeric user. Works with a read-only root file system: it writes only to its output volume.

FROM rust:1.94-alpine3.22 AS build
# hadolint ignore=DL3018
RUN apk add --no-cache musl-dev gcc make perl cmake ca-certificates
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked \
 && install -D -m 0755 target/release/rolerelay /out/rolerelay \
 && install -d -o 65532 -g 65532 -m 0755 /out/var/run/rolerelay

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/rolerelay /rolerelay
# The output directory exists and belongs to the runtime user, so an ECS bind-mount volume
# (seeded from the image) and a plain `docker run` are writable without root.
COPY --from=build --chown=65532:65532 /out/var/run/rolerelay /var/run/rolerelay
USER 65532:65532
ENV ROLERELAY_OUTPUT_DIR=/var/run/rolerelay
EXPOSE 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["/rolerelay", "healthcheck"]
ENTRYPOINT ["/rolerelay"]
CMD ["run"]

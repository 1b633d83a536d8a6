# syntax=docker/dockerfile:1
# rolerelay: a static (musl) binary on an empty base with CA certificates, run as a non-root
# numeric user. Works with a read-only root file system: it writes only to its output volume.

FROM rust:1.94-alpine3.22 AS build
# hadolint ignore=DL3018
RUN apk add --no-cache musl-dev gcc make perl cmake ca-certificates
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
# The link of the release binary: packed relocations (.cargo, musl builds) and no unwind
# tables (build.rs and its linker script, link/).
COPY .cargo ./.cargo
COPY link ./link
COPY src ./src
RUN cargo build --release --locked \
 && install -D -m 0755 target/release/rolerelay /out/rolerelay \
 && install -d -o 65532 -g 65532 -m 0755 /out/var/run/rolerelay

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/rolerelay /rolerelay
# The output directory exists and belongs to the runtime user. Declared a VOLUME, so ECS seeds
# a task bind mount at this path from the image (with that owner), and a plain `docker run`
# gets a writable anonymous volume; both without root. (It is also outputs.directory's default;
# no ROLERELAY_OUTPUT_DIR here, which would override the configuration file.)
COPY --from=build --chown=65532:65532 /out/var/run/rolerelay /var/run/rolerelay
VOLUME ["/var/run/rolerelay"]
USER 65532:65532
EXPOSE 9090
# /servingz: unhealthy for a wedged loop or expired credentials, not for a failing STS alone.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["/rolerelay", "healthcheck"]
ENTRYPOINT ["/rolerelay"]
CMD ["run"]

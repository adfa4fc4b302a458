# syntax=docker/dockerfile:1
#
# drover: build a release binary, ship it alone on a slim Debian base.
#   docker build -t drover:dev .
#   docker run --rm drover:dev                  # prints `drover sync --help`
#
# drover talks to git remotes through libgit2 (git2), so the image needs no git
# binary. The runtime stage carries only what the binary links against: glibc,
# zlib, and libssl + CA certificates for HTTPS remotes.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
# Debian's archive keeps only the current version of each package, so pinning
# one (hadolint DL3008) breaks the build at the next security update; the base
# image's tag pins the release instead.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
COPY . .
# Cache the registry and the target dir between builds; copy the binary out of
# the cache mount so the next stage can see it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin drover \
 && install -D -m 0755 target/release/drover /out/drover

FROM debian:bookworm-slim AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 drover \
 && useradd --system --uid 65532 --gid 65532 --home-dir /var/lib/drover \
      --no-create-home --shell /usr/sbin/nologin drover \
 && install -d -o 65532 -g 65532 -m 0750 /var/lib/drover
COPY --from=builder /out/drover /usr/local/bin/drover
# Numeric, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 65532:65532
WORKDIR /var/lib/drover
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/drover"]
CMD ["sync", "--help"]

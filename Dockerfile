# Multi-stage build of every CAAS binary; each service image picks its binary with SERVICE.
#   docker build --build-arg SERVICE=ingest -t caas-ingest .
FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --workspace --bins \
    && mkdir -p /out && find target/release -maxdepth 1 -type f -perm -u+x -name 'caas*' -exec cp {} /out/ \;

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 caas
ARG SERVICE
ENV SERVICE=${SERVICE}
COPY --from=build /out/ /usr/local/bin/
COPY topics /app/topics
COPY schemas /app/schemas
WORKDIR /app
USER caas
ENTRYPOINT ["/bin/sh", "-c", "exec /usr/local/bin/caas-${SERVICE}"]

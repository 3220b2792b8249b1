# Entente's daemon (`entente`) with the web tic-tac-toe, and anvil for a local demo chain.
#
#   docker build -t entente .            (or: podman build -t entente .)
#   docker compose up                    (anvil + two daemons; see docker/compose.yaml)
#
# Three stages: the web front-end and the npm toolchain (anvil), the release build of the
# daemon, then a slim runtime with the two binaries and the page. The base images are arguments
# so that a machine without access to Docker Hub can build from local copies.
ARG NODE_IMAGE=docker.io/library/node:20-bookworm-slim
ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${NODE_IMAGE} AS web
WORKDIR /src
COPY package.json package-lock.json ./
COPY clients/typescript/package.json clients/typescript/
COPY web/package.json web/
RUN npm ci --no-audit --no-fund --loglevel=error
COPY clients/typescript clients/typescript
COPY web web
RUN npm run build -w @entente/web

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY examples examples
COPY contracts/artifacts contracts/artifacts
RUN cargo build --release --locked -p entente-daemon \
    && cp target/release/entente /usr/local/bin/entente

FROM ${RUNTIME_IMAGE}
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 entente \
    && mkdir /shared && chown entente /shared
COPY --from=build /usr/local/bin/entente /usr/local/bin/entente
COPY --from=web /src/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil /usr/local/bin/anvil
COPY --from=web /src/web/dist /usr/share/entente/web
COPY docker/demo-player /usr/local/bin/demo-player
COPY LICENSE /usr/share/doc/entente/LICENSE
USER entente
ENV ENTENTE_HOME=/home/entente/.entente
# The API (and the page) and the peer-to-peer port.
EXPOSE 7545 4001
ENTRYPOINT ["entente"]
CMD ["--help"]

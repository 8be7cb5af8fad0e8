# syntax=docker/dockerfile:1
#
# hanmadi API: serves a model directory over HTTP, on the CPU.
#
#   docker build -f docker/api.Dockerfile -t hanmadi-api .
#   docker run --rm -p 3000:3000 hanmadi-api
#
# The build context is the repository root (see .dockerignore). The image
# ships the repository's base model, models/hanmadi-base, read-only at
# /opt/hanmadi/models/hanmadi-base, and serves it by default with the
# `hanmadi serve` command `pnpm serve` runs. Every serve flag can also be set
# by its environment variable (HANMADI_PORT, HANMADI_MAX_QUEUE, …; see
# `pnpm serve --help`). For a model of your own, mount a volume at /models and
# point HANMADI_MODEL at a run directory in it:
#
#   docker run --rm -p 3000:3000 -v hanmadi-models:/models \
#     -e HANMADI_MODEL=/models/hanmadi hanmadi-api
#
# scripts/docker/*.test.ts runs this file's deploy command and entrypoint
# without Docker.

ARG NODE_IMAGE=node:20-bookworm-slim
ARG PNPM_VERSION=12.21.0

# --- build: the bundled `hanmadi` command and the packages it leaves to node_modules ---
FROM ${NODE_IMAGE} AS build
ARG PNPM_VERSION
ENV CI=true
RUN npm install --global "pnpm@${PNPM_VERSION}" && npm cache clean --force
WORKDIR /src
# The store is filled from the lockfile alone, so this layer survives source edits.
COPY pnpm-lock.yaml pnpm-workspace.yaml ./
RUN pnpm fetch
COPY . .
# The install's prepare script bundles apps/cli/dist with esbuild (a dev dependency).
RUN pnpm install --frozen-lockfile --offline
# dist/ and only the production dependencies of @hanmadi/cli: TensorFlow.js,
# Dawn and Swagger UI, which the bundle loads from node_modules.
RUN pnpm --filter @hanmadi/cli deploy --prod --frozen-lockfile --offline /out

# --- runtime ------------------------------------------------------------------
FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    HANMADI_MODEL=/opt/hanmadi/models/hanmadi-base \
    HANMADI_HOST=0.0.0.0 \
    HANMADI_PORT=3000
# The shipped base model, served unless HANMADI_MODEL says otherwise: outside
# the /models volume, so that mounting one does not hide it.
COPY models/hanmadi-base /opt/hanmadi/models/hanmadi-base
WORKDIR /app
# Owned by root and read-only to the service, like the model above; only
# /models is its own.
COPY --from=build /out /app
RUN mkdir -p /models && chown node:node /models
VOLUME ["/models"]
USER node
EXPOSE 3000
# No curl in the slim image: Node's fetch asks /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + process.env.HANMADI_PORT + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node is PID 1 and gets `docker stop`'s SIGTERM itself. Extra `docker run`
# arguments are serve flags (`docker run … hanmadi-api --max-queue 64`).
ENTRYPOINT ["node", "dist/hanmadi.mjs", "serve"]
CMD []

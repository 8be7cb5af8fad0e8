# syntax=docker/dockerfile:1
#
# hanmadi trainer on an NVIDIA GPU: `pnpm train` on libtensorflow through
# @tensorflow/tfjs-node-gpu (CUDA 11.2, cuDNN 8.1).
#
#   docker build -f docker/trainer-gpu.Dockerfile -t hanmadi-trainer-gpu .
#   docker run --rm --gpus all -v hanmadi-models:/models hanmadi-trainer-gpu
#
# The build context is the repository root (see .dockerignore). The image
# carries the repository's base model read-only at
# /opt/hanmadi/models/hanmadi-base, and by default fine-tunes it on the bundled
# corpus into /models/hanmadi, as `pnpm start` does. Arguments replace that and
# go to `hanmadi train`, the command `pnpm train` runs (`pnpm train --help`). HANMADI_BACKEND=tensorflow makes a
# missing GPU library an error instead of a silent fall-back to the CPU; pass
# `--backend wasm` to train without a GPU. scripts/docker/*.test.ts runs this
# file's deploy command and entrypoint without Docker (and without a GPU).

ARG NODE_IMAGE=node:20-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04
ARG PNPM_VERSION=12.21.0
ARG TFJS_NODE_GPU_VERSION=4.22.0

FROM ${NODE_IMAGE} AS node

# --- build: the bundled `hanmadi` command, its node_modules and tfjs-node-gpu ---
FROM node AS build
ARG PNPM_VERSION
ARG TFJS_NODE_GPU_VERSION
ENV CI=true
# tfjs-node-gpu's install script downloads libtensorflow and a prebuilt
# binding; python3, make and g++ let node-pre-gyp build the binding if the
# prebuilt one cannot be fetched.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
RUN npm install --global "pnpm@${PNPM_VERSION}" && npm cache clean --force
WORKDIR /src
# The store is filled from the lockfile alone, so this layer survives source edits.
COPY pnpm-lock.yaml pnpm-workspace.yaml ./
RUN pnpm fetch
COPY . .
# The workspace denies tfjs-node-gpu's install script (it downloads
# libtensorflow); here it must run. grep fails the build if the entry moved.
RUN sed -i "s#^\(  '@tensorflow/tfjs-node-gpu'\): false\$#\1: true#" pnpm-workspace.yaml \
 && grep -qx "  '@tensorflow/tfjs-node-gpu': true" pnpm-workspace.yaml
# tfjs-node-gpu becomes a dependency of the command in this image only, so
# that the bundle finds it in node_modules beside the rest of TensorFlow.js
# (@tensorflow/tfjs-core stays one copy, 4.22.0).
RUN pnpm --filter @hanmadi/cli add "@tensorflow/tfjs-node-gpu@${TFJS_NODE_GPU_VERSION}" --lockfile-only
# The install's prepare script bundles apps/cli/dist with esbuild (a dev dependency).
RUN pnpm install --frozen-lockfile
RUN pnpm --filter @hanmadi/cli deploy --prod --frozen-lockfile /out

# --- runtime: CUDA 11.2 + cuDNN 8 with Node 20 from the official image -------
# (Node 20's binary needs glibc 2.28 and GLIBCXX 3.4.21; Ubuntu 20.04 has 2.31.)
FROM ${CUDA_IMAGE}
COPY --from=node /usr/local/bin/node /usr/local/bin/node
ENV NODE_ENV=production \
    HANMADI_BACKEND=tensorflow
RUN useradd --uid 1000 --user-group --create-home hanmadi \
 && mkdir -p /models \
 && chown hanmadi:hanmadi /models
# The base model to fine-tune (--init-from), owned by root and read-only;
# outside the /models volume, so that mounting one does not hide it.
COPY models/hanmadi-base /opt/hanmadi/models/hanmadi-base
WORKDIR /app
COPY --from=build /out /app
COPY data/hanmadi-qa.csv data/README.md /app/data/
VOLUME ["/models"]
USER hanmadi
# node is PID 1: `docker stop`'s SIGTERM ends the step and writes a checkpoint.
ENTRYPOINT ["node", "dist/hanmadi.mjs", "train"]
# The quickstart's fine-tuning (pnpm start): the last checkpoint of 8 epochs.
CMD ["--init-from", "/opt/hanmadi/models/hanmadi-base", "--data", "data/hanmadi-qa.csv", "--out", "/models/hanmadi", "--epochs", "8", "--average", "1"]

# syntax=docker/dockerfile:1
# Otesse key service image.
#   docker build -t registry.example.com/otesse/otesse-keys:$(git rev-parse --short HEAD) .
# Both stages are Debian 12 (bookworm, glibc): the prebuilt native package that
# @node-rs/argon2 installs (linux-x64-gnu) is chosen at `npm ci` time and must match the C
# library of the runtime image. Bases are pinned by version tag and digest; refresh both
# together (docs/deploying.md).

# ---- build: all dependencies, TypeScript compile ----
FROM node:24.19.0-bookworm-slim@sha256:3638d9a6fe4030bd716be989438248074489337ba3275657f93595428be4fc03 AS build
WORKDIR /app
COPY package.json package-lock.json ./
# The npm workspace @otesse/keys-client (its deny-reason table is shared with forward auth and Envoy Check).
COPY packages ./packages
# --ignore-scripts: the package's own "prepare" script would build before the sources are in.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY proto ./proto
COPY migrations ./migrations
COPY src ./src
# The dashboard's sources: npm run build bundles them into dist/console (served at /console).
COPY console ./console
RUN npm run build

# ---- prod-deps: production dependencies only, same base as the build ----
# (npm runs here, not in the runtime stage, which has no shell and no npm.) The compiler, the
# type packages and the test and bench tools are devDependencies: --omit=dev leaves them out.
FROM node:24.19.0-bookworm-slim@sha256:3638d9a6fe4030bd716be989438248074489337ba3275657f93595428be4fc03 AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages ./packages
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# ---- runtime: distroless Node 24 (the current LTS; Node 20 reached its end of life in April 2026) on Debian 12, no shell, no package manager ----
FROM gcr.io/distroless/nodejs24-debian12:nonroot@sha256:14d42e2511532589a7c7e01a753667a74fcc96266e137e8125006b87b0c32d0a AS runtime
WORKDIR /app
ENV NODE_ENV=production
# Owned by root and not writable by the service user; the only writable path at run time is
# /tmp (an emptyDir in Kubernetes; the root filesystem is mounted read-only).
COPY --from=prod-deps /app/node_modules ./node_modules
# node_modules/@otesse/keys-client links here: the built workspace package only.
COPY --from=build /app/packages/keys-client/package.json ./packages/keys-client/package.json
COPY --from=build /app/packages/keys-client/dist ./packages/keys-client/dist
COPY --from=build /app/packages/keys-client/proto ./packages/keys-client/proto
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/dist ./dist
COPY --from=build /app/proto ./proto
COPY --from=build /app/migrations ./migrations
# distroless "nonroot": numeric so that Kubernetes runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 50051 50052 8080
# No HEALTHCHECK: Kubernetes probes grpc.health.v1.Health (k8s/base/deployment.yaml).
# Exec form: node is PID 1 and handles SIGTERM itself (graceful shutdown). The flags: src/node-flags.ts.
# Migration Job: same image with args ["dist/src/migrate.js"].
ENTRYPOINT ["/nodejs/bin/node"]
CMD ["--min-semi-space-size=16", "--max-semi-space-size=16", "dist/src/main.js"]

# TwinFlow image: one process entry (dist/worker/main.js); TWINFLOW_ROLES=api,worker picks what it runs.
# Build:  docker build -t twinflow:local .
# Run:    see docker-compose.yml (TEMPORAL_ADDRESS and MONGODB_URI must point at real servers in a container).
# Pin the base further with --build-arg NODE_IMAGE=node:20-bookworm-slim@sha256:... for reproducible builds.
ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: compile TypeScript to dist/ ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# TwinFlow needs Node.js 20.19 or newer (package.json engines); fail the build early on an older base.
RUN node -e "const [a,b]=process.versions.node.split('.').map(Number);if(a<20||(a===20&&b<19)){console.error('Node '+process.version+' is too old: TwinFlow needs 20.19+');process.exit(1)}"
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && test -f dist/worker/main.js && test -f dist/workflows/index.js

# ---- runtime: production dependencies and the compiled code only ----
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production TWINFLOW_HOST=0.0.0.0
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
# The worker bundles the workflow code at start from dist/workflows (require.resolve('../workflows')).
COPY --from=build /app/dist ./dist
# TWINFLOW_DATA_DIR defaults to .twinflow (the admin key file when no TWINFLOW_BOOTSTRAP_API_KEY is given).
RUN mkdir -p /app/.twinflow && chown node:node /app/.twinflow
# The official image's unprivileged user (uid 1000).
USER node
EXPOSE 8080 8443 8883
# The API serves GET /healthz; a worker-only container (TWINFLOW_ROLES=worker) serves no HTTP, so there the
# check only confirms that the process is up (Temporal's Web UI shows the worker's pollers).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "const roles=(process.env.TWINFLOW_ROLES||'api,worker').split(',').map((r)=>r.trim());if(!roles.includes('api'))process.exit(0);fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz',{signal:AbortSignal.timeout(4000)}).then((r)=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/worker/main.js"]

# Build stage: compile TypeScript with the dev dependencies, then drop them.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json app.ts server.ts ./
COPY bus ./bus
COPY config ./config
COPY plugins ./plugins
COPY routes ./routes
COPY schemas ./schemas
COPY services ./services
COPY stores ./stores
COPY types ./types
RUN npm run build && npm prune --omit=dev

# Run stage: production dependencies and compiled code only, as a non-root user.
FROM node:20-bookworm-slim
# Fewer glibc malloc arenas: measured to halve RSS per connected instance.
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:' + process.env.PORT + '/health/live').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
# No npm in the way, so SIGTERM reaches the service and it shuts down gracefully.
CMD ["node", "dist/server.js"]

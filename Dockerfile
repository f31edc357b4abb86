# WHIP/WHEP SFU: Node 24 (LTS) + FFmpeg (Debian's, for recordings playback and the bridges).
FROM node:24-bookworm-slim AS build
# A compiler for the native forwarding addon, which npm ci builds (README: Forwarding and performance).
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ make python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY native ./native
RUN npm ci && mkdir -p native/build/Release
COPY src ./src
RUN npx tsc -p tsconfig.json && npm prune --omit=dev

FROM node:24-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/native/build/Release ./native/build/Release
COPY package.json ./
COPY web ./web
RUN mkdir -p /app/records && chown -R node:node /app/records
USER node
ENV NODE_ENV=production \
    PORT=8080 \
    HOST=0.0.0.0 \
    RECORD_DIR=/app/records \
    ICE_PORT_RANGE=40000-40199
VOLUME ["/app/records"]
# HTTP API and pages; WebRTC media on the UDP range above (publish it 1:1, e.g.
# `-p 8080:8080 -p 40000-40199:40000-40199/udp`, and set ICE_PUBLIC_IPS to the host's address).
EXPOSE 8080 40000-40199/udp
CMD ["node", "dist/main.js"]

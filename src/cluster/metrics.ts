// Cluster gauges in a node's /metrics (docs/api.md, "Cluster"): read at scrape time from what the
// last heartbeat listing saw, so a scrape never waits on Redis.
import { Gauge, type Registry } from "prom-client";
import type { ClusterNode } from "./node.js";

export function registerClusterMetrics(registry: Registry, node: ClusterNode): void {
  new Gauge({
    name: "cluster_redis_up",
    help: "1 while this node reaches the cluster's Redis, 0 while degraded",
    registers: [registry],
    collect() {
      this.set(node.health === "ok" ? 1 : 0);
    },
  });
  new Gauge({
    name: "cluster_nodes_alive",
    help: "Nodes with a heartbeat under 5 s old, this one included",
    registers: [registry],
    async collect() {
      const nodes = await node.nodes();
      this.set(nodes?.length ?? 0);
    },
  });
  new Gauge({
    name: "cluster_rooms",
    help: "Rooms with a publisher over every node",
    registers: [registry],
    collect() {
      let rooms = 0;
      for (const n of node.registry.lastAlive) rooms += n.rooms.filter((r) => r.own).length;
      this.set(rooms);
    },
  });
  new Gauge({
    name: "cluster_edge_pulls",
    help: "Rooms this node pulls from another node for its viewers",
    registers: [registry],
    collect() {
      this.set(node.pullCount);
    },
  });
  new Gauge({
    name: "cluster_edge_sessions",
    help: "Sessions on this node that other nodes pull rooms through",
    registers: [registry],
    collect() {
      this.set(node.edgeSessionCount);
    },
  });
  new Gauge({
    name: "cluster_draining",
    help: "1 while this node drains",
    registers: [registry],
    collect() {
      this.set(node.draining ? 1 : 0);
    },
  });
}

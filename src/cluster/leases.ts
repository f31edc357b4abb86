// Room ownership through Redis leases, fenced: a claim takes the key only when nobody holds it
// (SET NX PX under a fresh epoch), a refresh extends it only while the value is still this
// node's (compare-and-expire), and a node that finds its lease taken gives the room up. A refresh
// that cannot reach Redis keeps the room: no other node can claim it through the same outage.
import type { Logger } from "../logger.js";
import { keys, type Redis } from "./redis.js";

/** How long a lease lives without refresh; a dead owner's rooms are free after this. */
export const LEASE_MS = 10_000;
export const REFRESH_MS = 2_500;

// KEYS: owner, epoch, meta. ARGV: node id, ttl, meta. Returns the new value, or false when held.
const CLAIM = `
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local value = ARGV[1] .. ':' .. redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[2])
return value`;

// KEYS: owner, epoch, meta, the holder's registry entry. ARGV: node id, ttl, meta, the holder's
// value. As CLAIM, also when the lease is still the given holder's but its node is gone.
const TAKE_FROM_DEAD = `
local v = redis.call('GET', KEYS[1])
if v and (v ~= ARGV[4] or redis.call('EXISTS', KEYS[4]) == 1) then return false end
local value = ARGV[1] .. ':' .. redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[2])
return value`;

// KEYS: owner, meta. ARGV: value, ttl, meta. 1 = extended, 2 = had lapsed and is ours again, 0 = someone else's.
const REFRESH = `
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
  return 1
end
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
  return 2
end
return 0`;

// KEYS: owner, meta. ARGV: value.
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
return 0`;

/** Where a family of leases keeps its keys (rooms by default; jobs have their own). */
export interface LeaseKeys {
  /** What is leased, in log lines: "room", "job". */
  what: string;
  owner(name: string): string;
  epoch(name: string): string;
  meta(name: string): string;
}

const ROOM_KEYS: LeaseKeys = { what: "room", owner: keys.owner, epoch: keys.epoch, meta: keys.meta };

interface Held {
  value: string;
  meta: string;
}

export class RoomLeases {
  private readonly held = new Map<string, Held>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly redis: Redis,
    private readonly nodeId: string,
    private readonly log: Logger,
    /** The lease of a room this node serves is someone else's now: end the room. */
    private readonly lost: (room: string) => void,
    private readonly space: LeaseKeys = ROOM_KEYS,
  ) {
    this.timer = setInterval(() => void this.refreshAll(), REFRESH_MS);
    this.timer.unref();
  }

  /** Takes the room: true when it was free, false when another holder has it. Throws when Redis is away. */
  async claim(room: string, meta = "{}"): Promise<boolean> {
    const value = (await this.redis.eval(CLAIM, 3, this.space.owner(room), this.space.epoch(room), this.space.meta(room), this.nodeId, LEASE_MS, meta)) as
      | string
      | null;
    if (value === null) return false;
    this.held.set(room, { value, meta });
    return true;
  }

  /**
   * Takes the lease from a holder whose node left the registry (no heartbeat for NODE_TTL_MS),
   * before the lease itself lapses; `held` is the lease's value as read. Throws when Redis is away.
   */
  async claimFromDead(room: string, held: string, nodeKey: string, meta = "{}"): Promise<boolean> {
    const value = (await this.redis.eval(
      TAKE_FROM_DEAD,
      4,
      this.space.owner(room),
      this.space.epoch(room),
      this.space.meta(room),
      nodeKey,
      this.nodeId,
      LEASE_MS,
      meta,
      held,
    )) as string | null;
    if (value === null) return false;
    this.held.set(room, { value, meta });
    return true;
  }

  /** The room's tracks for edges; written now and with every refresh. */
  setMeta(room: string, meta: string): void {
    const h = this.held.get(room);
    if (!h) return;
    h.meta = meta;
    this.redis.set(this.space.meta(room), meta, "PX", LEASE_MS).catch(() => undefined);
  }

  holds(room: string): boolean {
    return this.held.has(room);
  }

  get rooms(): string[] {
    return [...this.held.keys()];
  }

  /** Gives the room up (only if the lease is still this node's). */
  release(room: string): void {
    const h = this.held.get(room);
    if (!h) return;
    this.held.delete(room);
    this.redis.eval(RELEASE, 2, this.space.owner(room), this.space.meta(room), h.value).catch(() => undefined);
  }

  /** The node that owns the room, or undefined. Throws when Redis is away. */
  async owner(room: string): Promise<string | undefined> {
    const value = await this.redis.get(this.space.owner(room));
    return value === null ? undefined : value.slice(0, value.lastIndexOf(":"));
  }

  async meta(room: string): Promise<string | undefined> {
    return (await this.redis.get(this.space.meta(room))) ?? undefined;
  }

  /** Extends every lease; also rebuilds them after Redis lost its keys (a restart). */
  async refreshAll(): Promise<void> {
    await Promise.all(
      [...this.held].map(async ([room, h]) => {
        let result: number;
        try {
          result = (await this.redis.eval(REFRESH, 2, this.space.owner(room), this.space.meta(room), h.value, LEASE_MS, h.meta)) as number;
        } catch {
          return; // Redis away: keep serving, nobody can claim it meanwhile.
        }
        if (this.held.get(room) !== h) return;
        const what = this.space.what;
        if (result === 2) this.log.info({ [what]: room }, `${what} lease renewed after it lapsed`);
        if (result === 0) {
          this.held.delete(room);
          this.log.warn({ [what]: room }, `${what} lease taken by another node: ending the ${what} here`);
          this.lost(room);
        }
      }),
    );
  }

  close(): void {
    clearInterval(this.timer);
    for (const room of [...this.held.keys()]) this.release(room);
  }
}

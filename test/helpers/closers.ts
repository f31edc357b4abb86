// Peers a test opens, closed after each test whatever it asserted: `const track = closeAfterEach();`
// at the top of a file, then `track(await publishTestStream(...))`.
import { afterEach } from "vitest";

export interface Closable {
  close(opts?: { vanish?: boolean }): Promise<void>;
}

export function closeAfterEach(): <T extends Closable>(x: T) => T {
  const open: Closable[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((x) => x.close()));
  });
  return (x) => {
    open.push(x);
    return x;
  };
}

// What relay requests look like on the wire: the forwardRequest API's example bodies and its n/r/k
// signature, shared by the pure request tests and the end-to-end relay tests.
import { createHash } from "node:crypto";

// The forwardRequest API's own signature example: key 012f37a3f2952, r 1409284800 → k b9fed80be752551834eec3e52fa94115.
export const KEY = "012f37a3f2952";
export const API_AUTH = "n=portal&r=1409284800&k=b9fed80be752551834eec3e52fa94115";
export const auth = (r = String(Date.now() % 1e10)) =>
  `n=portal&r=${r}&k=${createHash("md5")
    .update(r + KEY)
    .digest("hex")}`;

// The forwardRequest API's example bodies, unchanged (docs/bridges.md, "Relay tasks").
export const API_START = `{ "transcallbackurl": "http://www.callback.com/api", "cmd": "1", "type": "video", "list": [{ "id": "123", "src": [{ "url": "http://www.video.com/live/abc.mp4" }, { "url": "http://www.video.com/live/1.flv", "absofftime": "20181022153000-20181022155000" }, { "url": "http://www.video.com/live/2.mp4", "relofftime": "300-500" } ], "forward": [{ "url": "rtmp://www.push1.com/live/test" }, { "url": "rtmp://www.push2.com/live/test2" } ], "extendParam": { "loop": "1", "index": "1", "callBackFileInfo": "0" } }] }`;
export const API_STOP = `{ "transcallbackurl": "http://www.callback.com/api", "cmd": "2", "type": "video", "list": [{ "id": "123", "src": [{ "url": "" }], "forward": [{ "url": "rtmp://www.push1.com/live/test" }, { "url": "rtmp://www.push2.com/live/test2" }] }] }`;
export const API_SCHEDULED = `{ "transcallbackurl": "http://www.callback.com/api", "cmd": "1", "type": "video", "list": [{ "id": "123", "src": [{ "url": "http://www.video.com/live/abc.mp4" }, { "url": "http://www.video.com/live/1.flv", "absofftime": "20181022153000-20181022155000" }, { "url": "http://www.video.com/live/2.mp4", "relofftime": "300-500" }], "forward": [{ "url": "rtmp://www.push1.com/live/test" }, { "url": "rtmp://www.push2.com/live/test2" }], "extendParam": { "loop": "1", "index": "1", "callBackFileInfo": "0" }, "start": "1540216800000", "end": "1540220400000" }] }`;
export const API_UPDATE = `{ "transcallbackurl": "http://www.callback.com/api", "cmd": "3", "type": "video", "list": [{ "id": "123", "src": [{ "url": "http://www.video.com/live/d.mp4" }, { "url": "http://www.video.com/live/3.flv", "absofftime": "20181022153000-20181022155000" }, { "url": "http://www.video.com/live/4.mp4", "relofftime": "300-500" }], "forward": [{ "url": "rtmp://www.push1.com/live/test" }, { "url": "rtmp://www.push2.com/live/test2" }], "extendParam": { "loop": "1", "index": "1", "callBackFileInfo": "0", "waitCrtUrlFinish": "0" } }] }`;
export const API_RESUME = `{ "transcallbackurl": "http://www.callback.com/api", "cmd": "5", "type": "video", "list": [{ "id": "123", "src": [{ "url": "http://www.video.com/live/d.mp4" }, { "url": "http://www.video.com/live/3.flv", "absofftime": "20181022153000-20181022155000" }, { "url": "http://www.video.com/live/4.mp4", "relofftime": "300-500" }], "forward": [{ "url": "rtmp://www.push1.com/live/test" }, { "url": "rtmp://www.push2.com/live/test2", "resetUrl": "rtmp://www.push3.com/live/test3" }] }] }`;
export const API_FOPS = `{ "transcallbackurl": "http://www.callback.com/api", "cmd": "1", "type": "video", "list": [{ "id": "123", "src": [{ "url": "http://www.video.com/live/d.mp4", "wmimage": "http://ws.test.com/live/picture1.jpg", "wmgravity": "TOP_LEFT" }, { "url": "http://www.video.com/live/3.flv", "absofftime": "20181022153000-20181022155000" }, { "url": "http://www.video.com/live/4.mp4", "relofftime": "300-500" }], "forward": [{ "url": "rtmp://www.push1.com/live/test" }, { "url": "rtmp://www.push2.com/live/test2" }], "fops": { "bps": "1200", "res": "25", "fps": "1280x640", "vcodec": "libx265", "acodec": "libmp3lame" } }] }`;

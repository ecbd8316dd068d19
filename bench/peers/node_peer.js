// Peer: Node.js with the `ws` package; the JSON is stringified once per
// broadcast and sent to each other subscriber. Same bench protocol as tornado_peer.py,
// plus `auth`: an HS256 JWT checked with node:crypto (what a JWT library does).
// Usage: node node_peer.js PORT [JWT_SECRET]
"use strict";
const crypto = require("node:crypto");
const { WebSocketServer } = require("ws");

const channels = new Map();
const secret = process.argv[3] || "";
const wss = new WebSocketServer({ host: "127.0.0.1", port: Number(process.argv[2]), backlog: 1024, perMessageDeflate: false });

/** The claims of a valid, unexpired HS256 token with a `sub`, or null. */
function verify(token) {
  const parts = typeof token === "string" ? token.split(".") : [];
  if (parts.length !== 3) return null;
  const header = JSON.parse(Buffer.from(parts[0], "base64url"));
  if (header.alg !== "HS256") return null;
  const want = crypto.createHmac("sha256", secret).update(`${parts[0]}.${parts[1]}`).digest();
  const got = Buffer.from(parts[2], "base64url");
  if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) return null;
  const claims = JSON.parse(Buffer.from(parts[1], "base64url"));
  if (typeof claims.sub !== "string" || !(claims.exp > Date.now() / 1000)) return null;
  return claims;
}

wss.on("connection", (ws) => {
  const mine = new Set();
  ws.on("message", (raw) => {
    const msg = JSON.parse(raw);
    if (msg.type === "subscribe") {
      if (!channels.has(msg.channel)) channels.set(msg.channel, new Set());
      channels.get(msg.channel).add(ws);
      mine.add(msg.channel);
      ws.send(JSON.stringify({ type: "subscribed", channel: msg.channel }));
    } else if (msg.type === "message") {
      const text = JSON.stringify({ type: "message", channel: msg.channel, data: msg.data, timestamp: Date.now() });
      for (const sub of channels.get(msg.channel) || []) if (sub !== ws) sub.send(text);
    } else if (msg.type === "ping") {
      ws.send('{"type":"pong"}');
    } else if (msg.type === "auth") {
      let claims = null;
      try {
        claims = verify(msg.token);
      } catch {
        claims = null;
      }
      ws.send(claims
        ? JSON.stringify({ type: "authenticated", user: { id: claims.sub } })
        : '{"type":"error","code":"unauthorized","error":"invalid token"}');
    }
  });
  ws.on("close", () => {
    for (const c of mine) channels.get(c)?.delete(ws);
  });
});
process.on("SIGTERM", () => process.exit(0));

// Peer: Node.js with the `ws` package; the JSON is stringified once per
// broadcast and sent to each subscriber. Same bench protocol as tornado_peer.py.
// Usage: node node_peer.js PORT
"use strict";
const { WebSocketServer } = require("ws");

const channels = new Map();
const wss = new WebSocketServer({ host: "127.0.0.1", port: Number(process.argv[2]), backlog: 1024, perMessageDeflate: false });

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
      for (const sub of channels.get(msg.channel) || []) sub.send(text);
    } else if (msg.type === "ping") {
      ws.send('{"type":"pong"}');
    }
  });
  ws.on("close", () => {
    for (const c of mine) channels.get(c)?.delete(ws);
  });
});
process.on("SIGTERM", () => process.exit(0));

// POST /api/chat {"channel": "room-general", "message": "hi"}  (signed in)
//
// The design's handler: read req.json and req.user, broadcast to the room.
// The page itself publishes over its WebSocket (the onPublish hook in
// _realtime.js checks those messages); this endpoint is the same thing over
// HTTP, for scripts and bots, with the same rules. The channel is checked
// against room-* so that it can never write into presence or private (DM)
// channels, and the invite-only room takes only its invited users.
const {
  ROOM, MAX_ROOM_TEXT, INVITED, author, cleanText, isInviteOnly, badRequest, needSignIn,
} = require('./_lib/users.js');

module.exports = async (req) => {
  if (req.method !== 'POST') return { status: 405, json: { error: 'use POST' } };
  if (!req.user) return needSignIn();
  const { channel, message } = req.json || {};
  if (typeof channel !== 'string' || !channel.startsWith('room-') || !ROOM.test(channel.slice(5))) {
    return badRequest('channel must be "room-<name>" with <name> of 1-40 [a-z0-9_-]');
  }
  if (isInviteOnly(channel) && !INVITED.includes(req.user.sub)) {
    return { status: 403, json: { error: 'room "team" is invite-only' } };
  }
  const text = cleanText(message, MAX_ROOM_TEXT);
  if (text === null) {
    return badRequest(`message must be a non-empty string of at most ${MAX_ROOM_TEXT} characters`);
  }

  await fazt.realtime.broadcast(channel, {
    user: author(req.user),
    text,
    timestamp: Date.now(),
  });

  return { json: { sent: true } };
};

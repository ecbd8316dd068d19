// POST /api/chat {"channel": "room-general", "message": "hi"}  (signed in)
//
// The design's handler: read req.json and req.user, broadcast to the room.
// The channel is checked against room-* so that this endpoint can never be
// used to write into presence or private (DM) channels.
const { ROOM, author, cleanText, badRequest, needSignIn } = require('./_lib/users.js');

module.exports = async (req) => {
  if (req.method !== 'POST') return { status: 405, json: { error: 'use POST' } };
  if (!req.user) return needSignIn();
  const { channel, message } = req.json || {};
  if (typeof channel !== 'string' || !channel.startsWith('room-') || !ROOM.test(channel.slice(5))) {
    return badRequest('channel must be "room-<name>" with <name> of 1-40 [a-z0-9_-]');
  }
  const text = cleanText(message);
  if (text === null) return badRequest('message must be a non-empty string of at most 1000 characters');

  await fazt.realtime.broadcast(channel, {
    user: author(req.user),
    text,
    timestamp: Date.now(),
  });

  return { json: { sent: true } };
};

// The chat's realtime hooks (docs/js-handlers.md, "Realtime hooks"). Each one
// runs only for the channels whose rule in app.json lists it under "hooks".
// The file name starts with "_", so it is never an HTTP route.
const { MAX_ROOM_TEXT, isInviteOnly, isInvited, speaker } = require('./_lib/users.js');

// room-team and its presence channel: only the invited users may read them.
exports.onSubscribe = ({ channel, user }) => {
  if (!isInviteOnly(channel) || isInvited(user)) return true;
  return { allow: false, reason: 'room "team" is invite-only' };
};

// A message typed on the page, before anyone gets it: signed-in users only,
// trimmed, 1-500 characters. The hook stamps the author from the verified
// token, so nobody can post under another name.
exports.onPublish = ({ user, data }) => {
  if (!user) return { reject: 'sign in to chat' };
  const text = data !== null && typeof data === 'object' && typeof data.text === 'string'
    ? data.text.trim() : '';
  if (!text) return { reject: 'an empty message is not sent' };
  if (text.length > MAX_ROOM_TEXT) {
    return { reject: `a message may have at most ${MAX_ROOM_TEXT} characters (this one has ${text.length})` };
  }
  return { data: { user: speaker(user), text, timestamp: Date.now() } };
};

// Once per user, however many tabs they have open: a system line in the room.
exports.onJoin = ({ channel, member }) => systemLine(channel, `${member.name || member.id} joined`);
exports.onLeave = ({ channel, member }) => systemLine(channel, `${member.name || member.id} left`);

// presence-room-<name> announces into room-<name>.
function systemLine(presenceChannel, text) {
  const room = presenceChannel.slice('presence-'.length);
  return fazt.realtime.broadcast(room, { system: true, text, timestamp: Date.now() });
}

// Shared input rules for the chat handlers and hooks (loaded with require, never served).

const NAME = /^[A-Za-z0-9 _-]{1,32}$/;
const ROOM = /^[a-z0-9_-]{1,40}$/;
const USER_ID = /^[a-z0-9_-]{1,32}$/;
const MAX_TEXT = 1000; // a direct message
const MAX_ROOM_TEXT = 500; // a message in a room
// The invite-only room and who may read it (user ids: the token's sub).
const INVITE_ONLY_ROOM = 'team';
const INVITED = ['alice', 'bob'];

// A display name, trimmed, or null when it breaks the rules.
function cleanName(value) {
  if (typeof value !== 'string') return null;
  const name = value.trim();
  return NAME.test(name) ? name : null;
}

// The user id (token `sub`) for a display name: lower case, spaces -> "-".
// Channel names allow [a-z0-9_-], so `private-user-<id>` is always valid.
function userIdFor(name) {
  return name.toLowerCase().replace(/ +/g, '-');
}

// Message text, trimmed, or null when empty or longer than `max` characters.
function cleanText(value, max = MAX_TEXT) {
  if (typeof value !== 'string') return null;
  const text = value.trim();
  return text.length > 0 && text.length <= max ? text : null;
}

// What the page shows about a sender: never the whole token (exp, app, ...).
// `author` takes a handler's req.user (the token's claims), `speaker` a hook's
// user ({id, name}).
function author(user) {
  return { id: user.sub, name: user.name || user.sub };
}

function speaker(user) {
  return { id: user.id, name: user.name || user.id };
}

// room-team and presence-room-team.
function isInviteOnly(channel) {
  return channel === 'room-' + INVITE_ONLY_ROOM || channel === 'presence-room-' + INVITE_ONLY_ROOM;
}

// `user` is a hook's user ({id, name}) or null.
function isInvited(user) {
  return user !== null && INVITED.includes(user.id);
}

function badRequest(error) {
  return { status: 400, json: { error } };
}

function needSignIn() {
  return { status: 401, json: { error: 'sign in first (Authorization: Bearer <token>)' } };
}

module.exports = {
  ROOM, USER_ID, MAX_TEXT, MAX_ROOM_TEXT, INVITED, cleanName, userIdFor, cleanText, author, speaker,
  isInviteOnly, isInvited, badRequest, needSignIn,
};

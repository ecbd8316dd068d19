// Shared input rules for the chat handlers (loaded with require, never served).

const NAME = /^[A-Za-z0-9 _-]{1,32}$/;
const ROOM = /^[a-z0-9_-]{1,40}$/;
const USER_ID = /^[a-z0-9_-]{1,32}$/;
const MAX_TEXT = 1000;

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

// Message text, trimmed, or null when empty or longer than MAX_TEXT.
function cleanText(value) {
  if (typeof value !== 'string') return null;
  const text = value.trim();
  return text.length > 0 && text.length <= MAX_TEXT ? text : null;
}

// What the page shows about a sender: never the whole token (exp, app, ...).
function author(user) {
  return { id: user.sub, name: user.name || user.sub };
}

function badRequest(error) {
  return { status: 400, json: { error } };
}

function needSignIn() {
  return { status: 401, json: { error: 'sign in first (Authorization: Bearer <token>)' } };
}

module.exports = { ROOM, USER_ID, MAX_TEXT, cleanName, userIdFor, cleanText, author, badRequest, needSignIn };

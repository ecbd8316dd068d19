// POST /api/dm {"to": "bob", "message": "psst"}  (signed in)
//
// A direct message goes to the recipient's private channel private-user-<to>,
// which only a token with sub=<to> may subscribe to (app.json rule
// "private-user-{sub}"). The sender gets a copy on their own channel so that
// all of their open tabs show the conversation. Both sides are named by their
// display names: the recipient's comes from their token, read from who is
// subscribed to their channel (their id when they are offline).
const { USER_ID, author, cleanText, badRequest, needSignIn } = require('./_lib/users.js');

module.exports = async (req) => {
  if (req.method !== 'POST') return { status: 405, json: { error: 'use POST' } };
  if (!req.user) return needSignIn();
  const { to, message } = req.json || {};
  if (typeof to !== 'string' || !USER_ID.test(to)) {
    return badRequest('to must be a user id of 1-32 [a-z0-9_-]');
  }
  const text = cleanText(message);
  if (text === null) return badRequest('message must be a non-empty string of at most 1000 characters');

  const online = await fazt.realtime.subscribers(`private-user-${to}`);
  const named = online.find((s) => s.metadata && typeof s.metadata.name === 'string');
  const recipient = { id: to, name: named ? named.metadata.name : to };
  const dm = { from: author(req.user), to: recipient, text, timestamp: Date.now() };
  await fazt.realtime.broadcast(`private-user-${to}`, dm);
  if (to !== req.user.sub) {
    await fazt.realtime.broadcast(`private-user-${req.user.sub}`, dm);
  }
  return { json: { sent: true } };
};

// POST /api/login {"name": "Alice"} -> {"token", "user": {"id", "name"}}
//
// DEMO-ONLY sign-in: there is no password, anyone may take any free-form name.
// It shows how an app signs its users in with fazt.auth.issueToken: the kernel
// signs the token and binds it to *this* app, so another app refuses it.
// A real app would check a password or an identity provider here.
const { cleanName, userIdFor } = require('./_lib/users.js');

module.exports = async (req) => {
  if (req.method !== 'POST') {
    return { status: 405, json: { error: 'use POST' } };
  }
  const name = cleanName(req.json && req.json.name);
  if (!name) {
    return { status: 400, json: { error: 'name must be 1-32 letters, digits, spaces, "-" or "_"' } };
  }
  const sub = userIdFor(name);
  const token = await fazt.auth.issueToken({ sub, name, ttlSeconds: 8 * 3600 });
  return { json: { token, user: { id: sub, name } } };
};

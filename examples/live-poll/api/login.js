// POST /api/login {"name": "Ann", "adminCode"?: "..."} -> {"token", "user"}
//
// DEMO-ONLY sign-in, no password. Every signed-in user gets role "voter",
// which opens the "vote-*" channels; with the demo admin code (see _lib/auth.js)
// the token also carries role "admin", which opens the "admin" channel and
// /api/announce. The kernel binds the token to this app.
const { isAdminCode, cleanName } = require('./_lib/auth.js');

module.exports = async (req) => {
  if (req.method !== 'POST') return { status: 405, json: { error: 'use POST' } };
  const body = req.json || {};
  const name = cleanName(body.name);
  if (!name) {
    return { status: 400, json: { error: 'name must be 1-32 letters, digits, spaces, "-" or "_"' } };
  }
  const wantsAdmin = body.adminCode !== undefined && body.adminCode !== null && body.adminCode !== '';
  if (wantsAdmin && !isAdminCode(body.adminCode)) {
    return { status: 403, json: { error: 'wrong admin code' } };
  }
  const admin = wantsAdmin;
  const sub = name.toLowerCase().replace(/ +/g, '-');
  const claims = { sub, name, role: admin ? ['voter', 'admin'] : 'voter', ttlSeconds: 8 * 3600 };
  const token = await fazt.auth.issueToken(claims);
  return { json: { token, user: { id: sub, name, admin } } };
};

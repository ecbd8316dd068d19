// POST /api/announce {"message": "Poll closes in 5 minutes"}  (role admin only)
//
// fazt.realtime.broadcastAll reaches every connection of this app, whatever
// it subscribed to; the page shows it as a banner.
const { hasRole } = require('./_lib/auth.js');

module.exports = async (req) => {
  if (req.method !== 'POST') return { status: 405, json: { error: 'use POST' } };
  if (!req.user) return { status: 401, json: { error: 'sign in first (Authorization: Bearer <token>)' } };
  if (!hasRole(req.user, 'admin')) return { status: 403, json: { error: 'admins only' } };
  const message = req.json && req.json.message;
  if (typeof message !== 'string' || !message.trim() || message.length > 280) {
    return { status: 400, json: { error: 'message must be a non-empty string of at most 280 characters' } };
  }
  await fazt.realtime.broadcastAll({
    type: 'announcement',
    text: message.trim(),
    from: req.user.name || req.user.sub,
    timestamp: Date.now(),
  });
  return { json: { sent: true } };
};

// POST /api/guest -> {"token"}: a token for a viewer who has not signed in.
//
// With it the page joins "presence-poll", the audience, and so sees voters
// leave (see app.js). A guest has no "voter" role: it cannot vote.
const GUEST_TTL_SECONDS = 8 * 3600;

module.exports = async (req) => {
  if (req.method !== 'POST') return { status: 405, json: { error: 'use POST' } };
  // Unique enough for a demo's guests; never used to decide anything.
  const id = 'guest-' + Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
  const token = await fazt.auth.issueToken({ sub: id, name: 'guest', ttlSeconds: GUEST_TTL_SECONDS });
  return { json: { token } };
};

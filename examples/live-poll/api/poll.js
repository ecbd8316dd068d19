// GET /api/poll -> {"question", "options", "counts", "total", "viewers"}: the page's first paint.
// POST /api/poll (any token) recounts and broadcasts the results on "poll": a
// page asks for it when it sees a voter leave (their vote left with them).
// `viewers` is how many connections watch the "poll" channel right now.
const { QUESTION, OPTIONS, tally } = require('./_lib/poll.js');

module.exports = async (req) => {
  const [counts, viewers] = await Promise.all([tally(), fazt.realtime.count('poll')]);
  const results = { ...counts, viewers };
  if (req.method === 'POST') {
    if (!req.user) return { status: 401, json: { error: 'a token is needed to ask for a recount' } };
    await fazt.realtime.broadcast('poll', results);
  }
  return { json: { question: QUESTION, options: OPTIONS, ...results } };
};

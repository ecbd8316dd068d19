// POST /api/vote {"option": "presence"}  (signed in)
//
// Counts the vote (one per user; voting again moves it), then broadcasts the
// new results on "poll" to every viewer, and who voted for what on the
// role-gated "admin" channel.
const { isOption, tally, vote } = require('./lib/poll.js');

module.exports = async (req) => {
  if (req.method !== 'POST') return { status: 405, json: { error: 'use POST' } };
  if (!req.user) return { status: 401, json: { error: 'sign in first (Authorization: Bearer <token>)' } };
  const option = req.json && req.json.option;
  if (typeof option !== 'string' || !isOption(option)) {
    return { status: 400, json: { error: 'option must be one of the poll\'s option ids' } };
  }
  const previous = vote(req.user.sub, option);
  const results = { ...tally(), viewers: await fazt.realtime.count('poll') };
  await fazt.realtime.broadcast('poll', results);
  await fazt.realtime.broadcast('admin', {
    voter: { id: req.user.sub, name: req.user.name || req.user.sub },
    option,
    previous,
    timestamp: Date.now(),
  });
  return { json: results };
};

// POST /api/vote {"option": "presence"}  (signed in, after subscribing to "vote-presence")
//
// The page casts its vote by subscribing to "vote-<option>" (see _lib/poll.js),
// then calls this handler, which checks the input and that the vote is really
// there, recounts, and broadcasts the new results on "poll" to every viewer and
// who voted for what on the role-gated "admin" channel.
const { isOption, voteChannel, tally, hasVoted } = require('./_lib/poll.js');

module.exports = async (req) => {
  if (req.method !== 'POST') return { status: 405, json: { error: 'use POST' } };
  if (!req.user) return { status: 401, json: { error: 'sign in first (Authorization: Bearer <token>)' } };
  const option = req.json && req.json.option;
  if (!isOption(option)) {
    return { status: 400, json: { error: "option must be one of the poll's option ids" } };
  }
  if (!(await hasVoted(req.user.sub, option))) {
    return {
      status: 409,
      json: { error: `no vote to count: subscribe to ${voteChannel(option)} with your token first` },
    };
  }
  const [counts, viewers] = await Promise.all([tally(), fazt.realtime.count('poll')]);
  const results = { ...counts, viewers };
  await fazt.realtime.broadcast('poll', results);
  await fazt.realtime.broadcast('admin', {
    voter: { id: req.user.sub, name: req.user.name || req.user.sub },
    option,
    timestamp: Date.now(),
  });
  return { json: results };
};

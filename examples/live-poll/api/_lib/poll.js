// The poll and its tally (loaded with require, never served).
//
// Where the votes live: a vote *is* a subscription. A signed-in page votes
// for option X by subscribing to channel "vote-X" (app.json lets only
// signed-in users do that), and the tally is read from the hub with
// fazt.realtime.subscribers. JS handlers keep no state between requests
// (each worker thread has its own context), so the realtime hub, which is
// shared by every worker and, with Redis, by every node, holds it instead.
// A vote counts while its page is connected: this is a *live* poll.

const QUESTION = 'Which realtime feature should we demo next?';
const OPTIONS = [
  { id: 'presence', label: 'Presence lists' },
  { id: 'dm', label: 'Direct messages' },
  { id: 'redis', label: 'Redis fan-out' },
  { id: 'replay', label: 'Message replay' },
];

function isOption(id) {
  return typeof id === 'string' && OPTIONS.some((option) => option.id === id);
}

function voteChannel(option) {
  return 'vote-' + option;
}

// The user ids (token sub) subscribed to each option's channel. Two tabs of
// one user are one vote.
async function votersByOption() {
  const lists = await Promise.all(OPTIONS.map((o) => fazt.realtime.subscribers(voteChannel(o.id))));
  const voters = {};
  OPTIONS.forEach((option, i) => {
    voters[option.id] = new Set(lists[i].map((s) => s.metadata && s.metadata.sub).filter(Boolean));
  });
  return voters;
}

// {counts: {option: n}, total}. A user subscribed to several options (the
// page never does that; a hand-made client could) counts for none of them.
async function tally() {
  const voters = await votersByOption();
  const seen = new Map();
  for (const set of Object.values(voters)) {
    for (const sub of set) seen.set(sub, (seen.get(sub) || 0) + 1);
  }
  const counts = {};
  let total = 0;
  for (const option of OPTIONS) {
    counts[option.id] = [...voters[option.id]].filter((sub) => seen.get(sub) === 1).length;
    total += counts[option.id];
  }
  return { counts, total };
}

async function hasVoted(sub, option) {
  const subscribers = await fazt.realtime.subscribers(voteChannel(option));
  return subscribers.some((s) => s.metadata && s.metadata.sub === sub);
}

module.exports = { QUESTION, OPTIONS, isOption, voteChannel, tally, hasVoted };

// The poll itself and its tally (loaded with require, never served).
//
// The tally lives in this module: the kernel keeps a handler's modules loaded
// between requests (see README "Where the votes live" for the limits of that).

const QUESTION = 'Which realtime feature should we demo next?';
const OPTIONS = [
  { id: 'presence', label: 'Presence lists' },
  { id: 'dm', label: 'Direct messages' },
  { id: 'redis', label: 'Redis fan-out' },
  { id: 'replay', label: 'Message replay' },
];

// One vote per signed-in user (token sub); voting again moves the vote.
const votes = new Map();

function isOption(id) {
  return OPTIONS.some((option) => option.id === id);
}

function tally() {
  const counts = Object.fromEntries(OPTIONS.map((option) => [option.id, 0]));
  for (const choice of votes.values()) counts[choice] += 1;
  return { counts, total: votes.size };
}

// Record `sub`'s vote; returns the previous choice (or null).
function vote(sub, choice) {
  const previous = votes.has(sub) ? votes.get(sub) : null;
  votes.set(sub, choice);
  return previous;
}

module.exports = { QUESTION, OPTIONS, isOption, tally, vote };

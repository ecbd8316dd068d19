// GET /api/poll -> {"question", "options", "counts", "total", "viewers"}: the page's first paint.
// `viewers` is how many connections watch the "poll" channel right now.
const { QUESTION, OPTIONS, tally } = require('./_lib/poll.js');

module.exports = async () => {
  const [results, viewers] = await Promise.all([tally(), fazt.realtime.count('poll')]);
  return { json: { question: QUESTION, options: OPTIONS, ...results, viewers } };
};

// GET /api/poll -> {"question", "options", "counts", "total"}: the page's first paint.
const { QUESTION, OPTIONS, tally } = require('./lib/poll.js');

module.exports = async () => ({ json: { question: QUESTION, options: OPTIONS, ...tally() } });

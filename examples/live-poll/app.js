// fazt live poll: results on the public "poll" channel, the audience on
// "presence-poll", a role-gated "admin" channel with the live vote feed, and
// app-wide announcements (broadcastAll).
(function () {
  'use strict';

  const $ = (id) => document.getElementById(id);
  const state = {
    token: null, // the signed-in user's token
    guestToken: null, // before sign-in: a guest token, so the page is in the audience
    user: null,
    rt: null,
    audience: null, // the presence-poll subscription
    recountTimer: null,
    options: [],
    mine: null,
    counted: null,
    results: null,
  };

  // `token`: the Authorization to send; by default the user's token, else the guest's.
  async function call(path, body, token) {
    const headers = {};
    const bearer = token === undefined ? state.token || state.guestToken : token;
    if (bearer) headers.Authorization = 'Bearer ' + bearer;
    const init = { method: body === undefined ? 'GET' : 'POST', headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await fetch('api/' + path, init);
    const reply = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(reply.error || 'HTTP ' + response.status);
    return reply;
  }

  function showError(error) {
    $('error').textContent = error ? String(error.message || error) : '';
  }

  function renderOptions() {
    const list = $('options');
    list.replaceChildren();
    for (const option of state.options) {
      const item = document.createElement('li');
      item.dataset.option = option.id;
      const button = document.createElement('button');
      button.textContent = option.label;
      button.disabled = !state.token;
      button.addEventListener('click', () => castVote(option.id));
      const bar = document.createElement('div');
      bar.className = 'bar';
      bar.append(document.createElement('div'));
      const count = document.createElement('span');
      count.className = 'count';
      count.textContent = '0';
      item.append(button, bar, count);
      list.append(item);
    }
    if (state.results) renderResults(state.results);
  }

  function renderResults(results) {
    state.results = results;
    const total = results.total || 0;
    $('total').textContent = String(total);
    $('votes-word').textContent = total === 1 ? 'vote' : 'votes';
    for (const item of $('options').children) {
      const count = results.counts[item.dataset.option] || 0;
      item.querySelector('.count').textContent = String(count);
      item.querySelector('.bar > div').style.width = total ? (100 * count) / total + '%' : '0';
      item.classList.toggle('mine', item.dataset.option === state.mine);
    }
  }

  // A vote is a subscription to "vote-<option>" (see api/_lib/poll.js); the SDK
  // renews it after every reconnect. api/vote.js then recounts and tells everyone.
  async function castVote(option) {
    try {
      if (state.mine && state.mine !== option) await state.rt.unsubscribe('vote-' + state.mine);
      state.mine = option;
      state.counted = null;
      await state.rt.subscribe('vote-' + option);
      renderResults(await call('vote', { option }));
      state.counted = option;
      showError(null);
    } catch (error) {
      showError(error);
    }
  }

  function announce(data) {
    const banner = $('announcement');
    banner.textContent = 'Announcement from ' + data.from + ': ' + data.text;
    banner.hidden = false;
  }

  function showAudience() {
    const people = state.audience && state.audience.members ? state.audience.members.length : 0;
    $('viewers').textContent = people ? people + (people === 1 ? ' person here' : ' people here') : '';
  }

  // A vote lives as long as its page's connection, so a voter who leaves takes
  // their vote along; nobody recounts unless asked. Every page in the audience
  // sees the leave: each waits a random moment and asks for a recount
  // (POST api/poll, broadcast to everyone), unless a recount reached it first.
  function scheduleRecount() {
    if (state.recountTimer) return;
    state.recountTimer = setTimeout(() => {
      state.recountTimer = null;
      call('poll', {}).then(renderResults, showError);
    }, 300 + Math.random() * 1200);
  }

  function cancelRecount() {
    clearTimeout(state.recountTimer);
    state.recountTimer = null;
  }

  // Called by the SDK on every connection: the user's token once signed in, else
  // a fresh guest token (so an expired guest token is replaced by itself).
  async function connectionToken() {
    if (state.token) return state.token;
    state.guestToken = (await call('guest', {}, null)).token;
    return state.guestToken;
  }

  function connect() {
    // No URL: the SDK connects to this page's own /_ws (also under /_app/live-poll/).
    const rt = new FaztRealtime(null, { token: connectionToken });
    state.rt = rt;
    const setStatus = (name) => {
      $('status').dataset.state = name;
      $('status').textContent = name;
    };
    rt.on('connected', () => {
      setStatus('connected');
      // Votes cast while we were away: re-read the tally.
      call('poll').then(renderResults, showError);
    });
    rt.on('disconnected', () => setStatus('offline'));
    rt.on('reconnecting', () => setStatus('reconnecting'));
    rt.on('error', showError);
    // broadcastAll messages carry no channel.
    rt.on('message', (channel, data) => {
      if (channel === null && data && data.type === 'announcement') announce(data);
    });
    rt.subscribe('poll', {
      onMessage: (results) => {
        cancelRecount();
        renderResults(results);
      },
    });
    state.audience = rt.subscribe('presence-poll', {
      onJoin: showAudience,
      onLeave: (member) => {
        showAudience();
        if (!String(member.id).startsWith('guest-')) scheduleRecount(); // guests never vote
      },
    });
    // Back after a reconnect (a server restart, say), the SDK renewed our vote
    // subscription: ask for a recount so every viewer sees the vote again.
    rt.on('subscribed', (channel) => {
      if (channel === 'presence-poll') showAudience();
      if (state.counted && channel === 'vote-' + state.counted) {
        call('vote', { option: state.counted }).then(renderResults, showError);
      }
    });
  }

  // After sign-in the same connection authenticates as the user (an `auth`
  // message, sent again on every reconnect; the audience membership moves from
  // the guest to the user); admins then subscribe to the role-gated channel.
  function signedIn() {
    state.rt.setToken(state.token);
    if (state.user.admin) {
      state.rt.subscribe('admin', {
        onMessage: (event) => {
          const item = document.createElement('li');
          const option = state.options.find((o) => o.id === event.option);
          item.textContent = event.voter.name + ' voted ' + (option ? option.label : event.option);
          $('admin-feed').prepend(item);
        },
      }).catch(showError);
    }
  }

  $('login-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    $('login-error').textContent = '';
    try {
      const reply = await call('login', { name: $('name').value, adminCode: $('admin-code').value });
      state.token = reply.token;
      state.user = reply.user;
      $('me').textContent = reply.user.name + (reply.user.admin ? ' (admin)' : '');
      $('login-form').hidden = true;
      $('admin').hidden = !reply.user.admin;
      renderOptions();
      signedIn();
    } catch (error) {
      $('login-error').textContent = error.message;
    }
  });

  $('announce-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await call('announce', { message: $('announce-message').value });
      $('announce-message').value = '';
    } catch (error) {
      showError(error);
    }
  });

  call('poll')
    .then((poll) => {
      $('question').textContent = poll.question;
      state.options = poll.options;
      renderOptions();
      renderResults(poll);
      connect();
    })
    .catch(showError);
})();

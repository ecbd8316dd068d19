// fazt chat: rooms (room-<name>), who is online (presence-room-<name>) and
// direct messages (private-user-<id>), on the FaztRealtime browser SDK.
// Room messages are published over the WebSocket and checked by the app's
// onPublish hook (api/_realtime.js); sign-in and DMs go through api/*.js.
// Rooms keep history (app.json): joining shows the last 50 messages, and
// after a reconnect the SDK brings the messages sent meanwhile, each once.
(function () {
  'use strict';

  const $ = (id) => document.getElementById(id);
  // lastSent: this page's latest room message {channel, item, text}, which a
  // `rejected` error takes back (see the message form below). shown: the
  // offsets of the room's lines on screen.
  const state = {
    token: null, user: null, rt: null, room: null, members: new Map(), lastSent: null, shown: new Set(),
  };
  const HISTORY_SHOWN = 50;

  // Relative URLs, so the app works at http://chat.localhost:8080/ and at /_app/chat/.
  async function post(path, body) {
    const headers = { 'Content-Type': 'application/json' };
    if (state.token) headers.Authorization = 'Bearer ' + state.token;
    const response = await fetch('api/' + path, { method: 'POST', headers, body: JSON.stringify(body) });
    const reply = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(reply.error || 'HTTP ' + response.status);
    return reply;
  }

  function showError(error) {
    $('error').textContent = error ? String(error.message || error) : '';
  }

  function showNotice(text) {
    $('notice').textContent = text || '';
  }

  function time(ms) {
    return new Date(ms || Date.now()).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  // One chat line, built with textContent only: user text is never HTML.
  // `before`: the line to insert it in front of (default: at the end).
  function line(list, who, text, timestamp, extra, before) {
    const item = document.createElement('li');
    const author = document.createElement('span');
    author.className = 'author';
    author.textContent = who;
    const body = document.createElement('span');
    body.className = 'text';
    body.textContent = text;
    const when = document.createElement('span');
    when.className = 'time';
    when.textContent = time(timestamp);
    item.append(author, body, when);
    return place(list, item, extra, before);
  }

  // "Alice joined" / "Alice left", posted into the room by the app's presence
  // hooks. They are publications on the room like its messages, so they come
  // back with its history and after a reconnect too, each in its place.
  function systemLine(list, text, timestamp, extra, before) {
    const item = document.createElement('li');
    item.className = 'system';
    const body = document.createElement('span');
    body.className = 'text';
    body.textContent = text;
    const when = document.createElement('span');
    when.className = 'time';
    when.textContent = time(timestamp);
    item.append(body, when);
    return place(list, item, extra, before);
  }

  function place(list, item, extra, before) {
    if (extra) Object.assign(item.dataset, extra);
    list.insertBefore(item, before || null);
    list.scrollTop = list.scrollHeight;
    return item;
  }

  function renderMembers() {
    const list = $('members');
    list.replaceChildren();
    const sorted = [...state.members.values()].sort((a, b) => String(a.name).localeCompare(b.name));
    for (const member of sorted) {
      const item = document.createElement('li');
      item.dataset.id = member.id;
      item.textContent = member.name || member.id;
      item.title = 'Send ' + (member.name || member.id) + ' a direct message';
      item.addEventListener('click', () => {
        $('dm-to').value = member.id;
        $('dm-message').focus();
      });
      list.append(item);
    }
  }

  function setMembers(members) {
    state.members = new Map((members || []).map((m) => [m.id, m]));
    renderMembers();
  }

  // A room line (a message or a system line), shown once and in order: each
  // is numbered (offset) per room, and the live stream, a recovery and a
  // history load may overlap. Our own messages are on screen already (the
  // server does not echo them) and carry no offset.
  function roomLine(data, offset) {
    const list = $('messages');
    let before = null;
    if (offset !== undefined) {
      if (state.shown.has(offset)) return;
      state.shown.add(offset);
      before = [...list.children].find((item) => Number(item.dataset.offset) > offset);
    }
    const extra = { offset: offset === undefined ? '' : String(offset) };
    if (data.system) systemLine(list, data.text, data.timestamp, extra, before);
    else line(list, data.user.name, data.text, data.timestamp, { ...extra, from: data.user.id }, before);
  }

  // Start the room's list again from its last lines: when joining, and when
  // messages sent while the page was away could not all be recovered.
  async function loadHistory(sub, lost) {
    $('messages').replaceChildren();
    state.shown.clear();
    showNotice(lost ? 'Some messages sent while you were away could not be recovered: showing the room\'s latest ones.' : '');
    try {
      const { publications } = await sub.history({ limit: HISTORY_SHOWN });
      if (sub.channel !== 'room-' + state.room) return; // switched rooms meanwhile
      // Live lines that came meanwhile stay; the history fills in before them.
      for (const publication of publications) roomLine(publication.data, publication.offset);
    } catch (error) {
      showError(error);
    }
  }

  function joinRoom(room) {
    const rt = state.rt;
    if (state.room) {
      rt.unsubscribe('room-' + state.room);
      rt.unsubscribe('presence-room-' + state.room);
    }
    state.room = room;
    $('messages').replaceChildren();
    state.shown.clear();
    state.lastSent = null;
    showNotice('');
    setMembers([]);
    let joined = false;
    const sub = rt.subscribe('room-' + room, {
      onMessage: (data, meta) => roomLine(data, meta.offset),
      // Every (re)subscribe: recovered means every missed line is on its way
      // (as onMessage, meta.recovered); otherwise some may be lost, so show
      // the room's history again (also the first time: the last 50).
      onSubscribed: ({ recovered }) => {
        if (!recovered) loadHistory(sub, joined);
        joined = true;
      },
    });
    rt.subscribe('presence-room-' + room, {
      onJoin: (member) => {
        state.members.set(member.id, member);
        renderMembers();
      },
      onLeave: (member) => {
        state.members.delete(member.id);
        renderMembers();
      },
    });
  }

  function connect() {
    // No URL: the SDK connects to this page's own /_ws (also under /_app/chat/).
    const rt = new FaztRealtime(null, { token: state.token });
    state.rt = rt;
    const status = $('status');
    const setStatus = (name) => {
      status.dataset.state = name;
      status.textContent = name;
    };
    rt.on('connected', () => {
      setStatus('connected');
      showError(null);
    });
    // Every (re)subscribe to a presence channel answers with the full member
    // list: while we were disconnected people may have come and gone unseen.
    rt.on('subscribed', (channel, members) => {
      if (channel === 'presence-room-' + state.room && members) setMembers(members);
    });
    rt.on('disconnected', () => setStatus('offline'));
    rt.on('reconnecting', () => setStatus('reconnecting'));
    rt.on('kicked', () => setStatus('kicked'));
    rt.on('error', (error) => {
      // The onPublish hook refused our message: take it back off the screen and
      // give its text back. The error names the room, not the message: it is the
      // latest one (a verdict takes milliseconds, far less than typing the next).
      const sent = state.lastSent;
      if (error.code === 'rejected' && sent && sent.channel === error.channel) {
        sent.item.remove();
        if (!$('message').value) $('message').value = sent.text;
        state.lastSent = null;
      }
      showError(error);
    });

    // A DM to me shows its sender's name; my own copy shows whom I wrote to.
    rt.subscribe('private-user-' + state.user.id, {
      onMessage: (dm) => {
        const who = dm.from.id === state.user.id ? 'You → ' + dm.to.name : dm.from.name;
        line($('dms'), who, dm.text, dm.timestamp, { from: dm.from.id });
      },
    });
    joinRoom($('room').value);
  }

  $('login-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    $('login-error').textContent = '';
    try {
      const reply = await post('login', { name: $('name').value });
      state.token = reply.token;
      state.user = reply.user;
      $('me').textContent = reply.user.name + ' (' + reply.user.id + ')';
      $('login-form').hidden = true;
      $('chat').hidden = false;
      connect();
      $('message').focus();
    } catch (error) {
      $('login-error').textContent = error.message;
    }
  });

  $('room').addEventListener('change', () => joinRoom($('room').value));

  // A room message goes over the WebSocket; the server never echoes it to its
  // sender, so the page shows it at once, as the onPublish hook will (trimmed,
  // under our name). If the hook rejects it, the error handler takes it back.
  $('message-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const input = $('message');
    const text = input.value;
    if (!text.trim()) return;
    const channel = 'room-' + state.room;
    try {
      await state.rt.publish(channel, { text });
      input.value = '';
      showError(null);
      const item = line($('messages'), state.user.name, text.trim(), Date.now(), { from: state.user.id });
      state.lastSent = { channel, item, text };
    } catch (error) {
      showError(error);
    }
  });

  $('dm-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const input = $('dm-message');
    try {
      // A user id is the name in lower case with "-" for spaces (api/_lib/users.js).
      const to = $('dm-to').value.trim().toLowerCase().replace(/ +/g, '-');
      await post('dm', { to, message: input.value });
      input.value = '';
      showError(null);
    } catch (error) {
      showError(error);
    }
  });
})();

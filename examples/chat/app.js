// fazt chat: rooms (room-<name>), who is online (presence-room-<name>) and
// direct messages (private-user-<id>), on the FaztRealtime browser SDK.
// Room messages are published over the WebSocket and checked by the app's
// onPublish hook (api/_realtime.js); sign-in and DMs go through api/*.js.
(function () {
  'use strict';

  const $ = (id) => document.getElementById(id);
  // lastSent: this page's latest room message {channel, item, text}, which a
  // `rejected` error takes back (see the message form below).
  const state = { token: null, user: null, rt: null, room: null, members: new Map(), lastSent: null };

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

  function time(ms) {
    return new Date(ms || Date.now()).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  // One chat line, built with textContent only: user text is never HTML.
  function line(list, who, text, timestamp, extra) {
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
    if (extra) Object.assign(item.dataset, extra);
    list.append(item);
    list.scrollTop = list.scrollHeight;
    return item;
  }

  // "Alice joined" / "Alice left", posted into the room by the app's presence hooks.
  function systemLine(list, text, timestamp) {
    const item = document.createElement('li');
    item.className = 'system';
    const body = document.createElement('span');
    body.className = 'text';
    body.textContent = text;
    const when = document.createElement('span');
    when.className = 'time';
    when.textContent = time(timestamp);
    item.append(body, when);
    list.append(item);
    list.scrollTop = list.scrollHeight;
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

  function joinRoom(room) {
    const rt = state.rt;
    if (state.room) {
      rt.unsubscribe('room-' + state.room);
      rt.unsubscribe('presence-room-' + state.room);
    }
    state.room = room;
    $('messages').replaceChildren();
    setMembers([]);
    rt.subscribe('room-' + room, {
      onMessage: (data) => {
        if (data.system) systemLine($('messages'), data.text, data.timestamp);
        else line($('messages'), data.user.name, data.text, data.timestamp, { from: data.user.id });
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

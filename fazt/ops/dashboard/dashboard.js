// The fazt admin dashboard: plain JS, no framework, everything served by fazt.
// It polls GET /admin/overview every REFRESH_MS with the admin token (kept in
// sessionStorage for this tab), and draws the rates as inline-SVG sparklines
// over the last HISTORY samples (5 minutes).
'use strict';

(function () {
  const REFRESH_MS = 2000;
  const HISTORY = 150;
  const FILL = 30;
  const TOKEN_KEY = 'fazt-admin-token';
  const SVG = 'http://www.w3.org/2000/svg';

  const $ = (id) => document.getElementById(id);
  const series = { connections: [], publications: [], deliveries: [] };
  let previous = null;
  let timer = null;

  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  function showLogin(message) {
    clearTimeout(timer);
    $('main').hidden = true;
    $('login').hidden = false;
    $('login-error').hidden = !message;
    $('login-error').textContent = message || '';
    $('token').focus();
  }

  function text(element, value) { element.textContent = String(value); }

  function sparkline(svg, values) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    if (values.length < 2) return;
    const max = Math.max(1, ...values);
    // The first minute fills the width; then the line scrolls, up to HISTORY samples.
    const step = 300 / (Math.max(values.length, FILL) - 1);
    const start = 300 - step * (values.length - 1);
    const points = values.map((v, i) => `${(start + i * step).toFixed(1)},${(46 - (v / max) * 44).toFixed(1)}`);
    const area = document.createElementNS(SVG, 'polygon');
    area.setAttribute('points', `${start.toFixed(1)},48 ${points.join(' ')} 300,48`);
    const line = document.createElementNS(SVG, 'polyline');
    line.setAttribute('points', points.join(' '));
    svg.append(area, line);
  }

  function push(name, value) {
    const list = series[name];
    list.push(value);
    if (list.length > HISTORY) list.shift();
  }

  function pill(element, ok, label) {
    element.className = 'pill ' + (ok ? 'ok' : 'bad');
    text(element, label);
  }

  function rate(now, key) {
    if (!previous) return 0;
    const seconds = (now.time - previous.time) / 1000;
    const delta = now.totals[key] - previous.totals[key];
    return seconds > 0 && delta >= 0 ? delta / seconds : 0;
  }

  function renderApps(apps) {
    const body = $('apps').tBodies[0];
    body.replaceChildren();
    for (const app of apps) {
      const row = body.insertRow();
      row.dataset.slug = app.slug;
      text(row.insertCell(), app.slug);
      const connections = row.insertCell();
      connections.className = 'num connections';
      text(connections, app.connections);
      const channels = row.insertCell();
      channels.className = 'num';
      text(channels, app.channels);
      const busiest = row.insertCell();
      for (const channel of app.busiest) {
        const tag = document.createElement('span');
        tag.className = 'channel';
        const members = channel.members !== undefined ? `, ${channel.members} present` : '';
        text(tag, `${channel.channel} (${channel.subscribers}${members})`);
        busiest.append(tag);
      }
      if (!app.busiest.length) text(busiest, '–');
    }
  }

  function renderEvents(events) {
    const list = $('events');
    list.replaceChildren();
    for (const event of events) {
      const item = document.createElement('li');
      const kind = document.createElement('span');
      kind.className = 'kind kind-' + event.kind.replace('.', '-');
      text(kind, event.kind);
      const when = new Date(event.time).toLocaleTimeString();
      item.append(kind, `${when} ${event.app ? event.app + ': ' : ''}${event.message}`);
      list.append(item);
    }
    $('no-events').hidden = events.length > 0;
  }

  function render(now) {
    const connections = now.apps.reduce((sum, app) => sum + app.connections, 0);
    const publications = rate(now, 'publications');
    const deliveries = rate(now, 'deliveries');
    push('connections', connections);
    push('publications', publications);
    push('deliveries', deliveries);
    previous = now;
    text($('connections-total'), connections);
    text($('publications-rate'), publications.toFixed(1));
    text($('deliveries-rate'), deliveries.toFixed(1));
    for (const name of Object.keys(series)) sparkline($(name + '-spark'), series[name]);
    pill($('ready'), now.ready, now.ready ? 'ready' : 'not ready: ' + now.reason);
    pill($('backplane'), now.backplane.up,
      `backplane ${now.backplane.kind} ${now.backplane.up ? 'up' : 'down'}` +
      (now.backplane.dropped ? ` (${now.backplane.dropped} dropped)` : ''));
    text($('workers'), now.workers > 1 ? `${now.workers} workers` : '1 process');
    text($('updated'), 'updated ' + new Date(now.time).toLocaleTimeString());
    renderApps(now.apps);
    renderEvents(now.events);
  }

  async function refresh() {
    const current = token();
    if (!current) return showLogin();
    try {
      const response = await fetch('/admin/overview', {
        headers: { Authorization: 'Bearer ' + current },
        cache: 'no-store',
      });
      if (response.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        return showLogin('That token was refused.');
      }
      if (!response.ok) throw new Error('HTTP ' + response.status);
      $('login').hidden = true;
      $('main').hidden = false;
      render(await response.json());
    } catch (error) {
      pill($('ready'), false, 'unreachable: ' + error.message);
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  $('login').addEventListener('submit', (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $('token').value.trim());
    $('token').value = '';
    previous = null;
    refresh();
  });
  $('logout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin();
  });
  refresh();
})();

// The ha-manager dashboard. Plain ES2020, no libraries, no build step.
//
// Everything it shows or changes goes through this node's /api/v1 routes
// with the token pasted into the login form (kept in sessionStorage, sent
// as "Authorization: Bearer"), so the API decides what a token may do; the
// page only hides the actions a read-only token could not take.
//
// Live updates poll every POLL_MS: the status (one answer for quorum,
// master, nodes and every service), the Raft view (leader, lease ages) and
// the history after the last event seen. Rows are keyed by SID and touched
// only when their content changed, so 2,000 services cost a diff, not a
// re-render.
'use strict';

(() => {
  const TOKEN_KEY = 'ha-manager-token';
  const POLL_MS = 1500;
  const HISTORY_PAGE = 1000;
  const HISTORY_KEEP = 5000;
  const HISTORY_LINES = 1000;
  const FLASH_MAX = 50;

  const state = {
    token: null,
    id: null,
    role: null,
    timer: null,
    polling: false,
    again: false,
    services: new Map(), // sid -> {row, key, entry}
    nodeCards: new Map(), // node -> {card, key}
    nodeNames: [],
    rules: new Map(), // rule id -> {row, key}
    rulesDirty: true,
    tick: 0,
    historySeq: null,
    historyMissing: false,
    events: [],
    timelineKey: '',
    pollError: false,
  };

  const $ = (id) => document.getElementById(id);

  // Builds an element; attrs: class, text, and any attribute (data-*, ...).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) {
      if (c !== null && c !== undefined) node.append(c);
    }
    return node;
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  // A CSS class name from a state word (badge classes are state names).
  function cls(word) {
    return String(word || '').toLowerCase().replace(/[^a-z0-9_-]/g, '_');
  }

  class ApiError extends Error {
    constructor(status, message, field) {
      super(message);
      this.status = status;
      this.field = field;
    }
  }

  async function api(method, path, body) {
    const headers = { Authorization: 'Bearer ' + state.token };
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch('/api/v1' + path, init);
    } catch (e) {
      throw new ApiError(0, 'cannot reach this node: ' + e.message);
    }
    const text = await resp.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = text;
      }
    }
    if (!resp.ok) {
      const message = data && typeof data === 'object' && data.error
        ? data.error
        : `${resp.status} ${resp.statusText}`;
      throw new ApiError(resp.status, message, data && data.field);
    }
    return data;
  }

  const seg = (s) => encodeURIComponent(s);

  // ----- errors ----------------------------------------------------------

  function showError(message, fromPoll) {
    setText($('error-text'), message);
    $('error').classList.remove('hidden');
    state.pollError = Boolean(fromPoll);
  }

  function clearError() {
    $('error').classList.add('hidden');
    state.pollError = false;
  }

  // Runs an action; its API error is shown with the API's message.
  async function act(what, fn) {
    try {
      await fn();
      clearError();
      refreshSoon();
      return true;
    } catch (e) {
      showError(`${what}: ${e.message}`);
      return false;
    }
  }

  // ----- login -----------------------------------------------------------

  async function login(token, fromStorage) {
    state.token = token;
    try {
      const me = await api('GET', '/whoami');
      state.id = me.id;
      state.role = me.role;
    } catch (e) {
      state.token = null;
      sessionStorage.removeItem(TOKEN_KEY);
      if (!fromStorage) setText($('login-error'), e.message);
      showLogin();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    setText($('login-error'), '');
    $('token').value = '';
    setText($('who'), `${state.id} (${state.role})`);
    document.body.classList.toggle('read-only', state.role !== 'admin');
    document.body.classList.toggle('admin', state.role === 'admin');
    $('login').classList.add('hidden');
    $('app').classList.remove('hidden');
    $('logout').classList.remove('hidden');
    refreshSoon();
  }

  function showLogin() {
    $('login').classList.remove('hidden');
    $('app').classList.add('hidden');
    $('logout').classList.add('hidden');
    setText($('who'), '');
  }

  function logout(message) {
    clearTimeout(state.timer);
    state.timer = null;
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    for (const m of [state.services, state.nodeCards, state.rules]) m.clear();
    $('service-rows').replaceChildren();
    $('nodes').replaceChildren();
    $('rule-rows').replaceChildren();
    state.historySeq = null;
    state.events = [];
    state.timelineKey = '';
    $('history').replaceChildren(el('span', { class: 'muted', text: 'no history yet' }));
    $('timeline').replaceChildren(el('p', { class: 'muted', text: 'no history yet' }));
    state.rulesDirty = true;
    document.body.classList.remove('read-only', 'admin');
    clearError();
    setText($('login-error'), message || '');
    showLogin();
  }

  // ----- polling ---------------------------------------------------------

  function refreshSoon() {
    if (!state.token) return;
    if (state.polling) {
      state.again = true;
      return;
    }
    clearTimeout(state.timer);
    poll();
  }

  // A poll that outlived its login ends; a new login starts its own.
  function restartPolling() {
    state.polling = false;
    state.again = false;
    clearTimeout(state.timer);
    if (state.token) poll();
  }

  async function poll() {
    state.polling = true;
    state.tick += 1;
    const token = state.token;
    try {
      const [entries, cluster] = await Promise.all([
        api('GET', '/status/current'),
        api('GET', '/cluster/status'),
      ]);
      // Logged out (or in again) meanwhile: this answer is not for the page.
      if (state.token !== token) {
        restartPolling();
        return;
      }
      renderStatus(entries, cluster);
      if (state.rulesDirty || state.tick % 5 === 0) await loadRules();
      await pollHistory();
      if (state.pollError) clearError();
      setText($('live'), 'updated ' + new Date().toLocaleTimeString());
    } catch (e) {
      if (state.token !== token) {
        restartPolling();
        return;
      }
      if (e.status === 401) {
        state.polling = false;
        logout('logged out: ' + e.message);
        return;
      }
      showError('update failed: ' + e.message, true);
    }
    state.polling = false;
    if (!state.token) return;
    if (state.again) {
      state.again = false;
      poll();
      return;
    }
    state.timer = setTimeout(poll, POLL_MS);
  }

  // ----- overview and nodes ---------------------------------------------

  function renderStatus(entries, cluster) {
    const nodes = new Map();
    const lrms = new Map();
    const services = [];
    let quorum = null;
    let master = null;
    for (const e of entries) {
      if (e.type === 'quorum') quorum = e;
      else if (e.type === 'master') master = e;
      else if (e.type === 'node') nodes.set(e.node, e);
      else if (e.type === 'lrm') lrms.set(e.node, e);
      else if (e.type === 'service') services.push(e);
    }
    const q = $('quorum');
    const quorate = quorum && quorum.quorate;
    setText(q, quorate ? 'OK' : 'no quorum');
    q.className = 'badge ' + (quorate ? 'ok' : 'bad');
    setText($('master'), master ? master.node : 'none');
    setText($('master-state'), master ? `(${master.state})` : '');
    const disarm = $('disarm-state');
    const disarmed = Boolean(master && master.disarm);
    if (disarmed) {
      setText(disarm, 'HA ' + master.disarm);
      disarm.classList.remove('hidden');
    } else {
      disarm.classList.add('hidden');
    }
    $('disarm-freeze').disabled = disarmed;
    $('disarm-ignore').disabled = disarmed;
    $('arm').disabled = !disarmed;
    setText($('leader'), cluster.leader || 'none');
    setText($('term'), `(term ${cluster.term})`);
    setText($('answering'), cluster.node);
    setText($('cluster-meta'), `node ${cluster.node}, ${cluster.members.length} members`);

    const members = new Map();
    for (const m of cluster.members) if (m.name) members.set(m.name, m);
    const names = new Set([...members.keys(), ...nodes.keys(), ...lrms.keys()]);
    state.nodeNames = [...names].sort();
    renderNodes(state.nodeNames, nodes, lrms, members);
    renderServices(services);
  }

  function nodeView(name, node, lrm, member) {
    const st = node ? node.state : (lrm ? lrm.node_state || 'unknown' : 'unknown');
    const lines = [];
    if (lrm) {
      lines.push(`lrm ${lrm.state}, watchdog ${lrm.watchdog || '?'}`);
      if (lrm.watchdog_problem) lines.push(lrm.watchdog_problem);
    }
    if (member && member.last_contact_ms !== undefined) {
      lines.push(`lease renewed ${(member.last_contact_ms / 1000).toFixed(1)} s ago`);
    }
    if (st === 'fenced') {
      lines.push('lease taken over by the CRM');
    } else if (node && node.lease_time_left_ms !== undefined) {
      lines.push(`lease ${(node.lease_time_left_ms / 1000).toFixed(1)} s left`);
    }
    if (member) lines.push(`raft ${member.role}${member.log_lag ? `, ${member.log_lag} behind` : ''}`);
    if (node && node.waiting_for) lines.push(node.waiting_for);
    if (node && node.mark) lines.push(node.mark);
    const maintenance = (lrm && lrm.lrm_mode === 'maintenance') || st === 'maintenance';
    return { st, lines, master: Boolean(node && node.master), maintenance };
  }

  function renderNodes(names, nodes, lrms, members) {
    const box = $('nodes');
    for (const [name, c] of state.nodeCards) {
      if (!names.includes(name)) {
        c.card.remove();
        state.nodeCards.delete(name);
      }
    }
    for (const name of names) {
      const v = nodeView(name, nodes.get(name), lrms.get(name), members.get(name));
      const key = JSON.stringify(v);
      let c = state.nodeCards.get(name);
      if (!c) {
        const card = el('div', { class: 'node', 'data-node': name },
          el('div', { class: 'head' },
            el('span', { class: 'name', text: name }),
            el('span', { class: 'badge state' })),
          el('div', { class: 'detail' }),
          el('div', { class: 'buttons admin-only' },
            el('button', { type: 'button', 'data-action': 'maintenance-enable', 'data-node': name, text: 'Maintenance on' }),
            el('button', { type: 'button', 'data-action': 'maintenance-disable', 'data-node': name, text: 'Maintenance off' })));
        c = { card, key: '' };
        state.nodeCards.set(name, c);
        box.append(card);
        // Keep the cards in name order.
        for (const n of names) {
          const other = state.nodeCards.get(n);
          if (other) box.append(other.card);
        }
      }
      if (c.key === key) continue;
      c.key = key;
      c.card.className = `node state-${cls(v.st)}${v.master ? ' master' : ''}`;
      c.card.dataset.state = v.st;
      const badge = c.card.querySelector('.badge');
      badge.className = `badge state ${cls(v.st)}`;
      setText(badge, v.st);
      c.card.querySelector('.detail').replaceChildren(...v.lines.map((l) => el('div', { text: l })));
      c.card.querySelector('[data-action="maintenance-enable"]').disabled = v.maintenance;
      c.card.querySelector('[data-action="maintenance-disable"]').disabled = !v.maintenance;
    }
  }

  // ----- services --------------------------------------------------------

  function filterText() {
    return $('filter').value.trim().toLowerCase();
  }

  function matches(entry, f) {
    if (!f) return true;
    return [entry.sid, entry.node, entry.state, entry.crm_state, entry.request_state]
      .some((s) => s && s.toLowerCase().includes(f));
  }

  function newServiceRow(sid) {
    const admin = state.role === 'admin';
    const actions = admin
      ? [
        el('button', { type: 'button', 'data-action': 'migrate', text: 'Migrate' }),
        el('button', { type: 'button', 'data-action': 'relocate', text: 'Relocate' }),
        el('button', { type: 'button', 'data-action': 'stop', text: 'Stop' }),
        el('button', { type: 'button', 'data-action': 'edit', text: 'Edit' }),
        el('button', { type: 'button', class: 'danger', 'data-action': 'remove', text: 'Remove' }),
      ]
      : [];
    return el('tr', { 'data-sid': sid },
      el('td', { class: 'sid-cell', text: sid }),
      el('td', { class: 'state-cell' }, el('span', { class: 'badge' }), el('span', { class: 'mark-text' })),
      el('td', { class: 'node-cell' }),
      el('td', { class: 'requested-cell' }),
      el('td', { class: 'actions-cell admin-only' }, ...actions),
      el('td', { class: 'why-cell' }, el('button', { type: 'button', 'data-action': 'why', text: 'Why?' })));
  }

  function renderServices(entries) {
    const tbody = $('service-rows');
    const seen = new Set();
    const f = filterText();
    let added = false;
    let shown = 0;
    const changed = [];
    for (const e of entries) {
      seen.add(e.sid);
      const key = `${e.state}|${e.crm_state}|${e.node}|${e.request_state}|${e.mark || ''}`;
      let s = state.services.get(e.sid);
      if (!s) {
        s = { row: newServiceRow(e.sid), key: '', entry: e };
        state.services.set(e.sid, s);
        added = true;
      }
      const visible = matches(e, f);
      if (visible) shown += 1;
      if (s.row.hidden === visible) s.row.hidden = !visible;
      if (s.key === key) continue;
      const first = s.key === '';
      s.key = key;
      s.entry = e;
      const r = s.row;
      const badge = r.cells[1].firstChild;
      badge.className = 'badge ' + cls(e.crm_state || e.state);
      setText(badge, e.state || e.crm_state || '');
      setText(r.cells[1].lastChild, e.mark ? `(${e.mark})` : '');
      setText(r.cells[2], e.node || '');
      setText(r.cells[3], e.request_state || '');
      r.dataset.node = e.node || '';
      r.dataset.state = e.crm_state || '';
      const stop = r.querySelector('[data-action="stop"], [data-action="start"]');
      if (stop) {
        const running = e.request_state === 'started';
        stop.dataset.action = running ? 'stop' : 'start';
        setText(stop, running ? 'Stop' : 'Start');
      }
      if (!first) changed.push(r);
    }
    for (const [sid, s] of state.services) {
      if (!seen.has(sid)) {
        s.row.remove();
        state.services.delete(sid);
      }
    }
    if (added) {
      const sids = [...state.services.keys()].sort();
      const frag = document.createDocumentFragment();
      for (const sid of sids) frag.append(state.services.get(sid).row);
      tbody.append(frag);
    }
    // Highlight a few changed rows (an animation per row; no forced
    // layout, which would cost a table layout per row).
    if (changed.length <= FLASH_MAX && typeof Element.prototype.animate === 'function') {
      for (const r of changed) {
        r.animate([{ backgroundColor: '#fff4c2' }, { backgroundColor: 'transparent' }], { duration: 1200 });
      }
    }
    setText($('service-count'), `(${entries.length})`);
    setText($('filter-count'), f ? `${shown} shown` : '');
  }

  function applyFilter() {
    const f = filterText();
    let shown = 0;
    for (const s of state.services.values()) {
      const visible = matches(s.entry, f);
      if (visible) shown += 1;
      s.row.hidden = !visible;
    }
    setText($('filter-count'), f ? `${shown} shown` : '');
  }

  // ----- dialog ----------------------------------------------------------

  // Opens the dialog; `onOk` returns true to close it (an API error keeps
  // it open with the message).
  function openDialog(title, body, onOk, okText) {
    const dialog = $('dialog');
    setText($('dialog-title'), title);
    $('dialog-body').replaceChildren(...body);
    setText($('dialog-error'), '');
    const ok = $('dialog-ok');
    ok.classList.toggle('hidden', !onOk);
    setText(ok, okText || 'OK');
    dialog.onOk = onOk;
    if (!dialog.open) dialog.showModal();
  }

  async function dialogOk(event) {
    event.preventDefault();
    const dialog = $('dialog');
    const fn = dialog.onOk;
    if (!fn) {
      dialog.close();
      return;
    }
    const ok = $('dialog-ok');
    ok.disabled = true;
    try {
      await fn();
      dialog.close();
      clearError();
      refreshSoon();
    } catch (e) {
      setText($('dialog-error'), e.message);
    } finally {
      ok.disabled = false;
    }
  }

  function nodePicker(id, exclude) {
    const select = el('select', { id });
    for (const n of state.nodeNames) {
      if (n !== exclude) select.append(el('option', { value: n, text: n }));
    }
    return select;
  }

  // ----- service actions -------------------------------------------------

  function moveDialog(task, sid, current) {
    const picker = nodePicker('move-node', current);
    const text = task === 'migrate'
      ? 'Live-migrate the service to'
      : 'Relocate (stop, move, start) the service to';
    openDialog(`${task} ${sid}`, [el('label', { text }, ' ', picker)], async () => {
      await api('POST', `/resources/${seg(sid)}/${task}`, { node: picker.value });
    }, task === 'migrate' ? 'Migrate' : 'Relocate');
  }

  // Editable text of a resource: one `key=value` line per set option.
  function resourceLines(r) {
    const lines = [
      `state=${r.state}`,
      `failback=${r.failback ? 1 : 0}`,
      `max_restart=${r.max_restart}`,
      `max_relocate=${r.max_relocate}`,
    ];
    if (r.comment) lines.push(`comment=${r.comment}`);
    if (r.maxcpu !== undefined && r.maxcpu !== null) lines.push(`maxcpu=${r.maxcpu}`);
    if (r.maxmem !== undefined && r.maxmem !== null) lines.push(`maxmem=${r.maxmem}`);
    for (const [k, v] of Object.entries(r.params || {})) lines.push(`${k}=${v}`);
    return lines;
  }

  function parseLines(text, field) {
    const out = {};
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (!line) continue;
      const eq = line.indexOf('=');
      if (eq <= 0) throw new Error(`${field}: '${line}' is not key=value`);
      out[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
    }
    return out;
  }

  async function editDialog(sid) {
    let r;
    try {
      r = await api('GET', `/resources/${seg(sid)}`);
    } catch (e) {
      showError(`edit ${sid}: ${e.message}`);
      return;
    }
    const before = parseLines(resourceLines(r).join('\n'), 'options');
    const area = el('textarea', { id: 'edit-options', spellcheck: 'false' });
    area.value = resourceLines(r).join('\n');
    openDialog(`edit ${sid}`, [
      el('p', { class: 'muted', text: 'One key=value per line; remove a line to reset it to its default.' }),
      area,
    ], async () => {
      const after = parseLines(area.value, 'options');
      const options = {};
      for (const [k, v] of Object.entries(after)) if (before[k] !== v) options[k] = v;
      const del = Object.keys(before).filter((k) => !(k in after));
      await api('PUT', `/resources/${seg(sid)}`, { options, delete: del, digest: r.digest });
    }, 'Save');
  }

  async function whyDialog(sid) {
    let body;
    try {
      const x = await api('GET', `/explain/${seg(sid)}`);
      body = [el('pre', { id: 'why-text', text: x.text || 'no explanation' })];
      if (x.event && x.event.decision) {
        body.push(decisionTable(x.event.decision));
      }
    } catch (e) {
      if (e.status === 404) {
        body = [el('p', { id: 'why-text', text: 'no history yet' }),
          el('p', { class: 'muted', text: e.message })];
      } else {
        body = [el('p', { class: 'error-text', text: e.message })];
      }
    }
    openDialog(`why is ${sid} where it is?`, body, null);
  }

  function decisionTable(d) {
    const rows = (d.candidates || []).map((c) => el('tr', { 'data-node': c.node },
      el('td', { text: c.node }),
      el('td', { text: c.state || '' }),
      el('td', { text: c.excluded || '' }),
      el('td', { text: c.priority === undefined ? '' : String(c.priority) }),
      el('td', { text: c.score === undefined ? '' : String(c.score) }),
      el('td', { text: c.rank === undefined ? '' : String(c.rank) })));
    return el('table', { class: 'grid' },
      el('thead', {}, el('tr', {}, ...['node', 'state', 'excluded', 'priority', 'score', 'rank'].map((h) => el('th', { text: h })))),
      el('tbody', {}, ...rows));
  }

  function serviceAction(action, sid) {
    const s = state.services.get(sid);
    const current = s ? s.entry.node : undefined;
    switch (action) {
      case 'migrate':
      case 'relocate':
        moveDialog(action, sid, current);
        break;
      case 'stop':
      case 'start':
        act(`${action} ${sid}`, () => api('PUT', `/resources/${seg(sid)}`, {
          options: { state: action === 'stop' ? 'stopped' : 'started' },
        }));
        break;
      case 'edit':
        editDialog(sid);
        break;
      case 'remove':
        openDialog(`remove ${sid}?`, [el('p', { text: 'The service stops being HA managed and is removed from every rule.' })],
          async () => { await api('DELETE', `/resources/${seg(sid)}`); }, 'Remove');
        break;
      case 'why':
        whyDialog(sid);
        break;
      default:
        break;
    }
  }

  // `k=v; k2=v2` (a `;` starts a new option only before `key=`).
  function parseOptions(text) {
    const out = {};
    const t = text.trim();
    if (!t) return out;
    for (const part of t.split(/;\s*(?=[A-Za-z_][A-Za-z0-9_-]*=)/)) {
      const eq = part.indexOf('=');
      if (eq <= 0) throw new Error(`options: '${part}' is not key=value`);
      out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim().replace(/;$/, '');
    }
    return out;
  }

  async function addResource(event) {
    event.preventDefault();
    let options;
    try {
      options = parseOptions($('add-options').value);
    } catch (e) {
      showError(e.message);
      return;
    }
    const sid = $('add-sid').value.trim();
    if (await act(`add ${sid}`, () => api('POST', '/resources', { sid, options }))) {
      $('add-sid').value = '';
      $('add-options').value = '';
    }
  }

  // ----- cluster actions -------------------------------------------------

  function clusterAction(button) {
    const action = button.dataset.action;
    if (action === 'maintenance-enable' || action === 'maintenance-disable') {
      const node = button.dataset.node;
      act(`${action} ${node}`, () => api('POST', '/crm-command', { command: `node-${action}`, node }));
    } else if (action === 'disarm') {
      const mode = button.dataset.mode;
      openDialog(`disarm HA (${mode})?`, [el('p', {
        text: mode === 'freeze'
          ? 'Services keep running but are frozen; then every node releases its watchdog.'
          : 'The CRM stops tracking the services; then every node releases its watchdog.',
      })], async () => { await api('POST', '/crm-command', { command: 'disarm-ha', mode }); }, 'Disarm');
    } else if (action === 'arm') {
      act('arm HA', () => api('POST', '/crm-command', { command: 'arm-ha' }));
    }
  }

  // ----- rules -----------------------------------------------------------

  async function loadRules() {
    const rules = await api('GET', '/rules');
    state.rulesDirty = false;
    const tbody = $('rule-rows');
    const seen = new Set();
    for (const r of rules) {
      seen.add(r.id);
      const target = r.type === 'node-affinity'
        ? Object.entries(r.nodes || {}).map(([n, p]) => (p ? `${n}:${p}` : n)).join(', ') + (r.strict ? ' (strict)' : '')
        : r.affinity;
      const errors = Object.values(r.errors || {}).flat();
      const status = r.disable ? 'disabled' : (errors.length ? 'ignored (conflicts)' : 'in use');
      const cells = [r.id, r.type, (r.resources || []).join(', '), target || '', status];
      const key = JSON.stringify([cells, errors]);
      let x = state.rules.get(r.id);
      if (!x) {
        const row = el('tr', { 'data-rule': r.id },
          ...cells.map(() => el('td')),
          el('td', { class: 'admin-only' },
            state.role === 'admin'
              ? el('button', { type: 'button', class: 'danger', 'data-action': 'remove-rule', 'data-rule': r.id, text: 'Remove' })
              : null));
        x = { row, key: '' };
        state.rules.set(r.id, x);
      }
      tbody.append(x.row); // keeps file order
      if (x.key === key) continue;
      x.key = key;
      cells.forEach((c, i) => setText(x.row.cells[i], c));
      x.row.cells[4].title = errors.join('\n');
    }
    for (const [id, x] of state.rules) {
      if (!seen.has(id)) {
        x.row.remove();
        state.rules.delete(id);
      }
    }
  }

  async function addRule(event) {
    event.preventDefault();
    const type = $('rule-type').value;
    const options = { resources: $('rule-resources').value.trim() };
    if (type === 'node-affinity') {
      options.nodes = $('rule-nodes').value.trim();
      if ($('rule-strict').checked) options.strict = '1';
    } else {
      options.affinity = $('rule-affinity').value;
    }
    const rule = $('rule-id').value.trim();
    state.rulesDirty = true;
    if (await act(`add rule ${rule}`, () => api('POST', '/rules', { type, rule, options }))) {
      for (const id of ['rule-id', 'rule-resources', 'rule-nodes']) $(id).value = '';
      $('rule-strict').checked = false;
    }
  }

  function ruleTypeChanged() {
    const node = $('rule-type').value === 'node-affinity';
    $('rule-nodes').classList.toggle('hidden', !node);
    $('rule-strict').parentElement.classList.toggle('hidden', !node);
    $('rule-affinity').classList.toggle('hidden', node);
  }

  // ----- history and timeline -------------------------------------------

  async function pollHistory() {
    // Until this node's API has a history, ask only every few polls.
    if (state.historyMissing && state.tick % 5 !== 0) return;
    // The first request gets the newest events, later ones those after
    // the last one seen.
    const q = state.historySeq === null
      ? `?limit=${HISTORY_PAGE}`
      : `?after=${state.historySeq}&limit=${HISTORY_PAGE}`;
    let r;
    try {
      r = await api('GET', '/history' + q);
    } catch (e) {
      if (e.status === 404) {
        state.historyMissing = true;
        return;
      }
      throw e;
    }
    state.historyMissing = false;
    const fresh = (r.events || []).filter((e) => state.historySeq === null || e.seq > state.historySeq);
    for (const e of fresh) {
      state.historySeq = state.historySeq === null ? e.seq : Math.max(state.historySeq, e.seq);
    }
    if (fresh.length === 0) {
      if (state.events.length === 0) setText($('history-count'), '(none yet)');
      return;
    }
    state.events.push(...fresh);
    if (state.events.length > HISTORY_KEEP) state.events.splice(0, state.events.length - HISTORY_KEEP);
    appendHistory(fresh);
    renderTimeline();
  }

  function timeOf(ms) {
    const d = new Date(ms);
    return d.toLocaleTimeString([], { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
  }

  function describe(e) {
    const parts = [];
    if (e.sid) parts.push(e.sid);
    if (e.node) parts.push(e.node);
    if (e.from || e.to) parts.push(`${e.from || ''} -> ${e.to || ''}`);
    if (e.actor) parts.push(`by ${e.actor}`);
    if (e.message) parts.push(e.message);
    return parts.join('  ');
  }

  function appendHistory(events) {
    const box = $('history');
    if (state.events.length === events.length) box.replaceChildren();
    const atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    const frag = document.createDocumentFragment();
    for (const e of events) {
      frag.append(el('span', { class: 'line', 'data-seq': e.seq, 'data-kind': e.kind },
        el('span', { class: 't', text: timeOf(e.time_ms) }), ' ',
        el('span', { class: 'k', text: e.kind }), ' ',
        describe(e)));
    }
    box.append(frag);
    while (box.childElementCount > HISTORY_LINES) box.firstElementChild.remove();
    if (atEnd) box.scrollTop = box.scrollHeight;
    setText($('history-count'), `(${state.events.length} events, last #${state.historySeq})`);
  }

  // The mark an event puts on the timeline: [lane, mark name, text], or
  // null when it is not part of a failover's story.
  function markOf(e) {
    switch (e.kind) {
      case 'node_state':
        return e.node ? [`node ${e.node}`, cls(e.to), e.to] : null;
      case 'fenced':
        return e.node ? [`node ${e.node}`, 'fenced', 'lease taken'] : null;
      case 'master':
        return e.node ? [`node ${e.node}`, 'master', 'CRM master'] : null;
      case 'recovery':
        return e.sid ? [e.sid, 'recovery', `recovery -> ${e.to || '?'}`] : null;
      case 'service_state':
        // The recovery event itself says more (where to).
        if (!e.sid || e.to === 'recovery') return null;
        return [e.sid, cls(e.to), e.to + (e.node && e.to === 'started' ? ` on ${e.node}` : '')];
      case 'start_failure':
      case 'error':
        return [e.sid || `node ${e.node}`, 'error', e.kind.replace('_', ' ')];
      default:
        return null;
    }
  }

  const FAULT = (e) => e.kind === 'node_state' && (e.to === 'unknown' || e.to === 'fence');

  function renderTimeline() {
    const box = $('timeline');
    const events = state.events;
    let last = -1;
    for (let i = events.length - 1; i >= 0; i -= 1) {
      if (FAULT(events[i])) {
        last = i;
        break;
      }
    }
    if (last < 0) {
      if (state.timelineKey !== 'none') {
        state.timelineKey = 'none';
        box.replaceChildren(el('p', { class: 'muted', text: 'no failover in the history' }));
        setText($('timeline-range'), '');
      }
      return;
    }
    // The episode: back to the first fault within 30 s before the last
    // one, forward 120 s.
    let first = last;
    for (let i = last - 1; i >= 0; i -= 1) {
      if (events[first].time_ms - events[i].time_ms > 30000) break;
      if (FAULT(events[i])) first = i;
    }
    const t0 = events[first].time_ms - 1000;
    const horizon = events[first].time_ms + 120000;
    const inWindow = events.filter((e) => e.time_ms >= t0 && e.time_ms <= horizon);
    const faultNodes = new Set(inWindow.filter(FAULT).map((e) => e.node));
    const affected = new Set(inWindow
      .filter((e) => e.sid && (e.kind === 'recovery' || (e.kind === 'service_state' && (e.to === 'fence' || e.to === 'recovery'))))
      .map((e) => e.sid));
    const marks = [];
    for (const e of inWindow) {
      const m = markOf(e);
      if (!m) continue;
      const isNode = m[0].startsWith('node ');
      if (isNode && !faultNodes.has(e.node) && e.kind !== 'master') continue;
      if (!isNode && !affected.has(m[0])) continue;
      marks.push({ lane: m[0], name: m[1], text: m[2], e });
    }
    const key = `${t0}|${marks.length}|${marks.length ? marks[marks.length - 1].e.seq : 0}`;
    if (key === state.timelineKey) return;
    state.timelineKey = key;
    const t1 = Math.max(t0 + 5000, ...marks.map((m) => m.e.time_ms)) + 1000;
    const span = t1 - t0;
    const lanes = [...new Set(marks.map((m) => m.lane))].sort((a, b) => {
      const an = a.startsWith('node ');
      const bn = b.startsWith('node ');
      if (an !== bn) return an ? -1 : 1;
      return a < b ? -1 : a > b ? 1 : 0;
    });
    const axis = el('div', { class: 'axis' });
    const steps = [0.5, 1, 2, 5, 10, 20, 30, 60];
    const step = (steps.find((s) => span / 1000 / s <= 10) || 60) * 1000;
    for (let t = 0; t <= span; t += step) {
      const tick = el('span', { class: 'tick', text: `+${t / 1000} s` });
      tick.style.left = `${(100 * t) / span}%`;
      axis.append(tick);
    }
    const laneEls = lanes.map((name) => {
      const track = el('div', { class: 'track' });
      for (const m of marks.filter((x) => x.lane === name)) {
        const mark = el('span', {
          class: `mark ${m.name}`,
          'data-mark': m.name,
          'data-kind': m.e.kind,
          'data-seq': m.e.seq,
          title: `${timeOf(m.e.time_ms)} ${m.e.kind}: ${describe(m.e)}`,
          text: m.text,
        });
        mark.style.left = `${(100 * (m.e.time_ms - t0)) / span}%`;
        track.append(mark);
      }
      return el('div', { class: 'lane', 'data-lane': name },
        el('span', { class: 'label', title: name, text: name }), track);
    });
    box.replaceChildren(axis, ...laneEls);
    setText($('timeline-range'), `(${timeOf(t0)} to ${timeOf(t1)})`);
    // Marks close in time would overlap: put them on rows below.
    for (const lane of laneEls) {
      const ends = [];
      const items = [...lane.querySelectorAll('.mark')];
      items.sort((a, b) => a.offsetLeft - b.offsetLeft);
      for (const m of items) {
        let row = ends.findIndex((end) => m.offsetLeft > end + 4);
        if (row < 0) row = Math.min(ends.length, 2);
        ends[row] = m.offsetLeft + m.offsetWidth;
        if (row > 0) m.classList.add(`row-${row}`);
      }
      if (ends.length > 1) lane.classList.add(`rows-${Math.min(ends.length, 3)}`);
    }
  }

  // ----- wiring ----------------------------------------------------------

  function init() {
    $('login-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const token = $('token').value.trim();
      if (token) login(token, false);
    });
    $('logout').addEventListener('click', () => logout(''));
    $('error-close').addEventListener('click', clearError);
    $('filter').addEventListener('input', applyFilter);
    $('add-form').addEventListener('submit', addResource);
    $('rule-form').addEventListener('submit', addRule);
    $('rule-type').addEventListener('change', ruleTypeChanged);
    $('dialog-ok').addEventListener('click', dialogOk);
    $('service-rows').addEventListener('click', (event) => {
      const button = event.target.closest('button[data-action]');
      const row = event.target.closest('tr[data-sid]');
      if (button && row) serviceAction(button.dataset.action, row.dataset.sid);
    });
    $('nodes').addEventListener('click', (event) => {
      const button = event.target.closest('button[data-action]');
      if (button) clusterAction(button);
    });
    $('overview').querySelector('.actions').addEventListener('click', (event) => {
      const button = event.target.closest('button[data-action]');
      if (button) clusterAction(button);
    });
    $('rule-rows').addEventListener('click', (event) => {
      const button = event.target.closest('button[data-action="remove-rule"]');
      if (!button) return;
      const id = button.dataset.rule;
      state.rulesDirty = true;
      act(`remove rule ${id}`, () => api('DELETE', `/rules/${seg(id)}`));
    });
    ruleTypeChanged();
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) login(saved, true);
    else showLogin();
  }

  init();
})();

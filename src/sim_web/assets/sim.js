// The simulator page (`ha-manager sim serve`). Plain JS, no libraries: it
// asks the server's JSON API (/api/...) and draws what it answers. Every
// text from the server goes through textContent, never HTML.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);

  // What the page has drawn: the session generation (changes on load and
  // reset) and how many log lines it shows.
  const seen = { generation: null, logCount: 0, nodes: "" };
  let running = false;
  let inFlight = 0;

  class ApiError extends Error {
    constructor(message, status, data) {
      super(message);
      this.status = status;
      this.data = data || {};
    }
  }

  async function api(method, path, body, withSince = true) {
    let url = path;
    if (withSince) {
      url += (path.includes("?") ? "&" : "?") + "since=" + seen.logCount;
    }
    const opts = { method, headers: {} };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    inFlight += 1;
    try {
      const resp = await fetch(url, opts);
      let data = null;
      try {
        data = await resp.json();
      } catch (_) {
        data = null;
      }
      if (!resp.ok) {
        throw new ApiError((data && data.error) || resp.statusText, resp.status, data);
      }
      return data;
    } finally {
      inFlight -= 1;
    }
  }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else e.setAttribute(k, v);
    }
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function badge(text, cls) {
    return el("span", { class: "badge " + (cls || text) }, text);
  }

  // ---- drawing -----------------------------------------------------------

  async function render(state) {
    if (state.generation !== seen.generation) {
      // A new run: the log starts over.
      seen.generation = state.generation;
      seen.logCount = 0;
      seen.nodes = "";
      $("log").textContent = "";
      if (state.log_from !== 0) {
        state = await api("GET", "/api/state");
      }
    }
    $("clock").textContent = state.time;
    $("round").textContent = state.round;
    const status = $("status");
    status.textContent = state.status + (state.error ? ": " + state.error : "");
    status.className = "badge " + state.status;
    $("profile").textContent = state.profile;
    $("seed").textContent = state.seed;
    $("scenario-name").textContent = state.dir ? state.dir : "built-in scenario";
    renderNodes(state.nodes);
    renderServices(state.services, Object.keys(state.nodes));
    renderViolations(state.violations, state.liveness_violations);
    renderPending(state.pending);
    appendLog(state);
    if (state.status !== "running" && running) stopRunning();
  }

  function renderNodes(nodes) {
    const box = $("nodes");
    const names = Object.keys(nodes);
    if (seen.nodes !== names.join(",")) {
      box.textContent = "";
      for (const name of names) box.appendChild(nodeCard(name));
      seen.nodes = names.join(",");
      fillExamples(names);
    }
    for (const name of names) updateNodeCard(name, nodes[name]);
  }

  function nodeCard(name) {
    const card = el("div", { class: "node", id: "node-" + name, "data-node": name });
    card.appendChild(el("div", { class: "name" }, name));
    card.appendChild(el("div", { class: "badges" }));
    card.appendChild(el("div", { class: "detail" }));
    const sw = el("div", { class: "switches" });
    for (const what of ["power", "network"]) {
      const b = el("button", {
        class: "switch",
        id: what + "-" + name,
        "data-node": name,
        "data-switch": what,
        "aria-pressed": "true",
        type: "button",
      }, what);
      b.addEventListener("click", () => {
        const on = b.getAttribute("aria-pressed") === "true";
        sendCommand(what + " " + name + " " + (on ? "off" : "on"));
      });
      sw.appendChild(b);
    }
    card.appendChild(sw);
    return card;
  }

  function updateNodeCard(name, n) {
    const card = $("node-" + name);
    if (!card) return;
    card.className = "node state-" + n.node_state + (n.power === "on" ? "" : " power-off");
    card.dataset.power = n.power;
    card.dataset.network = n.network;
    card.dataset.state = n.node_state;
    const badges = card.querySelector(".badges");
    badges.textContent = "";
    badges.appendChild(badge(n.node_state, n.node_state === "fence" ? "fence-state" : n.node_state));
    if (n.master) badges.appendChild(badge("master"));
    if (n.leader) badges.appendChild(badge("leader"));
    card.querySelector(".detail").textContent = "crm " + n.crm_state + ", lrm " + n.lrm_state;
    for (const what of ["power", "network"]) {
      const b = $(what + "-" + name);
      const on = n[what] === "on";
      b.setAttribute("aria-pressed", on ? "true" : "false");
      b.textContent = what + " " + (on ? "on" : "off");
      b.title = "switch " + what + " " + (on ? "off" : "on");
    }
  }

  // Rows are kept by SID and only touched when their data changed, so a
  // page with thousands of services stays quick.
  const rows = new Map();

  function renderServices(services, nodeNames) {
    const body = $("service-rows");
    const sids = Object.keys(services);
    $("service-count").textContent = "(" + sids.length + ")";
    const wanted = new Set(sids);
    for (const [sid, row] of rows) {
      if (!wanted.has(sid)) {
        row.tr.remove();
        rows.delete(sid);
      }
    }
    let previous = null;
    for (const sid of sids) {
      const s = services[sid];
      let row = rows.get(sid);
      if (!row) {
        row = serviceRow(sid, nodeNames);
        rows.set(sid, row);
      }
      const key = [s.state, s.node, s.crm_node || "", s.running_on.join(","), s.requested].join("|");
      if (row.key !== key) {
        row.key = key;
        row.tr.dataset.state = s.state;
        row.tr.dataset.node = s.node;
        row.state.textContent = "";
        row.state.appendChild(badge(s.state));
        row.node.textContent = s.crm_node && s.crm_node !== s.node ? s.node + " (crm: " + s.crm_node + ")" : s.node;
        row.running.textContent = s.running_on.length ? s.running_on.join(", ") : "-";
        row.requested.textContent = s.requested;
      }
      row.nodeNames = nodeNames;
      // keep the server's order (sorted by SID)
      const expectedNext = previous ? previous.nextSibling : body.firstChild;
      if (expectedNext !== row.tr) body.insertBefore(row.tr, expectedNext);
      previous = row.tr;
    }
  }

  function serviceRow(sid, nodeNames) {
    const tr = el("tr", { "data-sid": sid, id: "service-" + sid });
    const cells = {};
    tr.appendChild(el("td", { class: "col-sid" }, sid));
    for (const k of ["state", "node", "running", "requested"]) {
      cells[k] = el("td", { class: "col-" + k });
      tr.appendChild(cells[k]);
    }
    const actions = el("td", { class: "col-actions" });
    const sel = el("select", { "data-sid": sid, "aria-label": "action for " + sid });
    sel.appendChild(el("option", { value: "" }, "action..."));
    const row = { tr, key: null, nodeNames, ...cells };
    // The options are built when the list is opened: thousands of rows
    // need no thousands of option lists until then.
    const fill = () => {
      if (sel.options.length > 1) return;
      const add = (value, text) => sel.appendChild(el("option", { value }, text));
      for (const n of row.nodeNames) add("service " + sid + " migrate " + n, "migrate to " + n);
      for (const n of row.nodeNames) add("service " + sid + " relocate " + n, "relocate to " + n);
      add("service " + sid + " started", "request started");
      add("service " + sid + " stopped", "request stopped");
      add("service " + sid + " disabled", "disable");
      add("service " + sid + " stop 0", "stop now");
    };
    sel.addEventListener("focus", fill);
    sel.addEventListener("mousedown", fill);
    sel.addEventListener("change", () => {
      const cmd = sel.value;
      sel.value = "";
      if (cmd) sendCommand(cmd);
    });
    actions.appendChild(sel);
    tr.appendChild(actions);
    return row;
  }

  function renderViolations(safety, liveness) {
    const ul = $("violations");
    ul.textContent = "";
    const all = safety.map((v) => "safety: " + v).concat(liveness.map((v) => "liveness: " + v));
    if (!all.length) {
      ul.appendChild(el("li", { class: "muted" }, "none"));
      return;
    }
    for (const v of all) ul.appendChild(el("li", {}, v));
  }

  function renderPending(pending) {
    const text = pending
      .filter((b) => b.length)
      .map((b) => b.join(", "))
      .join(" | ");
    $("pending").textContent = text || "none";
  }

  function levelClass(line) {
    const level = line.slice(0, 5).trim();
    if (["info", "noti", "warn", "err", "emai"].includes(level)) return level;
    return "info";
  }

  function appendLog(state) {
    const log = $("log");
    const skip = seen.logCount - state.log_from;
    if (skip < 0) return; // a gap: the next refresh fills it
    const frag = document.createDocumentFragment();
    for (const line of state.log.slice(skip)) {
      frag.appendChild(el("span", { class: "line " + levelClass(line) }, line));
    }
    log.appendChild(frag);
    seen.logCount = Math.max(seen.logCount, state.log_from + state.log.length);
    log.dataset.lines = seen.logCount;
    if ($("follow").checked) log.scrollTop = log.scrollHeight;
  }

  function fillExamples(nodeNames) {
    const list = $("command-examples");
    list.textContent = "";
    const n = nodeNames[nodeNames.length - 1] || "node1";
    const examples = [
      "power " + n + " off",
      "network " + n + " off",
      "crm " + n + " enable-node-maintenance",
      "crm " + n + " disable-node-maintenance",
      "reboot " + n,
      "shutdown " + n,
      "restart-lrm " + n,
      "pause " + n,
      "resume all",
      "link " + nodeNames[0] + " " + n + " off",
      "link all on",
      "skip-round crm 2",
      "skip-round lrm",
      "delay 100",
      "crm " + nodeNames[0] + " disarm-ha freeze",
      "crm " + nodeNames[0] + " arm-ha",
    ];
    for (const e of examples) list.appendChild(el("option", { value: e }));
  }

  // ---- actions -----------------------------------------------------------

  function showError(target, e) {
    const word = e.data && e.data.word ? " [" + e.data.word + "]" : "";
    $(target).textContent = e.message + word;
  }

  async function act(fn, errorTarget = "command-error") {
    try {
      await render(await fn());
      $(errorTarget).textContent = "";
    } catch (e) {
      showError(errorTarget, e);
      if (running) stopRunning();
    }
  }

  function sendCommand(cmd) {
    return act(() => api("POST", "/api/command", { command: cmd, advance: $("advance").checked }));
  }

  function stopRunning() {
    running = false;
    $("run").disabled = false;
    $("pause").disabled = true;
  }

  async function runLoop() {
    while (running) {
      await act(() => api("POST", "/api/run", { rounds: 1 }));
      if (!running) break;
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  $("step").addEventListener("click", () => act(() => api("POST", "/api/step")));
  $("run").addEventListener("click", () => {
    if (running) return;
    running = true;
    $("run").disabled = true;
    $("pause").disabled = false;
    runLoop();
  });
  $("pause").addEventListener("click", stopRunning);
  $("run-done").addEventListener("click", () => act(() => api("POST", "/api/run", { until_done: true })));
  $("reset").addEventListener("click", () => {
    stopRunning();
    act(() => api("POST", "/api/reset"));
  });
  $("command-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const cmd = $("command").value.trim();
    if (!cmd) return;
    sendCommand(cmd).then(() => {
      if (!$("command-error").textContent) $("command").value = "";
    });
  });

  function scenarioMessage(text, ok) {
    const m = $("scenario-message");
    m.textContent = text;
    m.className = ok ? "ok" : "error-text";
  }

  $("load").addEventListener("click", async () => {
    stopRunning();
    const body = { dir: $("scenario-dir").value.trim() };
    const profile = $("load-profile").value;
    if (profile) body.profile = profile;
    const seed = $("load-seed").value.trim();
    if (seed) {
      if (!/^\d+$/.test(seed)) {
        scenarioMessage("seed must be a non-negative integer", false);
        return;
      }
      body.seed = Number(seed);
    }
    try {
      await render(await api("POST", "/api/load", body));
      scenarioMessage("loaded " + body.dir, true);
    } catch (e) {
      scenarioMessage(e.message, false);
    }
  });

  $("save").addEventListener("click", async () => {
    const dir = $("scenario-dir").value.trim();
    try {
      const r = await api("POST", "/api/save", { dir }, false);
      scenarioMessage("saved " + r.written.join(", ") + " to " + r.dir, true);
    } catch (e) {
      scenarioMessage(e.message, false);
    }
  });

  $("show-files").addEventListener("click", async () => {
    const box = $("saved-files");
    try {
      const r = await api("GET", "/api/save", undefined, false);
      box.textContent = "";
      for (const [name, text] of Object.entries(r.files)) {
        box.appendChild(el("h3", {}, name));
        box.appendChild(el("pre", { "data-file": name }, text));
      }
    } catch (e) {
      scenarioMessage(e.message, false);
    }
  });

  // Another tab or client may drive the same session: look every 2 s
  // while nothing else is asking.
  async function poll() {
    if (!running && inFlight === 0) {
      try {
        await render(await api("GET", "/api/state"));
      } catch (_) {
        // the server is gone or busy; try again later
      }
    }
    setTimeout(poll, 2000);
  }
  poll();
})();

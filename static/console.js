// Pura console: a key in localStorage, then the key's settings, balance, top-ups and spend,
// all through the gateway's public JSON API. No framework, no build step, no external assets.
"use strict";

(() => {
  const STORE = "pura.console.key";
  const POLL_MS = 2000;
  const HOUR_MS = 3600 * 1000;
  // Chart buckets per period: hours covered and hours per bar.
  const PERIODS = {
    "1h": { hours: 1, bucket: 1, caption: "per hour" },
    "24h": { hours: 24, bucket: 1, caption: "per hour" },
    "7d": { hours: 7 * 24, bucket: 6, caption: "per 6 hours" },
    "30d": { hours: 30 * 24, bucket: 24, caption: "per day" },
  };
  const SVG_NS = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);

  let key = null; // the key in use
  let account = null; // last GET /api/keys/me
  let report = null; // last GET /api/report
  let keysLoad = 0; // bumped by every load of the keys panel, so an older answer is dropped
  let editing = null; // the open limits editor in the keys table: { id, row, button }
  let watch = null; // the invoice being polled: { id, timer }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(message, status, code) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /** Calls the gateway; resolves with the JSON body, rejects with an ApiError. */
  async function api(method, path, body, withKey = true) {
    const headers = { Accept: "application/json" };
    if (withKey) headers.Authorization = "Bearer " + key;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let resp;
    try {
      resp = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch (e) {
      throw new ApiError("Cannot reach the gateway (" + e.message + ").", 0, null);
    }
    const text = await resp.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (!resp.ok) {
      const err = data && data.error ? data.error : {};
      const message = err.message || resp.status + " " + resp.statusText;
      throw new ApiError(message, resp.status, err.code || null);
    }
    return data;
  }

  // ---------------------------------------------------------------- messages

  let sayTimer = 0;

  /** Shows a message; a success fades after a while, an error stays until dismissed. */
  function say(text, kind) {
    clearTimeout(sayTimer);
    if (kind === "ok") sayTimer = setTimeout(clearMessage, 8000);
    const box = $("message");
    $("message-text").textContent = text;
    box.classList.toggle("ok", kind === "ok");
    box.setAttribute("role", kind === "ok" ? "status" : "alert");
    box.hidden = false;
  }

  function fail(err) {
    if (err instanceof ApiError && err.status) {
      let text = err.message;
      if (err.code) text += " (" + err.status + " " + err.code + ")";
      if (err.status === 401) text += " Check the key, or create a new one.";
      say(text, "error");
    } else {
      say(err && err.message ? err.message : String(err), "error");
    }
  }

  function clearMessage() {
    $("message").hidden = true;
  }

  /** The button that submitted a form (older browsers lack `SubmitEvent.submitter`). */
  const submitter = (e) => e.submitter || e.target.querySelector('button[type="submit"]');

  /** Disables `button` while `work` runs; reports a failure in the message area. */
  async function busy(button, work) {
    if (button) button.disabled = true;
    try {
      return await work();
    } catch (err) {
      fail(err);
      return undefined;
    } finally {
      if (button) button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- formatting

  /**
   * Money with one rule everywhere: at least cents, up to four decimals (`$0.50`, `$0.7997`,
   * `$12.3456`; whole cents from $1,000); under a cent, three significant digits (`$0.00123`).
   * Trailing zeros are kept, so figures in a column line up.
   */
  function usd(x) {
    const v = Number(x) || 0;
    const a = Math.abs(v);
    if (a === 0) return "$0.00";
    if (a < 0.000001) return "< $0.000001";
    const small = v.toPrecision(3);
    if (Math.abs(Number(small)) < 0.01) return "$" + small;
    // Cents, unless that would round what is left of a budget up to a whole figure.
    return "$" + v.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: a < 1000 ? 4 : 2 });
  }

  const int = (n) => (Number(n) || 0).toLocaleString("en-US");

  function latency(ms) {
    const v = Number(ms) || 0;
    return v >= 1000 ? (v / 1000).toFixed(2) + " s" : Math.round(v) + " ms";
  }

  function when(iso, opts) {
    const d = new Date(iso);
    return isNaN(d) ? "–" : d.toLocaleString(undefined, opts || { dateStyle: "medium", timeStyle: "short" });
  }

  function setText(id, text) {
    $(id).textContent = text;
  }

  // ---------------------------------------------------------------- key

  function storedKey() {
    try {
      return localStorage.getItem(STORE);
    } catch (_) {
      return null;
    }
  }

  function storeKey(value) {
    try {
      if (value) localStorage.setItem(STORE, value);
      else localStorage.removeItem(STORE);
    } catch (_) {
      // Storage off (private mode): the key lives for this page only.
    }
  }

  /** A `#key=pura_…` fragment is taken once, stored, and removed from the address bar. */
  function keyFromFragment() {
    const m = /^#key=(pura_[A-Za-z0-9]+)$/.exec(location.hash);
    if (!m) return null;
    history.replaceState(null, "", location.pathname + location.search);
    return m[1];
  }

  function useKey(value) {
    stopWatching();
    key = value;
    storeKey(value);
    $("key-input").value = value || "";
    $("forget-key").hidden = !value;
    account = null;
    report = null;
    $("invoice").hidden = true;
    resetKeys();
    if (!value) {
      $("panels").hidden = true;
      return Promise.resolve();
    }
    return loadAll();
  }

  function showNewKey(secret) {
    $("new-key-value").value = secret;
    $("new-key").hidden = false;
    $("new-key-value").focus();
    $("new-key-value").select();
  }

  async function copy(input, button) {
    const text = input.value;
    try {
      await navigator.clipboard.writeText(text);
    } catch (_) {
      input.select();
      document.execCommand("copy");
    }
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = label), 1500);
  }

  // ---------------------------------------------------------------- panels

  async function loadAll() {
    // The key's own view first: a 401 here means the key is wrong, and the panels stay hidden.
    try {
      renderInfo(await api("GET", "/api/keys/me"));
    } catch (err) {
      $("panels").hidden = true;
      fail(err);
      return;
    }
    $("panels").hidden = false;
    const results = await Promise.allSettled([loadBalance(), loadReport(), loadKeys()]);
    const bad = results.find((r) => r.status === "rejected");
    if (bad) fail(bad.reason);
  }

  function renderInfo(a) {
    account = a;
    setText("info-label", a.label || "(no label)");
    setText("info-id", a.id);
    setText("info-created", when(a.createdAt, { dateStyle: "medium" }));
    setText("info-free", int(a.freeRequestsRemaining));
    setText("info-daily", usd(a.dailyBudgetUsd));
    setText("info-monthly", usd(a.monthlyBudgetUsd));
    setText("info-rpm", int(a.rpmLimit));
    setText("info-role", a.role || "–");
    $("edit-label").value = a.label || "";
    $("edit-daily").value = a.dailyBudgetUsd;
    $("edit-monthly").value = a.monthlyBudgetUsd;
    $("edit-rpm").value = a.rpmLimit;
    // A tool key cannot lift its own limits: the account's manage key sets them.
    const fixed = a.role === "use";
    for (const id of ["edit-daily", "edit-monthly", "edit-rpm"]) $(id).disabled = fixed;
    $("edit-limits-note").hidden = !fixed;
    $("edit-email").value = a.notifyEmail || "";
    $("edit-webhook").value = a.webhookUrl || "";
  }

  async function loadBalance() {
    const b = await api("GET", "/api/wallet/balance");
    setText("balance-sats", int(b.balanceSats));
    setText("balance-usd", "≈ " + usd(b.balanceUsd));
    setText("balance-free", int(b.freeRequestsRemaining));
    setText("balance-today", usd(b.dailySpendUsd) + " of " + usd(b.dailyBudgetUsd));
    setText(
      "balance-month",
      b.monthlySpendUsd === undefined ? "–" : usd(b.monthlySpendUsd) + " of " + usd(b.monthlyBudgetUsd)
    );
    setText("balance-left", usd(b.budgetRemainingUsd));
    setText("info-free", int(b.freeRequestsRemaining));
  }

  /** The PATCH body: only the fields that differ from the key's current view; empty = default. */
  function settingsPatch() {
    const patch = {};
    const label = $("edit-label").value.trim();
    if (label !== (account.label || "")) patch.label = label;
    const numbers = [
      ["edit-daily", "dailyBudgetUsd", parseFloat],
      ["edit-monthly", "monthlyBudgetUsd", parseFloat],
      ["edit-rpm", "rpmLimit", (s) => parseInt(s, 10)],
    ];
    for (const [id, field, parse] of numbers) {
      if ($(id).disabled) continue;
      const raw = $(id).value.trim();
      if (raw === "") patch[field] = null;
      else if (parse(raw) !== account[field]) patch[field] = parse(raw);
    }
    for (const [id, field] of [["edit-email", "notifyEmail"], ["edit-webhook", "webhookUrl"]]) {
      const raw = $(id).value.trim();
      if (raw !== (account[field] || "")) patch[field] = raw === "" ? null : raw;
    }
    return patch;
  }

  // ---------------------------------------------------------------- keys

  /** A promise's outcome as `Promise.allSettled` gives it, for one promise. */
  const settle = (p) => p.then((value) => ({ status: "fulfilled", value }), (reason) => ({ status: "rejected", reason }));
  const keyPath = (id) => "/api/account/keys/" + encodeURIComponent(id);
  const quoted = (k) => "“" + (k.label || k.id) + "”";

  /** "manage": the keys panel; "use": the note that a tool key manages nothing; "none": neither. */
  function keysMode(mode) {
    $("keys-panel").hidden = mode !== "manage";
    $("keys-note").hidden = mode !== "use";
  }

  function resetKeys() {
    keysLoad++;
    keysMode("none");
    editing = null;
    $("keys-body").replaceChildren();
    setText("keys-status", "");
    hideSecret();
  }

  function keysStatus(text) {
    setText("keys-status", text);
  }

  /**
   * The account's keys and their last 24 h of spend, for a manage key. A use key (its role, or a
   * 403 from the account) gets a note instead; a gateway without accounts (404) gets neither.
   */
  async function loadKeys() {
    const mine = ++keysLoad;
    if (account && account.role === "use") {
      keysMode("use");
      return;
    }
    const perKeyCall = () => settle(api("GET", "/api/report?period=24h&key=all"));
    // A known manage key asks for both at once; otherwise the account's answer (a 403?) comes first.
    const early = account && account.role === "manage" ? perKeyCall() : null;
    const acct = await settle(api("GET", "/api/account"));
    if (mine !== keysLoad) return; // the key changed, or a newer load is on its way
    if (acct.status === "rejected") {
      const status = acct.reason && acct.reason.status;
      keysMode(status === 403 ? "use" : "none");
      if (status === 403 || status === 404) return;
      throw acct.reason;
    }
    const per = await (early || perKeyCall());
    if (mine !== keysLoad) return;
    keysMode("manage");
    if (per.status === "rejected") {
      keysStatus("Spend in the last 24 h is unavailable: " + per.reason.message);
    }
    renderKeys(acct.value.keys || [], per.status === "fulfilled" ? (per.value && per.value.perKey) || {} : null);
  }

  function renderKeys(list, perKey) {
    editing = null;
    const body = $("keys-body");
    body.replaceChildren();
    if (list.length === 0) {
      const td = body.insertRow().insertCell();
      td.colSpan = 9;
      td.className = "empty";
      td.textContent = "No keys on this account.";
      return;
    }
    for (const k of list) body.appendChild(keyRow(k, perKey));
  }

  /** "$0.0123 / $5.00": spent so far against a budget. */
  function spendOf(spent, budget) {
    return (spent == null ? "–" : usd(spent)) + " / " + (budget == null ? "–" : usd(budget));
  }

  function button(text, label, kind, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.setAttribute("aria-label", label);
    if (kind) b.className = kind;
    b.addEventListener("click", onClick);
    return b;
  }

  function keyRow(k, perKey) {
    const tr = document.createElement("tr");
    tr.dataset.id = k.id;
    if (k.disabled) tr.className = "off";
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = k.label || "(no label)";
    const own = account && k.id === account.id;
    if (own) {
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = "this console";
      th.append(" ", tag);
    }
    tr.appendChild(th);
    const cell = (text, className) => {
      const td = tr.insertCell();
      if (className) td.className = className;
      td.textContent = text;
      return td;
    };
    cell(k.role || "–");
    cell(when(k.createdAt, { dateStyle: "medium" }));
    const badge = document.createElement("span");
    badge.className = "badge " + (k.disabled ? "disabled" : "active");
    badge.textContent = k.disabled ? "Disabled" : "Active";
    tr.insertCell().appendChild(badge);
    cell(spendOf(k.dailySpendUsd, k.dailyBudgetUsd), "num");
    cell(spendOf(k.monthlySpendUsd, k.monthlyBudgetUsd), "num");
    cell(k.rpmLimit == null ? "–" : int(k.rpmLimit), "num");
    const p = perKey && perKey[k.id];
    cell(perKey === null ? "–" : usd(p ? p.spendUsd : 0) + " · " + int(p ? p.requests : 0) + " req", "num");

    const actions = document.createElement("div");
    actions.className = "row-actions";
    tr.insertCell().appendChild(actions);
    const name = k.label || k.id;
    if (k.disabled) {
      actions.append(button("Enable", "Enable " + name, "secondary", (e) => enableKey(k, e.currentTarget)));
    } else {
      const edit = button("Edit budget", "Edit budget of " + name, "secondary", (e) => toggleEditor(k, tr, e.currentTarget));
      edit.setAttribute("aria-expanded", "false");
      actions.append(
        edit,
        button("Rotate", "Rotate " + name, "secondary", (e) => rotateKey(k, e.currentTarget))
      );
      if (!own) actions.append(button("Disable", "Disable " + name, "danger", (e) => disableKey(k, e.currentTarget)));
    }
    return tr;
  }

  /** A row under the key's row with its daily budget (and monthly budget and rate) to edit. */
  function toggleEditor(k, row, opener) {
    const wasOpen = editing && editing.id === k.id;
    closeEditor(false);
    if (wasOpen) return;
    const fields = [
      ["dailyBudgetUsd", "Daily budget (USD)", "any", parseFloat],
      ["monthlyBudgetUsd", "Monthly budget (USD)", "any", parseFloat],
      ["rpmLimit", "Requests per minute", "1", (v) => parseInt(v, 10)],
    ];
    const form = document.createElement("form");
    form.className = "key-edit";
    const inputs = {};
    for (const [field, text, step] of fields) {
      const id = "key-edit-" + field;
      const wrap = document.createElement("div");
      wrap.className = "field";
      const label = document.createElement("label");
      label.htmlFor = id;
      label.textContent = text;
      const input = document.createElement("input");
      input.id = id;
      input.type = "number";
      input.min = "0";
      input.step = step;
      input.inputMode = step === "1" ? "numeric" : "decimal";
      input.value = k[field] == null ? "" : String(k[field]);
      wrap.append(label, input);
      form.appendChild(wrap);
      inputs[field] = input;
    }
    const save = document.createElement("button");
    save.type = "submit";
    save.textContent = "Save";
    const cancel = button("Cancel", "Cancel editing " + (k.label || k.id), "secondary", () => closeEditor(true));
    form.append(save, cancel);
    const hint = document.createElement("p");
    hint.className = "hint";
    hint.textContent = "Editing " + quoted(k) + ". An emptied field goes back to the gateway's default.";
    form.appendChild(hint);

    form.addEventListener("keydown", (e) => {
      if (e.key === "Escape") closeEditor(true);
    });
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const patch = {};
      for (const [field, , , parse] of fields) {
        const raw = inputs[field].value.trim();
        const value = raw === "" ? null : parse(raw);
        if (value !== (k[field] == null ? null : k[field])) patch[field] = value;
      }
      if (Object.keys(patch).length === 0) {
        keysStatus("Nothing changed for " + quoted(k) + ".");
        closeEditor(true);
        return;
      }
      busy(save, async () => {
        await api("PATCH", keyPath(k.id), patch);
        keysStatus("Budget of " + quoted(k) + " saved.");
        await afterChange(k.id);
      });
    });

    const editRow = document.createElement("tr");
    editRow.className = "edit-row";
    const td = editRow.insertCell();
    td.colSpan = 9;
    td.appendChild(form);
    row.after(editRow);
    opener.setAttribute("aria-expanded", "true");
    editing = { id: k.id, row: editRow, button: opener };
    inputs.dailyBudgetUsd.focus();
  }

  function closeEditor(refocus) {
    if (!editing) return;
    const { row, button: opener } = editing;
    editing = null;
    row.remove();
    opener.setAttribute("aria-expanded", "false");
    if (refocus) opener.focus();
  }

  /** Reloads the table after a change; the console's own key also reloads its panels. */
  async function afterChange(id) {
    if (account && id === account.id) {
      renderInfo(await api("GET", "/api/keys/me"));
      await Promise.all([loadKeys(), loadBalance()]);
    } else {
      await loadKeys();
    }
    focusRow(id);
  }

  /** Focus back on a row's first button (or its header) once the table was drawn again. */
  function focusRow(id) {
    const row = [...$("keys-body").rows].find((r) => r.dataset.id === id);
    if (!row) return;
    const target = row.querySelector("button") || row.cells[0];
    if (!target.matches("button")) target.tabIndex = -1;
    target.focus();
  }

  function rotateKey(k, btn) {
    const own = account && k.id === account.id;
    const warning = own
      ? "Rotate " + quoted(k) + ", the key this console uses? Its current secret stops working at once; update every client that uses it."
      : "Rotate " + quoted(k) + "? Its current secret stops working at once; update the tool that uses it.";
    if (!confirm(warning)) return;
    busy(btn, async () => {
      const rotated = await api("POST", keyPath(k.id) + "/rotate");
      if (own) {
        showNewKey(rotated.key);
        await useKey(rotated.key);
        say("Key rotated. The old secret no longer works.", "ok");
        return;
      }
      showSecret("New secret for " + quoted(k), rotated.key);
      keysStatus("Key " + quoted(k) + " rotated; its old secret no longer works.");
      await loadKeys();
    });
  }

  function disableKey(k, btn) {
    if (!confirm("Disable " + quoted(k) + "? Requests with this key are refused until it is enabled again.")) return;
    busy(btn, async () => {
      await api("DELETE", keyPath(k.id));
      keysStatus("Key " + quoted(k) + " disabled.");
      await afterChange(k.id);
    });
  }

  function enableKey(k, btn) {
    busy(btn, async () => {
      await api("PATCH", keyPath(k.id), { disabled: false });
      keysStatus("Key " + quoted(k) + " enabled.");
      await afterChange(k.id);
    });
  }

  /** The create form's body: label and role, and only the limits that were filled in. */
  function createBody() {
    const body = { label: $("keys-create-label").value.trim(), role: $("keys-create-role").value };
    const numbers = [
      ["keys-create-daily", "dailyBudgetUsd", parseFloat],
      ["keys-create-monthly", "monthlyBudgetUsd", parseFloat],
      ["keys-create-rpm", "rpmLimit", (s) => parseInt(s, 10)],
    ];
    for (const [id, field, parse] of numbers) {
      const raw = $(id).value.trim();
      if (raw !== "") body[field] = parse(raw);
    }
    return body;
  }

  function showSecret(title, secret) {
    setText("keys-secret-title", title + ": copy it now.");
    $("keys-secret-value").value = secret;
    $("keys-secret").hidden = false;
    $("keys-secret-value").focus();
    $("keys-secret-value").select();
  }

  function hideSecret() {
    $("keys-secret-value").value = "";
    $("keys-secret").hidden = true;
  }

  // ---------------------------------------------------------------- top-up

  function showInvoice(inv) {
    setText("invoice-amount", int(inv.amountSats));
    setStatus(inv.status);
    setText("invoice-expires", inv.expiresAt ? "Expires " + when(inv.expiresAt) + "." : "");
    const pay = $("invoice-pay");
    const lightning = String(inv.lightningUrl || "");
    pay.hidden = !/^lightning:/i.test(lightning);
    pay.href = pay.hidden ? "#" : lightning;
    const page = $("invoice-page");
    const url = String(inv.invoiceUrl || "");
    page.hidden = !/^https?:\/\//i.test(url);
    page.href = page.hidden ? "#" : url;
    $("invoice-bolt11").value = inv.paymentRequest || "";
    $("invoice").hidden = false;
  }

  /** Once an invoice is paid or expired, only its status is left to show. */
  function setStatus(status) {
    const badge = $("invoice-status");
    badge.textContent = status;
    badge.className = "badge " + status;
    $("invoice-open").hidden = status !== "pending";
  }

  function stopWatching() {
    if (watch) clearTimeout(watch.timer);
    watch = null;
  }

  /** Polls the invoice every 2 s until it is paid or expired; a paid one refreshes the balance. */
  function watchInvoice(id) {
    stopWatching();
    const mine = { id, timer: 0 };
    watch = mine;
    const tick = async () => {
      if (watch !== mine) return;
      let s;
      try {
        s = await api("GET", "/api/wallet/status?invoiceId=" + encodeURIComponent(id));
      } catch (err) {
        if (watch !== mine) return;
        // The gateway restarting or a network blip: keep trying; anything else is final.
        if (err.status === 0 || err.status >= 500) mine.timer = setTimeout(tick, POLL_MS);
        else fail(err);
        return;
      }
      if (watch !== mine) return;
      setStatus(s.status);
      if (s.status === "paid") {
        watch = null;
        say("Payment received: " + int(s.amountSats) + " sats credited.", "ok");
        loadBalance().catch(fail);
      } else if (s.status === "expired") {
        watch = null;
        say("The invoice expired unpaid. Ask for a new one to top up.", "error");
      } else {
        mine.timer = setTimeout(tick, POLL_MS);
      }
    };
    mine.timer = setTimeout(tick, POLL_MS);
  }

  // ---------------------------------------------------------------- report

  function period() {
    const checked = document.querySelector('input[name="period"]:checked');
    return checked ? checked.value : "24h";
  }

  async function loadReport() {
    const p = period();
    const r = await api("GET", "/api/report?period=" + encodeURIComponent(p));
    if (p !== period()) return; // a newer choice is on its way
    report = r;
    setText("report-requests", int(r.requestCount));
    setText("report-spend", usd(r.totalSpendUsd));
    setText("report-average", usd(r.averageCostUsd));
    renderProviders(r.perModel || {});
    drawChart();
  }

  function renderProviders(per) {
    const body = $("providers-body");
    body.replaceChildren();
    const rows = Object.entries(per).sort((a, b) => b[1].spendUsd - a[1].spendUsd || b[1].requests - a[1].requests);
    if (rows.length === 0) {
      const tr = body.insertRow();
      const td = tr.insertCell();
      td.colSpan = 5;
      td.className = "empty";
      td.textContent = "No requests in this period.";
      return;
    }
    for (const [name, p] of rows) {
      const tr = body.insertRow();
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = name;
      tr.appendChild(th);
      const cells = [
        int(p.requests),
        usd(p.spendUsd),
        int(p.promptTokens) + " / " + int(p.completionTokens),
        latency(p.avgLatencyMs),
      ];
      cells.forEach((text, i) => {
        const td = tr.insertCell();
        td.className = i === 2 ? "num tokens" : "num";
        td.textContent = text;
      });
    }
  }

  /** The `hourly` entries summed into fixed buckets that end with the current hour. */
  function buckets(hourly, spec) {
    const end = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
    const start = Math.floor((Date.now() - spec.hours * HOUR_MS) / HOUR_MS) * HOUR_MS;
    const slots = (end - start) / HOUR_MS + 1;
    const count = Math.ceil(slots / spec.bucket);
    const out = [];
    for (let i = 0; i < count; i++) {
      const from = end - (count - 1 - i) * spec.bucket * HOUR_MS - (spec.bucket - 1) * HOUR_MS;
      out.push({ from, to: from + spec.bucket * HOUR_MS, requests: 0, spend: 0 });
    }
    for (const h of hourly || []) {
      const t = Date.parse(h.hour);
      if (isNaN(t) || t > end) continue;
      const j = count - 1 - Math.floor((end - t) / HOUR_MS / spec.bucket);
      if (j < 0) continue;
      out[j].requests += Number(h.requests) || 0;
      out[j].spend += Number(h.spendUsd) || 0;
    }
    return out;
  }

  function svg(name, attrs, text) {
    const el = document.createElementNS(SVG_NS, name);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function drawChart() {
    const box = $("chart");
    if (!report) return;
    const spec = PERIODS[report.period] || PERIODS["24h"];
    const data = buckets(report.hourly, spec);
    const spendTotal = data.reduce((s, b) => s + b.spend, 0);
    const requestTotal = data.reduce((s, b) => s + b.requests, 0);
    // Free-tier traffic can cost nothing: then the bars count requests instead.
    const bySpend = spendTotal > 0 || requestTotal === 0;
    const value = (b) => (bySpend ? b.spend : b.requests);
    const show = (v) => (bySpend ? usd(v) : int(v) + " requests");
    setText("chart-caption", (bySpend ? "Spend " : "Requests ") + spec.caption);

    const W = Math.max(260, Math.floor(box.clientWidth) || 600);
    const H = 170;
    const pad = { l: 4, r: 4, t: 18, b: 22 };
    const plotW = W - pad.l - pad.r;
    const plotH = H - pad.t - pad.b;
    const max = Math.max(0, ...data.map(value));
    const root = svg("svg", {
      width: W,
      height: H,
      viewBox: `0 0 ${W} ${H}`,
      role: "img",
      "aria-label": chartSummary(data, bySpend, max, show),
    });
    root.appendChild(svg("line", { class: "axis", x1: pad.l, x2: W - pad.r, y1: H - pad.b + 0.5, y2: H - pad.b + 0.5 }));
    const step = plotW / data.length;
    const gap = step > 6 ? Math.min(3, step * 0.2) : step > 2 ? 1 : 0;
    const short = spec.bucket < 24 && spec.hours <= 24;
    const label = (t) =>
      short
        ? when(t, { hour: "2-digit", minute: "2-digit" })
        : when(t, spec.bucket >= 24 ? { month: "short", day: "numeric" } : { month: "short", day: "numeric", hour: "2-digit" });
    data.forEach((b, i) => {
      const v = value(b);
      const h = max > 0 ? Math.max(v > 0 ? 1.5 : 0, (v / max) * plotH) : 0;
      const rect = svg("rect", {
        class: "bar",
        x: (pad.l + i * step + gap / 2).toFixed(2),
        y: (H - pad.b - h).toFixed(2),
        width: Math.max(0.5, step - gap).toFixed(2),
        height: h.toFixed(2),
      });
      rect.appendChild(svg("title", {}, label(b.from) + ": " + int(b.requests) + " requests, " + usd(b.spend)));
      root.appendChild(rect);
    });
    if (max > 0) {
      root.appendChild(svg("text", { x: pad.l, y: 12 }, "max " + show(max)));
    } else {
      root.appendChild(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "No requests in this period"));
    }
    const y = H - 6;
    root.appendChild(svg("text", { x: pad.l, y }, label(data[0].from)));
    if (data.length > 2) {
      const mid = Math.floor(data.length / 2);
      root.appendChild(svg("text", { x: pad.l + (mid + 0.5) * step, y, "text-anchor": "middle" }, label(data[mid].from)));
    }
    root.appendChild(svg("text", { x: W - pad.r, y, "text-anchor": "end" }, label(data[data.length - 1].from)));
    box.replaceChildren(root);
  }

  function chartSummary(data, bySpend, max, show) {
    const what = bySpend ? "Spend" : "Requests";
    if (max === 0) return what + " chart: no requests in this period.";
    const top = data.reduce((a, b) => ((bySpend ? b.spend : b.requests) > (bySpend ? a.spend : a.requests) ? b : a));
    return what + " chart over " + data.length + " bars; highest " + show(max) + " at " + when(top.from) + ".";
  }

  // ---------------------------------------------------------------- wiring

  function wire() {
    $("message-close").addEventListener("click", clearMessage);

    $("key-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const value = $("key-input").value.trim();
      if (!/^pura_[A-Za-z0-9]+$/.test(value)) {
        say("A Pura key looks like pura_ followed by letters and digits.", "error");
        return;
      }
      clearMessage();
      busy(submitter(e), () => useKey(value));
    });

    $("forget-key").addEventListener("click", () => {
      useKey(null);
      $("new-key").hidden = true;
      say("The key was removed from this browser.", "ok");
    });

    $("create-form").addEventListener("submit", (e) => {
      e.preventDefault();
      clearMessage();
      busy(submitter(e), async () => {
        const created = await api("POST", "/api/keys", { label: $("create-label").value.trim() }, false);
        showNewKey(created.key);
        $("create-label").value = "";
        await useKey(created.key);
      });
    });

    $("new-key-copy").addEventListener("click", (e) => copy($("new-key-value"), e.currentTarget));
    $("new-key-done").addEventListener("click", () => {
      $("new-key-value").value = "";
      $("new-key").hidden = true;
    });

    $("edit-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const patch = settingsPatch();
      if (Object.keys(patch).length === 0) {
        say("Nothing changed.", "ok");
        return;
      }
      busy(submitter(e), async () => {
        renderInfo(await api("PATCH", "/api/keys/me", patch));
        say("Settings saved.", "ok");
        await Promise.all([loadBalance(), loadKeys()]);
      });
    });

    $("rotate-key").addEventListener("click", (e) => {
      if (!confirm("Rotate this key? The current secret stops working at once; update every client that uses it.")) return;
      busy(e.currentTarget, async () => {
        const rotated = await api("POST", "/api/keys/me/rotate");
        showNewKey(rotated.key);
        await useKey(rotated.key);
        say("Key rotated. The old secret no longer works.", "ok");
      });
    });

    $("keys-create-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const body = createBody();
      if (!body.label) {
        say("Give the key a label, such as the tool that will use it.", "error");
        $("keys-create-label").focus();
        return;
      }
      clearMessage();
      busy(submitter(e), async () => {
        const created = await api("POST", "/api/keys", body);
        if (account && account.accountId && created.accountId && created.accountId !== account.accountId) {
          say("The gateway put the new key in another account (" + created.accountId + ").", "error");
        }
        showSecret("New " + (created.role || body.role) + " key " + quoted(created), created.key);
        e.target.reset();
        keysStatus("Key " + quoted(created) + " created.");
        await loadKeys();
      });
    });

    $("keys-secret-copy").addEventListener("click", (e) => copy($("keys-secret-value"), e.currentTarget));
    $("keys-secret-done").addEventListener("click", () => {
      hideSecret();
      $("keys-create-label").focus();
    });

    $("refresh").addEventListener("click", (e) => {
      clearMessage();
      busy(e.currentTarget, loadAll);
    });

    $("topup-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const amount = Number($("topup-amount").value);
      if (!Number.isInteger(amount) || amount <= 0) {
        say("The amount is a whole number of sats.", "error");
        return;
      }
      clearMessage();
      busy(submitter(e), async () => {
        const inv = await api("POST", "/api/wallet/fund", { amount });
        showInvoice(inv);
        if (inv.status === "pending") watchInvoice(inv.invoiceId);
      });
    });

    $("invoice-copy").addEventListener("click", (e) => copy($("invoice-bolt11"), e.currentTarget));

    $("period").addEventListener("change", () => loadReport().catch(fail));

    let resizing = 0;
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(drawChart, 150);
    });
  }

  function start() {
    setText("base-url", location.origin + "/v1");
    wire();
    const fromFragment = keyFromFragment();
    const initial = fromFragment || storedKey();
    if (initial) useKey(initial);
  }

  start();
})();

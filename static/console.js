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
    "30d": { hours: 29 * 24, bucket: 24, caption: "per day" },
  };
  const SVG_NS = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);

  let key = null; // the key in use
  let account = null; // last GET /api/keys/me
  let report = null; // last GET /api/report
  let keysLoad = 0; // bumped by every load of the keys panel, so an older answer is dropped
  let editing = null; // the open limits editor in the keys table: { id, row, button }
  let watch = null; // the invoice being polled: { id, timer }
  let money = null; // last GET /api/wallet/history
  let models = []; // last GET /v1/models entries
  let paging = { before: null, trail: [] }; // the requests table's cursor and the pages behind it
  let countdown = 0; // the invoice expiry's ticking timer

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

  /** Times are UTC throughout: budgets reset on UTC days, and the chart's buckets are UTC days. */
  function when(iso, opts) {
    const d = new Date(iso);
    const o = Object.assign({ timeZone: "UTC" }, opts || { dateStyle: "medium", timeStyle: "short" });
    return isNaN(d) ? "–" : d.toLocaleString("en-GB", o) + (opts ? "" : " UTC");
  }

  /** "2026-11-30 04:05:06": sortable, unambiguous, UTC. */
  function stamp(iso) {
    const d = new Date(iso);
    return isNaN(d) ? "–" : d.toISOString().slice(0, 19).replace("T", " ");
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
    clearInterval(countdown);
    key = value;
    storeKey(value);
    $("key-input").value = value || "";
    $("forget-key").hidden = !value;
    account = null;
    report = null;
    $("invoice").hidden = true;
    paging = { before: null, trail: [] };
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

  /** Only a refused key hides the dashboard; a gateway that is down or failing keeps it (and its Refresh). */
  const refused = (err) => err instanceof ApiError && (err.status === 401 || err.status === 403);

  /**
   * The dashboard is aria-busy while any load is in flight, so assistive technology (and the
   * browser test) knows when its panels hold this key's figures rather than the last key's.
   */
  let loading = 0;

  async function loadAll() {
    loading++;
    $("panels").setAttribute("aria-busy", "true");
    try {
      await loadPanels();
    } finally {
      if (--loading === 0) $("panels").setAttribute("aria-busy", "false");
    }
  }

  async function loadPanels() {
    try {
      renderInfo(await api("GET", "/api/keys/me"));
    } catch (err) {
      if (refused(err)) $("panels").hidden = true;
      fail(err);
      if (refused(err)) return;
    }
    $("panels").hidden = false;
    renderSnippet();
    const results = await Promise.allSettled([
      loadBalance(),
      loadReport(),
      loadKeys(),
      loadRequests(null),
      loadHistory(),
      loadCatalogue(),
    ]);
    const bad = results.find((r) => r.status === "rejected");
    if (bad) fail(bad.reason);
  }

  /**
   * A typed or linked key is checked with the gateway before it is stored: a mistyped one
   * leaves the stored key (and the dashboard) as they were.
   */
  async function tryKey(value) {
    const previous = key;
    key = value;
    try {
      await api("GET", "/api/keys/me");
    } catch (err) {
      key = previous;
      if (refused(err)) say("The gateway does not accept that key; nothing was stored. (" + err.message + ")", "error");
      else fail(err);
      return false;
    }
    await useKey(value);
    return true;
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
    $("invoice-qr").replaceChildren();
    loadQr(inv.invoiceId).catch(() => {});
    startCountdown(inv.expiresAt);
  }

  /** "Expires in 59:48 (at 04:40 UTC).", once a second, until it has. */
  function startCountdown(expiresAt) {
    clearInterval(countdown);
    const end = Date.parse(expiresAt);
    if (isNaN(end)) {
      setText("invoice-expires", "");
      return;
    }
    const tick = () => {
      const left = Math.max(0, Math.round((end - Date.now()) / 1000));
      const mm = Math.floor(left / 60);
      const ss = String(left % 60).padStart(2, "0");
      const at = when(expiresAt, { hour: "2-digit", minute: "2-digit" });
      setText("invoice-expires", left > 0 ? "Expires in " + mm + ":" + ss + " (at " + at + " UTC)." : "Expired.");
      if (left === 0) clearInterval(countdown);
    };
    tick();
    countdown = setInterval(tick, 1000);
  }

  /**
   * The QR code the invoice page draws (the gateway's own qrcode rendering): the numbers of its
   * one path are read from the page and drawn here with DOM calls, so no markup of the page is
   * ever parsed or inserted (a parsed page would also trip this page's CSP on its own style).
   */
  async function loadQr(id) {
    const resp = await fetch("/invoice/" + encodeURIComponent(id), { cache: "no-store" });
    if (!resp.ok) return;
    const page = await resp.text();
    const d = /<path\b[^>]*?\sd="([MmHhVvZz0-9 .,-]+)"/.exec(page);
    const size = /<svg\b[^>]*?\swidth="(\d+)"[^>]*?\sheight="(\d+)"/.exec(page);
    if (!d || !size || !watch || watch.id !== id) return;
    const [w, h] = [size[1], size[2]];
    const out = svg("svg", { viewBox: "0 0 " + w + " " + h, role: "img", "aria-label": "QR code of the Lightning invoice" });
    out.appendChild(svg("rect", { x: 0, y: 0, width: w, height: h, fill: "#fff" }));
    out.appendChild(svg("path", { d: d[1], fill: "#000" }));
    $("invoice-qr").replaceChildren(out);
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
        clearInterval(countdown);
        say("Payment received: " + int(s.amountSats) + " sats credited.", "ok");
        loadBalance().catch(fail);
        loadHistory().catch(fail);
      } else if (s.status === "expired") {
        watch = null;
        clearInterval(countdown);
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
    renderSavings(r);
    fillModelFilter(Object.keys(r.byModel || {}));
    drawChart();
  }

  function renderProviders(per) {
    const body = $("providers-body");
    body.replaceChildren();
    const rows = Object.entries(per).sort((a, b) => b[1].spendUsd - a[1].spendUsd || b[1].requests - a[1].requests);
    if (rows.length === 0) {
      const tr = body.insertRow();
      const td = tr.insertCell();
      td.colSpan = 6;
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
        usd(p.savingsUsd),
        int(p.promptTokens) + " / " + int(p.completionTokens),
        latency(p.avgLatencyMs),
      ];
      cells.forEach((text, i) => {
        const td = tr.insertCell();
        td.className = i === 3 ? "num tokens" : "num";
        td.textContent = text;
      });
    }
  }

  /**
   * Calendar buckets in UTC that end with the current one: hours for 1 h and 24 h, quarter
   * days (00, 06, 12, 18 UTC) for 7 d, UTC days for 30 d; the last bar is always "now".
   */
  function buckets(hourly, spec) {
    const size = spec.bucket * HOUR_MS;
    const now = Date.now();
    const last = Math.floor(now / size) * size;
    const first = Math.floor((now - spec.hours * HOUR_MS) / size) * size;
    const out = [];
    for (let t = first; t <= last; t += size) out.push({ from: t, requests: 0, spend: 0, tokens: 0, stacks: {} });
    for (const h of hourly || []) {
      const t = Date.parse(h.hour);
      const j = Math.floor((t - first) / size);
      if (isNaN(t) || j < 0 || j >= out.length) continue;
      const b = out[j];
      b.requests += Number(h.requests) || 0;
      b.spend += Number(h.spendUsd) || 0;
      b.tokens += Number(h.tokens) || 0;
      for (const [kind, field] of [["provider", "byProvider"], ["tier", "byTier"]]) {
        const into = (b.stacks[kind] = b.stacks[kind] || {});
        for (const [name, sl] of Object.entries(h[field] || {})) {
          const v = (into[name] = into[name] || { requests: 0, spend: 0, tokens: 0 });
          v.requests += Number(sl.requests) || 0;
          v.spend += Number(sl.spendUsd) || 0;
          v.tokens += (Number(sl.promptTokens) || 0) + (Number(sl.completionTokens) || 0);
        }
      }
    }
    return out;
  }

  function svg(name, attrs, text) {
    const el = document.createElementNS(SVG_NS, name);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  const radio = (name, fallback) => {
    const checked = document.querySelector('input[name="' + name + '"]:checked');
    return checked ? checked.value : fallback;
  };
  const METRICS = {
    spend: { name: "Spend", show: (v) => usd(v) },
    requests: { name: "Requests", show: (v) => int(v) + " requests" },
    tokens: { name: "Tokens", show: (v) => int(v) + " tokens" },
  };
  // Distinct at 3:1 against white and each other's neighbours (WCAG non-text contrast).
  const PALETTE = ["#3b4bd8", "#b45309", "#0f766e", "#be185d", "#6d28d9", "#4d7c0f", "#9f1239", "#1e40af"];

  /** A bucket's label: its UTC hour ("14:00"), with the date when a day starts; the last day reads "Today". */
  function bucketLabel(b, spec, i, data) {
    const d = new Date(b.from);
    const today = new Date().toISOString().slice(0, 10);
    const day = d.toISOString().slice(0, 10);
    const date = day === today ? "Today" : when(d, { month: "short", day: "numeric" });
    if (spec.bucket >= 24) return date;
    const hour = d.toISOString().slice(11, 16);
    const newDay = i === 0 || new Date(data[i - 1].from).toISOString().slice(0, 10) !== day;
    return newDay ? date + " " + hour : hour;
  }

  /** Round axis steps: 1, 2 or 5 times a power of ten. */
  function niceMax(max) {
    if (max <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(max)));
    for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p;
    return 10 * p;
  }

  let chartData = null; // what the readout and the bar slider describe

  function drawChart() {
    const box = $("chart");
    if (!report) return;
    const spec = PERIODS[report.period] || PERIODS["24h"];
    const data = buckets(report.hourly, spec);
    const metric = radio("metric", "spend");
    const stackBy = radio("stack", "provider");
    const m = METRICS[metric];
    setText("chart-caption", m.name + " " + spec.caption + ", stacked by " + stackBy + ". Buckets are UTC " + (spec.bucket >= 24 ? "days." : "hours."));
    const names = [...new Set(data.flatMap((b) => Object.keys(b.stacks[stackBy] || {})))].sort();
    const color = (n) => PALETTE[names.indexOf(n) % PALETTE.length];

    const W = Math.max(280, Math.floor(box.clientWidth) || 600);
    const H = 200;
    const pad = { l: 64, r: 8, t: 10, b: 34 };
    const plotW = W - pad.l - pad.r;
    const plotH = H - pad.t - pad.b;
    const max = Math.max(0, ...data.map((b) => b[metric]));
    // Counts get whole-number gridlines (four steps); money may have fractions of a cent.
    const top = metric === "spend" ? niceMax(max) : 4 * Math.ceil(niceMax(max) / 4);
    const root = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": chartSummary(data, metric, max) });
    for (let k = 0; k <= 4; k++) {
      const v = (top * k) / 4;
      const y = H - pad.b - (v / top) * plotH;
      root.appendChild(svg("line", { class: k === 0 ? "axis" : "grid", x1: pad.l, x2: W - pad.r, y1: y.toFixed(1), y2: y.toFixed(1) }));
      const text = metric === "spend" ? usd(v) : int(v);
      root.appendChild(svg("text", { x: pad.l - 6, y: (y + 4).toFixed(1), "text-anchor": "end" }, text));
    }
    const step = plotW / data.length;
    const gap = step > 6 ? Math.min(4, step * 0.2) : step > 2 ? 1 : 0;
    data.forEach((b, i) => {
      let y = H - pad.b;
      const parts = Object.entries(b.stacks[stackBy] || {}).sort((a, c) => names.indexOf(a[0]) - names.indexOf(c[0]));
      // Rows written before the stacks existed have no split: they are drawn as one part.
      const split = parts.reduce((sum, [, v]) => sum + v[metric], 0);
      if (b[metric] > split + 1e-12) parts.push(["other", { [metric]: b[metric] - split }]);
      for (const [name, v] of parts) {
        const h = top > 0 ? (v[metric] / top) * plotH : 0;
        if (h <= 0) continue;
        y -= h;
        root.appendChild(svg("rect", {
          class: "bar",
          "data-i": i,
          fill: name === "other" ? "#6b6b7b" : color(name),
          x: (pad.l + i * step + gap / 2).toFixed(2),
          y: y.toFixed(2),
          width: Math.max(0.5, step - gap).toFixed(2),
          height: Math.max(1, h).toFixed(2),
        }));
      }
      // Invisible full-height target, so a tap anywhere in a bar's column picks it.
      root.appendChild(svg("rect", { class: "hit", "data-i": i, x: (pad.l + i * step).toFixed(2), y: pad.t, width: step.toFixed(2), height: plotH }));
    });
    const y = H - 10;
    const ticks = data.length <= 8 ? data.map((_, i) => i) : [0, Math.floor(data.length / 3), Math.floor((2 * data.length) / 3), data.length - 1];
    for (const i of ticks) {
      const anchor = i === 0 ? "start" : i === data.length - 1 ? "end" : "middle";
      const x = i === 0 ? pad.l : i === data.length - 1 ? W - pad.r : pad.l + (i + 0.5) * step;
      root.appendChild(svg("text", { x: x.toFixed(1), y, "text-anchor": anchor, class: "xlabel" }, bucketLabel(data[i], spec, i, data)));
    }
    if (max === 0) root.appendChild(svg("text", { x: pad.l + plotW / 2, y: pad.t + plotH / 2, "text-anchor": "middle" }, "No requests in this period"));
    box.replaceChildren(root);
    root.addEventListener("click", (e) => {
      const i = e.target && e.target.getAttribute && e.target.getAttribute("data-i");
      if (i !== null && i !== undefined) pickBar(Number(i));
    });

    const legend = $("chart-legend");
    legend.replaceChildren();
    for (const n of names) {
      const li = document.createElement("li");
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = color(n);
      li.append(sw, n);
      legend.appendChild(li);
    }
    chartData = { data, spec, metric, stackBy };
    const slider = $("chart-bar");
    slider.max = String(data.length - 1);
    pickBar(data.length - 1);
  }

  /** Shows one bar's figures (by slider, arrow keys, click or tap) in the readout under the chart. */
  function pickBar(i) {
    if (!chartData) return;
    const { data, spec, stackBy } = chartData;
    const b = data[Math.max(0, Math.min(data.length - 1, i))];
    if (!b) return;
    $("chart-bar").value = String(i);
    const parts = Object.entries(b.stacks[stackBy] || {})
      .map(([n, v]) => n + " " + usd(v.spend) + " · " + int(v.requests))
      .join("; ");
    const span = spec.bucket >= 24 ? "" : " – " + new Date(b.from + spec.bucket * HOUR_MS).toISOString().slice(11, 16);
    const label = bucketLabel(b, spec, i, data).replace(/^(\d\d:\d\d)$/, when(new Date(b.from), { month: "short", day: "numeric" }) + " $1");
    $("chart-bar").setAttribute("aria-valuetext", label);
    setText(
      "chart-readout",
      label + span + " UTC: " + usd(b.spend) + ", " + int(b.requests) + " requests, " + int(b.tokens) + " tokens" + (parts ? " (" + parts + ")" : "")
    );
    for (const r of $("chart").querySelectorAll("rect.bar")) r.classList.toggle("picked", Number(r.getAttribute("data-i")) === i);
  }

  function chartSummary(data, metric, max) {
    const m = METRICS[metric];
    if (max === 0) return m.name + " chart: no requests in this period.";
    const top = data.reduce((a, b) => (b[metric] > a[metric] ? b : a));
    return m.name + " chart over " + data.length + " UTC buckets; highest " + m.show(max) + " at " + when(new Date(top.from)) + ".";
  }

  // ---------------------------------------------------------------- savings

  function renderSavings(r) {
    setText("report-savings", usd(r.totalSavingsUsd));
    setText("savings-total", usd(r.totalSavingsUsd));
    const spent = Number(r.totalSpendUsd) || 0;
    const saved = Number(r.totalSavingsUsd) || 0;
    setText(
      "savings-note",
      saved > 0 && spent + saved > 0
        ? Math.round((saved / (spent + saved)) * 100) + "% less than sending every request to the premium tier's default model."
        : "Against sending every request to the premium tier's default model."
    );
    const body = $("models-body");
    body.replaceChildren();
    const rows = Object.entries(r.byModel || {}).sort((a, b) => b[1].requests - a[1].requests);
    if (rows.length === 0) emptyRow(body, 5, "No requests in this period.");
    for (const [name, p] of rows) {
      const tr = body.insertRow();
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = name;
      tr.appendChild(th);
      for (const text of [int(p.requests), usd(p.spendUsd), usd(p.savingsUsd), int(p.promptTokens) + " / " + int(p.completionTokens)]) {
        const td = tr.insertCell();
        td.className = "num";
        td.textContent = text;
      }
    }
    const tiers = $("tiers");
    tiers.replaceChildren();
    const total = Object.values(r.byTier || {}).reduce((s, t) => s + t.requests, 0);
    for (const [name, t] of Object.entries(r.byTier || {})) {
      const li = document.createElement("li");
      const pct = total ? Math.round((t.requests / total) * 100) : 0;
      const bar = document.createElement("span");
      bar.className = "tier-bar";
      bar.style.width = pct + "%";
      const text = document.createElement("span");
      text.textContent = name + ": " + pct + "% of requests (" + int(t.requests) + "), " + usd(t.spendUsd);
      li.append(text, bar);
      tiers.appendChild(li);
    }
    if (total === 0) {
      const li = document.createElement("li");
      li.textContent = "No requests in this period.";
      tiers.appendChild(li);
    }
  }

  function emptyRow(body, span, text) {
    const td = body.insertRow().insertCell();
    td.colSpan = span;
    td.className = "empty";
    td.textContent = text;
  }

  // ---------------------------------------------------------------- requests

  function requestsQuery(extra) {
    const q = new URLSearchParams();
    const model = $("requests-model").value;
    const status = $("requests-status").value;
    if (model) q.set("model", model);
    if (status) q.set("status", status);
    for (const [k, v] of Object.entries(extra || {})) if (v) q.set(k, v);
    return "/api/requests?" + q.toString();
  }

  /** A page of the requests table: `before` null is the newest page. */
  async function loadRequests(before) {
    setText("requests-status-line", "Loading requests…");
    const page = await api("GET", requestsQuery({ limit: "25", before }));
    paging.before = page.nextBefore || null;
    const body = $("requests-body");
    body.replaceChildren();
    if (page.data.length === 0) emptyRow(body, 12, "No requests match.");
    for (const r of page.data) {
      const tr = body.insertRow();
      const cells = [
        [stamp(r.time), ""],
        [r.protocol, ""],
        [r.model, ""],
        [r.provider, ""],
        [r.tier, ""],
        [int(r.promptTokens) + " / " + int(r.completionTokens), "num"],
        [usd(r.costUsd), "num"],
        [usd(r.savingsUsd), "num"],
        [latency(r.latencyMs), "num"],
        [r.ttftMs == null ? "–" : latency(r.ttftMs), "num"],
        [r.status, r.status === "ok" ? "" : "bad"],
        [r.clientRequestId || "–", "mono"],
      ];
      for (const [text, cls] of cells) {
        const td = tr.insertCell();
        td.textContent = text;
        if (cls) td.className = cls;
      }
    }
    $("requests-older").disabled = !page.hasMore;
    $("requests-newest").disabled = !before;
    setText("requests-status-line", page.data.length + " request" + (page.data.length === 1 ? "" : "s") + " shown" + (page.hasMore ? "; older ones on the next page." : "."));
  }

  /** The CSV comes with the key in a header, so it is fetched, then saved from a blob URL. */
  async function exportCsv() {
    const resp = await fetch(requestsQuery({ format: "csv", limit: "200" }), {
      headers: { Authorization: "Bearer " + key },
      cache: "no-store",
    });
    if (!resp.ok) throw new ApiError("CSV export failed (" + resp.status + ").", resp.status, null);
    const url = URL.createObjectURL(await resp.blob());
    const a = document.createElement("a");
    a.href = url;
    a.download = "pura-requests.csv";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    setText("requests-status-line", "CSV exported (up to 200 newest rows with these filters).");
  }

  function fillModelFilter(names) {
    const select = $("requests-model");
    const current = select.value;
    const all = [...new Set([...names, current].filter(Boolean))].sort();
    const first = select.options[0];
    select.replaceChildren(first);
    for (const n of all) select.appendChild(new Option(n, n));
    select.value = current;
  }

  // ---------------------------------------------------------------- money history

  const KINDS = { lightning_credit: "Lightning top-up", admin_credit: "Credit by the operator", debit: "Request" };

  async function loadHistory() {
    const h = await api("GET", "/api/wallet/history");
    money = h;
    $("topup-on").hidden = !h.lightning;
    $("topup-off").hidden = !!h.lightning;
    showWorth();
    const inv = $("invoices-body");
    inv.replaceChildren();
    if (h.invoices.length === 0) emptyRow(inv, 4, "No invoices yet.");
    for (const i of h.invoices) {
      const tr = inv.insertRow();
      tr.insertCell().textContent = stamp(i.createdAt);
      const amount = tr.insertCell();
      amount.className = "num";
      amount.textContent = int(i.amountSats) + " sats";
      const badge = document.createElement("span");
      badge.className = "badge " + i.status;
      badge.textContent = i.status;
      tr.insertCell().appendChild(badge);
      tr.insertCell().textContent = i.paidAt ? stamp(i.paidAt) : "–";
    }
    const led = $("ledger-body");
    led.replaceChildren();
    if (h.ledger.length === 0) emptyRow(led, 4, "No credits or debits yet.");
    for (const e of h.ledger) {
      const tr = led.insertRow();
      tr.insertCell().textContent = stamp(e.time);
      tr.insertCell().textContent = KINDS[e.kind] || e.kind;
      const amount = tr.insertCell();
      amount.className = "num " + (e.amountUsd < 0 ? "debit" : "credit");
      amount.textContent = (e.amountUsd > 0 ? "+" : "") + usd(e.amountUsd);
      tr.insertCell().textContent = e.memo || "–";
    }
  }

  /** What the amount in the top-up form is worth, before any invoice is made. */
  function showWorth() {
    const sats = Number($("topup-amount").value);
    if (!money || !Number.isInteger(sats) || sats <= 0) {
      setText("topup-worth", "");
      return;
    }
    setText("topup-worth", int(sats) + " sats ≈ " + usd(sats * money.usdPerSat) + " at this gateway's rate.");
  }

  function preset(usdAmount) {
    if (!money || !(money.usdPerSat > 0)) return;
    let sats = Math.round(usdAmount / money.usdPerSat);
    sats = Math.max(money.minFundSats || 1, Math.min(money.maxFundSats || sats, sats));
    $("topup-amount").value = String(sats);
    showWorth();
  }

  // ---------------------------------------------------------------- getting started

  async function loadCatalogue() {
    const list = await api("GET", "/v1/models");
    models = list.data || [];
    const body = $("catalogue-body");
    body.replaceChildren();
    for (const m of models) {
      const tr = body.insertRow();
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = m.id;
      tr.appendChild(th);
      tr.insertCell().textContent = m.owned_by || "–";
      for (const price of [m.pricing && m.pricing.inputPer1kUsd, m.pricing && m.pricing.outputPer1kUsd]) {
        const td = tr.insertCell();
        td.className = "num";
        td.textContent = price == null ? "–" : usd(price);
      }
    }
  }

  function snippet(kind, base, k) {
    const v1 = base + "/v1";
    switch (kind) {
      case "python":
        return 'from openai import OpenAI\n\nclient = OpenAI(base_url="' + v1 + '", api_key="' + k + '")\nreply = client.chat.completions.create(\n    model="auto",\n    messages=[{"role": "user", "content": "Hello"}],\n)\nprint(reply.choices[0].message.content)\n';
      case "typescript":
        return 'import OpenAI from "openai";\n\nconst client = new OpenAI({ baseURL: "' + v1 + '", apiKey: "' + k + '" });\nconst reply = await client.chat.completions.create({\n  model: "auto",\n  messages: [{ role: "user", content: "Hello" }],\n});\nconsole.log(reply.choices[0].message.content);\n';
      case "codex":
        return '# ~/.codex/config.toml, then: export PURA_API_KEY=' + k + '\nmodel = "auto"\nmodel_provider = "pura"\n\n[model_providers.pura]\nname = "Pura"\nbase_url = "' + v1 + '"\nwire_api = "responses"\nenv_key = "PURA_API_KEY"\n';
      case "claude":
        return "# Claude Code speaks the Anthropic Messages API, which Pura serves at /v1/messages\nexport ANTHROPIC_BASE_URL=" + base + "\nexport ANTHROPIC_API_KEY=" + k + "\nclaude\n";
      case "opencode":
        return JSON.stringify(
          {
            $schema: "https://opencode.ai/config.json",
            provider: {
              pura: { npm: "@ai-sdk/openai-compatible", name: "Pura", options: { baseURL: v1, apiKey: k }, models: { auto: { name: "auto" } } },
            },
            model: "pura/auto",
          },
          null,
          2
        ) + "\n";
      default:
        return "curl " + v1 + "/chat/completions \\\n  -H 'Authorization: Bearer " + k + "' \\\n  -H 'Content-Type: application/json' \\\n  -d '{\"model\": \"auto\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'\n";
    }
  }

  function renderSnippet() {
    $("snippet").value = snippet($("snippet-kind").value, location.origin, key || "pura_…");
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
      busy(submitter(e), () => tryKey(value));
    });

    $("forget-key").addEventListener("click", () => {
      if (!confirm("Forget this key in this browser? Without a copy of it elsewhere, its balance cannot be reached again.")) return;
      useKey(null);
      $("new-key").hidden = true;
      say("The key was removed from this browser.", "ok");
    });

    $("create-form").addEventListener("submit", (e) => {
      e.preventDefault();
      // A stored key may hold a balance: replacing it is the user's choice, not a side effect.
      if (key && !confirm("This browser already holds a key. Create a new key (a new, empty account) and switch to it? Copy the current key first if you want to keep using it.")) return;
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

    $("disable-key").addEventListener("click", (e) => {
      if (!confirm("Disable this key? Every request with it is refused from then on, and this console forgets it.")) return;
      busy(e.currentTarget, async () => {
        await api("DELETE", "/api/keys/me");
        await useKey(null);
        say("The key was disabled and removed from this browser.", "ok");
      });
    });

    for (const b of document.querySelectorAll(".preset")) {
      b.addEventListener("click", () => preset(Number(b.dataset.usd)));
    }
    $("topup-amount").addEventListener("input", showWorth);

    $("requests-form").addEventListener("submit", (e) => {
      e.preventDefault();
      paging = { before: null, trail: [] };
      busy(submitter(e), () => loadRequests(null));
    });
    $("requests-older").addEventListener("click", (e) => {
      const before = paging.before;
      if (!before) return;
      busy(e.currentTarget, () => loadRequests(before));
    });
    $("requests-newest").addEventListener("click", (e) => busy(e.currentTarget, () => loadRequests(null)));
    $("requests-csv").addEventListener("click", (e) => busy(e.currentTarget, exportCsv));

    $("snippet-kind").addEventListener("change", renderSnippet);
    $("snippet-copy").addEventListener("click", (e) => copy($("snippet"), e.currentTarget));

    $("metric").addEventListener("change", drawChart);
    $("stack").addEventListener("change", drawChart);
    $("chart-bar").addEventListener("input", (e) => pickBar(Number(e.target.value)));

    // A `#key=` link opened in a tab that already shows the console.
    window.addEventListener("hashchange", () => {
      const linked = keyFromFragment();
      if (linked && linked !== key) busy(null, () => tryKey(linked));
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
    renderSnippet();
    const fromFragment = keyFromFragment();
    const stored = storedKey();
    if (fromFragment && fromFragment !== stored) {
      tryKey(fromFragment).then((ok) => {
        if (!ok && stored) useKey(stored);
      });
    }
    else if (stored) useKey(stored);
  }

  start();
})();

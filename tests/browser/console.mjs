// Drives the console in Debian's Chromium (playwright-core) against a real gateway, fake
// upstreams and a real LNbits, as tests/browser.rs sets them up. Prints one line per check
// ("ok N - …" / "not ok N - …"), saves a screenshot of each state, exits non-zero on any failure.
//
// Env: PURA_URL, PURA_KEY (a manage key with usage rows), PURA_USE_KEY (a use key of the same
// account), PURA_OTHER_KEY (a key of another account), PLAIN_URL and PLAIN_KEY (a gateway with
// no Lightning backend and a key of it), LNBITS_URL, LNBITS_PAYER_KEY,
// NODE_MODULES (where playwright-core and axe-core are), ARTIFACTS (the screenshot folder).

import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(name + " is not set");
  return v;
};
const require = createRequire(path.join(env("NODE_MODULES"), "noop.js"));
const { chromium } = require("playwright-core");
const AXE = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const URL_ = env("PURA_URL");
const KEY = env("PURA_KEY");
const USE_KEY = env("PURA_USE_KEY");
const OTHER_KEY = env("PURA_OTHER_KEY");
const ART = env("ARTIFACTS");
fs.mkdirSync(ART, { recursive: true });

let n = 0;
let failed = 0;
function check(name, ok, detail) {
  n++;
  if (ok) console.log(`ok ${n} - ${name}`);
  else {
    failed++;
    console.log(`not ok ${n} - ${name}${detail === undefined ? "" : ": " + detail}`);
  }
}

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
const page = await context.newPage();
page.setDefaultTimeout(10000);

// Every console error and uncaught exception fails the run, except the browser's own
// "Failed to load resource" lines while a step provokes failing responses on purpose.
const errors = [];
let provoking = false;
page.on("console", (m) => {
  if (m.type() !== "error") return;
  if (provoking && /Failed to load resource/.test(m.text())) return;
  errors.push(m.text());
});
page.on("pageerror", (e) => errors.push("pageerror: " + e.message));

const dialogs = [];
let dialogAnswer = "dismiss";
page.on("dialog", async (d) => {
  dialogs.push(d.message());
  if (dialogAnswer === "accept") await d.accept();
  else await d.dismiss();
});

const shots = [];
async function shot(name, full = true) {
  const file = path.join(ART, name + ".png");
  await page.screenshot({ path: file, fullPage: full });
  shots.push(file);
}
const text = (sel) => page.locator(sel).innerText();
const stored = () => page.evaluate(() => localStorage.getItem("pura.console.key"));
const visible = (sel) => page.locator(sel).isVisible();
// For what a separate request reveals (the keys panel or note come from /api/account/keys,
// after the report): wait for it to show rather than read its state at one instant.
const appears = (sel) =>
  page.locator(sel).waitFor({ state: "visible", timeout: 10000 }).then(() => true, () => false);
// The console marks the dashboard aria-busy while a load (a key, a #key= link, Refresh) is in
// flight; checks of what the loads fill in wait for it to finish first.
const settled = () => page.waitForSelector('#panels[aria-busy="false"]', { state: "attached", timeout: 15000 });
async function message() {
  return (await visible("#message")) ? (await text("#message-text")).trim() : "";
}
async function waitText(sel, re, timeout = 10000) {
  try {
    await page.waitForFunction(
      ([s, src]) => {
        const el = document.querySelector(s);
        return !!el && new RegExp(src).test(el.textContent || el.value || "");
      },
      [sel, re.source],
      { timeout }
    );
    return true;
  } catch (_) {
    return false;
  }
}

async function axe(label) {
  await page.evaluate(AXE);
  const res = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help }));
  });
  const counts = { critical: 0, serious: 0, moderate: 0, minor: 0 };
  for (const v of res) counts[v.impact] = (counts[v.impact] || 0) + v.nodes;
  console.log(`# axe ${label}: ` + JSON.stringify(counts) + (res.length ? " " + res.map((v) => `${v.impact}:${v.id}(${v.nodes})`).join(" ") : ""));
  const bad = res.filter((v) => v.impact === "serious" || v.impact === "critical");
  check(`axe-core on ${label}: no serious or critical violation`, bad.length === 0, JSON.stringify(bad));
}

try {
  // 1. A new visitor: the key form, nothing else.
  await page.goto(URL_ + "/");
  check("the console loads with the key form", await visible("#key-form"));
  check("no dashboard without a key", !(await visible("#panels")));
  await shot("01-no-key");

  // 2. A mistyped key is refused and never stored.
  provoking = true;
  await page.fill("#key-input", "pura_mistyped0000000000");
  await page.click('#key-form button[type="submit"]');
  await waitText("#message-text", /not accept/);
  provoking = false;
  check("a mistyped key is reported", /does not accept/.test(await message()), await message());
  check("a mistyped key is not stored", (await stored()) === null, await stored());
  await shot("02-mistyped-key");

  // 3. The real key: the dashboard.
  await page.fill("#key-input", KEY);
  await page.click('#key-form button[type="submit"]');
  await page.waitForSelector("#panels", { state: "visible" });
  await waitText("#report-requests", /[1-9]/);
  await settled();
  check("a good key is stored", (await stored()) === KEY);
  check("balance $0.50 reads \"$0.50\"", (await text("#balance-usd")).includes("$0.50"), await text("#balance-usd"));
  check("the keys panel shows for a manage key", await appears("#keys-panel"));
  check("savings are shown", /\$/.test(await text("#report-savings")) && /\$/.test(await text("#savings-total")));
  const anthropicRow = (await page.locator("#providers-body tr", { hasText: "anthropic" }).innerText()).split("\t");
  check("the per-provider table has a savings column", /^\$/.test(anthropicRow[3] || ""), JSON.stringify(anthropicRow));
  check("the per-model table lists gpt-4o", (await text("#models-body")).includes("gpt-4o"), await text("#models-body"));
  check("the tier mix lists the tiers", /mid: \d+%/.test(await text("#tiers")), await text("#tiers"));
  check("the money history lists the operator's credit", (await text("#ledger-body")).includes("Credit by the operator"));
  check("the top-up form shows (LNbits configured)", await visible("#topup-form"));
  check("a disable button for this key", await visible("#disable-key"));
  await shot("03-dashboard");

  // 4. Chart: UTC buckets, today's bar labelled today, values by keyboard, metric and stack switches.
  await page.click('label[for="period-30d"]');
  await waitText("#chart-caption", /per day/);
  const labels = await page.locator("#chart svg text.xlabel").allTextContents();
  check("30-day chart: the last bar is labelled Today", labels[labels.length - 1] === "Today", JSON.stringify(labels));
  check("the chart says its buckets are UTC", /UTC/.test(await text("#chart-caption")), await text("#chart-caption"));
  check("the chart has an axis with values and gridlines", (await page.locator("#chart line.grid").count()) === 4 && (await page.locator("#chart svg text").count()) > 5);
  await page.click('label[for="metric-requests"]');
  const ticks = await page.locator("#chart svg text[text-anchor='end']:not(.xlabel)").allTextContents();
  check("request counts have whole-number gridlines", ticks.length === 5 && ticks.every((t) => /^\d[\d,]*$/.test(t)), JSON.stringify(ticks));
  await page.click('label[for="metric-spend"]');
  check("the readout shows today's values", /^Today UTC: \$/.test(await text("#chart-readout")), await text("#chart-readout"));
  await page.focus("#chart-bar");
  await page.keyboard.press("ArrowLeft");
  check("arrow keys move to yesterday's bar", !/^Today/.test(await text("#chart-readout")), await text("#chart-readout"));
  await page.keyboard.press("End");
  await page.click('label[for="metric-tokens"]');
  check("tokens switch", /^Tokens/.test(await text("#chart-caption")) && /[1-9][\d,]* tokens/.test(await text("#chart-readout")), await text("#chart-readout"));
  await page.click('label[for="stack-tier"]');
  check("stacked by tier", /stacked by tier/.test(await text("#chart-caption")) && (await text("#chart-legend")).includes("mid"));
  await page.click('label[for="stack-provider"]');
  const legend = await text("#chart-legend");
  check("stacked by provider: both providers in the legend", legend.includes("openai") && legend.includes("anthropic"), legend);
  await page.click('label[for="metric-requests"]');
  const box = await page.locator("#chart rect.hit").last().boundingBox();
  await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  check("a tap on a bar shows its values", /^Today UTC: .* requests/.test(await text("#chart-readout")), await text("#chart-readout"));
  await page.click('label[for="period-24h"]');
  await waitText("#chart-caption", /per hour/);
  const hours = await page.locator("#chart svg text.xlabel").allTextContents();
  check("24 h chart: first and last labels differ, the first with its date", hours[0] !== hours[hours.length - 1] && /[A-Za-z]/.test(hours[0]), JSON.stringify(hours));
  await shot("04-chart");

  // 5. Requests: table, filters, paging, CSV.
  await waitText("#requests-status-line", /shown/);
  const rows = await page.locator("#requests-body tr").count();
  check("the requests table shows a page of 25", rows === 25, rows);
  check("older requests are a page away", await page.locator("#requests-older").isEnabled());
  await page.click("#requests-older");
  await waitText("#requests-status-line", /shown\.$/);
  // Each load says "Loading requests…" first, so a wait for "shown" is a wait for this load.
  const older = await page.locator("#requests-body tr").count();
  check("the older page holds the rest", older > 0 && older < 25, older);
  await page.selectOption("#requests-model", "claude-3-5-sonnet");
  await page.click('#requests-form button[type="submit"]');
  await waitText("#requests-status-line", /shown/);
  const models = await page.locator("#requests-body tr td:nth-child(3)").allInnerTexts();
  check("the model filter keeps that model only", models.length > 0 && models.every((m) => m === "claude-3-5-sonnet"), JSON.stringify(models));
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#requests-csv")]);
  const csv = fs.readFileSync(await download.path(), "utf8");
  const lines = csv.trim().split("\r\n");
  check("CSV export: a header line and the filtered rows", lines[0].startsWith("id,time,keyId,") && lines.length === models.length + 1, lines.length + " lines");
  await page.selectOption("#requests-model", "");
  await page.selectOption("#requests-status", "");
  await page.click('#requests-form button[type="submit"]');
  await waitText("#requests-status-line", /shown/);
  await page.locator("#requests-panel").scrollIntoViewIfNeeded();
  await shot("05-requests");

  // 6. A real Lightning top-up: USD preset, sats shown first, QR, countdown, paid.
  await page.click('.preset[data-usd="1"]');
  check("the $1 preset shows 2,500 sats before any invoice", (await text("#topup-worth")).startsWith("2,500 sats ≈ $1.00"), await text("#topup-worth"));
  await page.click('#topup-form button[type="submit"]');
  await page.waitForSelector("#invoice-qr svg path", { timeout: 10000 });
  check("the QR code is on the console", (await page.locator("#invoice-qr svg path").getAttribute("d")).length > 100);
  check("the expiry counts down", await waitText("#invoice-expires", /^Expires in \d+:\d\d \(at \d\d:\d\d UTC\)\.$/));
  const before = await text("#invoice-expires");
  await page.waitForTimeout(1100);
  check("the countdown ticks", (await text("#invoice-expires")) !== before);
  await page.locator("#topup-panel").scrollIntoViewIfNeeded();
  await shot("06-invoice-qr");
  const bolt11 = await page.inputValue("#invoice-bolt11");
  const paid = await fetch(env("LNBITS_URL") + "/api/v1/payments", {
    method: "POST",
    headers: { "X-Api-Key": env("LNBITS_PAYER_KEY"), "Content-Type": "application/json" },
    body: JSON.stringify({ out: true, bolt11 }),
  });
  check("LNbits paid the invoice", paid.status === 201, paid.status);
  check("the invoice flips to paid", await waitText("#invoice-status", /^paid$/, 15000));
  check("the balance shows the top-up", await waitText("#balance-usd", /\$1\.50/), await text("#balance-usd"));
  check("the money history lists the paid invoice", await waitText("#invoices-body", /paid/));
  await shot("07-paid");

  // 7. The gateway failing or unreachable keeps the dashboard and its Refresh button.
  for (const [what, how] of [
    ["a 503", (r) => r.fulfill({ status: 503, contentType: "application/json", body: '{"error":{"message":"Gateway overloaded.","type":"server_error","code":"unavailable"}}' })],
    ["no connection", (r) => r.abort("connectionrefused")],
  ]) {
    provoking = true;
    await page.route("**/api/**", how);
    await page.click("#refresh");
    await page.waitForSelector("#message", { state: "visible" });
    check(`${what} keeps the dashboard`, await visible("#panels"));
    check(`${what} keeps the Refresh button`, await visible("#refresh"));
    check(`${what} is reported`, (await message()).length > 0, await message());
    if (what === "a 503") {
      await page.evaluate(() => window.scrollTo(0, 0));
      await shot("08-gateway-down", false);
    }
    await page.unroute("**/api/**");
    provoking = false;
  }
  await page.click("#message-close");
  await page.click("#refresh");
  await waitText("#report-requests", /[1-9]/);
  await settled();

  // 8. Create while signed in asks first; Forget asks; a cancelled question changes nothing.
  dialogs.length = 0;
  await page.click('#create-form button[type="submit"]');
  check("Create key while a key is stored asks first", dialogs.length === 1 && /already holds a key/.test(dialogs[0]), JSON.stringify(dialogs));
  check("… and, cancelled, keeps the stored key", (await stored()) === KEY);
  dialogs.length = 0;
  await page.click("#forget-key");
  check("Forget asks first", dialogs.length === 1 && /Forget this key/.test(dialogs[0]), JSON.stringify(dialogs));
  check("… and, cancelled, keeps the key", (await stored()) === KEY && (await visible("#panels")));

  // 9. A #key= link in the open tab switches to that key (checked first), then back.
  await page.evaluate((k) => (location.hash = "key=" + k), OTHER_KEY);
  check("a #key= link in an open tab is taken", await waitText("#info-label", /other/));
  await settled();
  check("… stored, and removed from the address bar", (await stored()) === OTHER_KEY && !page.url().includes("#"));
  check("the other account's key sees no keys panel of ours", !(await text("#keys-body")).includes("tool"));
  await page.evaluate((k) => (location.hash = "key=" + k), KEY);
  await waitText("#info-label", /owner/);
  await settled();

  // 10. Accessibility of the full dashboard, and the phone width.
  await axe("the dashboard");
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check("phone width: the page does not scroll sideways", overflow <= 0, overflow + "px");
  await shot("09-phone");
  await page.setViewportSize({ width: 1280, height: 900 });

  // 11. Getting started: snippets with this gateway's URL and the key, and the model list.
  for (const kind of ["curl", "python", "typescript", "codex", "claude", "opencode"]) {
    await page.selectOption("#snippet-kind", kind);
    const s = await page.inputValue("#snippet");
    check(`the ${kind} snippet has this gateway's URL and the key`, s.includes(URL_) && s.includes(KEY));
  }
  const gpt = (await page.locator("#catalogue-body tr", { hasText: "gpt-4o" }).innerText()).split("\t");
  check("the model list shows gpt-4o with its prices", gpt[0] === "gpt-4o" && gpt[2] === "$1.00" && gpt[3] === "$1.00", JSON.stringify(gpt));
  await page.locator("#start-panel").scrollIntoViewIfNeeded();
  await shot("10-getting-started", false);

  // 12. Disable: a use key disables itself, after a question; the console forgets it.
  await page.evaluate((k) => (location.hash = "key=" + k), USE_KEY);
  await waitText("#info-label", /tool/);
  await settled();
  check("a use key gets the note instead of the keys panel", await appears("#keys-note"));
  dialogs.length = 0;
  dialogAnswer = "accept";
  await page.click("#disable-key");
  await waitText("#message-text", /disabled/);
  dialogAnswer = "dismiss";
  check("Disable asks first", dialogs.length === 1 && /Disable this key/.test(dialogs[0]), JSON.stringify(dialogs));
  check("the disabled key is forgotten and the dashboard hidden", (await stored()) === null && !(await visible("#panels")));
  const me = await fetch(URL_ + "/api/keys/me", { headers: { Authorization: "Bearer " + USE_KEY } });
  check("the disabled key is refused by the gateway", me.status === 401, me.status);
  await shot("11-disabled");
  await axe("the signed-out page");

  // 13. A gateway without Lightning offers no top-up form.
  await page.goto(env("PLAIN_URL") + "/#key=" + env("PLAIN_KEY"));
  await page.waitForSelector("#panels", { state: "visible" });
  await settled();
  check("no Lightning backend: the top-up form is hidden, a note says so", await waitText("#topup-off", /no Lightning/) && (await visible("#topup-off")) && !(await visible("#topup-form")));
  await page.locator("#topup-panel").scrollIntoViewIfNeeded();
  await shot("12-no-lightning", false);

  // 14. The invoice page: no script, a CSP, a favicon, a readable expiry.
  const inv = await page.context().request.get(URL_ + "/invoice/" + (await firstInvoice()));
  const html = await inv.text();
  check("the invoice page has a CSP", /default-src 'none'/.test(inv.headers()["content-security-policy"] || ""));
  check("the invoice page has a favicon and a readable UTC expiry", html.includes('rel="icon"') && /expires \d{4}-\d\d-\d\d \d\d:\d\d UTC/.test(html));
} catch (e) {
  check("the run finished", false, e && e.stack ? e.stack : String(e));
} finally {
  check("no console error or uncaught exception", errors.length === 0, JSON.stringify(errors));
  await browser.close();
}

async function firstInvoice() {
  const r = await fetch(URL_ + "/api/wallet/history", { headers: { Authorization: "Bearer " + KEY } });
  const h = await r.json();
  return h.invoices[0].invoiceId;
}

console.log(`# ${n} checks, ${failed} failed; screenshots in ${ART}: ${shots.map((f) => path.basename(f)).join(", ")}`);
process.exit(failed === 0 ? 0 : 1);

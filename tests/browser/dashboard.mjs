// Drives the operator dashboard in headless Chromium (playwright-core with Debian's chromium)
// for services/gateway/tests/browser.rs, which produces the events and checks the outcome.
//
//   node dashboard.mjs <dashboard url with ?token=...> <artifacts dir> [screenshot name prefix]
//
// stdin: one JSON command per line; stdout: one JSON answer per line ({type: "error"} on a
// failed step, with a screenshot). Commands:
//   {cmd: "signed_in"}                    wait until the page is live (socket connected)
//   {cmd: "row", key, text}               wait until the list shows `key` with `text`
//   {cmd: "open", key, text}              click the row; wait for a bubble with `text`
//   {cmd: "reply", text}                  type into the reply box, press Enter; wait for the
//                                         outbound bubble; answers its id and status
//   {cmd: "status", text, statuses}       wait until that outbound bubble's status is one of
//   {cmd: "mode", key, mode}              wait until the list shows `key` in `mode` (bot | human)
//   {cmd: "takeover"}                     click "Take over"; wait for the human badge
//   {cmd: "campaign_watch", id}           start sampling that campaign row's progress (data-done)
//                                         every 50 ms, so the test can see the bar advance
//   {cmd: "campaign", id, state, done}    wait until the row shows `state` and `done` percent;
//                                         answers the percentages sampled so far, in order
//   {cmd: "explorer_open"}                click the Events tab (admins); wait for the first search
//                                         and the live tail's subscription
//   {cmd: "explorer_search", text}        search for `text`; wait for a row containing it
//   {cmd: "explorer_payload", text}       click the row containing `text`; answers the payload
//   {cmd: "explorer_live", text}          wait for a row containing `text` that came by the live
//                                         tail; answers whether the page was never reloaded
//   {cmd: "explorer_tab"}                 answers whether the Events tab is visible
//   {cmd: "screenshot", name}
//   {cmd: "quit"}
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { chromium } from "playwright-core";

const [url, artifacts, prefix = ""] = process.argv.slice(2);
const out = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
fs.mkdirSync(artifacts, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CAAS_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
const consoleErrors = [];
page.on("console", (message) => {
  if (message.type() === "error") consoleErrors.push(message.text());
});
page.on("pageerror", (error) => consoleErrors.push(String(error)));
await page.goto(url);

const shot = async (name) => {
  const file = path.join(artifacts, `${prefix}${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  return file;
};
const row = (key) => page.locator(`[data-testid="conversation-row"][data-key="${key}"]`);
const outbound = (text) => page.locator('[data-testid="message"].outbound', { hasText: text }).last();
// Generous: the machine may be busy; a live update normally takes well under a second.
const TIMEOUT = 45000;

const steps = {
  async signed_in() {
    await page.locator('[data-testid="connection-status"][data-state="online"]').waitFor({ timeout: TIMEOUT });
    return { url: page.url() };
  },
  async row({ key, text }) {
    await row(key).filter({ hasText: text }).waitFor({ timeout: TIMEOUT });
    const unread = await row(key).locator('[data-testid="unread-badge"]').textContent().catch(() => null);
    const mode = await row(key).locator('[data-testid="mode-badge"]').textContent();
    return { unread, mode, screenshot: await shot("01-list-live") };
  },
  async open({ key, text }) {
    await row(key).click();
    await page.locator('[data-testid="message"].inbound', { hasText: text }).waitFor({ timeout: TIMEOUT });
    return { title: await page.locator('[data-testid="thread-title"]').textContent(), screenshot: await shot("02-thread") };
  },
  async reply({ text }) {
    await page.locator('[data-testid="reply-input"]').fill(text);
    await page.locator('[data-testid="reply-input"]').press("Enter");
    const bubble = outbound(text);
    await bubble.waitFor({ timeout: TIMEOUT });
    return { id: await bubble.getAttribute("data-id"), status: await bubble.getAttribute("data-status"), screenshot: await shot("03-reply") };
  },
  async status({ text, statuses }) {
    const bubble = outbound(text);
    const selector = statuses.map((status) => `[data-status="${status}"]`).join(",");
    await page.locator('[data-testid="message"].outbound').filter({ hasText: text }).and(page.locator(selector)).waitFor({ timeout: TIMEOUT });
    const status = await bubble.getAttribute("data-status");
    return { status, tick: await bubble.locator('[data-testid="status-tick"]').textContent(), screenshot: await shot(`04-${status}`) };
  },
  async mode({ key, mode }) {
    const badge = row(key).locator(`[data-testid="mode-badge"].${mode}`);
    await badge.waitFor({ timeout: TIMEOUT });
    return { mode: await badge.textContent(), screenshot: await shot(`mode-${mode}`) };
  },
  async takeover() {
    await page.locator('[data-testid="takeover-button"]').click();
    await page.locator('[data-testid="conversation-row"].selected [data-testid="mode-badge"].human').waitFor({ timeout: TIMEOUT });
    return { screenshot: await shot("05-taken-over") };
  },
  async campaign_watch({ id }) {
    await page.evaluate((campaignId) => {
      const history = (window.__campaignProgress ??= {});
      const seen = (history[campaignId] = []);
      setInterval(() => {
        const row = document.querySelector(`[data-testid="campaign-row"][data-id="${campaignId}"]`);
        const done = row?.getAttribute("data-done");
        if (done != null && seen[seen.length - 1] !== Number(done)) seen.push(Number(done));
      }, 50);
    }, id);
    return {};
  },
  async campaign({ id, state, done }) {
    const row = page.locator(`[data-testid="campaign-row"][data-id="${id}"][data-state="${state}"][data-done="${done}"]`);
    await row.waitFor({ timeout: TIMEOUT });
    const history = await page.evaluate((campaignId) => window.__campaignProgress?.[campaignId] ?? [], id);
    return {
      history,
      counts: await row.locator('[data-testid="campaign-counts"]').textContent(),
      screenshot: await shot(`progress-${state}`),
    };
  },
  async explorer_open() {
    await page.evaluate(() => (window.__explorerPage = Math.random().toString(36).slice(2)));
    await page.locator('[data-testid="explorer-tab"]').click();
    await page.locator('[data-testid="explorer"][data-tailing="true"]').waitFor({ timeout: TIMEOUT });
    await page.locator('[data-testid="explorer-status"]', { hasText: /events? from/ }).waitFor({ timeout: TIMEOUT });
    return { status: await page.locator('[data-testid="explorer-status"]').textContent(), screenshot: await shot("explorer-open") };
  },
  async explorer_search({ text }) {
    await page.locator('[data-testid="explorer-text"]').fill(text);
    await page.locator('[data-testid="explorer-search"]').click();
    const rows = page.locator('[data-testid="event-row"]', { hasText: text });
    await rows.first().waitFor({ timeout: TIMEOUT });
    const found = await rows.evaluateAll((elements) => elements.map((row) => ({ id: row.dataset.id, type: row.dataset.type, live: row.dataset.live, summary: row.querySelector('[data-testid="event-summary"]')?.textContent })));
    return { rows: found, status: await page.locator('[data-testid="explorer-status"]').textContent(), screenshot: await shot("explorer-search") };
  },
  async explorer_payload({ text }) {
    await page.locator('[data-testid="event-row"]', { hasText: text }).first().click();
    const payload = page.locator('[data-testid="event-payload"]', { hasText: '"payload"' });
    await payload.waitFor({ timeout: TIMEOUT });
    return { payload: JSON.parse(await payload.textContent()), screenshot: await shot("explorer-payload") };
  },
  async explorer_live({ text }) {
    const row = page.locator('[data-testid="event-row"][data-live="true"]', { hasText: text }).first();
    await row.waitFor({ timeout: TIMEOUT });
    const samePage = await page.evaluate(() => typeof window.__explorerPage === "string");
    return { id: await row.getAttribute("data-id"), event_type: await row.getAttribute("data-type"), same_page: samePage, screenshot: await shot("explorer-live") };
  },
  async explorer_tab() {
    return { visible: await page.locator('[data-testid="explorer-tab"]').isVisible() };
  },
  async screenshot({ name }) {
    return { screenshot: await shot(name) };
  },
};

const input = readline.createInterface({ input: process.stdin });
for await (const line of input) {
  const command = JSON.parse(line);
  if (command.cmd === "quit") break;
  try {
    const result = await steps[command.cmd](command);
    out({ type: command.cmd, ...result, console_errors: consoleErrors.splice(0) });
  } catch (error) {
    const screenshot = await shot(`failed-${command.cmd}`).catch(() => null);
    out({ type: "error", cmd: command.cmd, message: String(error), screenshot, console_errors: consoleErrors.splice(0) });
  }
}
await browser.close();
process.exit(0);

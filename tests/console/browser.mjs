// The console in a real headless Chromium (Debian's `chromium`, driven by playwright-core; no
// browser is downloaded). Started by the Rust test `api::console::console_in_chromium`, which
// serves a company on a loopback port and passes it here:
//   HB_BASE, HB_SLUG, HB_STAFF, HB_READER, HB_INTEGRATOR, HB_OTHER, HB_CHROMIUM, and two files:
//   HB_STATEMENT (a WeChat Pay trade bill with one payment heatbill did not record, whose memo
//   names W3) and HB_COMPONENT (a plugin component to upload)
// With HB_SCREENSHOTS=<dir>, it also saves a screenshot of every screen, in Chinese and English.
//
// Every wait is bounded; a failed check throws with what was expected and what the page showed.
// Every request the pages make is checked to stay on the server (the network is "off": any
// other origin is aborted and counted as a failure).

import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set: run this from the Rust test api::console`);
  return v;
};
const BASE = env('HB_BASE');
const SLUG = env('HB_SLUG');
const STAFF = env('HB_STAFF');
const READER = env('HB_READER');
const INTEGRATOR = env('HB_INTEGRATOR');
const OTHER = env('HB_OTHER');
const STATEMENT = env('HB_STATEMENT');
const COMPONENT = env('HB_COMPONENT');
const SHOTS = process.env.HB_SCREENSHOTS || '';
const WAIT = 60_000;

const browser = await chromium.launch({
  executablePath: process.env.HB_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
  timeout: WAIT,
});

const offsite = [];
// The page last opened, for the diagnosis of a failure.
let current = null;
const consoleErrors = [];

async function session(lang) {
  const context = await browser.newContext({
    locale: lang === 'en' ? 'en-US' : 'zh-CN',
    viewport: { width: 1280, height: 900 },
  });
  context.setDefaultTimeout(WAIT);
  // The network is off: only the server answers.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(BASE)) return route.continue();
    offsite.push(url);
    return route.abort();
  });
  const page = await context.newPage();
  current = page;
  page.on('dialog', (d) => d.accept());
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(`${page.url()}: ${m.text()}`);
  });
  return { context, page };
}

async function signIn(page, token) {
  const r = await page.goto(`${BASE}/console`);
  assert.equal(r.status(), 200);
  assert.match(page.url(), /\/console\/sign-in/, 'not signed in: the sign-in page');
  await page.getByLabel(/令牌|Token/).fill(token);
  await page.getByRole('button', { name: /登录|Sign in/ }).click();
  await page.waitForURL(/\/console\/companies\//);
}

async function shot(page, name) {
  if (!SHOTS) return;
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** Accessibility basics on the page as it is: labels, a skip link first, contrast. */
async function accessible(page, what, keyboard = true) {
  const problems = await page.evaluate(() => {
    const out = [];
    // Every visible control has a label.
    for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
      const labelled = (el.labels && el.labels.length > 0) || el.getAttribute('aria-label');
      if (!labelled) out.push(`unlabelled ${el.outerHTML.slice(0, 80)}`);
    }
    // Every button and link has a name.
    for (const el of document.querySelectorAll('button, a[href]')) {
      if (!(el.textContent.trim() || el.getAttribute('aria-label'))) {
        out.push(`unnamed ${el.outerHTML.slice(0, 80)}`);
      }
    }
    // Text contrast at least 4.5:1 (WCAG AA) against the nearest opaque background.
    const rgb = (s) => (s.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
      const c = [r, g, b].map((v) => {
        v /= 255;
        return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
      });
      return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
    };
    const bg = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c.length === 3 || (c.length === 4 && c[3] > 0.9)) return c.slice(0, 3);
      }
      return [255, 255, 255];
    };
    const seen = new Set();
    for (const el of document.querySelectorAll('body *')) {
      const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!own || el.closest('svg') || el.offsetParent === null) continue;
      const fg = rgb(getComputedStyle(el).color).slice(0, 3);
      const b = bg(el);
      const [l1, l2] = [lum(fg), lum(b)].sort((x, y) => y - x);
      const ratio = (l1 + 0.05) / (l2 + 0.05);
      const key = `${fg}|${b}`;
      if (ratio < 4.5 && !seen.has(key)) {
        seen.add(key);
        out.push(`contrast ${ratio.toFixed(2)} for "${el.textContent.trim().slice(0, 30)}"`);
      }
    }
    return out;
  });
  assert.deepEqual(problems, [], `${what}: accessibility`);
  if (!keyboard) return;
  // Keyboard: the first Tab reaches the skip link, which moves focus to the content.
  await page.keyboard.press('Tab');
  const first = await page.evaluate(() => document.activeElement && document.activeElement.className);
  assert.equal(first, 'skip', `${what}: the first Tab reaches the skip link`);
}

const checks = [];
const check = (name) => {
  checks.push(name);
  console.log(`browser: ok ${name}`);
};

try {
  // ---- staff, in Chinese (the company is in Harbin) ----
  const { context, page } = await session('zh');
  await signIn(page, STAFF);
  assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
  await page.getByText('概览').first().waitFor();
  check('sign-in as staff lands on the dashboard, in Chinese');
  await accessible(page, 'dashboard');
  check('dashboard: labels, names, contrast, skip link');

  // Run a night and watch it finish (server-sent events, then the report).
  await page.locator('#run-date').fill('2025-10-20');
  await page.locator('#run-night').click();
  await page.waitForURL(/\/runs\/\d+$/);
  await page.locator('#parked').waitFor({ timeout: WAIT });
  assert.equal((await page.locator('#run-parked').textContent()).trim(), '1');
  check('a night runs from the dashboard and its report shows when it finishes');
  await shot(page, 'zh-run');

  if (SHOTS) {
    // Screenshots show a few nights, not one.
    for (const date of ['2025-10-21', '2025-10-22', '2025-10-23']) {
      await page.goto(`${BASE}/console/companies/${SLUG}`);
      await page.locator('#run-date').fill(date);
      await page.locator('#run-night').click();
      await page.waitForURL(/\/runs\/\d+$/);
      await page.locator('#parked').waitFor({ timeout: WAIT });
    }
    await page.goto(`${BASE}/console/companies/${SLUG}/runs/1`);
  }

  // The parked customer, from the report.
  await page.locator('#parked a', { hasText: 'W5' }).click();
  await page.waitForURL(/\/customers\/W5$/);
  await page.locator('#timeline .kind-parked').first().waitFor();
  check('the parked customer is found from the report');

  // The counter: find W1 by phone suffix, take 100.00, print-ready receipt, balance down 100.
  await page.goto(`${BASE}/console/companies/${SLUG}/customers/W1`);
  const before = Number((await page.locator('#balance').textContent()).trim());
  await shot(page, 'zh-account');
  await page.goto(`${BASE}/console/companies/${SLUG}/counter`);
  await page.locator('#by').selectOption('phone');
  await page.locator('#q').fill('1234');
  await page.getByRole('button', { name: '查询' }).click();
  await page.locator('#pay-form').waitFor();
  await shot(page, 'zh-counter');
  await page.locator('#amount').fill('100.00');
  await page.locator('#cashier').fill('王');
  await page.locator('#pay').click();
  await page.waitForURL(/\/receipts\/\d+$/);
  assert.equal((await page.locator('#receipt-amount').textContent()).trim(), '100.00');
  await page.getByText('壹佰元整').waitFor();
  const after = Number((await page.locator('#receipt-balance').textContent()).trim());
  assert.equal(Math.round((before - after) * 100), 10000, `balance ${before} -> ${after}`);
  check('a counter payment is taken, its receipt printed-ready, the balance falls by 100.00');
  await shot(page, 'zh-receipt');
  await page.goto(`${BASE}/console/companies/${SLUG}/customers/W1`);
  assert.equal(Number((await page.locator('#balance').textContent()).trim()), after);
  await page.locator('#timeline .kind-payment').first().waitFor();
  check('the account page shows the payment and the new balance');
  await page.goto(`${BASE}/console/companies/${SLUG}/day-close`);
  await page.getByText('王').first().waitFor();
  await shot(page, 'zh-day-close');
  check("the cashier's day close lists the payment");
  await page.goto(`${BASE}/console/companies/${SLUG}/operations`);
  await page.locator('#ready').waitFor();
  await shot(page, 'zh-operations');
  await accessible(page, 'operations');
  check('the operations page shows readiness and the scheduler');

  // Data: a file with a bad row is refused with the row in a table; nothing is imported.
  await page.goto(`${BASE}/console/companies/${SLUG}/data`);
  await accessible(page, 'data');
  await page.locator('#kind').selectOption('customers');
  await page.locator('#import-file').setInputFiles({
    name: 'bad.csv',
    mimeType: 'text/csv',
    buffer: Buffer.from('customer_id,class,building_area\nB1,palace,80\n'),
  });
  await page.locator('#import-form button[type=submit]').click();
  await page.locator('#import-result table.row-errors').waitFor();
  assert.match(await page.locator('#import-result table.row-errors').textContent(), /palace/);
  await shot(page, 'zh-data');
  await accessible(page, 'the bad rows', false);
  // A stale form (its CSRF token no longer the session's): the refusal is shown in place.
  await page.evaluate(() => { document.querySelector('#import-form [name=_csrf]').value = 'stale'; });
  await page.locator('#import-form button[type=submit]').click();
  await page.locator('#import-result .flash.error', { hasText: 'CSRF' }).waitFor();
  assert.equal(await page.locator('#import-result h1').count(), 1, 'the error page content, once');
  assert.equal(await page.locator('#import-result html, #import-result body').count(), 0);
  check('an import with a bad row shows the row in a table and imports nothing; a stale form is refused in place');

  // Reconciliation: the day's WeChat Pay bill uploaded; the payment heatbill did not record
  // is recorded for the customer its memo names, with one confirmation.
  await page.goto(`${BASE}/console/companies/${SLUG}/statements`);
  await page.locator('#statement-file').setInputFiles(STATEMENT);
  await page.locator('#statement-form button[type=submit]').click();
  await page.waitForURL(/\/statements\/\d+$/);
  await page.locator('[data-confirm-match]').first().waitFor();
  await shot(page, 'zh-statement');
  await accessible(page, 'statement');
  await page.locator('[data-confirm-match]').first().click();
  await page.waitForURL(/\/statements\/\d+#item-\d+$/);
  await page.locator('#items .tag.ok').first().waitFor();
  check("a WeChat Pay statement is reconciled and its suggested match confirmed");

  // Another company's customer is not found; a CSRF-less post is refused.
  let r = await page.goto(`${BASE}/console/companies/${OTHER}/customers/W1`);
  assert.equal(r.status(), 404);
  check("another company's customer page is 404");
  await page.goto(`${BASE}/console/companies/${SLUG}`);
  const status = await page.evaluate(async (slug) => {
    const res = await fetch(`/console/companies/${slug}/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'date=2025-10-21&key=forged',
    });
    return res.status;
  }, SLUG);
  assert.equal(status, 403);
  check('a post without the CSRF token is refused');

  // The dashboard's arrears (an htmx fragment, computed on a click, then kept until the data
  // changes) and charts.
  await page.locator('#compute-arrears').click();
  await page.locator('#arrears svg').waitFor();
  await page.reload();
  await page.locator('#arrears svg').waitFor();
  assert.equal(await page.locator('#compute-arrears').count(), 0, 'the report was kept');
  assert.ok((await page.locator('svg.chart').count()) >= 3);
  check('the dashboard draws its charts and loads the arrears by age');
  await shot(page, 'zh-dashboard');

  // English, by the switch in the header.
  await page.getByRole('link', { name: 'English' }).click();
  await page.waitForURL(/\/console\/companies\//);
  assert.equal(await page.getAttribute('html', 'lang'), 'en');
  await page.getByText('The latest night').waitFor();
  check('the language switch shows the console in English');
  if (SHOTS) {
    await shot(page, 'en-dashboard');
    for (const [name, url] of [
      ['en-runs', `/console/companies/${SLUG}/runs`],
      ['en-account', `/console/companies/${SLUG}/customers/W1`],
      ['en-counter', `/console/companies/${SLUG}/counter?customer=W2`],
      ['en-customers', `/console/companies/${SLUG}/customers?by=community&q=${encodeURIComponent('松花江小区')}`],
    ]) {
      await page.goto(`${BASE}${url}`);
      await shot(page, name);
    }
    await page.goto(`${BASE}/console/lang/zh?back=/console/companies/${SLUG}/runs`);
    await shot(page, 'zh-runs');
  }

  // Sign out.
  await page.getByRole('button', { name: /Sign out|退出/ }).click();
  await page.waitForURL(/\/console\/sign-in/);
  r = await page.goto(`${BASE}/console/companies/${SLUG}`);
  assert.match(page.url(), /\/console\/sign-in\?next=/);
  check('sign-out ends the session');
  await context.close();

  // ---- a read-only user sees no button it cannot use, and gets 403 if it tries ----
  const ro = await session('zh');
  await signIn(ro.page, READER);
  assert.equal(await ro.page.locator('#run-night').count(), 0);
  await ro.page.goto(`${BASE}/console/companies/${SLUG}/customers/W1`);
  assert.equal(await ro.page.locator('#take-payment').count(), 0);
  await ro.page.goto(`${BASE}/console/companies/${SLUG}/counter?customer=W1`);
  assert.equal(await ro.page.locator('#pay-form').count(), 0);
  const denied = await ro.page.evaluate(async (slug) => {
    const csrf = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token'];
    const res = await fetch(`/console/companies/${slug}/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `date=2025-10-21&key=ro&_csrf=${csrf}`,
    });
    return res.status;
  }, SLUG);
  assert.equal(denied, 403);
  await ro.page.goto(`${BASE}/console/companies/${SLUG}/chains`);
  assert.equal(await ro.page.locator('a.edit-params').count(), 0);
  check('a read-only user has no run, payment or edit button, and a forced post is 403');
  await ro.context.close();

  // ---- an integrator edits a plugin's parameters through the generated form ----
  const ig = await session('en');
  await signIn(ig.page, INTEGRATOR);
  // In English, by choice (the company's time zone says Chinese).
  await ig.page.goto(`${BASE}/console/lang/en?back=/console/companies/${SLUG}/chains`);
  await ig.page.waitForURL(/\/chains$/);
  assert.equal(await ig.page.getAttribute('html', 'lang'), 'en');
  await shot(ig.page, 'en-chains');
  // The tariff (the chain's second entry): its prices by class, a form made from its schema.
  await ig.page.locator('a.edit-params').nth(1).click();
  await ig.page.waitForURL(/\/chains\/edit\?entry=1$/);
  const price = ig.page.locator('[name="p/prices/residential"]');
  assert.equal(await price.inputValue(), '38.32');
  assert.equal(await ig.page.locator('[name="p/area_basis"]').inputValue(), 'usable');
  await accessible(ig.page, 'the parameter form');
  await price.fill('40.00');
  await ig.page.locator('#customers').fill('W1, W3');
  await shot(ig.page, 'en-params');
  await ig.page.locator('#compare').click();
  await ig.page.waitForURL(/\/chains\/preview$/);
  const w1 = ig.page.locator('#comparison tr', { hasText: 'W1' });
  assert.equal(await w1.getAttribute('class'), 'differs', 'the new price changes W1');
  const w3 = ig.page.locator('#comparison tr', { hasText: 'W3' });
  assert.notEqual(await w3.getAttribute('class'), 'differs', 'a non-residential price is unchanged');
  check("an integrator edits the tariff's prices in the generated form and sees the dry-run difference");
  await shot(ig.page, 'en-preview');
  await ig.page.locator('#effective_from').fill('2025-10-21');
  await ig.page.locator('#activate').click();
  await ig.page.waitForURL(/\/chains\?activated=\d+$/);
  await ig.page.locator('.flash.info').waitFor();
  check('the edited chain is activated (its case files passed)');

  // Plugins: a component uploaded from the console lands on its page; a case file whose
  // cases fail is refused with the plugin-test table.
  await ig.page.goto(`${BASE}/console/companies/${SLUG}/plugins`);
  await ig.page.locator('#component').setInputFiles(COMPONENT);
  await ig.page.locator('#plugin-form button[type=submit]').click();
  await ig.page.waitForURL(/\/plugins\/[0-9a-f]{64}$/);
  await ig.page.locator('#cases-form').waitFor();
  await accessible(ig.page, 'the plugin page');
  await ig.page.goto(`${BASE}/console/companies/${SLUG}/plugins`);
  await shot(ig.page, 'en-plugins');
  await ig.page.locator('a', { hasText: /^season\s/ }).click();
  await ig.page.waitForURL(/\/plugins\/[0-9a-f]{64}$/);
  const caseText = fs.readFileSync(new URL('../../plugins/cases/w1.toml', import.meta.url), 'utf8');
  await ig.page.locator('#case-file').setInputFiles({
    name: 'wrong.toml',
    mimeType: 'application/toml',
    buffer: Buffer.from(caseText.replace('amount = "12.56"', 'amount = "12.57"')),
  });
  await ig.page.locator('#cases-form button[type=submit]').click();
  await ig.page.locator('#cases-result pre.report').waitFor();
  assert.equal(await ig.page.locator('#cases-result [data-result=refused]').count(), 1);
  await shot(ig.page, 'en-plugin-cases');
  check('a component uploaded from the console lands on its page; a failing case file shows its table');
  await ig.context.close();

  // ---- the API reference works with the network off ----
  const docs = await session('en');
  await docs.page.goto(`${BASE}/docs`);
  await docs.page.getByText('heatbill admin API').first().waitFor({ timeout: WAIT });
  check('the API reference (/docs) renders with the network off');
  await shot(docs.page, 'docs');
  await docs.context.close();

  assert.deepEqual(offsite, [], 'no page asked for anything beyond the server');
  const cspErrors = consoleErrors.filter((e) => /Content Security Policy|Refused to/.test(e));
  assert.deepEqual(cspErrors, [], 'no page broke its Content-Security-Policy');
  check('nothing was fetched from outside the server; no CSP violation');
  console.log(`browser: all checks passed (${checks.length})`);
} catch (e) {
  console.log(`browser: FAILED after ${checks.length} checks: ${e.stack || e}`);
  if (current && !current.isClosed()) {
    const text = await current.evaluate(() => document.body.innerText).catch(() => '');
    console.log(`browser: the page was ${current.url()}:\n${text.slice(0, 3000)}`);
  }
  if (consoleErrors.length) console.log(`browser console errors:\n${consoleErrors.join('\n')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}

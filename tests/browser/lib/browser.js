// browser.js -- Debian's chromium, headless, driven by playwright-core; one fresh context (a new
// profile: no cookies, no storage) per test, with everything the page must not do recorded:
// console errors, uncaught exceptions and Content-Security-Policy violations.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');

const CHROMIUM = process.env.GS_CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
              '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync',
              '--disable-dev-shm-usage'];
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

async function launch() {
  // launch() gives every run a fresh temporary user-data-dir, removed on close
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 60000 });
}

// Runs before any script of the page, outside its CSP (it is injected by the browser).
function recorder() {
  window.__gs = { csp: [], values: [] };
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__gs.csp.push(`${e.violatedDirective} ${e.blockedURI}`);
  });
  // every value the progress bar takes, with the state shown at that moment
  const watch = () => {
    const bar = document.getElementById('bar');
    if (!bar) { return false; }
    const seen = () => {
      const v = bar.getAttribute('aria-valuenow');
      const state = bar.getAttribute('data-state');
      const task = document.getElementById('task-id').textContent;
      const last = window.__gs.values[window.__gs.values.length - 1];
      if (!last || last.v !== v || last.state !== state || last.task !== task) {
        window.__gs.values.push({ v, state, task, t: Date.now() });
      }
    };
    new MutationObserver(seen).observe(bar, { attributes: true, attributeFilter: ['aria-valuenow', 'data-state'] });
    return true;
  };
  if (!watch()) { document.addEventListener('DOMContentLoaded', watch); }
}

class Session {
  constructor(browser, opts) {
    this.browser = browser;
    this.opts = opts || {};
    this.errors = [];       // console errors, page errors, CSP violations
    this.allowed = [];      // regexes of console errors a test provokes on purpose
    this.pages = [];
  }

  async open() {
    this.context = await this.browser.newContext({
      locale: this.opts.locale || 'en-US',
      viewport: { width: 1000, height: 700 },
      colorScheme: this.opts.colorScheme || 'light',
      reducedMotion: 'no-preference',
    });
    this.context.setDefaultTimeout(15000);
    await this.context.addInitScript(recorder);
    return this.newPage();
  }

  async newPage() {
    const page = await this.context.newPage();
    page.on('console', (msg) => {
      if (msg.type() === 'error' && !this.allowed.some((re) => re.test(msg.text()))) {
        this.errors.push(`console: ${msg.text()} (${(msg.location() || {}).url || ''})`);
      }
    });
    page.on('pageerror', (err) => this.errors.push(`page error: ${err.message}`));
    this.pages.push(page);
    return page;
  }

  allow(re) { this.allowed.push(re); }

  // CSP violations seen by any page of this session (read before the pages close).
  async cspViolations() {
    const out = [];
    for (const p of this.pages) {
      if (p.isClosed()) { continue; }
      try { out.push(...await p.evaluate(() => (window.__gs ? window.__gs.csp : []))); } catch (e) { /* navigating */ }
    }
    return out;
  }

  async close() {
    const csp = await this.cspViolations();
    await this.context.close();
    return this.errors.concat(csp.map((c) => 'CSP violation: ' + c));
  }
}

// axe-core, injected through the browser (the page's CSP forbids inline scripts, rightly).
async function audit(page) {
  await page.evaluate(AXE);
  return page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
}

async function screenshot(page, dir, name, fullPage) {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name + '.png');
  await page.screenshot({ path: file, fullPage: !!fullPage });
  return file;
}

module.exports = { launch, Session, audit, screenshot };

// stack.js -- the browser suite's own local stack (PostgreSQL, fake Gmail, httpd) through
// scripts/gmailsync-dev, in its own run directory and on its own ports:
//   GS_BROWSER_RUN_DIR   (default run/browser-stack)
//   GS_BROWSER_HTTP_PORT, GS_BROWSER_PG_PORT, GS_BROWSER_GMAIL_PORT
//                        (default: the integration suite's GS_TEST_*_PORT + 10, i.e. 19090,
//                        19442, 19091 when those are unset)
'use strict';

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const DEV = path.join(ROOT, 'scripts', 'gmailsync-dev');
const RUN_DIR = path.resolve(process.env.GS_BROWSER_RUN_DIR || path.join(ROOT, 'run', 'browser-stack'));
const ARTIFACTS = path.resolve(process.env.GS_BROWSER_ARTIFACTS || path.join(ROOT, 'run', 'browser-artifacts'));

function port(name, testName, fallback) {
  if (process.env[name]) { return process.env[name]; }
  return String(Number(process.env[testName] || fallback) + 10);
}

const PORTS = {
  GS_HTTP_PORT: port('GS_BROWSER_HTTP_PORT', 'GS_TEST_HTTP_PORT', 19080),
  GS_PG_PORT: port('GS_BROWSER_PG_PORT', 'GS_TEST_PG_PORT', 19432),
  GS_GMAIL_PORT: port('GS_BROWSER_GMAIL_PORT', 'GS_TEST_GMAIL_PORT', 19081),
};

// The sync is paced so that a person (and a test) can watch it: the worker allows itself
// QUOTA Gmail units per second (a message costs 5), the fake grants a little more.
const QUOTA = 400;
const EXTRA_CONF = `
# browser suite: a visible pace, frequent progress, a short retry backoff (see quick-backoff-worker)
# and a short retry budget: Gmail answering only errors fails a task in about 5 s
GmailSyncQuotaUnits ${QUOTA}
GmailSyncRetryBudget 5s
GmailSyncProgressInterval 200ms
GmailSyncBatchSize 10
GmailSyncWorker "${path.join(ROOT, 'tests', 'browser', 'lib', 'quick-backoff-worker')}"
`;

function devEnv() {
  const env = Object.assign({}, process.env, PORTS, { GS_RUN_DIR: RUN_DIR });
  delete env.GS_EXTRA_CONF;
  return env;
}

function dev(args, extra) {
  return execFileSync(DEV, args, {
    env: Object.assign(devEnv(), extra || {}), encoding: 'utf8', timeout: 300000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

class Stack {
  constructor() {
    this.env = {};
    this.logStart = 0;
  }

  up() {
    try { dev(['down', '--purge']); } catch (e) { /* nothing to stop */ }
    fs.mkdirSync(RUN_DIR, { recursive: true });
    const conf = path.join(path.dirname(RUN_DIR), path.basename(RUN_DIR) + '.conf');
    fs.writeFileSync(conf, EXTRA_CONF);
    fs.chmodSync(conf, 0o644);
    try {
      dev(['up'], { GS_EXTRA_CONF: conf });
    } catch (e) {
      throw new Error('scripts/gmailsync-dev up failed:\n' + (e.stdout || '') + (e.stderr || ''));
    }
    const out = dev(['env']);
    for (const line of out.split('\n')) {
      const m = /^(\w+)='(.*)'$/.exec(line);
      if (m) { this.env[m[1]] = m[2]; }
    }
    this.base = this.env.GS_BASE_URL;
    this.api = this.base + '/api/gmail/sync';
    this.page = this.base + '/gmailsync/';
    this.gmail = this.env.GS_GMAIL_URL;
    this.dsn = this.env.GS_PG_DSN;
    this.errorLog = this.env.GS_ERROR_LOG;
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    return this;
  }

  async configureGmail() {
    await this.control('POST', '/_control/config', { quota_units_per_sec: Math.round(QUOTA * 1.2) });
  }

  down() {
    dev(['down']);
  }

  addUser(opts) {
    const args = ['add-user', '--messages', String((opts && opts.messages) || 0)];
    if (opts && opts.noAccount) { args.push('--no-account'); }
    if (opts && opts.userId) { args.push('--user-id', opts.userId); }
    return JSON.parse(dev(args));
  }

  // A URL that signs a browser in as `user` (GmailSyncDevLogin of the dev stack): a new one per
  // call, usable once within 2 minutes (scripts/gmailsync-dev login-url, the session on stdin).
  loginUrl(user) {
    const out = execFileSync(DEV, ['login-url'], {
      env: devEnv(), encoding: 'utf8', timeout: 60000, input: user.session + '\n',
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const url = out.trim();
    if (!url.startsWith(this.api + '/dev-login?nonce=')) { throw new Error('login-url printed ' + url); }
    return url;
  }

  async control(method, p, body) {
    const resp = await fetch(this.gmail + p, {
      method, headers: { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await resp.text();
    if (resp.status >= 400) { throw new Error(`fake Gmail ${method} ${p}: ${resp.status} ${text}`); }
    return text ? JSON.parse(text) : null;
  }

  fault(spec) { return this.control('POST', '/_control/faults', spec); }
  clearFaults() { return this.control('DELETE', '/_control/faults'); }

  // One SQL query with psql; `vars` become psql variables (:'name' quotes them safely).
  query(sql, vars) {
    const args = [this.dsn, '-XAtq', '-v', 'ON_ERROR_STOP=1', '-F', '\t'];
    for (const [k, v] of Object.entries(vars || {})) { args.push('-v', `${k}=${v}`); }
    const out = execFileSync('psql', args, { input: sql, encoding: 'utf8', timeout: 30000 });
    return out.split('\n').filter((l) => l.length).map((l) => l.split('\t'));
  }

  tasks(userId) {
    return this.query(`SELECT task_id, state, error_code FROM gmailsync.sync_tasks
                        WHERE user_id = :'uid' ORDER BY created_at`, { uid: userId });
  }

  storedMessages(userId) {
    return Number(this.query(`SELECT count(*) FROM gmailsync.messages WHERE user_id = :'uid'`,
                             { uid: userId })[0][0]);
  }

  logSize() {
    try { return fs.statSync(this.errorLog).size; } catch (e) { return 0; }
  }

  // [warn]/[error] lines httpd logged since `offset`, less those matching `expected` regexes.
  logProblems(offset, expected) {
    let text = '';
    try {
      const fd = fs.openSync(this.errorLog, 'r');
      const size = fs.fstatSync(fd).size;
      const buf = Buffer.alloc(Math.max(0, size - offset));
      fs.readSync(fd, buf, 0, buf.length, offset);
      fs.closeSync(fd);
      text = buf.toString('utf8');
    } catch (e) { return []; }
    return text.split('\n').filter((l) => /^\[[^\]]*\] \[[A-Za-z0-9_]+:(emerg|alert|crit|error|warn)\]/.test(l))
      .filter((l) => !(expected || []).some((re) => re.test(l)));
  }
}

// Polls `fn` until it returns something truthy; throws naming `what` at the deadline.
async function waitFor(what, fn, timeoutMs, intervalMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) { return v; }
    if (Date.now() > deadline) { throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`); }
    await new Promise((r) => setTimeout(r, intervalMs || 50));
  }
}

module.exports = { Stack, waitFor, ROOT, RUN_DIR, ARTIFACTS, PORTS };

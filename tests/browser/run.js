// run.js -- the browser suite: the sync page in Debian's chromium (headless, playwright-core),
// against a real stack (scripts/gmailsync-dev in run/browser-stack, see lib/stack.js).
//
//   node tests/browser/run.js            (scripts/test browser runs this)
//   GS_BROWSER_ONLY=regex node tests/browser/run.js    only the tests whose name matches
//
// Every test fails on a console error, an uncaught exception, a Content-Security-Policy
// violation, or an unexpected [warn]/[error] line in the httpd error log; errors a test provokes
// on purpose are declared with session.allow(regex). Screenshots go to run/browser-artifacts/.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const { Stack, waitFor, ROOT, ARTIFACTS } = require('./lib/stack');
const { launch, Session, audit, screenshot } = require('./lib/browser');

const stack = new Stack();
let browser;
const only = process.env.GS_BROWSER_ONLY ? new RegExp(process.env.GS_BROWSER_ONLY) : null;
const T = 60000;

before(async () => {
  stack.up();
  await stack.configureGmail();
  browser = await launch();
}, { timeout: 300000 });

after(async () => {
  if (browser) { await browser.close(); }
  stack.down();
}, { timeout: 120000 });

// A test with a fresh browser context, checked for errors at the end.
function pageTest(name, opts, fn) {
  if (typeof opts === 'function') { fn = opts; opts = {}; }
  test(name, { timeout: opts.timeout || T, skip: opts.skip || Boolean(only && !only.test(name)) }, async (t) => {
    const session = new Session(browser, opts);
    const logStart = stack.logSize();
    const expectedLog = [];
    let failed = null;
    try {
      await fn(session, (re) => expectedLog.push(re), t);
    } catch (e) {
      failed = e;
    }
    let errors = [];
    try {
      errors = await session.close();
    } catch (e) {
      errors = ['closing the context: ' + e.message];
    }
    if (failed) { throw failed; }
    assert.deepEqual(errors, [], 'the page logged errors');
    const problems = await waitFor('the error log', () => stack.logProblems(logStart, expectedLog), 500, 50)
      .catch(() => []);
    assert.deepEqual(problems, [], 'unexpected [warn]/[error] lines in the httpd error log');
  });
}

// Opens the page signed in as `user`, through the dev login, and waits until it has loaded.
async function signIn(session, user, page) {
  page = page || await session.open();
  const resp = await page.goto(stack.loginUrl(user));
  assert.equal(new URL(page.url()).pathname, '/gmailsync/');
  assert.equal(resp.status(), 200);
  await loaded(page);
  return page;
}

async function loaded(page) {
  await page.waitForFunction(() => {
    const a = document.getElementById('account').textContent;
    return a && a.indexOf('…') < 0;
  });
}

const bar = (page) => page.evaluate(() => {
  const b = document.getElementById('bar');
  return { v: Number(b.getAttribute('aria-valuenow')), state: b.getAttribute('data-state'),
           task: document.getElementById('task-id').textContent };
});

async function waitState(page, states, timeout) {
  states = [].concat(states);
  await page.waitForFunction((s) => s.indexOf(document.getElementById('bar').getAttribute('data-state')) >= 0,
                             states, { timeout: timeout || 30000 });
}

const recorded = (page) => page.evaluate(() => window.__gs.values);

function checkMonotonic(values, taskId) {
  const mine = values.filter((x) => x.task === taskId && x.v !== null);
  let prev = -1;
  for (const x of mine) {
    const v = Number(x.v);
    assert.ok(v >= prev, `the bar went backwards: ${prev} -> ${v}`);
    if (v === 100) { assert.equal(x.state, 'SUCCEEDED', 'the bar showed 100 % before SUCCEEDED'); }
    prev = v;
  }
  return [...new Set(mine.map((x) => Number(x.v)))];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// ---------------------------------------------------------------------------------------------

pageTest('idle: account, no result yet, security headers, no accessibility violations', async (session) => {
  const user = stack.addUser({ messages: 20 });
  const page = await session.open();
  const resp = await page.goto(stack.loginUrl(user));
  const h = resp.headers();
  assert.match(h['content-security-policy'], /default-src 'none'/);
  assert.match(h['content-security-policy'], /script-src 'self'(;|$)/);
  assert.match(h['content-security-policy'], /style-src 'self'(;|$)/);
  assert.match(h['content-security-policy'], /frame-ancestors 'none'/);
  assert.doesNotMatch(h['content-security-policy'], /unsafe-inline|unsafe-eval/);
  assert.equal(h['x-content-type-options'], 'nosniff');
  assert.equal(h['referrer-policy'], 'same-origin');
  await loaded(page);
  assert.equal(await page.textContent('#account'), `Connected as ${user.email}`);
  assert.equal(await page.textContent('#last'), 'No sync yet.');
  assert.equal(await page.getAttribute('#sync', 'aria-disabled'), 'false');
  assert.equal(await page.isVisible('#progress-block'), false);
  // the session cookie is HttpOnly: the page's scripts cannot read it
  assert.equal(await page.evaluate(() => document.cookie), '');
  await screenshot(page, ARTIFACTS, 'idle', true);
  assert.deepEqual(await audit(page), []);
});

pageTest('seed test 1 through the page: click, RUNNING within 3 s, a live bar, 100 % only with SUCCEEDED, the whole mailbox stored', async (session) => {
  const user = stack.addUser({ messages: 500 });
  const page = await signIn(session, user);
  const clicked = Date.now();
  await page.click('#sync');
  await page.waitForFunction(() => /^[0-9a-f-]{36}$/.test(document.getElementById('task-id').textContent));
  const taskId = await page.textContent('#task-id');
  assert.match(taskId, UUID);
  await waitState(page, 'RUNNING', 3000);
  assert.ok(Date.now() - clicked <= 3000, 'RUNNING within 3 s of the click');
  await page.waitForFunction(() => Number(document.getElementById('bar').getAttribute('aria-valuenow')) >= 25);
  assert.equal(await page.textContent('#state'), 'Syncing');
  assert.equal(await page.textContent('#mode'), 'Full sync');
  assert.match(await page.textContent('#counts'), /^\d+ of 500$/);
  assert.equal(await page.textContent('#channel'), 'Live updates');
  await page.waitForFunction(() => /^About \d+ (s|min)$/.test(document.getElementById('remaining').textContent));
  // the drawn bar has caught up with the reported value (it eases towards it)
  await page.waitForFunction(() => {
    const m = /scaleX\(([\d.]+)\)/.exec(document.getElementById('bar-fill').style.transform);
    return m && Number(m[1]) * 100 >= Number(document.getElementById('bar').getAttribute('aria-valuenow')) - 1;
  });
  await screenshot(page, ARTIFACTS, 'running');
  assert.deepEqual(await audit(page), [], 'accessibility while running');
  await waitState(page, 'SUCCEEDED', 60000);
  const final = await bar(page);
  assert.equal(final.v, 100);
  assert.equal(await page.textContent('#counts'), '500 of 500');
  assert.equal(await page.textContent('#remaining'), 'None');
  const distinct = checkMonotonic(await recorded(page), taskId);
  assert.ok(distinct.length >= 5, `the bar took ${distinct.length} distinct values: ${distinct}`);
  assert.equal(stack.storedMessages(user.user_id), 500, 'the database holds the whole mailbox');
  assert.deepEqual(stack.tasks(user.user_id).map((r) => r[1]), ['SUCCEEDED']);
  await page.waitForFunction(() => /^Finished .*: 500 messages in \d+ s\.$/.test(document.getElementById('last').textContent));
  assert.match(await page.textContent('#announcer'), /Sync finished: 500 messages\./);
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 600))));
  await screenshot(page, ARTIFACTS, 'done', true);
  assert.deepEqual(await audit(page), [], 'accessibility when done');
  // coming back later: the page says how fresh the copy is (the server's clock, from /status)
  await page.reload();
  await page.waitForFunction(() => document.getElementById('freshness').textContent
    === 'Last synced less than a minute ago.');
  assert.equal(await page.isVisible('#freshness'), true);
});

pageTest('a double click and a burst of 5 clicks start one task, and one task id is shown', async (session) => {
  for (const clicks of [2, 5]) {
    const user = stack.addUser({ messages: 300 });
    const page = await signIn(session, user);
    const box = await page.locator('#sync').boundingBox();
    const x = box.x + box.width / 2, y = box.y + box.height / 2;
    if (clicks === 2) {
      await page.dblclick('#sync');
    } else {
      for (let i = 0; i < clicks; i++) { await page.mouse.click(x, y); }
    }
    await waitState(page, 'RUNNING', 5000);
    await waitState(page, 'SUCCEEDED', 60000);
    const rows = stack.tasks(user.user_id);
    assert.equal(rows.length, 1, `${clicks} clicks made ${rows.length} tasks`);
    const shown = [...new Set((await recorded(page)).map((v) => v.task).filter((t) => UUID.test(t)))];
    assert.deepEqual(shown, [rows[0][0]], `${clicks} clicks: one task id shown`);
    await page.close();
  }
});

pageTest('a storm of Gmail 5xx answers: FAILED with its code and plain words; Retry after it clears: SUCCEEDED', async (session, expectLog) => {
  expectLog(/event=task\.failed .*error=gmail_unavailable/);
  const user = stack.addUser({ messages: 120 });
  const page = await signIn(session, user);
  await stack.fault({ method: '*', status: 500, count: -1, email: user.email });
  try {
    await page.click('#sync');
    await waitState(page, 'FAILED', 30000);
  } finally {
    await stack.clearFaults();
  }
  assert.equal(await page.textContent('#state'), 'Failed');
  assert.equal(await page.textContent('#problem-title'), 'The sync failed');
  assert.equal(await page.textContent('#problem-text'), 'Gmail did not answer properly, even after several attempts.');
  assert.match(await page.textContent('#problem-advice'), /^Try again later\./);
  assert.equal(await page.textContent('#problem-code'), 'Error code: gmail_unavailable');
  assert.ok(await page.isVisible('#retry'));
  assert.ok((await bar(page)).v < 100);
  await page.waitForFunction(() => /^Failed .*code gmail_unavailable/.test(document.getElementById('last').textContent));
  assert.match(await page.textContent('#announcer'), /^Sync failed: /);
  await screenshot(page, ARTIFACTS, 'failed', true);
  assert.deepEqual(await audit(page), [], 'accessibility when failed');
  await page.click('#retry');
  await waitState(page, 'SUCCEEDED', 60000);
  assert.equal(await page.isVisible('#problem'), false);
  const rows = stack.tasks(user.user_id);
  assert.deepEqual(rows.map((r) => [r[1], r[2]]), [['FAILED', 'gmail_unavailable'], ['SUCCEEDED', '']]);
  assert.equal(await page.textContent('#task-id'), rows[1][0]);
  assert.equal(stack.storedMessages(user.user_id), 120);
});

pageTest('Gmail asks to slow down mid-sync: the page says so with the retry time instead of a frozen bar, then SUCCEEDED', async (session) => {
  const user = stack.addUser({ messages: 60 });
  const page = await signIn(session, user);
  // a whole batch refused with 429 and Retry-After: 3, after the first batch went through
  await stack.fault({ method: 'batch', status: 429, retry_after: 3, count: 1, after: 1, email: user.email });
  await page.click('#sync');
  await page.waitForSelector('#waiting:not([hidden])', { timeout: 20000 });
  const text = await page.textContent('#waiting');
  const m = /^Gmail asked us to slow down; retrying at (\d\d):(\d\d):(\d\d) \(attempt 1\)\.$/.exec(text);
  assert.ok(m, `the waiting message: ${text}`);
  // the time shown is about 3 s ahead, in the reader's clock
  const at = new Date();
  at.setHours(Number(m[1]), Number(m[2]), Number(m[3]));
  const ahead = (at.getTime() - Date.now()) / 1000;
  assert.ok(ahead > -1.5 && ahead < 4.5, `retrying at ${m[0]}: ${ahead} s ahead`);
  assert.equal(await page.textContent('#state'), 'Syncing');
  assert.ok((await bar(page)).v < 100);
  assert.match(await page.textContent('#announcer'), /^Gmail asked us to slow down; /);
  assert.deepEqual(await audit(page), [], 'accessibility while waiting');
  await page.waitForSelector('#waiting', { state: 'hidden', timeout: 15000 });
  await waitState(page, 'SUCCEEDED', 60000);
  assert.equal(await page.isVisible('#waiting'), false);
  assert.equal(await page.isVisible('#problem'), false);
  assert.equal(stack.storedMessages(user.user_id), 60);
});

pageTest('zh-CN: the waiting message in Chinese', { locale: 'zh-CN' }, async (session) => {
  const user = stack.addUser({ messages: 40 });
  const page = await signIn(session, user);
  await stack.fault({ method: 'batch', status: 503, retry_after: 3, count: 1, after: 1, email: user.email });
  await page.click('#sync');
  await page.waitForSelector('#waiting:not([hidden])', { timeout: 20000 });
  assert.match(await page.textContent('#waiting'), /^Gmail 暂时没有响应；将于 \d\d:\d\d:\d\d 重试（第 1 次）。$/);
  await waitState(page, 'SUCCEEDED', 60000);
  assert.equal(await page.isVisible('#waiting'), false);
});

pageTest('a reload mid-sync and a second tab attach to the running task and follow it', async (session) => {
  const user = stack.addUser({ messages: 700 });
  const page = await signIn(session, user);
  await page.click('#sync');
  await waitState(page, 'RUNNING', 5000);
  const taskId = await page.textContent('#task-id');
  await page.waitForFunction(() => Number(document.getElementById('bar').getAttribute('aria-valuenow')) >= 10);
  await page.reload();
  await page.waitForFunction((id) => document.getElementById('task-id').textContent === id, taskId);
  const afterReload = (await bar(page)).v;
  assert.ok(afterReload >= 10, `after the reload the bar shows ${afterReload}`);
  const second = await session.newPage();
  await second.goto(stack.page);
  await second.waitForFunction((id) => document.getElementById('task-id').textContent === id, taskId);
  const secondStart = (await bar(second)).v;
  for (const p of [page, second]) {
    await p.waitForFunction((v) => Number(document.getElementById('bar').getAttribute('aria-valuenow')) > v + 5,
                            Math.max(afterReload, secondStart));
  }
  await waitState(page, 'SUCCEEDED', 60000);
  await waitState(second, 'SUCCEEDED', 60000);
  for (const p of [page, second]) {
    checkMonotonic(await recorded(p), taskId);
    assert.equal(await p.textContent('#counts'), '700 of 700');
  }
  assert.equal(stack.tasks(user.user_id).length, 1, 'one task');
});

pageTest('Server-Sent Events blocked: the page falls back to polling and still reaches 100 %', async (session) => {
  session.allow(/Failed to load resource: net::ERR_FAILED/);
  const user = stack.addUser({ messages: 400 });
  const page = await session.open();
  const streams = [], polls = [];
  await page.route('**/api/gmail/sync/progress/**', (route) => {
    const accept = route.request().headers().accept || '';
    if (accept.includes('text/event-stream')) {
      streams.push(route.request().url());
      return route.abort('failed');
    }
    polls.push(route.request().url());
    return route.continue();
  });
  await signIn(session, user, page);
  await page.click('#sync');
  await waitState(page, 'RUNNING', 5000);
  await page.waitForFunction(() => document.getElementById('channel').textContent.startsWith('Updates every second'));
  const taskId = await page.textContent('#task-id');
  await waitState(page, 'SUCCEEDED', 60000);
  assert.equal((await bar(page)).v, 100);
  assert.ok(streams.length >= 1, 'the page tried the stream');
  assert.ok(polls.length >= 3, `the page polled (${polls.length} polls)`);
  const distinct = checkMonotonic(await recorded(page), taskId);
  assert.ok(distinct.length >= 3, `polling moved the bar: ${distinct}`);
  assert.equal(stack.storedMessages(user.user_id), 400);
});

pageTest('a stream refused by the caps (429 too-many-streams, Retry-After): the page polls without the event-stream Accept', async (session) => {
  session.allow(/Failed to load resource: the server responded with a status of 429/);
  const user = stack.addUser({ messages: 300 });
  const page = await session.open();
  const polls = [];
  await page.route('**/api/gmail/sync/progress/**', (route) => {
    const accept = route.request().headers().accept || '';
    if (accept.includes('text/event-stream')) {
      return route.fulfill({ status: 429, contentType: 'application/problem+json', headers: { 'Retry-After': '5' },
                             body: JSON.stringify({ type: 'urn:gmailsync:problem:too-many-streams', status: 429 }) });
    }
    polls.push(accept);
    return route.continue();
  });
  await signIn(session, user, page);
  await page.click('#sync');
  await waitState(page, 'SUCCEEDED', 60000);
  assert.ok(polls.length >= 2 && polls.every((a) => !a.includes('text/event-stream')));
});

pageTest('a proxy that buffers the stream (no first event within 5 s): the page polls instead', async (session) => {
  const user = stack.addUser({ messages: 700 });
  const page = await session.open();
  const held = [];
  await page.route('**/api/gmail/sync/progress/**', (route) => {
    const accept = route.request().headers().accept || '';
    if (accept.includes('text/event-stream')) {
      held.push(route);   // never answered, like a proxy that waits for the whole body
      return undefined;
    }
    return route.continue();
  });
  await signIn(session, user, page);
  await page.click('#sync');
  await page.waitForFunction(() => document.getElementById('channel').textContent.startsWith('Updates every second'),
                             null, { timeout: 10000 });
  assert.equal(held.length, 1, 'one stream was tried');
  await waitState(page, 'SUCCEEDED', 60000);
  assert.equal((await bar(page)).v, 100);
  await page.unrouteAll({ behavior: 'ignoreErrors' });
});

pageTest('keyboard only: Tab reaches Sync, Enter starts the sync, the focus order follows the page', async (session) => {
  const user = stack.addUser({ messages: 200 });
  const page = await signIn(session, user);
  const order = [];
  for (let i = 0; i < 5; i++) {
    await page.keyboard.press('Tab');
    order.push(await page.evaluate(() => document.activeElement.id));
  }
  // the Account card (Disconnect, and its box) comes before Sync
  assert.deepEqual(order, ['lang', 'disconnect', 'delete-messages', 'sync', 'full']);
  await page.keyboard.press('Shift+Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'sync');
  await page.keyboard.press('Enter');
  await waitState(page, 'RUNNING', 5000);
  // the focus stays on the (now unavailable) button while it runs
  assert.equal(await page.evaluate(() => document.activeElement.id), 'sync');
  assert.equal(await page.getAttribute('#sync', 'aria-disabled'), 'true');
  await page.keyboard.press('Enter');     // ignored while the sync runs
  await waitState(page, 'SUCCEEDED', 60000);
  assert.equal(stack.tasks(user.user_id).length, 1);
  assert.equal(await page.getAttribute('#sync', 'aria-disabled'), 'false');
  const visible = await page.evaluate(() => {
    const f = document.activeElement;
    return f.id === 'sync' && getComputedStyle(f).outlineStyle !== 'none';
  });
  assert.ok(visible, 'the focused button shows a focus ring');
});

pageTest('zh-CN browser locale: Chinese strings; the switcher changes to English and back', { locale: 'zh-CN' }, async (session) => {
  const user = stack.addUser({ messages: 100 });
  const page = await signIn(session, user);
  assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
  assert.equal(await page.textContent('h1'), 'Gmail 同步');
  assert.equal(await page.textContent('#sync'), '同步');
  assert.equal(await page.textContent('#full'), '完整重新同步');
  assert.equal(await page.textContent('#account'), `已连接：${user.email}`);
  assert.equal(await page.textContent('#last'), '尚未同步过。');
  await page.click('#sync');
  await waitState(page, 'SUCCEEDED', 60000);
  assert.equal(await page.textContent('#state'), '已完成');
  // the last result comes from /status, read again once the task ended
  await page.waitForFunction(() => /^完成于 .*：100 封邮件，用时 \d+ 秒。$/.test(document.getElementById('last').textContent));
  assert.deepEqual(await audit(page), []);
  await page.selectOption('#lang', 'en');
  assert.equal(await page.getAttribute('html', 'lang'), 'en');
  assert.equal(await page.textContent('#sync'), 'Sync');
  assert.equal(await page.textContent('#state'), 'Done');
  await page.reload();
  await loaded(page);
  assert.equal(await page.textContent('#sync'), 'Sync', 'the choice is remembered');
});

pageTest('en browser locale: English strings; both string tables have the same keys', { locale: 'en-GB' }, async (session) => {
  const user = stack.addUser({ messages: 10 });
  const page = await signIn(session, user);
  assert.equal(await page.getAttribute('html', 'lang'), 'en');
  assert.equal(await page.textContent('h1'), 'Gmail sync');
  assert.equal(await page.textContent('#sync'), 'Sync');
  const keys = await page.evaluate(() => [Object.keys(window.GMAILSYNC_STRINGS.en).sort(),
                                           Object.keys(window.GMAILSYNC_STRINGS['zh-CN']).sort()]);
  assert.deepEqual(keys[1], keys[0]);
});

pageTest('on load, the last result: a success (when, how many, how long) and a failure (its error)', async (session, expectLog) => {
  expectLog(/event=task\.failed .*error=gmail_unavailable/);
  const user = stack.addUser({ messages: 50 });
  let page = await signIn(session, user);
  await page.click('#sync');
  await waitState(page, 'SUCCEEDED', 60000);
  await page.close();
  page = await session.newPage();
  await page.goto(stack.page);
  await loaded(page);
  await page.waitForFunction(() => /^Finished .*: 50 messages in \d+ s\.$/.test(document.getElementById('last').textContent));
  assert.equal(await page.isVisible('#progress-block'), false, 'a finished task is a result, not a progress bar');
  // then a failed one: the last result names its error, and the last success stays visible
  await stack.fault({ method: '*', status: 500, count: -1, email: user.email });
  try {
    await page.click('#sync');
    await waitState(page, 'FAILED', 30000);
  } finally {
    await stack.clearFaults();
  }
  await page.reload();
  await loaded(page);
  await page.waitForFunction(() => /^Failed .*: Gmail did not answer properly, even after several attempts\. \(code gmail_unavailable\)\.$/
    .test(document.getElementById('last').textContent));
  assert.match(await page.textContent('#last-success'), /^Last successful sync: .*, 50 messages in \d+ s\.$/);
});

pageTest('401: the page asks to sign in', async (session) => {
  session.allow(/status of 401/);
  const page = await session.open();
  await page.goto(stack.page);
  await page.waitForSelector('#problem:not([hidden])');
  assert.equal(await page.textContent('#problem-text'), 'You are not signed in, or your session has expired.');
  assert.equal(await page.textContent('#problem-advice'), 'Please sign in, then reload this page.');
  assert.equal(await page.getAttribute('#sync', 'aria-disabled'), 'true');
  assert.deepEqual(await audit(page), []);
});

pageTest('no linked account: the page says so and points to connecting one (on load, and as a 409 from Sync)', async (session) => {
  session.allow(/status of 409/);
  const none = stack.addUser({ noAccount: true });
  let page = await signIn(session, none);
  assert.equal(await page.textContent('#account'), 'No Gmail account linked');
  assert.ok(await page.isVisible('#connect-slot'));
  assert.equal(await page.getAttribute('#sync', 'aria-disabled'), 'true');
  await page.close();
  // the account goes away after the page loaded: Sync answers 409
  const user = stack.addUser({ messages: 5 });
  page = await signIn(session, user);
  stack.query(`DELETE FROM gmailsync.accounts WHERE user_id = :'uid'`, { uid: user.user_id });
  await page.click('#sync');
  await page.waitForSelector('#problem:not([hidden])');
  assert.equal(await page.textContent('#problem-text'), 'No Gmail account is linked to your account, so there is nothing to sync.');
  assert.equal(await page.textContent('#problem-advice'), 'Connect a Gmail account first (see Account above).');
  assert.equal(await page.textContent('#account'), 'No Gmail account linked');
  assert.ok(await page.isVisible('#connect-slot'));
});

// ------------------------------------------------------------------ connect (issue 13)

// A fresh user with no account and a mailbox of their own in the fake, preselected on its
// consent page.
async function freshMailbox(messages) {
  const user = stack.addUser({ noAccount: true });
  user.mailbox = `box-${user.user_id}@example.test`;
  await stack.control('POST', '/_control/mailboxes', { email: user.mailbox, messages, seed: 11 });
  await stack.control('POST', '/_control/consent', { mode: 'page', email: user.mailbox });
  return user;
}

// From the page: Connect, then the fake's consent page, then `decision`; back on the page.
async function connectThroughConsent(session, user, decision) {
  const page = await signIn(session, user);
  assert.equal(await page.textContent('#account'), 'No Gmail account linked');
  assert.equal(await page.getAttribute('#connect', 'href'), '/api/gmail/sync/oauth/start');
  await Promise.all([page.waitForURL(/\/o\/oauth2\/v2\/auth/), page.click('#connect')]);
  assert.match(await page.textContent('main'), /read your email messages/);
  assert.equal(await page.inputValue('#mailbox'), user.mailbox);
  await Promise.all([page.waitForURL(/\/gmailsync\//), page.click(`button[value="${decision}"]`)]);
  await loaded(page);
  await page.waitForSelector('#oauth-result:not([hidden])');
  // the result is said once: the address no longer carries it
  assert.equal(new URL(page.url()).search, '');
  return page;
}

// The worker opens sealed tokens only with the tokens-at-rest change.
const workerOpensSealedTokens = fs.readFileSync(path.join(ROOT, 'mod_gmailsync', 'core', 'gs_worker_conf.c'),
                                                'utf8').includes('token_key');

pageTest('connect: a fresh user allows on the consent page and is connected as the address', async (session) => {
  const user = await freshMailbox(15);
  const page = await connectThroughConsent(session, user, 'allow');
  assert.equal(await page.textContent('#oauth-result'), 'Gmail account connected. Press Sync to copy your messages.');
  assert.equal(await page.textContent('#account'), `Connected as ${user.mailbox}`);
  assert.ok(await page.isVisible('#disconnect'));
  assert.ok(!(await page.isVisible('#connect-slot')));
  assert.equal(await page.getAttribute('#sync', 'aria-disabled'), 'false');
  assert.deepEqual(await audit(page), []);
  const [row] = stack.query(`SELECT email, left(refresh_token, 4) FROM gmailsync.accounts WHERE user_id = :'uid'`,
                            { uid: user.user_id });
  assert.deepEqual(row, [user.mailbox, 'gs1:']);
  await screenshot(page, ARTIFACTS, 'connected');
});

pageTest('connect, then sync: the page shows the whole mailbox synced', { skip: !workerOpensSealedTokens }, async (session) => {
  const user = await freshMailbox(40);
  const page = await connectThroughConsent(session, user, 'allow');
  await page.click('#sync');
  await waitState(page, 'SUCCEEDED', 30000);
  assert.equal(await page.textContent('#counts'), '40 of 40');
  assert.equal(stack.storedMessages(user.user_id), 40);
  assert.ok(await page.isHidden('#oauth-result'));
  // what is stored, in numbers (issue 23): the messages table's own counts
  const [[messages, unread, threads, labels]] = stack.query(
    `SELECT count(*), count(*) FILTER (WHERE label_ids @> ARRAY['UNREAD']), count(DISTINCT thread_id),
            (SELECT count(*) FROM gmailsync.labels WHERE user_id = :'uid')
       FROM gmailsync.messages WHERE user_id = :'uid'`, { uid: user.user_id });
  assert.ok(Number(labels) > 0 && Number(threads) > 0);
  await page.waitForSelector('#mailbox:not([hidden])', { timeout: 10000 });
  assert.equal(await page.textContent('#mailbox'),
               `Stored: messages ${messages} · unread ${unread} · conversations ${threads} · labels ${labels}.`);
});

pageTest('connect: denying consent says so in plain words and connects nothing', async (session) => {
  const user = await freshMailbox(5);
  const page = await connectThroughConsent(session, user, 'deny');
  assert.equal(await page.textContent('#oauth-result'),
               'You did not allow access to your Gmail account, so nothing was connected. To sync, connect again and choose Allow.');
  assert.equal(await page.textContent('#account'), 'No Gmail account linked');
  assert.ok(await page.isVisible('#connect'));
  assert.equal(await page.getAttribute('#sync', 'aria-disabled'), 'true');
  assert.deepEqual(stack.query(`SELECT 1 FROM gmailsync.accounts WHERE user_id = :'uid'`, { uid: user.user_id }), []);
  assert.deepEqual(await audit(page), []);
});

pageTest('connect: an expired or reused link, and a failed exchange, each have their words', async (session) => {
  const user = stack.addUser({ noAccount: true });
  const page = await signIn(session, user);
  await page.goto(stack.page + '?oauth=invalid_state');
  await loaded(page);
  assert.match(await page.textContent('#oauth-result'), /^This connection link is no longer valid: it expired, was already used/);
  await page.goto(stack.page + '?oauth=exchange_failed');
  await loaded(page);
  assert.match(await page.textContent('#oauth-result'), /the exchange with Google failed/);
  // a browser replaying the callback is sent to the page with the words, not to a JSON error
  await page.goto(stack.api + '/oauth/callback?state=' + 'A'.repeat(43) + '&code=x');
  await loaded(page);
  assert.match(await page.textContent('#oauth-result'), /^This connection link is no longer valid/);
});

pageTest('disconnect: the page disconnects, Google is told, and Sync is unavailable', async (session) => {
  const user = stack.addUser({ messages: 8 });
  const page = await signIn(session, user);
  await page.click('#sync');
  await waitState(page, 'SUCCEEDED', 30000);
  const before = (await stack.control('GET', '/_control/revocations')).revocations.length;
  await page.check('#delete-messages');
  await page.click('#disconnect');
  await page.waitForFunction(() => document.getElementById('account').textContent === 'No Gmail account linked');
  assert.equal(await page.textContent('#oauth-result'), 'Gmail account disconnected and 8 copied messages deleted.');
  assert.ok(await page.isVisible('#connect'));
  assert.ok(await page.isHidden('#disconnect-slot'));
  assert.equal(await page.getAttribute('#sync', 'aria-disabled'), 'true');
  const revs = (await stack.control('GET', '/_control/revocations')).revocations;
  assert.equal(revs.length, before + 1);
  assert.equal(revs[revs.length - 1].email, user.email);
  assert.equal(stack.storedMessages(user.user_id), 0);
  assert.deepEqual(await audit(page), []);
});

pageTest('503 with Retry-After: "sync is paused, trying again in N s", then it retries by itself', async (session) => {
  session.allow(/status of 503/);
  const user = stack.addUser({ messages: 30 });
  const page = await session.open();
  let refused = 0;
  await page.route('**/api/gmail/sync/smart', (route) => {
    if (refused++ === 0) {
      return route.fulfill({ status: 503, contentType: 'application/problem+json', headers: { 'Retry-After': '2' },
                             body: JSON.stringify({ type: 'urn:gmailsync:problem:disabled', status: 503 }) });
    }
    return route.continue();
  });
  await signIn(session, user, page);
  await page.click('#sync');
  await page.waitForSelector('#problem:not([hidden])');
  assert.equal(await page.textContent('#problem-text'), 'Sync is paused on the server.');
  assert.match(await page.textContent('#problem-advice'), /^Trying again in [12] s\.$/);
  await waitState(page, 'SUCCEEDED', 30000);
  assert.equal(refused, 2);
  assert.equal(stack.tasks(user.user_id).length, 1);
});

// A loopback server that counts the requests the mail's HTML could make (an image, what a
// script would fetch): none may arrive until the user asks for remote images.
async function hitCounter() {
  const http = require('node:http');
  const hits = {};
  const server = http.createServer((req, res) => {
    hits[req.url] = (hits[req.url] || 0) + 1;
    res.writeHead(200, { 'Content-Type': 'image/gif', 'Cache-Control': 'no-store' });
    res.end(Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64'));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { hits, base: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

async function importMessage(user, raw, labelIds) {
  const resp = await fetch(`${stack.gmail}/_control/mailboxes/${encodeURIComponent(user.email)}/import?labelIds=${labelIds || 'INBOX'}`,
                           { method: 'POST', headers: { 'Content-Type': 'message/rfc822' }, body: raw });
  const text = await resp.text();
  if (resp.status !== 201) { throw new Error(`import: ${resp.status} ${text}`); }
  return JSON.parse(text).id;
}

pageTest('message view: the HTML body runs no script and loads no remote image until asked, an attachment downloads, another user\'s id is not found', async (session) => {
  const counter = await hitCounter();
  // the messages the sandboxed frame logs on purpose: the blocked script and the blocked image
  session.allow(/Blocked script execution in 'about:(srcdoc|blank)'/);
  // the other user's request for the id: 404
  session.allow(/status of 404 \(Not Found\)/);
  session.allow(/violates the following Content Security Policy directive: "img-src data:"/);
  try {
    const attachment = require('node:crypto').createHash('sha512').update('gmailsync browser').digest();
    const b64 = (buf) => buf.toString('base64').replace(/(.{76})/g, '$1\r\n');
    const gif = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64');
    const html = `<p id="marker">Hello from the HTML body</p><img id="inline" alt="inline pixel" src="cid:pixel@view.test">`
      + `<img id="remote" alt="remote pixel" src="${counter.base}/pixel.gif">`
      + `<script>document.getElementById('marker').textContent = 'script ran';`
      + `new Image().src = '${counter.base}/script-ran'; parent.document.title = 'pwned';</script>`
      + `<img alt="handler" src="data:," onerror="new Image().src='${counter.base}/handler-ran'">`;
    const raw = Buffer.from([
      'From: =?UTF-8?B?5byg5LiJ?= <zhang@example.com>', 'To: you@example.test',
      'Subject: =?UTF-8?B?5Lya6K6u6K6w5b2VIC0gbWVldGluZyBub3Rlcw==?=',
      'Date: Tue, 05 Mar 2024 10:00:00 +0100', 'Message-ID: <browser-view@example.com>',
      'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary=outer', '',
      '--outer', 'Content-Type: multipart/alternative; boundary=alt', '',
      '--alt', 'Content-Type: text/plain; charset=utf-8', '', 'Hello from the text body.', '',
      '--alt', 'Content-Type: text/html; charset=utf-8', 'Content-Transfer-Encoding: base64', '',
      b64(Buffer.from(html)), '--alt--', '',
      '--outer', 'Content-Type: application/octet-stream',
      "Content-Disposition: attachment; filename*=UTF-8''%E6%8A%A5%E5%91%8A%20%C3%A9t%C3%A9.bin",
      'Content-Transfer-Encoding: base64', '', b64(attachment),
      '--outer', 'Content-Type: image/gif', 'Content-ID: <pixel@view.test>',
      'Content-Disposition: inline; filename=pixel.gif', 'Content-Transfer-Encoding: base64', '',
      b64(gif), '--outer--', ''].join('\r\n'));
    const alice = stack.addUser({ messages: 2 });
    const bob = stack.addUser({ messages: 1 });
    const id = await importMessage(alice, raw);
    const page = await signIn(session, alice);
    await page.click('#sync');
    await waitState(page, 'SUCCEEDED', 30000);

    await page.goto(stack.page + '#message/' + id);
    await page.waitForFunction(() => document.getElementById('message-view').getAttribute('data-state') === 'loaded');
    assert.equal(await page.isVisible('#sync'), false, 'the sync card is hidden while a message is open');
    assert.equal(await page.textContent('#message-subject'), '会议记录 - meeting notes');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'message-subject');
    assert.match(await page.textContent('#message-envelope'), /张三 <zhang@example\.com>/);
    assert.equal(await page.textContent('#message-text'), 'Hello from the text body.\n');
    // the HTML is only in the frame: sandboxed without scripts, in srcdoc with its own policy
    assert.equal(await page.evaluate(() => document.getElementById('marker')), null);
    const frame = page.frameLocator('#message-html');
    const sandbox = await page.getAttribute('#message-html', 'sandbox');
    assert.doesNotMatch(sandbox, /allow-scripts|allow-same-origin/);
    assert.match(await page.getAttribute('#message-html', 'srcdoc'), /img-src data:">/);
    await frame.locator('#marker').waitFor();
    assert.equal(await frame.locator('#marker').textContent(), 'Hello from the HTML body');
    assert.notEqual(await page.title(), 'pwned');
    const remoteLoaded = () => frame.locator('#remote').evaluate((img) => img.complete && img.naturalWidth > 0);
    assert.equal(await remoteLoaded(), false);
    // the inline image (cid:) is there without asking: from the stored attachment
    await waitFor('the inline image', () => frame.locator('#inline').evaluate((img) => img.complete
      && img.naturalWidth === 1 && img.src.startsWith('data:image/gif;base64,')), 10000);
    assert.deepEqual(counter.hits, {}, 'nothing reached the remote server before asking');
    assert.match(await page.textContent('#message-images-note'), /Remote images are not shown/);
    assert.deepEqual(await audit(page), [], 'accessibility of the message view');
    await screenshot(page, ARTIFACTS, 'message', true);

    // the keyboard asks for the remote images: the frame is drawn again with them
    await page.focus('#message-images');
    await page.keyboard.press('Enter');
    await waitFor('the remote image', () => counter.hits['/pixel.gif'] >= 1, 10000);
    await frame.locator('#remote').waitFor();
    await page.waitForFunction(() => document.getElementById('message-images').hidden);
    assert.match(await page.textContent('#message-images-note'), /Remote images are shown/);
    assert.equal(await frame.locator('#marker').textContent(), 'Hello from the HTML body');
    assert.equal(counter.hits['/script-ran'], undefined, 'the script never ran');
    assert.equal(counter.hits['/handler-ran'], undefined, 'the event handler never ran');

    // the attachment, from the keyboard: the bytes of the part, under its name
    const link = page.locator('[data-testid="attachment-0"]');
    assert.equal(await link.textContent(), '报告 été.bin');
    await link.focus();
    const [download] = await Promise.all([page.waitForEvent('download'), page.keyboard.press('Enter')]);
    assert.equal(download.suggestedFilename(), '报告 été.bin');
    assert.deepEqual(fs.readFileSync(await download.path()), attachment);

    // back to the sync page
    await page.click('#message-back');
    await page.waitForFunction(() => document.getElementById('message-view').hidden);
    assert.equal(await page.isVisible('#sync'), true);

    // another user's message id: "not found", in English and in Chinese
    const other = await session.newPage();
    await other.goto(stack.loginUrl(bob));
    await loaded(other);
    await other.goto(stack.page + '#message/' + id);
    await other.waitForFunction(() => document.getElementById('message-view').getAttribute('data-state') === 'failed');
    assert.equal(await other.textContent('#message-subject'), 'Message not found');
    assert.equal(await other.isVisible('#message-html'), false);
    await other.selectOption('#lang', 'zh-CN');
    assert.equal(await other.textContent('#message-subject'), '找不到此邮件');
    assert.deepEqual(await audit(other), [], 'accessibility of the not-found view');
  } finally {
    counter.close();
  }
});

pageTest('the dark theme follows prefers-color-scheme and passes the audit', { colorScheme: 'dark' }, async (session) => {
  const user = stack.addUser({ messages: 10 });
  const page = await signIn(session, user);
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, 'rgb(20, 23, 27)');
  await page.click('#sync');
  await waitState(page, 'SUCCEEDED', 30000);
  assert.deepEqual(await audit(page), []);
  await screenshot(page, ARTIFACTS, 'done-dark');
});

// the mailbox view (mailbox.js)
require('./mailbox').register({ pageTest, stack, signIn, waitState, importMessage, audit, screenshot,
                                ARTIFACTS, ROOT, only });

test('the README screenshot of the page mid-sync exists', { skip: Boolean(only && !only.test('README')) }, () => {
  const f = path.join(ROOT, 'docs', 'sync-page-running.png');
  assert.ok(fs.existsSync(f) && fs.statSync(f).size < 300000, f);
});

// mailbox.js -- the browser suite's tests of the mailbox view (mod_gmailsync/www/mailbox.js):
// the synced mail newest first, "More", a word and a Chinese search (UTF-8 and GB18030 mail)
// with the matched words marked, the label filter, a query the language refuses, a row opened
// and Back to it, the keyboard alone, axe in English and Chinese, a phone's width. run.js
// registers them (same stack, same browser, same checks on errors) through `register(h)`.
'use strict';

const assert = require('node:assert/strict');
const path = require('node:path');
const fs = require('node:fs');
const { test } = require('node:test');
const { spawn } = require('node:child_process');
const { waitFor } = require('./lib/stack');

// The GB18030 bytes of the words below (node encodes only UTF-8); the test checks that they
// decode to those words before it uses them.
const GB = {
  subject: ['vL62yNSky+OxqLjm', '季度预算报告'],
  name: ['uqvDt8O3', '韩梅梅'],
  body: ['x+uy6b+0uL28/tbQtcTUpMvjse2how0K', '请查看附件中的预算表。\r\n'],
};

function register(h) {
  const { pageTest, stack, signIn, waitState, importMessage, audit, screenshot, ARTIFACTS, ROOT } = h;

  const b64 = (buf) => buf.toString('base64').replace(/(.{76})/g, '$1\r\n');
  const utf8Word = (s) => `=?UTF-8?B?${Buffer.from(s).toString('base64')}?=`;

  function plain(from, subject, date, body, id) {
    return Buffer.from([
      `From: ${from}`, 'To: you@example.test', `Subject: ${subject}`, `Date: ${date}`,
      `Message-ID: <${id}@mailbox.test>`, 'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: base64', '',
      b64(Buffer.from(body)), ''].join('\r\n'));
  }

  // The GB18030 message, with an attachment (the row's marker).
  function gb18030() {
    const dec = new TextDecoder('gb18030');
    for (const [bytes, text] of Object.values(GB)) {
      assert.equal(dec.decode(Buffer.from(bytes, 'base64')), text, 'the GB18030 constants');
    }
    return Buffer.from([
      `From: =?GB18030?B?${GB.name[0]}?= <hanmeimei@example.cn>`, 'To: you@example.test',
      `Subject: =?GB18030?B?${GB.subject[0]}?=`, 'Date: Sun, 03 Mar 2024 09:00:00 +0800',
      'Message-ID: <gb18030@mailbox.test>', 'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary=b', '',
      '--b', 'Content-Type: text/plain; charset=gb18030', 'Content-Transfer-Encoding: base64', '',
      GB.body[0], '',
      '--b', 'Content-Type: text/csv', 'Content-Disposition: attachment; filename=budget.csv', '',
      'item,amount', 'rent,100', '--b--', ''].join('\r\n'));
  }

  // Six messages, oldest first; newest first they are E D C B A F.
  async function corpus(user, falcon) {
    const ids = {};
    ids.F = await importMessage(user, plain('Mallory <m@example.org>',
      '<b>bold</b> & <img src=x onerror="document.title=1">', 'Thu, 01 Feb 2024 10:00:00 +0000',
      'Markup in a subject is text.', 'f'), 'SENT');
    ids.A = await importMessage(user, plain('Alice Smith <alice@example.com>', 'Quarterly budget review',
      'Fri, 01 Mar 2024 10:00:00 +0000', 'Please read the budget before Friday.', 'a'),
      `INBOX,${falcon}`);
    ids.B = await importMessage(user, plain(`${utf8Word('李雷')} <lilei@example.cn>`, utf8Word('项目会议纪要'),
      'Sat, 02 Mar 2024 10:00:00 +0800', '明天下午三点的项目会议讨论新产品。', 'b'));
    ids.C = await importMessage(user, gb18030());
    ids.D = await importMessage(user, plain('Digest <news@example.net>', 'Weekly digest',
      'Mon, 04 Mar 2024 10:00:00 +0000', 'Nothing about money here.', 'd'));
    ids.E = await importMessage(user, plain('Travel desk <travel@example.com>', 'Flight to Beijing',
      'Tue, 05 Mar 2024 10:00:00 +0000', 'Your booking to 北京 is confirmed.', 'e'), `INBOX,${falcon}`);
    return ids;
  }

  const rows = (page) => page.$$eval('[data-testid="mail-row"]', (as) => as.map((a) => ({
    id: a.getAttribute('data-id'),
    subject: a.querySelector('.mail-subject').firstChild.textContent,
    from: a.querySelector('.mail-from').textContent,
    date: (a.querySelector('time') || {}).dateTime || null,
    marks: [...a.querySelectorAll('mark')].map((m) => m.textContent),
    attachment: !!a.querySelector('[data-testid="mail-attachment"]'),
    labels: [...a.querySelectorAll('.mail-label-chip')].map((c) => c.textContent),
  })));

  // Waits for the list to settle (no request in flight) and returns the rows' ids.
  async function settled(page) {
    await page.waitForFunction(() => document.getElementById('mail-card').getAttribute('data-state') !== 'loading');
    return (await rows(page)).map((r) => r.id);
  }

  async function searchFor(page, q) {
    await page.fill('#mail-q', q);
    await page.press('#mail-q', 'Enter');
    await page.waitForFunction((want) => {
      const card = document.getElementById('mail-card');
      return card.getAttribute('data-state') !== 'loading' && document.getElementById('mail-q').value === want;
    }, q);
    return rows(page);
  }

  // Until GET /messages is there (issue 24's search, built beside this page), these tests skip;
  // only a 404 from it skips them, any other answer runs them.
  async function searchMissing(session, page, t) {
    const status = await page.evaluate(() => fetch(window.GmailSyncPage.api + '/messages?limit=1',
                                                   { credentials: 'same-origin' }).then((r) => r.status));
    if (status !== 404) { return false; }
    // the page's own requests for the list and the labels got the same 404
    session.errors = session.errors.filter((e) => !/status of 404 \(Not Found\) \(\S*\/(messages\?|labels)/.test(e));
    t.skip('GET /messages answers 404: the search endpoint is not in this build');
    return true;
  }

  // A psql session that holds ACCESS EXCLUSIVE on the search index until release().
  async function holdIndexLock() {
    const psql = spawn('psql', [stack.dsn, '-XAtq', '-v', 'ON_ERROR_STOP=1'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    psql.stdout.on('data', (d) => { out += d; });
    psql.stderr.on('data', (d) => { out += d; });
    const exited = new Promise((resolve) => psql.on('exit', resolve));
    psql.stdin.write("BEGIN;\nLOCK TABLE gmailsync.message_search IN ACCESS EXCLUSIVE MODE;\nSELECT 'locked';\n");
    await waitFor('the lock on the index', () => out.includes('locked') || psql.exitCode !== null, 10000);
    assert.ok(out.includes('locked'), `psql: ${out}`);
    return {
      release: async () => {
        psql.stdin.end('ROLLBACK;\n');
        await exited;
      },
    };
  }

  const noOverflow = (page) => page.evaluate(() => document.documentElement.scrollWidth
    <= document.documentElement.clientWidth);

  pageTest('mailbox: newest first, a word and a Chinese search (UTF-8, GB18030) with marks, a label, a refused query (400) and one past its time box (422), Back to the row, axe in en and zh-CN, a phone\'s width', { timeout: 120000 }, async (session, expectLog, t) => {
    session.allow(/status of 400 \(Bad Request\)/);
    session.allow(/status of 422 \(Unprocessable Entity\)/);
    const user = stack.addUser({ messages: 0 });
    const falcon = (await stack.control('POST', `/_control/mailboxes/${encodeURIComponent(user.email)}/label-create`,
                                        { name: '出差 Trip' })).id;
    const ids = await corpus(user, falcon);
    const page = await signIn(session, user);
    if (await searchMissing(session, page, t)) { return; }
    await page.waitForFunction(() => /No synced messages yet/.test(document.getElementById('mail-count').textContent));
    await page.click('#sync');
    await waitState(page, 'SUCCEEDED', 30000);
    // the list is loaded again when the sync ends: newest first
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="mail-row"]').length === 6);
    let list = await rows(page);
    assert.deepEqual(list.map((r) => r.id), [ids.E, ids.D, ids.C, ids.B, ids.A, ids.F]);
    const dates = list.map((r) => Date.parse(r.date));
    assert.deepEqual([...dates].sort((a, b) => b - a), dates, 'dates newest first');
    assert.equal(await page.textContent('#mail-count'), 'The newest messages: 6.');
    const c = list[2];
    assert.equal(c.subject, '季度预算报告');
    assert.equal(c.from, '韩梅梅');
    assert.equal(c.attachment, true);
    assert.equal(list[0].attachment, false);
    assert.deepEqual(list[0].labels, ['Inbox', '出差 Trip']);
    // markup in a subject is text, never markup
    assert.equal(list[5].subject, '<b>bold</b> & <img src=x onerror="document.title=1">');
    assert.equal(await page.$$eval('#mail-list img, #mail-list b', (n) => n.length), 0);
    assert.deepEqual(await audit(page), [], 'accessibility of the list');
    await screenshot(page, ARTIFACTS, 'mailbox', true);

    // a word: the row, with the word marked
    list = await searchFor(page, 'budget');
    assert.deepEqual(list.map((r) => r.id), [ids.A]);
    assert.ok(list[0].marks.some((m) => /^budget$/i.test(m)), `marks: ${list[0].marks}`);
    assert.equal(await page.textContent('#mail-count'), 'Messages found: 1.');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'mail-q', 'the focus stays in the box');
    // Chinese, 2 characters: UTF-8 mail; and in GB18030 mail
    list = await searchFor(page, '会议');
    assert.deepEqual(list.map((r) => r.id), [ids.B]);
    assert.ok(list[0].marks.some((m) => m.includes('会议')), `marks: ${list[0].marks}`);
    list = await searchFor(page, '预算');
    assert.deepEqual(list.map((r) => r.id), [ids.C]);
    assert.ok(list[0].marks.some((m) => m.includes('预算')), `marks: ${list[0].marks}`);
    // both, with OR: the view as docs/mailbox-view.png shows it
    list = await searchFor(page, 'budget OR 预算');
    assert.deepEqual(list.map((r) => r.id), [ids.C, ids.A]);
    assert.ok(list.every((r) => r.marks.length > 0), 'each row has its marks');
    await page.locator('#mail-card').screenshot({ path: path.join(ARTIFACTS, 'mailbox-search.png') });
    list = await searchFor(page, 'nosuchwordanywhere');
    assert.deepEqual(list, []);
    assert.equal(await page.textContent('#mail-count'), 'No message matches this search.');

    // the label filter: label:"出差 Trip" in the box, its two messages
    await page.fill('#mail-q', '');
    const option = await page.$eval('#mail-label', (s) => [...s.options].map((o) => o.textContent));
    assert.ok(option.includes('出差 Trip (2)'), `options: ${option}`);
    await page.selectOption('#mail-label', '出差 Trip');
    await page.waitForFunction(() => document.getElementById('mail-q').value === 'label:"出差 Trip"');
    assert.deepEqual(await settled(page), [ids.E, ids.A]);
    // a word with it
    await page.fill('#mail-q', 'beijing label:"出差 Trip"');
    await page.press('#mail-q', 'Enter');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="mail-row"]').length === 1);
    assert.deepEqual(await settled(page), [ids.E]);
    await page.selectOption('#mail-label', '');
    await page.waitForFunction(() => document.getElementById('mail-q').value === 'beijing');
    // a system label, by its Gmail name
    await page.fill('#mail-q', '');
    await page.selectOption('#mail-label', 'SENT');
    await page.waitForFunction(() => document.getElementById('mail-q').value === 'label:"SENT"');
    assert.deepEqual(await settled(page), [ids.F]);
    assert.deepEqual((await rows(page))[0].labels, ['Sent']);
    assert.equal(await page.$eval('#mail-label', (s) => s.selectedOptions[0].textContent), 'Sent (1)');
    await page.selectOption('#mail-label', '');
    await page.waitForFunction(() => document.getElementById('mail-q').value === '');

    // a query the language refuses: its problem's words, the box marked invalid, no rows
    list = await searchFor(page, 'nosuchop:thing');
    assert.deepEqual(list, []);
    assert.equal(await page.isVisible('#mail-error'), true);
    assert.equal(await page.textContent('#mail-error-title'), 'This search cannot be understood');
    assert.match(await page.textContent('#mail-error-text'), /nosuchop/);
    assert.equal(await page.getAttribute('#mail-q', 'aria-invalid'), 'true');
    assert.match(await page.textContent('#mail-count'), /This search cannot be understood\. .*nosuchop/);
    assert.deepEqual(await audit(page), [], 'accessibility of the refused query');
    // a search past its time box (a lock held on the index: it cannot finish, whatever the
    // machine's speed) is a 422: "too expensive, narrow the search"
    const lock = await holdIndexLock();
    try {
      list = await searchFor(page, 'budget');
    } finally {
      await lock.release();
    }
    assert.deepEqual(list, []);
    assert.equal(await page.textContent('#mail-error-title'), 'This search is too expensive');
    assert.match(await page.textContent('#mail-error-text'), /^Narrow the search/);
    assert.equal(await page.getAttribute('#mail-q', 'aria-invalid'), null, 'the query itself is fine');
    await searchFor(page, '');
    assert.equal(await page.isVisible('#mail-error'), false);
    assert.equal(await page.getAttribute('#mail-q', 'aria-invalid'), null);

    // a row opens the message; Back says where it goes and returns to the row
    await page.click(`[data-testid="mail-row"][data-id="${ids.C}"]`);
    await page.waitForFunction(() => document.getElementById('message-view').getAttribute('data-state') === 'loaded');
    assert.equal(await page.textContent('#message-subject'), '季度预算报告');
    assert.match(await page.textContent('#message-text'), /请查看附件中的预算表。/);
    assert.equal(await page.isVisible('#mail-card'), false);
    assert.equal(await page.textContent('#message-back'), 'Back to mail');
    await page.click('#message-back');
    await page.waitForFunction((id) => document.activeElement.getAttribute('data-id') === id, ids.C);
    assert.equal(await page.isVisible('#mail-card'), true);
    assert.equal((await rows(page)).length, 6, 'the list is as it was');
    // the browser's Back too
    await page.click(`[data-testid="mail-row"][data-id="${ids.B}"]`);
    await page.waitForFunction(() => document.getElementById('message-view').getAttribute('data-state') === 'loaded');
    await page.goBack();
    await page.waitForFunction((id) => document.activeElement.getAttribute('data-id') === id, ids.B);

    // Chinese: the strings, the system labels' names, the audit, Back's words
    await page.selectOption('#lang', 'zh-CN');
    assert.equal(await page.textContent('#mail-heading'), '邮件');
    assert.equal(await page.textContent('#mail-count'), '最新的邮件：6 封。');
    assert.deepEqual((await rows(page))[0].labels, ['收件箱', '出差 Trip']);
    assert.deepEqual(await audit(page), [], 'accessibility in Chinese');
    await page.click(`[data-testid="mail-row"][data-id="${ids.A}"]`);
    await page.waitForFunction(() => document.getElementById('message-view').getAttribute('data-state') === 'loaded');
    assert.equal(await page.textContent('#message-back'), '返回邮件列表');
    await page.click('#message-back');
    await page.waitForFunction(() => !document.getElementById('mail-card').hidden);

    // a phone's width: nothing wider than the screen, still clean
    await page.setViewportSize({ width: 360, height: 740 });
    assert.equal(await noOverflow(page), true, 'no horizontal scrolling at 360 px');
    assert.deepEqual(await audit(page), [], 'accessibility at 360 px');
    await screenshot(page, ARTIFACTS, 'mailbox-narrow', true);
  });

  pageTest('mailbox, keyboard only: the list after a sync, Tab order, Enter opens a row, More pages on with the focus on the first new row, Back to the row, the focus kept when a sync redraws the list', { timeout: 120000 }, async (session, expectLog, t) => {
    // the fake's generated mail has HTML with scripts: the sandboxed frame blocks them, and says so
    session.allow(/Blocked script execution in 'about:(srcdoc|blank)'/);
    const user = stack.addUser({ messages: 30 });
    const page = await signIn(session, user);
    if (await searchMissing(session, page, t)) { return; }
    await page.click('#sync');
    await waitState(page, 'SUCCEEDED', 60000);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="mail-row"]').length === 25);
    const want = stack.query(`SELECT gmail_id FROM gmailsync.messages WHERE user_id = :'uid'
                               ORDER BY internal_date DESC, gmail_id DESC`, { uid: user.user_id }).map((r) => r[0]);
    assert.equal(want.length, 30);
    assert.deepEqual(await settled(page), want.slice(0, 25));
    assert.equal(await page.textContent('#mail-count'), 'The newest messages: 25 shown, more below.');
    // from the search box: the button, the label filter, the rows in order
    await page.focus('#mail-q');
    const order = [];
    for (let i = 0; i < 4; i++) {
      await page.keyboard.press('Tab');
      order.push(await page.evaluate(() => document.activeElement.id || document.activeElement.getAttribute('data-id')));
    }
    assert.deepEqual(order, ['mail-go', 'mail-label', want[0], want[1]]);
    const ring = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(ring, 'none', 'the focused row shows a focus ring');
    // Enter opens the row; the view's heading has the focus; Back (Shift+Tab, Enter) returns
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.getElementById('message-view').getAttribute('data-state') === 'loaded');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'message-subject');
    await page.keyboard.press('Shift+Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'message-back');
    assert.equal(await page.textContent('#message-back'), 'Back to mail');
    await page.keyboard.press('Enter');
    await page.waitForFunction((id) => document.activeElement.getAttribute('data-id') === id, want[1]);
    // More: from the keyboard, the next page after the last row, the focus on the first new one
    await page.focus('#mail-more');
    await page.keyboard.press('Enter');
    await page.waitForFunction((id) => document.activeElement.getAttribute('data-id') === id, want[25]);
    assert.deepEqual(await settled(page), want);
    assert.equal(await page.isVisible('#mail-more'), false, 'no More after the last page');
    assert.equal(await page.textContent('#mail-count'), 'The newest messages: 30.');
    assert.deepEqual(await audit(page), []);
    // a sync that brings new mail draws the list again under the focus: it stays on its message
    await page.focus(`[data-testid="mail-row"][data-id="${want[3]}"]`);
    const added = await stack.control('POST', `/_control/mailboxes/${encodeURIComponent(user.email)}/messages`, { count: 2 });
    const before = await page.textContent('#task-id');
    await page.evaluate(() => document.getElementById('sync').click());   // a click that leaves the focus
    await page.waitForFunction((id) => document.getElementById('task-id').textContent !== id
      && document.getElementById('bar').getAttribute('data-state') === 'SUCCEEDED', before, { timeout: 60000 });
    await page.waitForFunction((ids) => {
      const first = document.querySelector('[data-testid="mail-row"]');
      return first && ids.includes(first.getAttribute('data-id'));
    }, added.ids);
    const now = await settled(page);
    assert.deepEqual(new Set(now.slice(0, 2)), new Set(added.ids));
    assert.deepEqual(now.slice(2), want.slice(0, 23));
    assert.equal(await page.evaluate(() => document.activeElement.getAttribute('data-id')), want[3]);
    assert.equal(await page.textContent('#mail-count'), 'The newest messages: 25 shown, more below.');
  });

  test('the docs screenshot of the mailbox view exists', { skip: Boolean(h.only && !h.only.test('docs')) }, () => {
    const f = path.join(ROOT, 'docs', 'mailbox-view.png');
    assert.ok(fs.existsSync(f) && fs.statSync(f).size < 300000, f);
  });
}

module.exports = { register };

/* app.js -- the sync page: account, Sync / Full resync, a live progress bar, the last result.
 *
 * Talks to the module's JSON API (prefix from <meta name="gmailsync-api">):
 *   GET  /status                 on load: account, last success, latest task (attach if active)
 *   POST /smart                  Sync / Full resync / Retry (idempotent: a running task comes back)
 *   GET  /progress/{id}          Server-Sent Events (EventSource), or JSON polls once a second when
 *                                the stream fails, is refused (429/503 stream caps) or is buffered
 *                                by a proxy
 *   GET  /oauth/start            Connect (a link: Google's consent, then back here with
 *                                ?oauth=<result>, which the page says in words and drops)
 *   POST /oauth/disconnect       Disconnect ({"delete_messages": true} when the box is ticked)
 * No framework, no build step; strings in i18n.js. The bar never goes backwards: the server's
 * percentage is the floor, the animation only moves forward between updates.
 */
'use strict';

(function () {
  var API = (document.querySelector('meta[name="gmailsync-api"]') || {}).content || '/api/gmail/sync';
  var STRINGS = window.GMAILSYNC_STRINGS;
  var LANGS = ['en', 'zh-CN'];
  var ACTIVE = { CREATED: true, RUNNING: true };
  var POLL_MS = 1000;
  var SSE_FIRST_EVENT_MS = 5000;   // no first event by then: a proxy buffers the stream
  var SSE_STALE_MS = 8000;         // no event for this long: check with one poll
  var OAUTH_RESULTS = { connected: 1, access_denied: 1, invalid_state: 1, exchange_failed: 1,
                        authorization_failed: 1 };
  var listeners = { status: [], synced: [] };   // the mailbox view's (mailbox.js)
  var reduceMotion = window.matchMedia && window.matchMedia('(prefers-reduced-motion: reduce)').matches;

  var $ = function (id) { return document.getElementById(id); };
  var el = {
    lang: $('lang'), account: $('account'), connectSlot: $('connect-slot'), connect: $('connect'),
    disconnectSlot: $('disconnect-slot'), disconnect: $('disconnect'),
    deleteMessages: $('delete-messages'), notice: $('oauth-result'),
    sync: $('sync'), full: $('full'),
    block: $('progress-block'), bar: $('bar'), fill: $('bar-fill'), percent: $('percent'),
    state: $('state'), counts: $('counts'), mode: $('mode'), elapsed: $('elapsed'),
    remaining: $('remaining'), taskId: $('task-id'), channel: $('channel'), waiting: $('waiting'),
    problem: $('problem'), problemTitle: $('problem-title'), problemText: $('problem-text'),
    problemAdvice: $('problem-advice'), problemCode: $('problem-code'), retry: $('retry'),
    last: $('last'), lastSuccess: $('last-success'), freshness: $('freshness'), mailbox: $('mailbox'),
    announcer: $('announcer')
  };

  var S = {
    lang: 'en',
    status: null,          // the last /status answer
    signedIn: true,
    hasAccount: null,
    starting: false,       // a POST /smart is in flight
    lastForce: false,
    task: null,            // the task shown (task JSON)
    confirmed: 0,          // the highest percentage the server reported for it
    shown: 0,              // the drawn percentage (animated, never decreasing)
    lastConfirmAt: 0,
    samples: [],           // [client ms, processed] for the rate
    clockOffset: 0,        // server clock - client clock, ms (from the Date header)
    channel: null,         // 'sse' | 'poll'
    es: null, pollTimer: null, sseTimer: null, sseLastEvent: 0, sseErrors: 0,
    failures: 0,           // consecutive failed polls
    retryTimer: null, countdownTimer: null,
    problem: null,         // what the problem panel shows: {kind, ...}
    notice: null,          // the account notice: {key, vars, bad} (a connect result, a disconnect)
    disconnecting: false,
    raf: 0
  };

  // ------------------------------------------------------------------ strings
  function t(key, vars) {
    var table = STRINGS[S.lang] || STRINGS.en;
    var s = table[key] !== undefined ? table[key] : STRINGS.en[key];
    if (s === undefined) { return key; }
    return s.replace(/\{(\w+)\}/g, function (m, name) {
      return vars && vars[name] !== undefined ? String(vars[name]) : m;
    });
  }

  function pickLanguage() {
    var saved = null;
    try { saved = window.localStorage.getItem('gmailsync.lang'); } catch (e) { saved = null; }
    if (saved && LANGS.indexOf(saved) >= 0) { return saved; }
    var prefs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || 'en'];
    for (var i = 0; i < prefs.length; i++) {
      var p = String(prefs[i]).toLowerCase();
      if (p.indexOf('zh') === 0) { return 'zh-CN'; }
      if (p.indexOf('en') === 0) { return 'en'; }
    }
    return 'en';
  }

  function setLanguage(lang, remember) {
    S.lang = LANGS.indexOf(lang) >= 0 ? lang : 'en';
    document.documentElement.lang = S.lang;
    el.lang.value = S.lang;
    if (remember) {
      try { window.localStorage.setItem('gmailsync.lang', S.lang); } catch (e) { /* private mode */ }
    }
    var nodes = document.querySelectorAll('[data-i18n]');
    for (var i = 0; i < nodes.length; i++) {
      nodes[i].textContent = t(nodes[i].getAttribute('data-i18n'));
    }
    document.title = t('title');
    renderAll();
  }

  function nf(n) { return new Intl.NumberFormat(S.lang).format(n); }

  function when(iso) {
    if (!iso) { return '–'; }
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return '–'; }
    return new Intl.DateTimeFormat(S.lang, { dateStyle: 'medium', timeStyle: 'short' }).format(d);
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    var m = Math.floor(seconds / 60), s = seconds % 60;
    if (S.lang === 'zh-CN') { return m ? m + ' 分 ' + s + ' 秒' : s + ' 秒'; }
    return m ? m + ' min ' + s + ' s' : s + ' s';
  }

  function clock(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var h = Math.floor(seconds / 3600), m = Math.floor(seconds / 60) % 60, s = seconds % 60;
    var mm = h ? String(m).padStart(2, '0') : String(m);
    return (h ? h + ':' : '') + mm + ':' + String(s).padStart(2, '0');
  }

  function announce(text) {
    // a change of text in the polite live region is read once
    el.announcer.textContent = text;
  }

  // ------------------------------------------------------------------ HTTP
  function noteClock(resp) {
    var date = resp.headers.get('Date');
    if (date) {
      var server = Date.parse(date);
      // Date has whole seconds: only a real skew is worth correcting
      if (!isNaN(server)) { S.clockOffset = Math.abs(server - Date.now()) > 2000 ? server - Date.now() : 0; }
    }
  }

  function retryAfter(resp) {
    var v = resp.headers.get('Retry-After');
    var n = v && /^\d+$/.test(v.trim()) ? parseInt(v, 10) : NaN;
    if (isNaN(n) && v) {
      var at = Date.parse(v);
      if (!isNaN(at)) { n = Math.ceil((at - Date.now()) / 1000); }
    }
    return isNaN(n) ? 5 : Math.min(Math.max(n, 1), 300);
  }

  function api(method, path, body) {
    var init = { method: method, credentials: 'same-origin', cache: 'no-store',
                 headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(API + path, init).then(function (resp) {
      noteClock(resp);
      return resp.text().then(function (text) {
        var json = null;
        try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
        return { status: resp.status, json: json, resp: resp };
      });
    });
  }

  // ------------------------------------------------------------------ status on load
  function loadStatus() {
    return api('GET', '/status').then(function (r) {
      if (r.status === 200 && r.json) {
        S.signedIn = true;
        S.status = r.json;
        S.hasAccount = hasAccount(r.json);
        tell('status', true);
        var task = r.json.task;
        if (task && (ACTIVE[task.state] || (S.task && S.task.task_id === task.task_id))) {
          attach(task);
        }
        renderAll();
        return;
      }
      handleHttpProblem(r, function () { loadStatus(); });
    }, function () {
      showProblem({ kind: 'network', retry: loadStatus });
    });
  }

  function tell(what, arg) {
    listeners[what].forEach(function (fn) { fn(arg); });
  }

  function hasAccount(status) {
    return !!(status.account && status.account.connected !== false);
  }

  // ------------------------------------------------------------------ connect, disconnect
  // The callback sends the browser back with ?oauth=<result>: say it in words, and take it out
  // of the address so that a reload does not say it again.
  function readOAuthResult() {
    var m = /[?&]oauth=([a-z_]+)/.exec(window.location.search);
    if (m && OAUTH_RESULTS[m[1]]) {
      S.notice = { key: 'oauth_' + m[1], bad: m[1] !== 'connected' };
    }
    if (m && window.history && window.history.replaceState) {
      window.history.replaceState(null, '', window.location.pathname);
    }
  }

  function disconnect() {
    if (S.disconnecting) { return; }
    S.disconnecting = true;
    el.disconnect.setAttribute('aria-disabled', 'true');
    announce(t('disconnecting'));
    api('POST', '/oauth/disconnect', { delete_messages: !!el.deleteMessages.checked }).then(function (r) {
      S.disconnecting = false;
      el.disconnect.setAttribute('aria-disabled', 'false');
      if (r.status === 200 && r.json) {
        var n = r.json.messages_deleted || 0;
        S.notice = n > 0 ? { key: 'disconnected_deleted', vars: { n: nf(n) } }
          : { key: r.json.revoked || !r.json.account_removed ? 'disconnected' : 'disconnected_unrevoked',
              bad: !r.json.revoked && r.json.account_removed };
        el.deleteMessages.checked = false;
        closeChannel();
        clearTimers();
        hideProblem();
        S.hasAccount = false;
        announce(t(S.notice.key, S.notice.vars));
        loadStatus();
        el.connect.focus({ preventScroll: true });
        return;
      }
      handleHttpProblem(r, disconnect);
    }, function () {
      S.disconnecting = false;
      el.disconnect.setAttribute('aria-disabled', 'false');
      showProblem({ kind: 'network', retry: disconnect });
    });
  }

  // ------------------------------------------------------------------ start
  function canStart() {
    return S.signedIn && !!S.status && S.hasAccount !== false && !S.starting
      && !(S.task && ACTIVE[S.task.state]) && !(S.problem && S.problem.status === 503);
  }

  function start(force, automatic) {
    // aria-disabled, not disabled: the focused button keeps the focus while a sync runs
    if (!canStart() && !(automatic && S.signedIn && !S.starting && !(S.task && ACTIVE[S.task.state]))) {
      return;
    }
    S.starting = true;
    S.lastForce = !!force;
    S.notice = null;
    clearTimers();
    hideProblem();
    renderButtons();
    announce(t('starting'));
    api('POST', '/smart', { force_full: !!force }).then(function (r) {
      S.starting = false;
      if ((r.status === 200 || r.status === 202) && r.json && r.json.task_id) {
        if (!S.task || S.task.task_id !== r.json.task_id) {
          announce(t('announce_started'));
        }
        attach({ task_id: r.json.task_id, state: r.json.state, mode: null, processed: 0,
                 total: null, progress_percentage: 0, error: null });
        return;
      }
      handleHttpProblem(r, function () { start(S.lastForce, true); });
      renderButtons();
    }, function () {
      S.starting = false;
      showProblem({ kind: 'network', retry: function () { start(S.lastForce); } });
      renderButtons();
    });
  }

  // The answers of the API that are not a task: 401, 403, 409, 503 (+ Retry-After), others.
  function handleHttpProblem(r, again) {
    if (r.status === 401) {
      S.signedIn = false;
      tell('status', false);
      showProblem({ kind: 'http', status: 401 });
    } else if (r.status === 409) {
      S.hasAccount = false;
      showProblem({ kind: 'http', status: 409 });
    } else if (r.status === 503) {
      var n = retryAfter(r.resp);
      showProblem({ kind: 'http', status: 503, until: Date.now() + n * 1000, retry: again });
      S.retryTimer = setTimeout(function () { S.retryTimer = null; again(); }, n * 1000);
      S.countdownTimer = setInterval(renderProblem, 1000);
    } else if (r.status === 403) {
      showProblem({ kind: 'http', status: 403, retry: again });
    } else {
      showProblem({ kind: 'http', status: r.status, retry: again });
    }
    renderAll();
  }

  // ------------------------------------------------------------------ following a task
  function attach(task) {
    if (!S.task || S.task.task_id !== task.task_id) {
      S.confirmed = 0;
      S.shown = 0;
      S.samples = [];
      S.lastConfirmAt = Date.now();
      S.task = null;
    }
    hideProblem();
    update(task);
    if (ACTIVE[S.task.state]) {
      connect();
    }
  }

  function isFinal(task) { return !ACTIVE[task.state]; }

  // Merges a task JSON into what is shown; progress only ever moves forward.
  function update(task) {
    if (!task || !task.task_id) { return; }
    var prev = S.task;
    if (prev && prev.task_id === task.task_id && isFinal(prev) && !isFinal(task)) {
      return; // a stale answer after the end
    }
    var now = Date.now();
    var pct = Number(task.progress_percentage) || 0;
    if (task.state !== 'SUCCEEDED') { pct = Math.min(pct, 99.99); } else { pct = 100; }
    if (prev && prev.task_id === task.task_id) {
      if (typeof prev.processed === 'number' && typeof task.processed === 'number'
          && task.processed < prev.processed && !isFinal(task)) {
        task = Object.assign({}, task, { processed: prev.processed, total: task.total || prev.total });
      }
    }
    if (pct > S.confirmed) {
      S.confirmed = pct;
      S.lastConfirmAt = now;
    }
    if (typeof task.processed === 'number') {
      var last = S.samples[S.samples.length - 1];
      if (!last || task.processed > last[1]) {
        S.samples.push([now, task.processed]);
        while (S.samples.length > 2 && now - S.samples[0][0] > 15000) { S.samples.shift(); }
      }
    }
    S.task = task;
    if (!prev || prev.task_id !== task.task_id || prev.state !== task.state) {
      stateChanged(prev, task);
    }
    if (task.retrying && !(prev && prev.task_id === task.task_id && prev.retrying
                           && prev.retrying.reason === task.retrying.reason)) {
      announce(waitingText(task.retrying));
    }
    renderProgress();
    animate();
  }

  function stateChanged(prev, task) {
    if (task.state === 'RUNNING' && prev && prev.task_id === task.task_id) {
      announce(t('announce_running'));
    }
    if (!isFinal(task)) { return; }
    closeChannel();
    if (task.state === 'SUCCEEDED') {
      announce(t('announce_succeeded', { n: nf(task.processed || 0) }));
      hideProblem();
      tell('synced', task);
    } else {
      var code = task.error && task.error.code ? task.error.code : (task.state === 'STUCK' ? 'stuck' : 'unknown');
      showProblem({ kind: 'task', state: task.state, code: code,
                    message: task.error ? task.error.message : '',
                    retry: function () { start(S.lastForce); } });
      announce(t(task.state === 'CANCELLED' ? 'announce_cancelled'
                 : task.state === 'STUCK' ? 'announce_stuck' : 'announce_failed',
                 { message: t(errKey(code)) }));
    }
    // the last result at once from the task, then from the server (with the account)
    if (S.status) {
      S.status.task = task;
      if (task.state === 'SUCCEEDED' && task.finished_at) {
        S.status.last_success = {
          task_id: task.task_id, finished_at: task.finished_at, processed: task.processed || 0,
          duration_s: task.started_at ? (Date.parse(task.finished_at) - Date.parse(task.started_at)) / 1000 : 0
        };
      }
      renderLast();
    }
    refreshStatus();
  }

  function refreshStatus() {
    api('GET', '/status').then(function (r) {
      if (r.status === 200 && r.json) {
        S.status = r.json;
        S.hasAccount = hasAccount(r.json);
        renderAll();
      }
    }, function () { /* the panel already shows the result */ });
  }

  function errKey(code) {
    return STRINGS.en['err_' + code] !== undefined ? 'err_' + code : 'err_unknown';
  }
  function adviceKey(code) {
    return STRINGS.en['do_' + code] !== undefined ? 'do_' + code : 'do_unknown';
  }

  // ------------------------------------------------------------------ channels: SSE, then polls
  function connect() {
    closeChannel();
    if (window.EventSource && !S.sseBroken) {
      openStream();
    } else {
      startPolling(0);
    }
  }

  function openStream() {
    var id = S.task.task_id;
    var es;
    try {
      es = new EventSource(API + '/progress/' + encodeURIComponent(id));
    } catch (e) {
      S.sseBroken = true;
      startPolling(0);
      return;
    }
    S.es = es;
    S.channel = 'sse';
    S.sseErrors = 0;
    S.sseLastEvent = 0;
    var opened = Date.now();
    es.addEventListener('progress', function (ev) {
      if (S.es !== es) { return; }
      var task;
      try { task = JSON.parse(ev.data); } catch (e) { return; }
      S.sseLastEvent = Date.now();
      S.sseErrors = 0;
      S.failures = 0;
      update(task);
    });
    es.onerror = function () {
      if (S.es !== es) { return; }
      if (!S.task || isFinal(S.task)) { closeChannel(); return; }
      S.sseErrors++;
      // refused (429/503 stream caps, another status, wrong type): EventSource gives up at
      // once; a stream that never delivered, or fails twice in a row, is not worth waiting for
      if (es.readyState === EventSource.CLOSED || !S.sseLastEvent || S.sseErrors >= 2) {
        fallBack();
      }
    };
    // no first event in time (a buffering proxy), or silence while the task moves on
    S.sseTimer = setInterval(function () {
      if (S.es !== es) { return; }
      var now = Date.now();
      if (!S.sseLastEvent && now - opened > SSE_FIRST_EVENT_MS) {
        fallBack();
      } else if (S.sseLastEvent && now - S.sseLastEvent > SSE_STALE_MS) {
        S.sseLastEvent = now;
        checkStream(es);
      }
    }, 1000);
    renderChannel();
  }

  // One poll while the stream is quiet: if it shows news the stream did not bring, poll instead.
  function checkStream(es) {
    var before = S.task;
    api('GET', '/progress/' + encodeURIComponent(before.task_id)).then(function (r) {
      if (S.es !== es || r.status !== 200 || !r.json) { return; }
      var moved = r.json.state !== before.state || r.json.processed !== before.processed;
      update(r.json);
      if (moved && S.task && !isFinal(S.task)) { fallBack(); }
    }, function () { /* the stream's own error handling decides */ });
  }

  function fallBack() {
    closeChannel();
    S.sseBroken = true;   // for this page: a proxy that broke one stream breaks the next
    startPolling(0);
  }

  function startPolling(delay) {
    S.channel = 'poll';
    renderChannel();
    S.pollTimer = setTimeout(poll, delay);
  }

  function poll() {
    S.pollTimer = null;
    if (!S.task || isFinal(S.task)) { return; }
    var id = S.task.task_id;
    api('GET', '/progress/' + encodeURIComponent(id)).then(function (r) {
      if (!S.task || S.task.task_id !== id || S.channel !== 'poll') { return; }
      if (r.status === 200 && r.json) {
        S.failures = 0;
        update(r.json);
        renderChannel();
        if (!isFinal(S.task)) { S.pollTimer = setTimeout(poll, POLL_MS); }
      } else if (r.status === 503 || r.status === 429) {
        S.pollTimer = setTimeout(poll, retryAfter(r.resp) * 1000);
      } else if (r.status === 401) {
        S.signedIn = false;
        closeChannel();
        showProblem({ kind: 'http', status: 401 });
        renderAll();
      } else {
        pollFailed();
      }
    }, pollFailed);
  }

  function pollFailed() {
    if (S.channel !== 'poll' || !S.task || isFinal(S.task)) { return; }
    S.failures++;
    renderChannel();
    S.pollTimer = setTimeout(poll, Math.min(1000 * Math.pow(2, S.failures - 1), 5000));
  }

  function closeChannel() {
    if (S.es) { S.es.close(); S.es = null; }
    if (S.sseTimer) { clearInterval(S.sseTimer); S.sseTimer = null; }
    if (S.pollTimer) { clearTimeout(S.pollTimer); S.pollTimer = null; }
    S.channel = null;
    renderChannel();
  }

  function clearTimers() {
    if (S.retryTimer) { clearTimeout(S.retryTimer); S.retryTimer = null; }
    if (S.countdownTimer) { clearInterval(S.countdownTimer); S.countdownTimer = null; }
  }

  // ------------------------------------------------------------------ drawing
  // Percent per ms from the recent samples, once the rate is known.
  function rate() {
    var s = S.samples, task = S.task;
    if (!task || !task.total || s.length < 2) { return null; }
    var a = s[0], b = s[s.length - 1];
    if (b[0] - a[0] < 1500 || b[1] <= a[1]) { return null; }
    return (b[1] - a[1]) / (b[0] - a[0]); // messages per ms
  }

  function animate() {
    if (S.raf) { return; }
    var lastFrame = performance.now();
    var step = function (now) {
      S.raf = 0;
      var dt = Math.max(0, now - lastFrame);
      lastFrame = now;
      var task = S.task;
      if (!task) { return; }
      var goal = S.confirmed;
      var r = rate();
      if (r && ACTIVE[task.state] && task.total) {
        // between updates, move on at the measured rate, at most two seconds ahead of the
        // last confirmed value and never to 100 before the server says SUCCEEDED
        var ahead = Math.min(Date.now() - S.lastConfirmAt, 2000) * r * 100 / task.total;
        goal = Math.min(Math.max(goal, S.confirmed + ahead), 99.5);
      }
      var next = reduceMotion ? goal : S.shown + (goal - S.shown) * (1 - Math.exp(-dt / 150));
      if (goal - next < 0.05) { next = goal; }
      if (next > S.shown) {
        S.shown = next;
        el.fill.style.transform = 'scaleX(' + (S.shown / 100).toFixed(4) + ')';
      }
      if (S.shown < goal || ACTIVE[task.state]) {
        S.raf = requestAnimationFrame(step);
      }
    };
    S.raf = requestAnimationFrame(step);
  }

  function renderProgress() {
    var task = S.task;
    if (!task) { el.block.hidden = true; return; }
    el.block.hidden = false;
    var pct = Math.floor(S.confirmed);
    if (task.state === 'SUCCEEDED') { pct = 100; } else { pct = Math.min(pct, 99); }
    el.bar.setAttribute('data-state', task.state);
    el.bar.setAttribute('aria-valuenow', String(pct));
    el.bar.setAttribute('aria-valuetext', pct + ' % — ' + t('state_' + task.state));
    el.percent.textContent = pct + ' %';
    el.state.textContent = t('state_' + task.state);
    el.state.setAttribute('data-state', task.state);
    el.taskId.textContent = task.task_id;
    el.mode.textContent = task.mode ? t('mode_' + task.mode) : isFinal(task) ? '–' : t('mode_unknown');
    if (typeof task.processed === 'number') {
      el.counts.textContent = task.total !== null && task.total !== undefined
        ? t('counts', { processed: nf(task.processed), total: nf(task.total) })
        : t('counts_no_total', { processed: nf(task.processed) });
    } else {
      el.counts.textContent = '–';
    }
    el.bar.classList.toggle('failed', task.state === 'FAILED' || task.state === 'STUCK' || task.state === 'CANCELLED');
    el.bar.classList.toggle('done', task.state === 'SUCCEEDED');
    renderTimes();
    renderWaiting();
    renderButtons();
  }

  // The worker waits to ask Gmail again (task JSON "retrying"): say why and until when, in the
  // reader's clock, instead of a bar that stands still without a word.
  function waitingText(r) {
    var until = Date.parse(r.until) - S.clockOffset;
    var key = r.reason === 'rate_limited' ? 'waiting_rate_limited' : 'waiting_unavailable';
    if (isNaN(until) || until <= Date.now()) { return t(key + '_now', { n: r.attempt }); }
    var d = new Date(until);
    var hms = [d.getHours(), d.getMinutes(), d.getSeconds()].map(function (v) {
      return String(v).padStart(2, '0');
    }).join(':');
    return t(key, { time: hms, n: r.attempt });
  }

  function renderWaiting() {
    var task = S.task;
    if (!task || task.state !== 'RUNNING' || !task.retrying) {
      el.waiting.hidden = true;
      el.waiting.textContent = '';
      return;
    }
    el.waiting.textContent = waitingText(task.retrying);
    el.waiting.hidden = false;
  }

  function renderTimes() {
    var task = S.task;
    if (!task) { return; }
    var startIso = task.started_at || task.created_at;
    var endMs = task.finished_at ? Date.parse(task.finished_at) : Date.now() + S.clockOffset;
    if (startIso) {
      el.elapsed.textContent = clock((endMs - Date.parse(startIso)) / 1000);
    } else {
      el.elapsed.textContent = clock(0);
    }
    if (isFinal(task)) {
      el.remaining.textContent = task.state === 'SUCCEEDED' ? t('remaining_done') : '–';
      return;
    }
    var r = rate();
    if (!r || !task.total) {
      el.remaining.textContent = t('remaining_unknown');
      return;
    }
    var left = Math.max(0, task.total - task.processed) / r / 1000;
    left = Math.max(0, left - (Date.now() - S.samples[S.samples.length - 1][0]) / 1000);
    el.remaining.textContent = left < 90 ? t('remaining_seconds', { n: Math.max(1, Math.ceil(left)) })
                                         : t('remaining_minutes', { n: Math.ceil(left / 60) });
  }

  function renderChannel() {
    if (!S.task || isFinal(S.task) || !S.channel) { el.channel.textContent = ''; return; }
    if (S.failures > 0) { el.channel.textContent = t('reconnecting'); return; }
    el.channel.textContent = t(S.channel === 'sse' ? 'via_sse' : 'via_poll');
  }

  function renderButtons() {
    var busy = S.starting || !!(S.task && ACTIVE[S.task.state]);
    var off = canStart() ? 'false' : 'true';
    el.sync.setAttribute('aria-disabled', off);
    el.full.setAttribute('aria-disabled', off);
    el.sync.setAttribute('aria-busy', busy ? 'true' : 'false');
  }

  function renderAccount() {
    var st = S.status, linked = false;
    if (!S.signedIn) {
      el.account.textContent = t('http_401');
      el.connectSlot.hidden = true;
    } else if (!st) {
      el.account.textContent = S.hasAccount === false ? t('no_account') : t('loading');
      el.connectSlot.hidden = S.hasAccount !== false;
    } else if (st.account && st.account.email && S.hasAccount !== false) {
      el.account.textContent = t('connected_as', { email: st.account.email });
      el.connectSlot.hidden = true;
      linked = true;
    } else {
      el.account.textContent = t('no_account');
      el.connectSlot.hidden = false;
    }
    el.disconnectSlot.hidden = !linked;
    el.notice.hidden = !S.notice;
    if (S.notice) {
      el.notice.textContent = t(S.notice.key, S.notice.vars);
      el.notice.className = S.notice.bad ? 'notice bad' : 'notice';
    }
  }

  function renderLast() {
    var st = S.status;
    if (!st) {
      el.last.textContent = S.signedIn ? t('loading') : '–';
      el.lastSuccess.hidden = true;
      el.freshness.hidden = true;
      el.mailbox.hidden = true;
      return;
    }
    var task = st.task, ok = st.last_success;
    var okText = ok ? t('last_success', { when: when(ok.finished_at), n: nf(ok.processed),
                                          duration: duration(ok.duration_s || 0) }) : '';
    if (!task) {
      el.last.textContent = t('last_none');
    } else if (ACTIVE[task.state]) {
      el.last.textContent = t('last_running');
    } else if (task.state === 'SUCCEEDED') {
      var secs = task.started_at && task.finished_at
        ? (Date.parse(task.finished_at) - Date.parse(task.started_at)) / 1000 : 0;
      el.last.textContent = t('last_succeeded', { when: when(task.finished_at), n: nf(task.processed || 0),
                                                  duration: duration(secs) });
      okText = '';
    } else if (task.state === 'CANCELLED') {
      el.last.textContent = t('last_cancelled', { when: when(task.finished_at) });
    } else if (task.state === 'STUCK') {
      el.last.textContent = t('last_stuck', { when: when(task.started_at || task.created_at) });
    } else {
      var code = task.error && task.error.code ? task.error.code : 'unknown';
      el.last.textContent = t('last_failed', { when: when(task.finished_at), message: t(errKey(code)),
                                               code: code });
    }
    el.lastSuccess.textContent = okText;
    el.lastSuccess.hidden = !okText;
    renderFreshness(st);
    renderMailbox(st.mailbox);
  }

  // What is stored, in numbers (/status "mailbox"): shown once anything is.
  function renderMailbox(mb) {
    var any = mb && (mb.messages > 0 || mb.labels > 0);
    el.mailbox.textContent = any ? t('mailbox_counts', {
      messages: nf(mb.messages), unread: nf(mb.unread), threads: nf(mb.threads), labels: nf(mb.labels)
    }) : '';
    el.mailbox.hidden = !any;
  }

  // "Last synced N minutes ago" (server clock: /status counts the seconds) and, with
  // GmailSyncAutoSync, when the daemon starts the next sync by itself.
  function renderFreshness(st) {
    var parts = [], ago = st.last_synced_ago_s, auto = st.auto_sync;
    if (typeof ago === 'number') {
      var m = Math.floor(ago / 60);
      parts.push(m < 1 ? t('synced_just_now') : t(m === 1 ? 'synced_minute_ago' : 'synced_minutes_ago', { n: nf(m) }));
    }
    if (auto && auto.next_at) {
      parts.push(t('auto_next', { when: when(auto.next_at) }));
    } else if (auto && auto.state === 'revoked') {
      parts.push(t('auto_revoked'));
    }
    el.freshness.textContent = parts.join(' ');
    el.freshness.hidden = !parts.length;
  }

  // ------------------------------------------------------------------ problems
  function showProblem(p) {
    clearTimers();
    S.problem = p;
    renderProblem();
  }

  function hideProblem() {
    S.problem = null;
    el.problem.hidden = true;
  }

  function renderProblem() {
    var p = S.problem;
    if (!p) { el.problem.hidden = true; return; }
    var title, text, advice, code = '';
    if (p.kind === 'task') {
      title = t(p.state === 'STUCK' ? 'problem_stuck' : p.state === 'CANCELLED' ? 'problem_cancelled' : 'problem_failed');
      text = t(errKey(p.code));
      advice = t(adviceKey(p.code));
      code = t('problem_code', { code: p.code });
    } else if (p.kind === 'network') {
      title = t('problem_request');
      text = t('network');
      advice = t('do_network');
    } else {
      title = t('problem_request');
      var known = { 401: 1, 403: 1, 409: 1, 503: 1 };
      text = known[p.status] ? t('http_' + p.status) : t('http_other', { status: p.status });
      if (p.status === 503) {
        var left = Math.ceil((p.until - Date.now()) / 1000);
        advice = left > 0 ? t('do_503', { n: left }) : t('do_503_now');
      } else {
        advice = known[p.status] ? t('do_' + p.status) : t('do_other');
      }
      code = t('problem_code', { code: 'HTTP ' + p.status });
    }
    el.problemTitle.textContent = title;
    el.problemText.textContent = text;
    el.problemAdvice.textContent = advice;
    el.problemCode.textContent = code;
    el.problemCode.hidden = !code;
    el.retry.hidden = !p.retry || (p.kind === 'http' && p.status === 503);
    el.problem.hidden = false;
  }

  function renderAll() {
    renderAccount();
    renderLast();
    renderProgress();
    renderProblem();
    renderChannel();
    renderButtons();
  }

  // ------------------------------------------------------------------ wiring
  el.connect.setAttribute('href', API + '/oauth/start');
  el.disconnect.addEventListener('click', disconnect);
  el.sync.addEventListener('click', function () { start(false); });
  el.full.addEventListener('click', function () { start(true); });
  el.retry.addEventListener('click', function () {
    var p = S.problem;
    if (p && p.retry) {
      clearTimers();
      hideProblem();
      p.retry();
      el.sync.focus({ preventScroll: true });
    }
  });
  el.lang.addEventListener('change', function () { setLanguage(el.lang.value, true); });
  setInterval(function () {
    if (S.task && ACTIVE[S.task.state]) { renderTimes(); renderWaiting(); }
  }, 1000);
  window.addEventListener('pagehide', closeChannel);
  // back from the back/forward cache: the channel was closed on pagehide
  window.addEventListener('pageshow', function (e) {
    if (e.persisted) { loadStatus(); }
  });

  // what the message view (message.js) shares: the strings, formats and the API prefix
  window.GmailSyncPage = {
    api: API,
    t: t,
    nf: nf,
    when: when,
    onLanguage: function (fn) { el.lang.addEventListener('change', fn); },
    // the mailbox view: fn(signedIn) after each /status on load, fn(task) when a sync succeeds
    onStatus: function (fn) { listeners.status.push(fn); },
    onSynced: function (fn) { listeners.synced.push(fn); },
    lang: function () { return S.lang; }
  };

  readOAuthResult();
  setLanguage(pickLanguage(), false);
  loadStatus();
})();

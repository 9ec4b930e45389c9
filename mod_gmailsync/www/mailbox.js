/* mailbox.js -- the synced mail, under the sync panel:
 *   GET {prefix}/messages?q=&limit=&cursor=   the list, newest first, or a search (keyset pages:
 *                                             "More" asks for next_cursor)
 *   GET {prefix}/labels                       the label filter (choosing one searches label:"Name")
 * A row is a link to the message view (#message/{id}, message.js); its Back link comes back here,
 * to the row. The snippet's matched words are <mark> elements made from the answer's `highlight`
 * segments with DOM calls: no server text ever goes through innerHTML. A 400 problem (a query the
 * language does not know) shows its detail; a 422 asks to narrow the search. The list is loaded
 * again when a sync succeeds. Strings come from i18n.js through app.js (window.GmailSyncPage).
 */
'use strict';

(function () {
  var page = window.GmailSyncPage;
  var t = page.t;
  var PAGE = 25;
  var SYSTEM_ORDER = ['INBOX', 'STARRED', 'IMPORTANT', 'SENT', 'DRAFT', 'SPAM', 'TRASH', 'UNREAD',
                      'CATEGORY_PERSONAL', 'CATEGORY_SOCIAL', 'CATEGORY_PROMOTIONS',
                      'CATEGORY_UPDATES', 'CATEGORY_FORUMS', 'CHAT'];
  var LABEL_TERM = /(^|\s)label:("[^"]*"|\S+)/gi;

  var $ = function (id) { return document.getElementById(id); };
  var el = {
    card: $('mail-card'), form: $('mail-search'), q: $('mail-q'), label: $('mail-label'),
    error: $('mail-error'), errorTitle: $('mail-error-title'), errorText: $('mail-error-text'),
    count: $('mail-count'), list: $('mail-list'), more: $('mail-more'), back: $('message-back')
  };

  var L = {
    signedIn: null,    // from app.js's /status
    q: '',             // the query of the rows shown
    rows: [],          // the messages shown (JSON)
    next: null,        // next_cursor
    labels: [],        // GET /labels
    failure: null,     // {status, title, detail} of the last request that failed
    loading: false,
    request: 0,        // answers to an older request are dropped
    opened: null       // the id of the message opened from the list
  };

  function get(path) {
    return fetch(page.api + path, {
      credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' }
    }).then(function (resp) {
      return resp.json().catch(function () { return null; }).then(function (json) {
        return { status: resp.status, json: json };
      });
    });
  }

  function clear(node) {
    while (node.firstChild) { node.removeChild(node.firstChild); }
  }

  function span(cls, text) {
    var s = document.createElement('span');
    s.className = cls;
    if (text !== undefined) { s.textContent = text; }
    return s;
  }

  // A system label by its words (INBOX: "Inbox"), a user label by its name.
  function labelName(name) {
    var key = 'mail_sys_' + name;
    var s = t(key);
    return s === key ? name : s;
  }

  // ------------------------------------------------------------------ the list
  function query(q, cursor) {
    var params = 'limit=' + PAGE;
    if (q) { params += '&q=' + encodeURIComponent(q); }
    if (cursor) { params += '&cursor=' + encodeURIComponent(cursor); }
    return get('/messages?' + params);
  }

  // A new list (a search, a label, a sync that ended): replaces the rows.
  function load(q) {
    var request = ++L.request;
    L.loading = true;
    render();
    query(q, null).then(function (r) {
      if (request !== L.request) { return; }
      L.loading = false;
      if (r.status === 200 && r.json && Array.isArray(r.json.messages)) {
        L.q = q;
        L.rows = r.json.messages;
        L.next = r.json.next_cursor || null;
        L.failure = null;
      } else {
        L.q = q;
        L.rows = [];
        L.next = null;
        L.failure = problem(r);
      }
      render();
      announce();
    }, function () {
      if (request !== L.request) { return; }
      L.loading = false;
      L.rows = [];
      L.next = null;
      L.failure = { status: 0 };
      render();
      announce();
    });
  }

  // "More": the next page after the last row; the focus goes to the first new row.
  function more() {
    if (!L.next || L.loading) { return; }
    var request = ++L.request;
    var first = L.rows.length;
    L.loading = true;
    el.more.setAttribute('aria-busy', 'true');
    query(L.q, L.next).then(function (r) {
      if (request !== L.request) { return; }
      L.loading = false;
      el.more.removeAttribute('aria-busy');
      if (r.status === 200 && r.json && Array.isArray(r.json.messages)) {
        L.rows = L.rows.concat(r.json.messages);
        L.next = r.json.next_cursor || null;
        L.failure = null;
        render();
        announce();
        var link = el.list.querySelectorAll('a.mail-row')[first];
        if (link) { link.focus(); } else { el.q.focus(); }
      } else {
        L.failure = problem(r);
        render();
      }
    }, function () {
      if (request !== L.request) { return; }
      L.loading = false;
      el.more.removeAttribute('aria-busy');
      L.failure = { status: 0 };
      render();
    });
  }

  function problem(r) {
    var j = r.json || {};
    return { status: r.status, title: typeof j.title === 'string' ? j.title : '',
             detail: typeof j.detail === 'string' ? j.detail : '' };
  }

  // ------------------------------------------------------------------ drawing
  function snippet(m) {
    var p = span('mail-snippet');
    var segs = Array.isArray(m.highlight) ? m.highlight : [];
    if (!segs.length) {
      p.textContent = m.snippet || '';
      return p;
    }
    segs.forEach(function (s) {
      var text = typeof s.text === 'string' ? s.text : '';
      if (s.match) {
        var mark = document.createElement('mark');
        mark.textContent = text;
        p.appendChild(mark);
      } else {
        p.appendChild(document.createTextNode(text));
      }
    });
    return p;
  }

  function row(m) {
    var li = document.createElement('li');
    var a = document.createElement('a');
    a.className = 'mail-row' + (m.unread ? ' unread' : '');
    a.href = '#message/' + encodeURIComponent(m.id);
    a.setAttribute('data-id', m.id);
    a.setAttribute('data-testid', 'mail-row');
    var head = span('mail-head');
    var from = m.from ? (m.from.name || m.from.address || '') : '';
    head.appendChild(span('mail-from', from || t('mail_no_sender')));
    var date = document.createElement('time');
    date.className = 'mail-date';
    if (m.date) { date.setAttribute('datetime', m.date); }
    date.textContent = page.when(m.date);
    head.appendChild(date);
    a.appendChild(head);
    var subject = span('mail-subject', m.subject || t('message_no_subject'));
    if (m.unread) { subject.appendChild(span('visually-hidden', ' (' + t('mail_unread') + ')')); }
    a.appendChild(subject);
    a.appendChild(snippet(m));
    var facts = span('mail-facts');
    if (m.has_attachments) {
      var clip = span('mail-attachment', t('mail_attachment'));
      clip.setAttribute('data-testid', 'mail-attachment');
      facts.appendChild(clip);
    }
    if (m.starred) { facts.appendChild(span('mail-label-chip', t('mail_starred'))); }
    (m.labels || []).forEach(function (name) {
      if (name === 'UNREAD' || name === 'STARRED') { return; }
      facts.appendChild(span('mail-label-chip', labelName(name)));
    });
    if (facts.firstChild) { a.appendChild(facts); }
    a.addEventListener('click', function () { L.opened = m.id; });
    li.appendChild(a);
    return li;
  }

  function renderError() {
    var f = L.failure;
    el.error.hidden = !f;
    el.q.removeAttribute('aria-invalid');
    el.q.setAttribute('aria-describedby', 'mail-q-help');
    if (!f) { return; }
    if (f.status === 400) {
      el.errorTitle.textContent = t('mail_bad_query');
      el.errorText.textContent = f.detail || f.title || t('mail_bad_query_text');
      el.q.setAttribute('aria-invalid', 'true');
      el.q.setAttribute('aria-describedby', 'mail-error-text mail-q-help');
    } else if (f.status === 422) {
      el.errorTitle.textContent = t('mail_too_expensive');
      el.errorText.textContent = t('mail_too_expensive_text');
      el.q.setAttribute('aria-describedby', 'mail-error-text mail-q-help');
    } else {
      el.errorTitle.textContent = t('mail_failed');
      el.errorText.textContent = f.status === 401 ? t('http_401')
        : f.status ? t('http_other', { status: f.status }) : t('network');
    }
  }

  function countText() {
    if (L.signedIn === false) { return t('http_401'); }
    if (L.loading && !L.rows.length) { return t('mail_loading'); }
    if (L.failure && !L.rows.length) { return ''; }
    var n = L.rows.length;
    if (!n) { return L.q ? t('mail_none_found') : t('mail_empty'); }
    var key = L.q ? (L.next ? 'mail_found_more' : 'mail_found') : (L.next ? 'mail_shown_more' : 'mail_shown');
    return t(key, { n: page.nf(n) });
  }

  function render() {
    // a list drawn again under the focus (a sync ended): the focus stays on the same message,
    // or goes to the search box when that message is gone
    var active = document.activeElement;
    var focused = active && el.list.contains(active) ? active.getAttribute('data-id') : null;
    var onMore = active === el.more;
    el.card.setAttribute('data-state', L.loading ? 'loading' : L.failure ? 'failed' : 'loaded');
    renderError();
    clear(el.list);
    L.rows.forEach(function (m) { el.list.appendChild(row(m)); });
    el.list.hidden = !el.list.firstChild;
    el.more.hidden = !L.next || !!L.failure;
    if (focused !== null || (onMore && el.more.hidden)) {
      ((focused !== null && rowLink(focused)) || el.q).focus({ preventScroll: true });
    }
  }

  // The count is said once per list (the status region is polite); a failure is said with it.
  function announce() {
    var text = countText();
    if (L.failure) { text = (el.errorTitle.textContent + '. ' + el.errorText.textContent + ' ' + text).trim(); }
    el.count.textContent = text;
  }

  function renderLabels() {
    var chosen = el.label.value;
    while (el.label.options.length > 1) { el.label.remove(1); }
    var system = L.labels.filter(function (l) { return l.type === 'system' && l.messages > 0; });
    var user = L.labels.filter(function (l) { return l.type !== 'system'; });
    system.sort(function (a, b) {
      var x = SYSTEM_ORDER.indexOf(a.name), y = SYSTEM_ORDER.indexOf(b.name);
      return (x < 0 ? 99 : x) - (y < 0 ? 99 : y);
    });
    user.sort(function (a, b) { return a.name.localeCompare(b.name, page.lang()); });
    [[system, 'mail_system_labels'], [user, 'mail_user_labels']].forEach(function (group) {
      if (!group[0].length) { return; }
      var og = document.createElement('optgroup');
      og.label = t(group[1]);
      group[0].forEach(function (l) {
        var o = document.createElement('option');
        o.value = l.name;
        o.textContent = t('mail_label_option', { name: labelName(l.name), n: page.nf(l.messages || 0) });
        og.appendChild(o);
      });
      el.label.appendChild(og);
    });
    el.label.value = chosen;
    if (el.label.value !== chosen) { el.label.value = ''; }
  }

  function loadLabels() {
    get('/labels').then(function (r) {
      if (r.status === 200 && r.json && Array.isArray(r.json.labels)) {
        L.labels = r.json.labels.filter(function (l) { return l && typeof l.name === 'string'; });
        renderLabels();
      }
    }, function () { /* the filter keeps what it had */ });
  }

  // ------------------------------------------------------------------ the label filter
  // label:"Name" takes the place of any label: term in the box; the box shows the whole query.
  function withLabel(q, name) {
    var rest = q.replace(LABEL_TERM, ' ').replace(/\s+/g, ' ').trim();
    if (!name) { return rest; }
    var term = 'label:"' + name + '"';
    return rest ? rest + ' ' + term : term;
  }

  function search(q) {
    q = q.trim();
    el.q.value = q;
    load(q);
  }

  // ------------------------------------------------------------------ wiring
  el.form.addEventListener('submit', function (e) {
    e.preventDefault();
    var m = /(?:^|\s)label:"([^"]*)"/i.exec(el.q.value);
    el.label.value = m ? m[1] : '';
    if (el.label.value !== (m ? m[1] : '')) { el.label.value = ''; }
    search(el.q.value);
  });
  el.label.addEventListener('change', function () {
    search(withLabel(el.q.value, el.label.value));
  });
  el.more.addEventListener('click', more);

  function rowLink(id) {
    return el.list.querySelector('a.mail-row[data-id="' + CSS.escape(id) + '"]');
  }

  // Back from a message opened here (its Back link, or the browser's): to the list, on its row
  // (after message.js has closed the view and shown the cards again).
  function backToList() {
    var id = L.opened;
    L.opened = null;
    backLabel();
    if (!id) { return; }
    setTimeout(function () { (rowLink(id) || el.q).focus(); }, 0);
  }
  el.back.addEventListener('click', backToList);
  // The message view's Back link names where it goes: here when the message was opened here.
  window.addEventListener('hashchange', function () {
    var m = /^#message\/([^/]+)$/.exec(window.location.hash);
    var id = null;
    if (m) { try { id = decodeURIComponent(m[1]); } catch (e) { id = m[1]; } }
    if (!m) { backToList(); return; }
    if (id !== L.opened) { L.opened = null; }
    backLabel();
  });
  function backLabel() {
    var key = L.opened ? 'mail_back' : 'message_back';
    el.back.setAttribute('data-i18n', key);
    el.back.textContent = t(key);
  }

  // /status on load, and again after a Disconnect (which may have deleted the messages)
  page.onStatus(function (signedIn) {
    L.signedIn = signedIn;
    if (!signedIn) { L.request++; L.rows = []; L.next = null; L.loading = false; render(); announce(); return; }
    if (!L.rows.length) { el.count.textContent = t('mail_loading'); }
    loadLabels();
    load(L.q);
  });
  page.onSynced(function () {
    if (L.signedIn) { loadLabels(); load(L.q); }
  });
  page.onLanguage(function () {
    render();
    renderLabels();
    el.count.textContent = '';
    announce();
    backLabel();
  });
  render();
})();

/* message.js -- one synced message, at the address #message/{id}:
 *   GET {prefix}/messages/{id}                       the message (envelope, headers, bodies)
 *   {prefix}/messages/{id}/attachments/{n}           the attachment links (downloads)
 * The text body is text. The HTML body is shown only in an iframe sandboxed without
 * allow-scripts and allow-same-origin (its scripts never run, it reaches nothing of this site),
 * through srcdoc, with a Content-Security-Policy of its own that allows data: images only, until
 * the user asks for the remote ones ("Show remote images"): then it is drawn again with http:
 * and https: images allowed. The frame also inherits the page's policy (style-src 'self': the
 * mail's own styles are not applied). Strings come from i18n.js through app.js
 * (window.GmailSyncPage).
 */
'use strict';

(function () {
  var page = window.GmailSyncPage;
  var t = page.t;
  var ROLES = ['from', 'to', 'cc', 'bcc', 'reply_to'];
  var FRAME_POLICY = "default-src 'none'; img-src data:";
  var FRAME_POLICY_IMAGES = "default-src 'none'; img-src data: https: http:";

  var $ = function (id) { return document.getElementById(id); };
  var el = {
    view: $('message-view'), back: $('message-back'), subject: $('message-subject'),
    status: $('message-status'), body: $('message-body'), envelope: $('message-envelope'),
    headers: $('message-headers'), textBlock: $('message-text-block'), text: $('message-text'),
    textCut: $('message-text-cut'), htmlBlock: $('message-html-block'),
    frameSlot: $('message-html-slot'),
    htmlCut: $('message-html-cut'), imagesNote: $('message-images-note'),
    images: $('message-images'), empty: $('message-empty'),
    attachmentsBlock: $('message-attachments-block'), attachments: $('message-attachments'),
    announcer: $('announcer'), sync: $('sync')
  };

  // The frame exists only while a message with HTML is shown (an empty sandboxed frame in the
  // page would be one more document for nothing). No allow-scripts, no allow-same-origin: the
  // mail's HTML runs nothing and reaches nothing of this site; its links may open a new tab.
  function frame() {
    var f = document.getElementById('message-html');
    if (!f) {
      f = document.createElement('iframe');
      f.id = 'message-html';
      f.className = 'message-html';
      f.setAttribute('sandbox', 'allow-popups allow-popups-to-escape-sandbox');
      f.setAttribute('referrerpolicy', 'no-referrer');
      f.setAttribute('data-testid', 'message-html');
      el.frameSlot.appendChild(f);
    }
    return f;
  }

  function dropFrame() {
    clear(el.frameSlot);
  }

  var M = {
    id: null,          // the id of the address
    msg: null,         // the message JSON, once loaded
    failure: null,     // {status} when it could not be loaded
    images: false,     // remote images allowed for this message
    inline: {},        // its inline images: {cid key: data URL}
    request: 0         // answers to an older request are dropped
  };

  // ------------------------------------------------------------------ formats
  function size(n) {
    if (n < 1024) { return t('message_bytes', { n: page.nf(n) }); }
    if (n < 1024 * 1024) { return t('message_kib', { n: (n / 1024).toFixed(1) }); }
    return t('message_mib', { n: (n / 1048576).toFixed(1) });
  }

  function person(a) {
    return a.name ? a.name + ' <' + a.address + '>' : a.address;
  }

  function clear(node) {
    while (node.firstChild) { node.removeChild(node.firstChild); }
  }

  function row(dl, name, value) {
    var dt = document.createElement('dt');
    var dd = document.createElement('dd');
    dt.textContent = name;
    dd.textContent = value;
    dl.appendChild(dt);
    dl.appendChild(dd);
  }

  // The frame's document: our policy and referrer rule come before any of the mail's markup
  // (a policy can only be tightened by a later one, never loosened), links open a new tab.
  function frameDocument(html, images) {
    return '<!DOCTYPE html><html><head><meta charset="utf-8">'
      + '<meta http-equiv="Content-Security-Policy" content="'
      + (images ? FRAME_POLICY_IMAGES : FRAME_POLICY) + '">'
      + '<meta name="referrer" content="no-referrer"><base target="_blank"></head><body>'
      + html + '</body></html>';
  }

  // ------------------------------------------------------------------ inline images
  // An HTML body names its inline images by Content-ID (cid:, RFC 2392). The frame can fetch
  // nothing of this site (it has no origin of its own, nor the session cookie), so the page
  // fetches the stored ones and the HTML gets them as data: URLs, which its policy allows.
  var CID = /cid:([^"'\s)>]+)/gi;
  var INLINE_MAX_BYTES = 2 * 1024 * 1024;
  var INLINE_MAX_COUNT = 50;
  var INLINE_WAIT_MS = 10000;

  function cidKey(text) {
    var s;
    try { s = decodeURIComponent(text); } catch (e) { s = text; }
    return s.toLowerCase();
  }

  function dataUrl(blob, type) {
    return new Promise(function (resolve) {
      var reader = new FileReader();
      reader.onload = function () { resolve(reader.result); };
      reader.onerror = function () { resolve(null); };
      reader.readAsDataURL(new Blob([blob], { type: type }));
    });
  }

  // {cid key: data URL} of the stored images the HTML names; never waits more than
  // INLINE_WAIT_MS (what has not arrived by then stays out).
  function loadInlineImages(m, id) {
    var named = {}, found, out = {};
    if (typeof m.html_body !== 'string') { return Promise.resolve(out); }
    CID.lastIndex = 0;
    while ((found = CID.exec(m.html_body))) { named[cidKey(found[1])] = true; }
    var wanted = (m.attachments || []).filter(function (a) {
      return a.stored && a.content_id && named[cidKey(a.content_id)] && a.size <= INLINE_MAX_BYTES
        && /^image\/(png|jpeg|gif|webp|bmp)$/.test(a.mime_type);
    }).slice(0, INLINE_MAX_COUNT);
    var all = Promise.all(wanted.map(function (a) {
      return fetch(page.api + '/messages/' + encodeURIComponent(id) + '/attachments/' + a.n,
                   { credentials: 'same-origin', cache: 'no-store' })
        .then(function (resp) { return resp.ok ? resp.blob() : null; })
        .then(function (blob) { return blob ? dataUrl(blob, a.mime_type) : null; })
        .then(function (url) { if (url) { out[cidKey(a.content_id)] = url; } },
              function () { /* that image stays out */ });
    }));
    return Promise.race([all, new Promise(function (r) { setTimeout(r, INLINE_WAIT_MS); })])
      .then(function () { return out; });
  }

  function withInlineImages(html) {
    return html.replace(CID, function (whole, name) { return M.inline[cidKey(name)] || whole; });
  }

  // ------------------------------------------------------------------ drawing
  function renderEnvelope(m) {
    clear(el.envelope);
    var env = m.envelope || {};
    var written = m.as_written || {};
    ROLES.forEach(function (role) {
      var list = env[role] || [];
      var value = list.length ? list.map(person).join(', ') : written[role];
      if (value) { row(el.envelope, t('message_' + role), value); }
    });
    row(el.envelope, t('message_date'), page.when(m.date_header || m.date));
    if (m.labels && m.labels.length) { row(el.envelope, t('message_labels'), m.labels.join(', ')); }
  }

  function renderHeaders(m) {
    clear(el.headers);
    (m.headers || []).forEach(function (h) { row(el.headers, h[0], h[1]); });
  }

  function renderBodies(m) {
    var hasText = typeof m.text_body === 'string';
    var hasHtml = typeof m.html_body === 'string';
    el.textBlock.hidden = !hasText;
    el.text.textContent = hasText ? m.text_body : '';
    el.text.setAttribute('aria-label', t('message_text_heading'));
    el.textCut.hidden = !(m.truncated && m.truncated.text);
    el.textCut.textContent = hasText ? t('message_cut', { n: page.nf(m.text_body.length) }) : '';
    el.htmlBlock.hidden = !hasHtml;
    if (hasHtml) {
      var f = frame();
      var doc = frameDocument(withInlineImages(m.html_body), M.images);
      f.setAttribute('title', t('message_html_frame'));
      if (f.srcdoc !== doc) { f.srcdoc = doc; }
    } else {
      dropFrame();
    }
    el.htmlCut.hidden = !(m.truncated && m.truncated.html);
    el.htmlCut.textContent = hasHtml ? t('message_cut', { n: page.nf(m.html_body.length) }) : '';
    el.imagesNote.textContent = t(M.images ? 'message_images_shown' : 'message_images_blocked');
    el.images.hidden = M.images;
    el.empty.hidden = hasText || hasHtml;
  }

  function renderAttachments(m) {
    clear(el.attachments);
    var list = m.attachments || [];
    el.attachmentsBlock.hidden = !list.length;
    list.forEach(function (a) {
      var li = document.createElement('li');
      var name = a.filename || 'attachment-' + a.n;
      var facts = t('message_attachment_size', { type: a.mime_type, size: size(a.size) });
      if (a.stored) {
        var link = document.createElement('a');
        link.href = page.api + '/messages/' + encodeURIComponent(M.id) + '/attachments/' + a.n;
        link.setAttribute('download', name);
        link.setAttribute('data-testid', 'attachment-' + a.n);
        link.textContent = name;
        li.appendChild(link);
      } else {
        li.appendChild(document.createTextNode(name));
        facts += ', ' + t('message_attachment_not_stored');
      }
      li.appendChild(document.createTextNode(' (' + facts + ')'));
      el.attachments.appendChild(li);
    });
  }

  function render() {
    var m = M.msg;
    el.view.setAttribute('data-state', m ? 'loaded' : M.failure ? 'failed' : 'loading');
    if (!m) {
      el.body.hidden = true;
      dropFrame();
      if (M.failure && M.failure.status === 404) {
        el.subject.textContent = t('message_not_found');
        el.status.textContent = t('message_not_found_text');
      } else if (M.failure) {
        el.subject.textContent = t('message_not_found');
        el.status.textContent = M.failure.status === 401 ? t('http_401')
          : M.failure.status ? t('message_error', { status: M.failure.status }) : t('network');
      } else {
        el.subject.textContent = t('message_loading');
        el.status.textContent = '';
      }
      return;
    }
    el.subject.textContent = m.subject || t('message_no_subject');
    el.status.textContent = '';
    renderEnvelope(m);
    renderHeaders(m);
    renderBodies(m);
    renderAttachments(m);
    el.body.hidden = false;
  }

  // ------------------------------------------------------------------ opening and closing
  function otherCards() {
    return Array.prototype.filter.call(document.querySelectorAll('main > section.card'),
                                       function (s) { return s !== el.view; });
  }

  function open(id) {
    var request = ++M.request;
    M.id = id;
    M.msg = null;
    M.failure = null;
    M.images = false;
    M.inline = {};
    otherCards().forEach(function (s) { s.hidden = true; });
    el.view.hidden = false;
    render();
    el.subject.focus({ preventScroll: false });
    fetch(page.api + '/messages/' + encodeURIComponent(id), {
      credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' }
    }).then(function (resp) {
      return resp.json().catch(function () { return null; }).then(function (json) {
        if (request !== M.request) { return; }
        if (resp.status !== 200 || !json) {
          M.failure = { status: resp.status };
          el.announcer.textContent = t('message_not_found');
          render();
          return;
        }
        return loadInlineImages(json, id).then(function (inline) {
          if (request !== M.request) { return; }
          M.msg = json;
          M.inline = inline;
          el.announcer.textContent = t('message_opened', { subject: json.subject || t('message_no_subject') });
          render();
        });
      });
    }, function () {
      if (request !== M.request) { return; }
      M.failure = { status: 0 };
      render();
    });
  }

  function close() {
    var wasOpen = !el.view.hidden;
    M.request++;
    M.id = null;
    M.msg = null;
    el.view.hidden = true;
    dropFrame();
    otherCards().forEach(function (s) { s.hidden = false; });
    if (wasOpen) { el.sync.focus({ preventScroll: true }); }
  }

  function route() {
    var m = /^#message\/([^/]+)$/.exec(window.location.hash);
    if (!m) { close(); return; }
    var id;
    try { id = decodeURIComponent(m[1]); } catch (e) { id = m[1]; }
    if (id !== M.id) { open(id); }
  }

  el.images.addEventListener('click', function () {
    M.images = true;
    render();
    el.imagesNote.setAttribute('tabindex', '-1');
    el.imagesNote.focus({ preventScroll: true });
  });
  el.back.addEventListener('click', function (e) {
    e.preventDefault();
    if (window.history && window.history.pushState) {
      window.history.pushState(null, '', window.location.pathname + window.location.search);
    } else {
      window.location.hash = '';
    }
    close();
  });
  page.onLanguage(function () { if (M.id) { render(); } });
  window.addEventListener('hashchange', route);
  route();
})();

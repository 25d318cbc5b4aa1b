// heatbill's console: the little the pages need beyond htmx, in a file (the Content-Security-
// Policy allows no inline script). Every behaviour is declared in the HTML with data- attributes.
(function () {
  'use strict';

  // [data-print]: prints the page (a receipt, a notice).
  document.addEventListener('click', function (e) {
    var t = e.target.closest('[data-print]');
    if (t) {
      e.preventDefault();
      window.print();
    }
  });

  // [data-confirm="question"] on a form: asks before it is sent.
  document.addEventListener('submit', function (e) {
    var q = e.target.getAttribute('data-confirm');
    if (q && !window.confirm(q)) {
      e.preventDefault();
    }
  });

  // form[data-upload]: sends its file as the request's body (as the API takes it, so an import
  // streams), with the form's other fields as the query and the CSRF token in X-CSRF-Token;
  // the server's answer (a fragment) is shown in [data-target]. data-name-param="p" sends the
  // file's name as ?p=; data-type is the body's content type (else the file's, by extension).
  // An answer with X-Console-Go moves to that page (a statement reconciled, a plugin stored).
  var typeOf = function (form, file) {
    var given = form.getAttribute('data-type');
    if (given) { return given; }
    var name = file.name.toLowerCase();
    if (/\.(jsonl|ndjson)$/.test(name)) { return 'application/x-ndjson'; }
    if (/\.json$/.test(name)) { return 'application/json'; }
    if (/\.csv$/.test(name)) { return 'text/csv'; }
    return file.type || 'application/octet-stream';
  };
  document.addEventListener('submit', function (e) {
    var form = e.target;
    if (!form.hasAttribute('data-upload') || e.defaultPrevented) { return; }
    e.preventDefault();
    var input = form.querySelector('input[type=file]');
    var file = input && input.files[0];
    var target = document.querySelector(form.getAttribute('data-target'));
    if (!file || !target) { return; }
    var csrf = '';
    var query = new URLSearchParams();
    new FormData(form).forEach(function (v, k) {
      if (k === '_csrf') { csrf = v; } else if (typeof v === 'string' && v !== '') { query.append(k, v); }
    });
    var nameParam = form.getAttribute('data-name-param');
    if (nameParam) { query.set(nameParam, file.name); }
    var url = form.getAttribute('action') + (query.toString() ? '?' + query.toString() : '');
    var wait = form.querySelector('.upload-wait');
    var button = form.querySelector('button[type=submit]');
    if (wait) { wait.hidden = false; }
    if (button) { button.disabled = true; }
    form.setAttribute('aria-busy', 'true');
    fetch(url, {
      method: 'POST',
      body: file,
      credentials: 'same-origin',
      headers: { 'X-CSRF-Token': csrf, 'Content-Type': typeOf(form, file) }
    }).then(function (r) {
      var go = r.headers.get('X-Console-Go');
      // The session ended (expired, signed out elsewhere, token revoked): to the sign-in page.
      if (r.redirected && r.url.indexOf('/console/sign-in') !== -1) {
        window.location.assign(r.url);
        return;
      }
      return r.text().then(function (text) {
        if (go && go.indexOf('/console/') === 0) {
          window.location.assign(go);
          return;
        }
        // A refusal before the upload's own handler (a forged or stale form) is the console's
        // error page: its content is shown, not a page inside the page.
        if (/^\s*<!doctype/i.test(text)) {
          var main = new DOMParser().parseFromString(text, 'text/html').querySelector('main');
          target.replaceChildren.apply(target, main ? Array.prototype.map.call(
            main.childNodes, function (n) { return document.importNode(n, true); }) : []);
          return;
        }
        target.innerHTML = text;
      });
    }, function (err) {
      target.textContent = String(err);
    }).then(function () {
      if (wait) { wait.hidden = true; }
      if (button) { button.disabled = false; }
      form.removeAttribute('aria-busy');
    });
  });

  // [data-events="url"]: a run's progress over server-sent events. Each `progress` event is
  // the run's JSON view; elements marked [data-field="name"] show its fields, a <progress
  // data-field="shards_done"> its shards. On `finished` the page reloads with the report.
  function follow(el) {
    var source = new EventSource(el.getAttribute('data-events'));
    var show = function (data) {
      var v;
      try { v = JSON.parse(data); } catch (_) { return; }
      el.querySelectorAll('[data-field]').forEach(function (f) {
        var name = f.getAttribute('data-field');
        if (v[name] === undefined || v[name] === null) { return; }
        if (f.tagName === 'PROGRESS') {
          f.max = v.shards || 1;
          f.value = v[name];
        } else if (typeof v[name] === 'number' && !Number.isInteger(v[name])) {
          f.textContent = v[name].toFixed(1);
        } else {
          f.textContent = String(v[name]);
        }
      });
    };
    source.addEventListener('progress', function (e) { show(e.data); });
    source.addEventListener('finished', function (e) {
      show(e.data);
      source.close();
      window.location.reload();
    });
    source.onerror = function () {
      // The stream ended or the server went away: the page as it is says where the run stood.
      source.close();
      el.setAttribute('data-stream', 'closed');
    };
  }
  document.querySelectorAll('[data-events]').forEach(follow);
})();

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

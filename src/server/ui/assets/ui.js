// coflow run history: live refresh. Pages read fine without it; it only keeps them current.
// - <main data-poll="/runs/{id}/state" data-state="running/3">: polls the run's state and
//   reloads the content when it differs from the one rendered (an action completed, the run ended).
// - <main data-refresh="N">: reloads the content every N seconds (the sandbox view).
// Content is swapped in place, keeping open <details>, focus and scroll position.
(function () {
  "use strict";

  function openDetails(root) {
    return Array.from(root.querySelectorAll("details[id][open]")).map(function (d) { return d.id; });
  }

  function swap(doc) {
    var main = document.getElementById("main");
    var fresh = doc.getElementById("main");
    if (!main || !fresh) { return; }
    var opened = openDetails(main);
    var focused = document.activeElement && document.activeElement.id;
    main.innerHTML = fresh.innerHTML;
    ["data-poll", "data-state", "data-refresh"].forEach(function (name) {
      if (fresh.hasAttribute(name)) { main.setAttribute(name, fresh.getAttribute(name)); } else { main.removeAttribute(name); }
    });
    opened.forEach(function (id) {
      var d = document.getElementById(id);
      if (d) { d.open = true; }
    });
    if (focused) {
      var f = document.getElementById(focused);
      if (f) { f.focus({ preventScroll: true }); }
    }
    document.title = doc.title;
  }

  function reload() {
    return fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html) { swap(new DOMParser().parseFromString(html, "text/html")); }
      });
  }

  function poll(rendered) {
    var main = document.getElementById("main");
    var url = main && main.getAttribute("data-poll");
    if (!url) { return; }
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (state) {
        if (state && state.status + "/" + state.actions !== rendered) {
          return reload().then(function () {
            var fresh = document.getElementById("main");
            return fresh ? fresh.getAttribute("data-state") : rendered;
          });
        }
        return rendered;
      })
      .catch(function () { return rendered; })
      .then(function (key) { window.setTimeout(function () { poll(key); }, 1000); });
  }

  function refresh() {
    var main = document.getElementById("main");
    var seconds = main && Number(main.getAttribute("data-refresh"));
    if (!seconds) { return; }
    window.setTimeout(function () { reload().catch(function () {}).then(refresh); }, seconds * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var main = document.getElementById("main");
    poll(main ? main.getAttribute("data-state") : null);
    refresh();
  });
})();

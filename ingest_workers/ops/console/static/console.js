// Refreshes the page in place: fetches the same address every few seconds and swaps the <main>
// element, so the scroll position (and the open samples) stay where the reader left them.
(function () {
  "use strict";
  var seconds = Number(document.body.getAttribute("data-refresh")) || 10;
  var refreshed = 0;
  function openIds() {
    return Array.prototype.map.call(document.querySelectorAll("details[open][id]"), function (d) { return d.id; });
  }
  function refresh() {
    fetch(window.location.href, {headers: {"Accept": "text/html"}, cache: "no-store"})
      .then(function (answer) { return answer.text(); })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html").querySelector("main");
        var main = document.querySelector("main");
        if (!fresh || !main) { return; }
        var keep = openIds();
        main.replaceWith(fresh);
        keep.forEach(function (id) { var d = document.getElementById(id); if (d) { d.open = true; } });
        refreshed += 1;
        document.body.setAttribute("data-refreshed", String(refreshed));  // how many swaps: for tests
      })
      .catch(function () { /* the next refresh tries again */ })
      .finally(function () { window.setTimeout(refresh, seconds * 1000); });
  }
  window.setTimeout(refresh, seconds * 1000);
})();

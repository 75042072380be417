// Sort the results table by clicking a column header. Each image is one <tbody> (its row and its details), so
// rows and their details move together. Inputs without a risk (errors) stay at the bottom in both directions.
(function () {
  "use strict";
  var table = document.getElementById("results");
  if (!table) { document.body.setAttribute("data-ready", "1"); return; }
  var headers = Array.prototype.slice.call(table.querySelectorAll("thead th[data-key]"));

  function value(item, key, type) {
    var raw = item.getAttribute("data-" + key) || "";
    if (type !== "num") return raw.toLowerCase();
    var x = parseFloat(raw);
    return isNaN(x) ? -Infinity : x;
  }

  function sortBy(th, direction) {
    var key = th.getAttribute("data-key"), type = th.getAttribute("data-type");
    var items = Array.prototype.slice.call(table.querySelectorAll(":scope > tbody.item"));
    var sign = direction === "ascending" ? 1 : -1;
    items.forEach(function (item, i) { item._order = i; });
    items.sort(function (a, b) {
      var va = value(a, key, type), vb = value(b, key, type);
      var missA = type === "num" ? va < 0 : va === "", missB = type === "num" ? vb < 0 : vb === "";
      if (missA !== missB) return missA ? 1 : -1;
      if (va < vb) return -sign;
      if (va > vb) return sign;
      return a._order - b._order;  // stable
    });
    items.forEach(function (item) { table.appendChild(item); });
    headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", direction);
  }

  headers.forEach(function (th) {
    th.querySelector("button").addEventListener("click", function () {
      var now = th.getAttribute("aria-sort");
      var numeric = th.getAttribute("data-type") === "num";
      var next = now ? (now === "ascending" ? "descending" : "ascending") : (numeric ? "descending" : "ascending");
      sortBy(th, next);
    });
  });

  var initial = table.querySelector("thead th[data-key='risk']");
  if (initial) sortBy(initial, "descending");
  document.body.setAttribute("data-ready", "1");
})();

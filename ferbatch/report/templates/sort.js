document.querySelectorAll("table.sortable th[data-sort]").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var col = Array.prototype.indexOf.call(th.parentNode.children, th);
    var dir = th.getAttribute("data-dir") === "asc" ? -1 : 1, num = th.getAttribute("data-sort") === "num";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("data-dir"); h.removeAttribute("aria-sort"); });
    th.setAttribute("data-dir", dir === 1 ? "asc" : "desc");
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].getAttribute("data-v"), y = b.cells[col].getAttribute("data-v");
      if (num) {
        x = parseFloat(x); y = parseFloat(y);
        if (isNaN(x) || isNaN(y)) { return isNaN(x) - isNaN(y); }
        return (x - y) * dir;
      }
      return String(x).localeCompare(String(y)) * dir;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
// a link like index.html#sort=3 (or #sort=-3, descending) opens the page sorted by column 3
(function () {
  var m = /sort=(-?)([0-9]+)/.exec(location.hash), th;
  if (!m) { return; }
  th = document.querySelectorAll("table.sortable")[0].tHead.rows[0].cells[+m[2]];
  if (th && th.hasAttribute("data-sort")) { th.click(); if (m[1]) { th.click(); } }
})();

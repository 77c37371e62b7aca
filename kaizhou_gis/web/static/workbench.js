// kaizhou-gis web workbench: township picker and progress polling. Every text from the data goes
// into the page with textContent, never as HTML.
(function () {
  "use strict";

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  // township picker: name (contains), code, pinyin initials or full pinyin (starts with)
  function setupPicker() {
    var input = document.getElementById("tw-search");
    var list = document.getElementById("tw-results");
    var data = document.getElementById("tw-index");
    if (!input || !list || !data) { return; }
    var index = JSON.parse(data.textContent);
    var qs = document.getElementById("tw-query");
    var suffix = qs ? qs.value : "";
    function matches(t, q) {
      return t.name.toLowerCase().indexOf(q) >= 0 || t.code.indexOf(q) === 0 ||
             t.initials.indexOf(q) === 0 || t.pinyin.indexOf(q) === 0;
    }
    function render() {
      var q = input.value.replace(/\s+/g, "").toLowerCase();
      while (list.firstChild) { list.removeChild(list.firstChild); }
      var hits = index.filter(function (t) { return !q || matches(t, q); });
      hits.forEach(function (t) {
        var li = el("li", "kz-hit");
        var a = el("a");
        a.href = "/township/" + encodeURIComponent(t.code) + suffix;
        a.appendChild(document.createTextNode(t.name + " "));
        a.appendChild(el("span", "kz-code", t.code));
        a.appendChild(document.createTextNode(" "));
        a.appendChild(el("span", "en", t.initials));
        li.appendChild(a);
        list.appendChild(li);
      });
      if (!hits.length) { list.appendChild(el("li", "kz-none", "没有匹配的乡镇 No township matches")); }
    }
    input.addEventListener("input", render);
    input.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter") {
        var first = list.querySelector("a");
        if (first) { ev.preventDefault(); window.location.href = first.href; }
      }
    });
  }

  // progress of a run: poll until done, then reload the page (which then shows the results)
  function setupProgress() {
    var box = document.getElementById("progress");
    if (!box) { return; }
    var key = box.getAttribute("data-run");
    var fill = document.getElementById("progress-fill");
    var text = document.getElementById("progress-text");
    function poll() {
      fetch("/api/runs/" + encodeURIComponent(key), { cache: "no-store" })
        .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
        .then(function (p) {
          fill.style.width = p.percent + "%";
          text.textContent = p.step + "/" + p.steps + " " + (p.current || "排队中 queued");
          if (p.status === "done") { window.location.reload(); } else { window.setTimeout(poll, 500); }
        })
        .catch(function (e) {
          text.textContent = "连接中断，请刷新 connection lost, reload the page (" + e.message + ")";
        });
    }
    poll();
  }

  // the what-if button shows that a recompute was asked for
  function setupWhatIf() {
    var form = document.getElementById("whatif-form");
    if (!form) { return; }
    form.addEventListener("submit", function () {
      var b = document.getElementById("whatif-run");
      if (b) { b.disabled = true; b.textContent = "计算中… Computing…"; }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupPicker();
    setupProgress();
    setupWhatIf();
  });
}());

// The staff live dashboard (/sqal/live/): its websocket feed, served as a file so the page runs
// under the CSP. Translated words come from the page (data-msg-* on #sqal-status).
(function () {
  var statusEl = document.getElementById("sqal-status");
  var delay = 1000;
  function fragment(html) {
    var t = document.createElement("template"); t.innerHTML = html.trim(); return t.content.firstChild;
  }
  function apply(msg) {
    var stations = document.getElementById("sqal-stations");
    var empty = document.getElementById("sqal-no-station"); if (empty) empty.remove();
    msg.stations.forEach(function (s) {
      var node = fragment(s.html);
      var old = stations.querySelector('[data-device="' + CSS.escape(s.device_id) + '"]');
      if (old) {
        // The card shows the newest sample; earlier ones move to its list (5 at most).
        var list = node.querySelector(".sqal-recent");
        var previous = document.createElement("li");
        var badge = document.createElement("span");
        badge.className = "sqal-grade sqal-grade-" + old.dataset.grade.toLowerCase().replace("+", "");
        badge.textContent = old.dataset.grade;
        previous.appendChild(badge);
        previous.appendChild(document.createTextNode(" " + old.dataset.score + " · " + old.dataset.sample));
        if (old.dataset.sample !== node.dataset.sample) list.appendChild(previous);
        old.querySelectorAll(".sqal-recent li").forEach(function (li) { list.appendChild(li); });
        while (list.children.length > 5) list.removeChild(list.lastChild);
        old.replaceWith(node);
      } else {
        stations.appendChild(node);
      }
    });
    Object.keys(msg.grade_counts).forEach(function (g) {
      var li = document.querySelector('#sqal-counts [data-grade="' + CSS.escape(g) + '"] b');
      if (li) li.textContent = String(Number(li.textContent) + msg.grade_counts[g]);
    });
    var list = document.getElementById("sqal-alerts");
    msg.alerts.forEach(function (html) { list.insertBefore(fragment(html), list.firstChild); });
    while (list.children.length > 50) list.removeChild(list.lastChild);
    var count = document.getElementById("sqal-alert-count");
    if (msg.needs_html !== undefined) {
      // "What needs you now", read again by the server: counts updated in place, new groups,
      // alerts of refused samples. Its forms get this page's CSRF token.
      var needs = fragment(msg.needs_html);
      needs.querySelectorAll('input[name="csrfmiddlewaretoken"]').forEach(function (input) {
        input.value = document.body.dataset.csrf || "";
      });
      document.getElementById("sqal-needs").replaceWith(needs);
      count.textContent = String(msg.open_alert_count);
    } else {
      count.textContent = String(Number(count.textContent) + msg.alerts.length);
    }
  }
  function connect() {
    var proto = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(proto + location.host + "/ws/sensors/live/");
    ws.onopen = function () { statusEl.textContent = statusEl.dataset.msgLive; delay = 1000; };
    ws.onmessage = function (e) { apply(JSON.parse(e.data)); };
    ws.onclose = function () {
      statusEl.textContent = statusEl.dataset.msgRetry;
      setTimeout(connect, delay); delay = Math.min(delay * 2, 30000);
    };
  }
  connect();
})();

// The technician pages' live updates (kiosk/screens_tech.py). Everything also works without
// this script: the self-test page has a Refresh link, the inventory a Read button.
(function () {
  "use strict";
  var running = document.getElementById("selftest-running");
  if (running) {
    var step = document.getElementById("selftest-step");
    var poll = function () {
      fetch("/tech/selftest/status.json", { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (s) {
          if (!s) { return; }
          if (s.done || !s.running) { window.location.reload(); return; }
          if (step && step.textContent !== s.step) { step.textContent = s.step; }
          setTimeout(poll, 700);
        })
        .catch(function () { setTimeout(poll, 2000); });
    };
    setTimeout(poll, 700);
  }
  var auto = document.getElementById("auto");
  var result = document.getElementById("inventory-result");
  if (auto && auto.checked && result) {
    // the technician asked for it (and can untick it): read the antenna again every 3 s
    setTimeout(function () {
      if (auto.checked) { window.location.reload(); }
    }, 3000);
  }
})();

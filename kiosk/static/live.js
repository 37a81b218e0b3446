/* The touchscreen's live updates (kiosk/screens.py, kiosk/screens_reader.py). Our own, no
   library, served by the kiosk itself.

   Why so little: the server renders every page from the cabinet's state. On each event of
   /api/events this script fetches the same page again and swaps <main> (following the
   server's redirects: a session began, it ended …), so the page with JavaScript off (a
   meta refresh) shows exactly the same. Besides that it only:
   - speaks each event when the reader turned speech on (/screen/speech.wav, one at a time);
   - sounds a cue, louder at each step, when a door is left open;
   - counts down "need more time?" prompts, and sends a finished page back to the start. */
(function () {
  "use strict";
  var main = document.getElementById("main");
  if (!main) { return; }
  var live = main.dataset.live || "";
  var lang = main.dataset.lang === "en" ? "en" : "zh";
  var speech = main.dataset.speech === "on";
  var pending = null;
  var alarmLevel = 0;

  // ------------------------------------------------------------ refetch and swap
  function refresh() {
    if (pending) { clearTimeout(pending); }
    pending = setTimeout(function () {
      pending = null;
      fetch(location.pathname + location.search, { credentials: "same-origin" })
        .then(function (r) {
          if (r.redirected && r.url !== location.href) { location.href = r.url; return ""; }
          return r.text();
        })
        .then(function (text) { if (text) { swap(text); } })
        .catch(function () { /* the next event or the refresh fallback retries */ });
    }, 120);
  }

  function swap(text) {
    var doc = new DOMParser().parseFromString(text, "text/html");
    var fresh = doc.getElementById("main");
    if (!fresh) { return; }
    var focused = document.activeElement ? document.activeElement.id : "";
    var values = {};
    main.querySelectorAll("input[id]").forEach(function (el) {
      if (el.type !== "hidden") { values[el.id] = el.value; }
    });
    main.innerHTML = fresh.innerHTML;
    Object.keys(values).forEach(function (id) {
      var el = document.getElementById(id);
      if (el) { el.value = values[id]; }
    });
    var urgent = document.getElementById("more-time");
    var again = focused ? document.getElementById(focused) : null;
    if (urgent && focused !== "more-time") { urgent.focus(); }
    else if (again) { again.focus(); }
    countdowns();
    alarmCue();
  }

  // ------------------------------------------------------------ the event stream
  function onEvent(item) {
    say(item);
    if (item.key === "session.identifying") {
      if (live === "done") { location.href = "/screen/end?then=session"; return; }
      if (live === "idle" || live === "borrow") { location.href = "/screen/session"; return; }
    }
    refresh();
  }

  if (live && window.EventSource) {
    var after = parseInt(main.dataset.after || "0", 10);
    var url = "/api/events?named=false" + (after > 0 ? "&after=" + after : "");
    var source = new EventSource(url);
    source.onmessage = function (e) {
      try { onEvent(JSON.parse(e.data)); } catch (err) { /* not ours: ignore */ }
    };
  }

  // ------------------------------------------------------------ speech
  var queue = [];
  var speaking = false;

  function say(item) {
    if (!speech || !item || !item.text || !item.text[lang]) { return; }
    var q = ["key=" + encodeURIComponent(item.key), "lang=" + lang];
    var params = item.params || {};
    Object.keys(params).forEach(function (k) {
      var v = params[k];
      if (Array.isArray(v)) { q.push("count=" + v.length); return; }
      if (typeof v === "string" || typeof v === "number") {
        q.push(encodeURIComponent(k) + "=" + encodeURIComponent(v));
      }
    });
    // fetched at once (the engine needs a moment), played one after another
    var audio = new Audio("/screen/speech.wav?" + q.join("&"));
    audio.preload = "auto";
    audio.load();
    queue.push(audio);
    next();
  }

  function next() {
    if (speaking || !queue.length) { return; }
    speaking = true;
    var audio = queue.shift();
    var finished = false;
    var done = function () {
      if (finished) { return; }
      finished = true;
      clearTimeout(watchdog);
      speaking = false;
      next();
    };
    // a clip that never ends (no sound device, a stalled fetch) must not silence the rest
    var watchdog = setTimeout(done, 10000);
    audio.onended = done;
    audio.onerror = done;
    var played = audio.play();
    if (played && played.catch) { played.catch(done); }
  }

  // ------------------------------------------------------------ door-left-open cue
  function alarmCue() {
    var level = 0;
    document.querySelectorAll(".alarm[data-level]").forEach(function (el) {
      level = Math.max(level, parseInt(el.dataset.level, 10) || 0);
    });
    if (level > alarmLevel) { beep(level); }
    alarmLevel = level;
    document.documentElement.dataset.alarmLevel = String(level);
  }

  function beep(level) {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) { return; }
    try {
      var ctx = new Ctx();
      var count = Math.min(level, 3);
      for (var i = 0; i < count; i += 1) {
        var osc = ctx.createOscillator();
        var gain = ctx.createGain();
        osc.frequency.value = 660 + 220 * level;
        gain.gain.value = Math.min(0.2 * level, 0.6);
        osc.connect(gain);
        gain.connect(ctx.destination);
        osc.start(ctx.currentTime + i * 0.4);
        osc.stop(ctx.currentTime + i * 0.4 + 0.25);
      }
    } catch (err) { /* no sound device: the screen still shows the alarm */ }
  }

  // ------------------------------------------------------------ countdowns
  var ticking = null;

  function countdowns() {
    if (ticking) { clearInterval(ticking); }
    var spans = document.querySelectorAll("#more-time-box [data-countdown]");
    if (!spans.length) { return; }
    ticking = setInterval(function () {
      spans.forEach(function (el) {
        var n = parseInt(el.textContent, 10);
        if (n > 0) { el.textContent = String(n - 1); }
      });
    }, 1000);
  }

  // A finished page (receipt, return done) goes back to the start, forgetting the reader's
  // choices; "need more time?" shows for its last seconds, and its button starts again.
  var total = parseInt(main.dataset.timeout || "0", 10);
  if (total > 0) {
    var left = total;
    var box = document.getElementById("page-more-time");
    var warn = box ? parseInt(box.dataset.warn || "25", 10) : 25;
    document.addEventListener("click", function (e) {
      var t = e.target;
      if (t && t.closest && t.closest("#page-more-time-btn")) {
        left = total;
        var b = document.getElementById("page-more-time");
        if (b) { b.hidden = true; }
      }
    });
    setInterval(function () {
      left -= 1;
      var b = document.getElementById("page-more-time");
      if (b && left <= warn) {
        if (b.hidden) {
          b.hidden = false;
          var btn = document.getElementById("page-more-time-btn");
          if (btn) { btn.focus(); }
        }
        var span = b.querySelector("[data-countdown]");
        if (span) { span.textContent = String(Math.max(left, 0)); }
      }
      if (left <= 0) { location.href = "/screen/end"; }
    }, 1000);
  }

  countdowns();
  alarmCue();
}());

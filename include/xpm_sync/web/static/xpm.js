// The XPM page's few behaviours: follow Airflow's light/dark theme, show a run's live state,
// confirm a disconnect, submit a toggle, and switch the sync buttons between incremental and full.
(function () {
  "use strict";

  function airflowIsDark() {
    try {
      if (window.parent !== window) {
        return window.parent.document.documentElement.classList.contains("dark");
      }
    } catch (e) { /* not inside Airflow's UI */ }
    const saved = window.localStorage.getItem("theme"); // Airflow's own choice, same origin
    if (saved === "dark" || saved === "light") return saved === "dark";
    return window.matchMedia("(prefers-color-scheme: dark)").matches;
  }
  function applyTheme() { document.documentElement.classList.toggle("dark", airflowIsDark()); }
  applyTheme();
  window.addEventListener("storage", applyTheme);
  try {
    if (window.parent !== window) {
      new MutationObserver(applyTheme).observe(window.parent.document.documentElement, {
        attributes: true, attributeFilter: ["class"],
      });
    }
  } catch (e) { /* not inside Airflow's UI */ }

  // Airflow frames its plugin views with sandbox="allow-scripts allow-same-origin ...", which stops a
  // frame from moving the whole window. Xero's sign-in refuses to be framed, and a run belongs in
  // Airflow's own pages: a link made in Airflow's (same-origin) document takes the whole window there.
  function goTop(url) {
    if (window.parent === window) { window.location.assign(url); return; }
    const doc = window.parent.document;
    const link = doc.createElement("a");
    link.href = url;
    link.style.display = "none";
    doc.body.appendChild(link);
    link.click();
  }

  function watchRun(badge) {
    const done = ["success", "failed"];
    let seenRunning = false;
    function poll() {
      fetch(badge.dataset.run, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (run) {
          if (!run) return;
          badge.textContent = run.state;
          badge.className = "state " + run.state;
          if (done.indexOf(run.state) < 0) {
            seenRunning = true;
            window.setTimeout(poll, 3000);
          } else if (seenRunning) {
            window.location.reload(); // the counts and Practice Activity now include the run
          }
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    poll();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-run]").forEach(watchRun);
    // Shown on its own (after Xero's sign-in sent the browser back here): offer the way back.
    if (window.parent === window) {
      document.querySelectorAll("a.in-airflow").forEach(function (a) { a.hidden = false; });
    }

    document.querySelectorAll("a[target=_top]").forEach(function (a) {
      a.addEventListener("click", function (event) { event.preventDefault(); goTop(a.href); });
    });

    document.querySelectorAll("form[data-top]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        fetch(form.action, {
          method: "POST", body: new FormData(form), credentials: "same-origin",
          headers: { Accept: "application/json" },
        })
          .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
          .then(function (reply) {
            if (reply.ok && reply.body.go) { goTop(reply.body.go); return; }
            window.alert(reply.body.detail || "XPM could not be connected; reload the page and try again.");
          });
      });
    });

    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); return; }
        form.querySelector("input[name=confirm]").value = "disconnect";
      });
    });

    document.querySelectorAll("[data-submit]").forEach(function (control) {
      control.addEventListener("change", function () { control.form.submit(); });
    });

    document.querySelectorAll("input[name=mode-choice]").forEach(function (radio) {
      radio.addEventListener("change", function () {
        document.querySelectorAll("form.sync").forEach(function (form) {
          form.querySelector("input[name=mode]").value = radio.value;
          const button = form.querySelector("button");
          form.querySelector(".cost").textContent = button.dataset[radio.value];
        });
      });
    });

    const cog = document.getElementById("cog");
    const panel = document.getElementById("settings");
    if (cog && panel) {
      const open = function (show) { panel.hidden = !show; cog.setAttribute("aria-expanded", String(show)); };
      open(window.location.hash === "#settings" || new URLSearchParams(window.location.search).get("notice") === "settings");
      cog.addEventListener("click", function () { open(panel.hidden); });
    }
  });
})();

// The XPM page's few behaviours: follow Airflow's light/dark theme, show a run's live state,
// confirm a disconnect, submit a toggle, switch the sync buttons between incremental and full, send
// the page's actions to the JSON API (/xpm/api/v1, the one other systems use), and the Jobs panel.
(function () {
  "use strict";

  function csrf() {
    const meta = document.querySelector("meta[name=xpm-csrf]");
    return meta ? meta.content : "";
  }

  // An Idempotency-Key per request: a second click (or a retry after a lost answer) records nothing twice.
  function newKey() {
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.from(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  // Send one API request; resolve with the answer's body, or reject with the problem's sentence.
  function api(method, url, body, key) {
    const headers = { Accept: "application/json", "X-XPM-CSRF": csrf() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (key) headers["Idempotency-Key"] = key;
    return fetch(url, {
      method: method, credentials: "same-origin", headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (answer) {
        if (r.ok) return answer;
        throw new Error(answer.detail || ("The request failed (" + r.status + "); reload the page and try again."));
      });
    });
  }

  function bodyOf(form) {
    const body = {};
    form.querySelectorAll("input[name], select[name], textarea[name]").forEach(function (input) {
      if (input.hasAttribute("data-skip")) return;
      const value = input.value;
      const type = input.dataset.type;
      if (type === "list") body[input.name] = value ? value.split(",") : [];
      else if (type === "bool") body[input.name] = value === "true";
      else if (type === "nullable") body[input.name] = value === "" ? null : value;
      else body[input.name] = value;
    });
    return body;
  }

  function showError(form, text) {
    const home = form.closest("section") || document.body;
    let box = home.querySelector(".api-error");
    if (!box) {
      box = document.createElement("div");
      box.className = "notice error api-error";
      box.setAttribute("role", "alert");
      home.insertBefore(box, home.children[1] || null);
    }
    box.textContent = text;
  }

  function homeUrl(params, hash) {
    const url = new URL(window.location.href);
    url.search = new URLSearchParams(params).toString();
    url.hash = hash || "";
    return url.toString();
  }

  // A form with data-api posts its fields as JSON to its action, then reloads with the notice it names.
  function submitToApi(form) {
    const body = bodyOf(form);
    const text = JSON.stringify(body);
    if (form.dataset.sent !== text) { form.dataset.sent = text; form.dataset.key = newKey(); }
    const buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    api("POST", form.action, body, form.dataset.key)
      .then(function (answer) {
        if (form.dataset.then) { form.dispatchEvent(new CustomEvent("api-done", { detail: answer })); return; }
        const params = { notice: form.dataset.notice };
        if (answer.run_id) params.run_id = answer.run_id;
        if (answer.dag_id && answer.dag_id !== "xpm_manual_sync") params.dag = answer.dag_id;
        window.location.assign(homeUrl(params));
      })
      .catch(function (error) {
        buttons.forEach(function (b) { b.disabled = false; });
        showError(form, error.message);
      });
  }

  function el(tag, attrs) {
    const node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (name === "text") node.textContent = attrs[name];
      else node.setAttribute(name, attrs[name]);
    });
    for (let i = 2; i < arguments.length; i++) if (arguments[i]) node.appendChild(arguments[i]);
    return node;
  }

  // The Jobs panel: find jobs, open one, change its state or due date, and its custom fields where kept here.
  function jobsPanel(panel) {
    const base = panel.dataset.apiBase;
    const search = panel.querySelector("form.job-search");
    const results = panel.querySelector(".job-results");
    const detail = panel.querySelector(".job-detail");
    const mayChange = panel.dataset.mayChange === "yes";
    const states = Array.from(search.querySelectorAll("select[name=state] option"))
      .map(function (o) { return o.value; }).filter(Boolean);

    function find() {
      const params = new URLSearchParams();
      const q = search.querySelector("input[name=q]").value.trim();
      const state = search.querySelector("select[name=state]").value;
      if (q) params.set("q", q);
      if (state) params.set("state", state);
      params.set("limit", "25");
      return api("GET", base + "/jobs?" + params.toString()).then(function (found) {
        results.replaceChildren();
        if (!found.jobs.length) { results.appendChild(el("p", { class: "muted", text: "No job matches." })); return; }
        const body = el("tbody");
        found.jobs.forEach(function (job) {
          const open = el("button", { type: "button", class: "link", text: job.job_number });
          open.addEventListener("click", function () { show(job.job_number); });
          body.appendChild(el("tr", { "data-job": job.job_number },
            el("td", {}, open), el("td", { text: job.name || "" }), el("td", { text: job.client_name || "" }),
            el("td", { class: "job-state", text: job.state || "" }), el("td", { text: job.due_date || "" }),
            el("td", {}, job.pending_push ? el("span", { class: "badge In-Progress", text: "waiting for XPM" }) : null)));
        });
        const head = el("tr");
        ["Job", "Name", "Client", "State", "Due", ""].forEach(function (h) { head.appendChild(el("th", { text: h })); });
        results.appendChild(el("table", { class: "jobs" }, el("thead", {}, head), body));
        if (found.more) results.appendChild(el("p", { class: "muted", text: "More jobs match: narrow the search." }));
      }).catch(function (error) { showError(search, error.message); });
    }

    function changeForm(action, label, input, extra) {
      const form = el("form", { method: "post", action: base + action, "data-api": "", "data-then": "job", class: "inline" });
      Object.keys(extra).forEach(function (name) {
        form.appendChild(el("input", { type: "hidden", name: name, value: extra[name] }));
      });
      form.appendChild(input);
      form.appendChild(el("button", { type: "submit", text: label }));
      form.addEventListener("api-done", function (event) {
        if (event.detail.change) {
          window.location.assign(homeUrl({ notice: "change-recorded", job: extra.job_number || extra.key }, "jobs"));
        } else {
          showError(form, event.detail.message);
        }
      });
      return form;
    }

    function show(number) {
      return api("GET", base + "/jobs/" + encodeURIComponent(number)).then(function (job) {
        detail.replaceChildren();
        detail.hidden = false;
        detail.appendChild(el("h3", { text: job.job_number + " · " + (job.name || "") }));
        const facts = el("dl", { class: "facts" });
        [["Client", job.client_name], ["State", job.state], ["Start", job.start_date], ["Due", job.due_date],
          ["Budget", job.budget]].forEach(function (pair) {
          facts.appendChild(el("dt", { text: pair[0] }));
          facts.appendChild(el("dd", { text: pair[1] == null ? "" : String(pair[1]) }));
        });
        detail.appendChild(facts);
        if (job.changes.length) {
          const list = el("ul", { class: "job-changes" });
          job.changes.forEach(function (c) {
            const what = c.fields.map(function (f) { return f.name + " → " + (f.after || "(empty)"); }).join(", ");
            list.appendChild(el("li", { text: what + ": " + c.status + (c.error ? " (" + c.error + ")" : "") }));
          });
          detail.appendChild(el("p", { class: "help flush", text: "Waiting for XPM:" }));
          detail.appendChild(list);
        }
        if (!mayChange) {
          detail.appendChild(el("p", { class: "muted", text: "Your Airflow role may not change jobs." }));
        } else if (!job.editable) {
          detail.appendChild(el("p", { class: "muted", text: "Jobs are mastered in XPM: change this job in XPM." }));
        } else {
          const select = el("select", { name: "state", "aria-label": "New state" });
          states.forEach(function (s) {
            const option = el("option", { text: s });
            if (s === job.state) option.selected = true;
            select.appendChild(option);
          });
          detail.appendChild(changeForm("/changes/job-state", "Change state", select, { job_number: job.job_number }));
          const due = el("input", { type: "date", name: "due_date", value: job.due_date || "", "aria-label": "New due date" });
          detail.appendChild(changeForm("/changes/job-update", "Change due date", due, { job_number: job.job_number }));
        }
        if (job.custom_fields.length) {
          detail.appendChild(el("h4", { text: "Custom fields" }));
          const rows = el("tbody");
          job.custom_fields.forEach(function (f) {
            let cell;
            if (f.editable && mayChange) {
              const input = el("input", { name: "value", value: f.value || "", "data-type": "nullable", "aria-label": f.name });
              cell = changeForm("/changes/custom-field", "Save", input, { record: "job", key: job.job_number, field: f.field_uuid });
            } else {
              cell = el("span", { text: f.value || "" });
            }
            rows.appendChild(el("tr", {}, el("td", { text: f.name || f.field_uuid }), el("td", {}, cell)));
          });
          detail.appendChild(el("table", { class: "custom-fields" }, rows));
        }
      }).catch(function (error) { showError(search, error.message); });
    }

    search.addEventListener("submit", function (event) { event.preventDefault(); find(); });
    const asked = new URLSearchParams(window.location.search).get("job");
    if (asked) {
      search.querySelector("input[name=q]").value = asked;
      find().then(function () { return show(asked); });
    }
  }

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

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.hasAttribute("data-api")) {
      event.preventDefault();
      submitToApi(form);
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-run]").forEach(watchRun);
    document.querySelectorAll("#jobs").forEach(jobsPanel);
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

    // Airflow's frame allows no dialogs (window.confirm answers "no" at once there): the question
    // is asked beside the button, and a second button says yes.
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        const input = form.querySelector("input[name=confirm]");
        if (input.value) return;
        event.preventDefault();
        if (form.querySelector(".confirm-box")) return;
        const yes = el("button", { type: "button", class: "danger", text: form.dataset.yes || "Yes" });
        const box = el("div", { class: "confirm-box", role: "alert" }, el("p", { text: form.dataset.confirm }), yes);
        yes.addEventListener("click", function () { input.value = form.dataset.confirmValue; form.submit(); });
        form.appendChild(box);
      });
    });

    document.querySelectorAll("[data-submit]").forEach(function (control) {
      control.addEventListener("change", function () {
        // Airflow's frame allows no dialogs (no allow-modals): a change that needs a wider scope
        // is confirmed with the button beside its warning instead.
        const confirmer = control.form.querySelector("button.confirm-scope");
        if (confirmer) {
          control.checked = !control.checked;
          confirmer.hidden = false;
          confirmer.focus();
          return;
        }
        control.form.submit();
      });
    });

    document.querySelectorAll("input[name=mode-choice]").forEach(function (radio) {
      radio.addEventListener("change", function () {
        document.querySelectorAll("form.sync").forEach(function (form) {
          form.querySelector("input[name=full]").value = String(radio.value === "full");
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

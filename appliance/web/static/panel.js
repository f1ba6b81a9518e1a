// qEY-0 panel: send the API forms as JSON with the CSRF token, follow live events.
// Plain browser JavaScript, no build step. Everything shown is set as text, never as HTML,
// except the task tree's SVG, which the server renders with every string escaped.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

function formBody(form) {
  const body = {};
  for (const el of form.elements) {
    if (!el.name || el.disabled || el.type === "submit") continue;
    if (el.type === "checkbox") { body[el.name] = el.checked; continue; }
    let value = el.value;
    if (el.type === "number") value = Number(value);
    else if (el.dataset.list) value = value.split(/[\s,]+/).filter(Boolean);
    else if (value === "" && el.tagName === "SELECT") value = null;
    body[el.name] = value;
  }
  return body;
}

// A plan as text, one step a line: "s2 executor ← s1 // record it [if port 23 is open]".
function describePlan(plan) {
  const flags = ["destructive", "scheduled", "uncertain"].filter(f => plan[f]);
  const lines = [`Plan${flags.length ? " (" + flags.join(", ") + ")" : ""}:`];
  if (plan.schedule_phrase) lines.push(`  runs ${plan.schedule_phrase}: ${plan.runs}`);
  for (const s of plan.steps || []) {
    const after = s.after?.length ? ` ← ${s.after.join(",")}` : "";
    const when = s.when ? ` [${s.when.negate ? "unless" : "if"} ${s.when.kind.replace("_", " ")}]` : "";
    lines.push(`  ${s.id} ${s.agent_type}${after} // ${s.text}${when}`);
  }
  if (plan.unused?.length) lines.push(`  unused words: ${plan.unused.join(" ")}`);
  for (const r of plan.out_of_scope || []) lines.push(`  refused: ${r}`);
  return lines.join("\n");
}

// The submit form's Run asks first when the plan changes something, is scheduled, or the
// planner is unsure; false when the admin says no. A plan that fails to load asks nothing:
// submitting gives the same refusal.
async function confirmPlan(command) {
  try {
    const resp = await fetch("/api/v1/plan", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify({ command }),
      credentials: "same-origin",
    });
    if (!resp.ok) return true;
    const plan = await resp.json();
    if (!plan.destructive && !plan.scheduled && !plan.uncertain) return true;
    return window.confirm(describePlan(plan) + "\n\nRun this plan?");
  } catch (err) {
    return true;
  }
}

// What a refusal says to a person: its message, led by what kind of no it is; never the
// error's class name.
const REFUSALS = {
  NoConfidentMatch: "Not understood",
  OutOfScope: "Refused: outside the scan scope",
  WrongPassword: "Wrong password",
  TooManyAttempts: "Too many tries",
  CsrfRejected: "This page is out of date: reload it and try again",
  NotSignedIn: "Signed out: sign in again",
  InboxFull: "Busy: try again in a moment",
  RuntimeStopped: "The appliance is stopping",
};

function describe(data) {
  if (!data || typeof data !== "object") return String(data ?? "Done.");
  if (data.message) {
    const message = data.message.charAt(0).toUpperCase() + data.message.slice(1);
    const lead = REFUSALS[data.error];
    return lead ? `${lead}. ${message}` : message;
  }
  if (Array.isArray(data.steps) && data.command !== undefined) return describePlan(data);
  const route = data.route || (data.agent_type !== undefined && data.confidence !== undefined ? data : null);
  const parts = [];
  if (data.job_id && data.task_id) parts.push(`Started job ${data.job_id}: ${data.agent_type}/${data.task_id}.`);
  if (route) {
    parts.push(route.agent_type
      ? `Router picked ${route.agent_type} (confidence ${Number(route.confidence).toFixed(2)}, ${route.reason || "nearest"}).`
      : `Router: no confident match.`);
    if (route.alternatives?.length) parts.push("Alternatives: " + route.alternatives.map(c => `${c.agent_type} ${Number(c.confidence).toFixed(2)}`).join(", ") + ".");
  }
  if (data.stopped) parts.push(`Stopped ${data.stopped.length} task(s).`);
  if (data.size !== undefined && data.agent_type) parts.push(`${data.agent_type} pool: ${data.size}.`);
  if (data.scope) parts.push(`Scope: ${data.scope.join(", ")}.`);
  if (data.plan?.steps?.length > 1 || data.plan?.scheduled) parts.push("\n" + describePlan(data.plan));
  if (data.schedule?.id) parts.push(`\nSchedule ${data.schedule.id} made.`);
  return parts.join(" ") || "Done.";
}

async function sendForm(event) {
  const form = event.target.closest("form[data-api]");
  if (!form) return;
  event.preventDefault();
  const submitter = event.submitter;
  const api = submitter?.dataset.api || form.dataset.api;
  const then = submitter && "then" in submitter.dataset ? submitter.dataset.then : form.dataset.then;
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
  const out = form.querySelector("output.result");
  const differs = [...form.querySelectorAll("[data-repeat-of]")]
    .find(el => el.value !== form.elements[el.dataset.repeatOf]?.value);
  if (differs) {
    if (out) { out.className = "result error"; out.textContent = "The two passwords differ: type the new one again."; }
    differs.focus();
    return;
  }
  let body = formBody(form);
  if (form.id === "submit-form" && api === "/api/v1/jobs" && !body.agent_type
      && !(await confirmPlan(body.command))) return;
  if (api === "/api/v1/route" || api === "/api/v1/plan") body = { command: body.command };
  else if (Object.keys(body).length === 0) body = undefined;
  if (out) { out.className = "result pending"; out.textContent = "…"; }
  try {
    const resp = await fetch(api, {
      method: form.dataset.method || "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    const data = resp.status === 204 ? null : await resp.json();
    if (out) {
      out.className = "result " + (resp.ok ? "ok" : "error");
      const done = resp.ok && form.dataset.done;
      out.textContent = done ? (data ? `${done} ${describe(data)}` : done) : describe(data);
    }
    if (!resp.ok) return;
    if (then === "job" && data?.job_id) {
      const link = document.createElement("a");
      link.href = `/jobs/${encodeURIComponent(data.job_id)}`;
      link.id = "job-link";
      link.textContent = " Follow the job →";
      out?.appendChild(link);
    } else if (form.dataset.reload) {
      setTimeout(() => window.location.reload(), 600);
    }
  } catch (err) {
    if (out) { out.className = "result error"; out.textContent = String(err); }
  }
}

function eventLine(item) {
  const ev = item.event || {};
  const who = ev.agent_type ? `${ev.agent_type}/${ev.task_id || ""}` : item.target;
  let what = ev.kind;
  if (ev.kind === "task.spawned") what += `: ${ev.objective}`;
  else if (ev.kind === "task.status") what += `: ${ev.status}${ev.detail ? " — " + ev.detail : ""}`;
  else if (ev.kind === "handler.crashed") what += `: ${ev.error_type}: ${ev.message}`;
  else if (ev.kind === "event.refused") what += `: ${ev.event_kind}: ${ev.message}`;
  else if (ev.kind === "job.submitted") what += `: ${ev.command}`;
  else if (ev.kind === "scan.progressed") what += `: ${ev.target} ${ev.probed}/${ev.total}, ${ev.open} open`;
  const when = ev.at ? new Date(ev.at * 1000) : new Date();
  return `${when.toLocaleTimeString()}  ${what}  [${who}, ${item.job_id}]`;
}

// A region the server draws again when what it shows changes: on a live event the page is
// fetched and the region swapped for the new one (at most once a second). The HTML is the
// server's own page, every string in it escaped, so nothing is built from event data here.
function refresher(region) {
  let timer = null;
  let last = 0;
  return () => {
    if (timer) return;
    timer = setTimeout(async () => {
      timer = null;
      last = Date.now();
      try {
        const resp = await fetch(region.dataset.refresh, { credentials: "same-origin" });
        if (!resp.ok) return;
        const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
        const fresh = doc.getElementById(region.id);
        if (fresh) region.replaceChildren(...fresh.childNodes);
      } catch (err) {
        /* the appliance restarting: the next event tries again */
      }
    }, Math.max(100, 1000 - (Date.now() - last)));
  };
}

// A WebSocket on /api/v1/live that says on the page whether it is live, and comes back by
// itself after the appliance restarts.
function liveSocket(query, onEvents) {
  const state = document.getElementById("live-state");
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/api/v1/live?${query}`);
  ws.onopen = () => { if (state) { state.textContent = "live"; state.className = "live-state on"; } };
  ws.onclose = (close) => {
    if (state) { state.textContent = "reconnecting…"; state.className = "live-state off"; }
    if (close.code !== 1008) setTimeout(() => liveSocket(query, onEvents), 3000);  // 1008: signed out
  };
  ws.onmessage = (msg) => {
    const data = JSON.parse(msg.data);
    onEvents(data);
    if (data.dropped && state) state.textContent = `live (${data.dropped} dropped while the browser was slow)`;
  };
}

// A running scan's progress as a bar per target: probes done of all, open ports, the rate
// and the time left, from its scan.progressed events (instead of a line for each).
function showProgress(box, ev) {
  let row = [...box.children].find(r => r.dataset.target === ev.target);
  if (!row) {
    row = document.createElement("div");
    row.className = "progress-row";
    row.dataset.target = ev.target;
    row.dataset.start = String(Date.now());
    row.dataset.first = String(ev.probed);
    const label = document.createElement("span");
    const bar = document.createElement("progress");
    row.append(label, bar);
    box.append(row);
  }
  const [label, bar] = row.children;
  bar.max = Math.max(ev.total, 1);
  bar.value = ev.probed;
  const seconds = (Date.now() - Number(row.dataset.start)) / 1000;
  const rate = seconds > 0.5 ? (ev.probed - Number(row.dataset.first)) / seconds : 0;
  const left = rate > 0 ? Math.ceil((ev.total - ev.probed) / rate) : null;
  const done = ev.probed >= ev.total;
  label.textContent = `${ev.target}: ${ev.probed.toLocaleString()} of ${ev.total.toLocaleString()} probes, `
    + `${ev.open} open` + (done ? ", finished" : rate ? `, ${Math.round(rate).toLocaleString()}/s`
    + (left !== null ? `, about ${left} s left` : "") : "");
}

// One line per task and kind in a row: a repeat is counted on the line it repeats.
function addLine(list, item) {
  const kind = item.event?.kind || "";
  const key = `${kind}|${item.event?.task_id || item.target}|${item.job_id}`;
  const top = list.firstElementChild;
  if (top && top.dataset.key === key) {
    top.dataset.count = String(Number(top.dataset.count) + 1);
    top.textContent = `${eventLine(item)}  ×${top.dataset.count}`;
    return;
  }
  const li = document.createElement("li");
  li.className = "event";
  li.dataset.kind = kind;
  li.dataset.key = key;
  li.dataset.count = "1";
  li.textContent = eventLine(item);
  list.prepend(li);
}

function follow(list) {
  const region = document.getElementById("live-main");
  const refresh = region?.dataset.refresh ? refresher(region) : null;
  const progress = document.getElementById("progress");
  // the newest records first (a view opened late is not empty), then what happens
  liveSocket(`${list.dataset.live}&backlog=100`, (data) => {
    if (data.backlog) list.replaceChildren();  // a reconnect brings the backlog again
    for (const item of data.events) {
      const kind = item.event?.kind || "";
      if (kind === "scan.progressed" && progress) {
        showProgress(progress, item.event);
        continue;
      }
      addLine(list, item);
      if (refresh && !data.backlog && (kind === "task.spawned" || kind === "task.status")) refresh();
    }
    while (list.children.length > 500) list.lastChild.remove();
  });
}

// A page region that only refreshes (home, devices, a device): its own socket, the kinds
// that change what it shows.
function watch(region) {
  const refresh = refresher(region);
  liveSocket(`kinds=${encodeURIComponent(region.dataset.liveKinds)}`, (data) => {
    if (data.events.length) refresh();
  });
}

// The bell: how many notices are newer than this browser last opened the Notifications
// page (kept in this browser alone), every 15 s. Opening that page marks them seen.
const SEEN = "qey-notices-seen";
async function ring(bell) {
  const count = document.getElementById("bell-count");
  const check = async () => {
    try {
      const resp = await fetch("/api/v1/notices", { credentials: "same-origin" });
      if (!resp.ok) return;
      const seen = Number(localStorage.getItem(SEEN) || 0);
      const fresh = (await resp.json()).filter(n => n.at > seen).length;
      count.textContent = String(fresh);
      count.hidden = fresh === 0;
      bell.classList.toggle("ringing", fresh > 0);
    } catch (err) {
      /* the appliance restarting: try again next time */
    }
  };
  if (document.querySelector("[data-seen]")) localStorage.setItem(SEEN, String(Date.now() / 1000));
  await check();
  setInterval(check, 15000);
}

// The navigation folds into a Menu button on a phone.
function menu(button) {
  const nav = document.getElementById(button.getAttribute("aria-controls"));
  button.addEventListener("click", () => {
    const open = nav.classList.toggle("open");
    button.setAttribute("aria-expanded", String(open));
  });
}

// A list that follows its API: every few seconds, the ids the API lists; when they differ
// from the ones drawn (data-ids), the page is drawn again. For the Approvals page: a new
// request, or one decided elsewhere (the console, a vote, its deadline), shows by itself.
function poll(box) {
  const drawn = (box.dataset.ids || "").split(",").filter(Boolean).sort().join(",");
  setInterval(async () => {
    try {
      const resp = await fetch(box.dataset.poll, { credentials: "same-origin" });
      if (!resp.ok) return;
      const ids = (await resp.json()).map(r => r.id).sort().join(",");
      if (ids !== drawn) window.location.reload();
    } catch (err) {
      /* the appliance restarting: try again next time */
    }
  }, 3000);
}

// The Update page: the bundle goes up as the request's body (XMLHttpRequest, for its upload
// progress), then the page follows root's check and install through GET /api/v1/update
// until its record says how it ended (or the device reboots into it).
function uploadBundle(event) {
  const form = event.target.closest("form[data-upload]");
  if (!form) return;
  event.preventDefault();
  const file = form.elements.bundle.files[0];
  const bar = form.querySelector("progress");
  const out = form.querySelector("output.result");
  const say = (cls, text) => { out.className = "result " + cls; out.textContent = text; };
  if (!file) { say("error", "Choose a bundle first."); return; }
  const at = form.elements.reboot_at.value; // "HH:MM", or "" for none
  const flags = [`reboot=${form.elements.reboot.checked && !at ? 1 : 0}`,
    `allow_downgrade=${form.elements.allow_downgrade.checked ? 1 : 0}`];
  if (at) flags.push(`reboot_at=${encodeURIComponent(at)}`);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", `${form.dataset.upload}?${flags.join("&")}`);
  xhr.setRequestHeader("Content-Type", "application/octet-stream");
  xhr.setRequestHeader("X-CSRF-Token", csrf());
  bar.hidden = false;
  bar.value = 0;
  xhr.upload.onprogress = (ev) => {
    if (!ev.lengthComputable) return;
    bar.value = Math.floor(100 * ev.loaded / ev.total);
    say("pending", `Uploading: ${bar.value}% of ${(ev.total / 1e6).toFixed(0)} MB`);
  };
  xhr.onerror = () => say("error", "The upload failed: the connection was lost.");
  xhr.onload = () => {
    if (xhr.status !== 202) {
      let why = xhr.statusText;
      try { why = describe(JSON.parse(xhr.responseText)); } catch (err) { /* not JSON */ }
      say("error", `Refused: ${why}`);
      return;
    }
    bar.removeAttribute("value"); // indeterminate: root checks and writes it now
    followUpdate(form);
  };
  form.querySelector("button[type=submit]").disabled = true;
  xhr.send(file);
}

// The hand-over's outcome is a new record (another started_at than the page was drawn with).
function followUpdate(form) {
  const drawn = Number(form.dataset.last || 0);
  const out = form.querySelector("output.result");
  out.className = "result pending";
  out.textContent = "Uploaded. The device checks the bundle's signature, board and version, then writes it…";
  const timer = setInterval(async () => {
    try {
      const resp = await fetch(form.dataset.upload, { credentials: "same-origin" });
      if (!resp.ok) return;
      const view = await resp.json();
      const last = view.last;
      if (view.requested || !last || last.started_at === drawn) return;
      if (last.state === "installing") { out.textContent = `Writing version ${last.version} into slot ${last.to_slot.toUpperCase()}…`; return; }
      clearInterval(timer);
      window.location.reload();
    } catch (err) {
      out.textContent = "The device is restarting into the new version…";
    }
  }, 2000);
}

document.addEventListener("submit", uploadBundle);
document.addEventListener("submit", sendForm);
// typing again clears what a form said last, so an old error never sits beside new input
document.addEventListener("input", (event) => {
  const out = event.target.form?.querySelector("output.result");
  if (out && out.textContent) { out.textContent = ""; out.className = "result"; }
});
document.addEventListener("DOMContentLoaded", () => {
  for (const list of document.querySelectorAll("[data-live]")) follow(list);
  for (const region of document.querySelectorAll("[data-live-kinds]")) watch(region);
  for (const button of document.querySelectorAll("button.menu")) menu(button);
  const bell = document.getElementById("bell");
  if (bell) ring(bell);
  for (const box of document.querySelectorAll("[data-poll]")) poll(box);
  for (const form of document.querySelectorAll("form[data-upload][data-follow='1']")) followUpdate(form);
  for (const img of document.querySelectorAll("img[data-hide-on-error]")) img.addEventListener("error", () => img.remove());
});

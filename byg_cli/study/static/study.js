// byg user study: one rater's 2AFC page. The server keeps all state; this page only shows it and posts votes.
"use strict";

const token = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const $ = (id) => document.getElementById(id);
let current = null;
let busy = false;
let syncTimer = null;

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + token }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers, cache: "no-store" }));
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  return { status: response.status, body };
}

function showMessage(text) { $("message").textContent = text || ""; }

function mediaElement(kind, url, label) {
  const el = document.createElement(kind === "video" ? "video" : "img");
  el.src = url;
  el.setAttribute("aria-label", label);
  if (kind === "video") {
    el.muted = true;
    el.loop = true;
    el.playsInline = true;
    el.preload = "auto";
    el.autoplay = true;
  } else {
    el.alt = label;
  }
  return el;
}

function videos() {
  return ["source", "A", "B"].map((slot) => $("media-" + slot).querySelector("video")).filter(Boolean);
}

// Keep option A and B on the original's clock: same play/pause state, drift corrected every 100 ms.
function startSync() {
  stopSync();
  const [master, ...followers] = videos();
  if (!master) return;
  syncTimer = setInterval(() => {
    for (const v of followers) {
      if (master.paused !== v.paused) { master.paused ? v.pause() : v.play().catch(() => {}); }
      const target = v.duration ? master.currentTime % v.duration : master.currentTime;
      if (Math.abs(v.currentTime - target) > 0.1) v.currentTime = target;
    }
  }, 100);
}

function stopSync() { if (syncTimer) clearInterval(syncTimer); syncTimer = null; }

function playAll() {
  const all = videos();
  if (!all.length) return;
  const t = all[0].currentTime;
  for (const v of all) { v.currentTime = t; v.play().catch(() => {}); }
}

function render(state) {
  $("title").textContent = state.title;
  $("progress").textContent = `${state.done} / ${state.total}`;
  $("progress-bar").max = Math.max(state.total, 1);
  $("progress-bar").value = state.done;
  current = state.current;
  stopSync();
  if (!current) {
    $("study").hidden = true;
    $("done").hidden = false;
    return;
  }
  $("done").hidden = true;
  $("study").hidden = false;
  $("study").dataset.item = current.item;
  $("instruction").textContent = current.instruction;
  $("question").textContent = current.question;
  $("criteria").replaceChildren(...current.criteria.map((c) => {
    const li = document.createElement("li");
    li.textContent = c;
    return li;
  }));
  const labels = { source: "Original", A: "Option A", B: "Option B" };
  for (const slot of ["source", "A", "B"]) {
    $("media-" + slot).replaceChildren(mediaElement(current.kind, current.media[slot], labels[slot]));
  }
  $("video-controls").hidden = current.kind !== "video";
  if (current.kind === "video") { startSync(); playAll(); }
  setBusy(false);
}

function setBusy(value) {
  busy = value;
  $("vote-A").disabled = value;
  $("vote-B").disabled = value;
}

async function load() {
  const { status, body } = await api("/api/state");
  if (status !== 200) { showMessage((body && body.error) || `error ${status}`); return; }
  showMessage("");
  render(body);
}

async function vote(choice) {
  if (busy || !current) return;
  setBusy(true);
  try {
    const { status, body } = await api("/api/vote", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ item: current.item, choice }),
    });
    if (status === 200) { showMessage(""); render(body.state); return; }
    if (status === 409) { await load(); return; }  // already recorded (another tab): move on
    showMessage((body && body.error) || `error ${status}`);
  } catch (e) {
    showMessage("Could not reach the server; your vote was not recorded. Please try again.");
  }
  setBusy(false);
}

$("vote-A").addEventListener("click", () => vote("A"));
$("vote-B").addEventListener("click", () => vote("B"));
$("play").addEventListener("click", playAll);
$("pause").addEventListener("click", () => videos().forEach((v) => v.pause()));
$("restart").addEventListener("click", () => { videos().forEach((v) => { v.currentTime = 0; }); playAll(); });
document.addEventListener("keydown", (e) => {
  if (e.key === "a" || e.key === "A") vote("A");
  if (e.key === "b" || e.key === "B") vote("B");
});

setBusy(true);
load();

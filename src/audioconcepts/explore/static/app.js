// audioconcepts explorer: a small front end over the JSON endpoints of explore/app.py.
// Every string that comes from the index (paths, labels, concept names, queries, errors) is put in
// the page with textContent / text nodes, never as HTML.
"use strict";

const state = {
  info: null,
  mode: "browse",   // browse | concepts | text
  q: "",
  rank: "dense",
  label: null,      // browse filter
  offset: 0,
  limit: 20,
  total: 0,
  editing: null,    // {clip, original: Map(name -> weight), weights: Map(name -> weight), scale}
  likeSeq: 0,
  loadSeq: 0,
};

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(message, status, data) { super(message); this.status = status; this.data = data; }
}

async function api(path, options) {
  const response = await fetch(path, options);
  let data = null;
  try { data = await response.json(); } catch (e) { data = { error: response.statusText }; }
  if (!response.ok) throw new ApiError((data && data.error) || response.statusText, response.status, data);
  return data;
}

// el("div", {class: "x", "data-id": 3}, child, "text", ...): children strings become text nodes.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const fmt = (x, digits = 3) => (x === null || x === undefined ? "" : Number(x).toFixed(digits));
const plural = (n, word) => `${n.toLocaleString("en")} ${word}${n === 1 ? "" : "s"}`;

function showError(node, error) {
  node.textContent = error ? String(error.message || error) : "";
  node.hidden = !error;
}

// ------------------------------------------------------------------ rendering clips
function conceptBars(concepts, scale) {
  const box = el("div", { class: "bars" });
  const top = scale || Math.max(1e-9, ...concepts.map((c) => c.weight));
  for (const c of concepts) {
    const fill = el("div", { class: "bar-fill" });
    fill.style.width = `${Math.max(0, Math.min(100, (100 * c.weight) / top)).toFixed(1)}%`;
    box.append(el("div", { class: "bar-row" },
      el("span", { class: "bar-name", title: c.concept, text: c.concept }),
      el("div", { class: "bar-track" }, fill),
      el("span", { class: "bar-value", text: fmt(c.weight, 3) })));
  }
  if (!concepts.length) box.append(el("span", { class: "muted", text: "no concepts" }));
  return box;
}

function audioPlayer(clip) {
  if (!clip.audio_url) return el("span", { class: "no-audio", text: "no audio (precomputed embedding)" });
  // the URL comes from the server and names the clip by id; the browser loads nothing until play
  return el("audio", { controls: true, preload: "none", src: clip.audio_url });
}

function clipCard(clip, options = {}) {
  const head = el("div", { class: "clip-head" },
    el("span", { class: "clip-id", text: `#${clip.id}` }),
    el("span", { class: "clip-path", text: clip.path }));
  if (clip.label) {
    head.append(el("button", {
      type: "button", class: "clip-label", title: "show the clips with this label", text: clip.label,
      onclick: () => { setMode("browse"); state.label = clip.label; state.offset = 0; loadResults(); },
    }));
  }
  if (options.score) head.append(el("span", { class: "clip-score", text: options.score }));
  const body = el("div", { class: "clip-body" }, audioPlayer(clip), conceptBars(clip.concepts || []));
  const card = el("li", { class: "clip", "data-id": clip.id }, head, body);
  if (options.shared && options.shared.length) {
    card.append(el("div", { class: "shared", text: "shared with the text: " +
      options.shared.slice(0, 5).map((s) => `${s.concept} ${fmt(s.text_weight, 2)}/${fmt(s.clip_weight, 2)}`).join(", ") }));
  }
  if (options.matched && options.matched.length) {
    card.append(el("div", { class: "shared", text: "query concepts: " +
      options.matched.map((m) => `${m.concept} ${fmt(m.weight, 3)}`).join(", ") }));
  }
  if (options.editable !== false) {
    head.append(el("button", { type: "button", class: "edit-button", text: "Edit", onclick: () => startEditing(clip.id) }));
  }
  if (state.editing && state.editing.clip.id === clip.id) card.classList.add("selected");
  return card;
}

// ------------------------------------------------------------------ results and paging
function setMode(mode) {
  state.mode = mode;
  $("mode").value = mode;
  $("rank").hidden = mode !== "text";
  $("q").placeholder = mode === "text" ? "e.g. a dog barks while rain falls" : "e.g. rain > 0.1 and not traffic";
  $("q").disabled = mode === "browse";
  $("help").hidden = mode === "text";
  updateTextNote();
}

function updateTextNote() {
  const note = $("text-note");
  const status = state.info && state.info.text_search;
  if (state.mode !== "text" || !status) { note.hidden = true; return; }
  if (!status.available) note.textContent = `Text search is off: ${status.reason}`;
  else if (!status.loaded) note.textContent = "The model loads on the first text search; that one may take a while.";
  else { note.hidden = true; return; }
  note.hidden = false;
}

async function loadResults() {
  const seq = ++state.loadSeq;
  showError($("error"), null);
  const params = new URLSearchParams({ offset: state.offset, limit: state.limit });
  let path = "/api/clips";
  if (state.mode === "concepts") { path = "/api/search/concepts"; params.set("q", state.q); }
  else if (state.mode === "text") { path = "/api/search/text"; params.set("q", state.q); params.set("rank", state.rank); }
  else if (state.label !== null) params.set("label", state.label);
  const filter = $("filter");
  filter.hidden = !(state.mode === "browse" && state.label !== null);
  filter.replaceChildren();
  if (!filter.hidden) {
    filter.append(`Clips labelled “${state.label}” `,
      el("button", { type: "button", text: "show all", onclick: () => { state.label = null; state.offset = 0; loadResults(); } }));
  }
  $("search-button").disabled = true;
  try {
    const data = await api(`${path}?${params}`);
    if (seq !== state.loadSeq) return;
    renderResults(data);
  } catch (error) {
    if (seq !== state.loadSeq) return;
    showError($("error"), error);
    if (error.data && error.data.text_search === false && state.info) {
      state.info.text_search = { available: false, loaded: false, reason: error.message };
      updateTextNote();
    }
  } finally {
    if (seq === state.loadSeq) $("search-button").disabled = false;
  }
}

function renderResults(data) {
  const list = $("results");
  list.replaceChildren();
  const textConcepts = $("text-concepts");
  textConcepts.hidden = true;
  let items;
  if (state.mode === "browse") {
    items = data.items.map((c) => clipCard(c));
  } else if (state.mode === "concepts") {
    items = data.hits.map((h) => clipCard(h, { score: `score ${fmt(h.score)}`, matched: h.matched }));
  } else {
    if (state.info && state.info.text_search) { state.info.text_search.loaded = true; updateTextNote(); }
    textConcepts.textContent = "the text's concepts: " +
      data.text_concepts.slice(0, 10).map((c) => `${c.concept} ${fmt(c.weight, 2)}`).join(", ");
    textConcepts.hidden = false;
    items = data.hits.map((h) => clipCard(h, {
      score: `dense ${fmt(h.dense_cosine)} · concepts ${fmt(h.concept_cosine)}`, shared: h.shared,
    }));
  }
  list.append(...items);
  state.total = data.total;
  const shown = items.length ? `${(state.offset + 1).toLocaleString("en")}–${(state.offset + items.length).toLocaleString("en")}` : "none";
  $("page-status").textContent = `${shown} of ${plural(data.total, "clip")}`;
  $("prev").disabled = state.offset === 0;
  $("next").disabled = state.offset + state.limit >= data.total;
}

// ------------------------------------------------------------------ editing with sliders
async function startEditing(clipId) {
  try {
    const clip = await api(`/api/clips/${encodeURIComponent(clipId)}?top=12`);
    const original = new Map(clip.concepts.map((c) => [c.concept, c.weight]));
    const largest = Math.max(0.05, ...clip.concepts.map((c) => c.weight));
    // room to push a concept well past the clip's own weights (codes live in a centred space:
    // a concept usually has to outweigh the others to pull in clips that are mostly about it)
    const scale = Math.min(state.info ? state.info.max_weight : 10, Math.max(1, Math.ceil(largest * 300) / 100));
    state.editing = { clip, original, weights: new Map(original), scale };
    for (const card of document.querySelectorAll("li.clip")) {
      card.classList.toggle("selected", card.getAttribute("data-id") === String(clip.id));
    }
    $("editor-empty").hidden = true;
    $("editor").hidden = false;
    renderEditorSource();
    renderSliders();
    await runLike();
  } catch (error) {
    showError($("error"), error);
  }
}

function renderEditorSource() {
  const clip = state.editing.clip;
  $("editor-source").replaceChildren(
    el("div", { class: "clip-head" },
      el("span", { class: "clip-id", text: `#${clip.id}` }),
      el("span", { class: "clip-path", text: clip.path }),
      clip.label ? el("span", { class: "clip-label", text: clip.label }) : null),
    el("div", { class: "clip-body" }, audioPlayer(clip)));
}

function renderSliders() {
  const box = $("sliders");
  box.replaceChildren();
  const { weights, original, scale } = state.editing;
  for (const [name, weight] of weights) {
    const value = el("span", { class: "bar-value", text: fmt(weight, 3) });
    const slider = el("input", {
      type: "range", min: 0, max: scale, step: scale / 200, value: weight, "aria-label": `weight of ${name}`,
      "data-concept": name,
    });
    const row = el("div", { class: "slider-row" },
      el("span", { class: "slider-name bar-name", title: name, text: name }), slider, value,
      el("button", { type: "button", class: "slider-remove", title: `set ${name} to 0`, text: "×",
        onclick: () => { weights.set(name, 0); renderSliders(); scheduleLike(); } }));
    const mark = () => row.classList.toggle("changed", Math.abs(weights.get(name) - (original.get(name) || 0)) > 1e-9);
    mark();
    slider.addEventListener("input", () => {
      weights.set(name, Number(slider.value));
      value.textContent = fmt(slider.value, 3);
      mark();
      scheduleLike();
    });
    box.append(row);
  }
}

let likeTimer = null;
function scheduleLike() {
  clearTimeout(likeTimer);
  likeTimer = setTimeout(runLike, 120);
}

function edits() {
  const out = {};
  const { weights, original } = state.editing;
  for (const [name, weight] of weights) {
    if (Math.abs(weight - (original.get(name) || 0)) > 1e-9) out[name] = weight;
  }
  return out;
}

async function runLike() {
  if (!state.editing) return;
  const seq = ++state.likeSeq;
  const body = { id: state.editing.clip.id, edits: edits(), limit: 10, top: 4 };
  try {
    const data = await api("/api/like", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (seq !== state.likeSeq) return;
    const changes = data.changes.map((c) => `${c.concept}: ${fmt(c.before)} → ${fmt(c.after)}`);
    $("changes").textContent = (changes.length ? changes.join("; ") + ". " : "No edits: nearest clips to the clip's own concepts. ") +
      `Cosine of the edited mix to the original embedding: ${fmt(data.cosine_to_source)}.`;
    $("neighbours").replaceChildren(...data.hits.map((h) => clipCard(h, { score: `cos ${fmt(h.cosine)}` })));
  } catch (error) {
    if (seq !== state.likeSeq) return;
    $("changes").textContent = "";
    $("neighbours").replaceChildren(el("li", { class: "error", text: error.message }));
  }
}

// ------------------------------------------------------------------ profiles
async function loadProfileNames() {
  const kind = $("profile-kind").value;
  const select = $("profile-name");
  select.replaceChildren();
  select.hidden = kind === "all" || kind === "query";
  $("profile-query").hidden = kind !== "query";
  if (kind !== "label" && kind !== "folder") return;
  try {
    const data = await api(`/api/${kind}s?limit=100`);
    for (const item of data.items) select.append(el("option", { value: item.name, text: `${item.name} (${item.clips})` }));
    if (!data.items.length) select.append(el("option", { value: "", text: `the index has no ${kind}s` }));
  } catch (error) {
    showError($("profile-error"), error);
  }
}

function profileChart(profile) {
  const ns = "http://www.w3.org/2000/svg";
  const svgEl = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const rows = profile.concepts;
  const labelWidth = 170, barWidth = 380, rowHeight = 22, valueWidth = 190;
  const width = labelWidth + barWidth + valueWidth, height = rows.length * rowHeight + 8;
  const svg = svgEl("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `concept profile of ${profile.scope}` });
  const top = Math.max(1e-9, ...rows.map((r) => r.mean));
  rows.forEach((r, i) => {
    const y = i * rowHeight + 4;
    const name = svgEl("text", { x: labelWidth - 8, y: y + 14, "text-anchor": "end" }, r.concept.length > 24 ? r.concept.slice(0, 23) + "…" : r.concept);
    name.append(svgEl("title", {}, r.concept));
    svg.append(name);
    svg.append(svgEl("rect", { class: "track", x: labelWidth, y: y + 3, width: barWidth, height: rowHeight - 8 }));
    svg.append(svgEl("rect", { class: "mean", x: labelWidth, y: y + 3, width: Math.max(1, (barWidth * r.mean) / top).toFixed(1), height: rowHeight - 8 }));
    svg.append(svgEl("text", { class: "value", x: labelWidth + barWidth + 6, y: y + 14 }, `${fmt(r.mean, 3)} · ${Math.round(100 * r.prevalence)}% of clips`));
  });
  return svg;
}

async function loadProfile() {
  const kind = $("profile-kind").value;
  const params = new URLSearchParams({ limit: 20 });
  if (kind === "label" || kind === "folder") {
    if (!$("profile-name").value) return;
    params.set(kind, $("profile-name").value);
  } else if (kind === "query") {
    params.set("query", $("profile-query").value);
  }
  showError($("profile-error"), null);
  try {
    const profile = await api(`/api/profile?${params}`);
    $("profile-title").textContent = `${profile.scope}: ${plural(profile.n_clips, "clip")}, ` +
      `${plural(profile.total_concepts, "concept")} used; mean weight of the top ${profile.concepts.length} (0 where unused)`;
    $("profile-chart").replaceChildren(profileChart(profile));
  } catch (error) {
    showError($("profile-error"), error);
  }
}

// ------------------------------------------------------------------ set-up
function showTab(name) {
  $("clips-view").hidden = name !== "clips";
  $("profiles-view").hidden = name !== "profiles";
  $("tab-clips").classList.toggle("active", name === "clips");
  $("tab-profiles").classList.toggle("active", name === "profiles");
  if (name === "profiles" && !$("profile-name").options.length) loadProfileNames();
}

let conceptTimer = null;
async function suggestConcepts() {
  const prefix = $("add-name").value;
  try {
    const data = await api(`/api/concepts?${new URLSearchParams({ prefix, limit: 20 })}`);
    $("concept-names").replaceChildren(...data.items.map((name) => el("option", { value: name })));
  } catch (error) { /* suggestions are optional */ }
}

async function init() {
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.mode = $("mode").value;
    state.q = $("q").value;
    state.rank = $("rank").value;
    state.offset = 0;
    if (state.mode !== "browse") state.label = null;
    loadResults();
  });
  $("mode").addEventListener("change", () => setMode($("mode").value));
  $("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - state.limit); loadResults(); });
  $("next").addEventListener("click", () => { state.offset += state.limit; loadResults(); });
  $("tab-clips").addEventListener("click", () => showTab("clips"));
  $("tab-profiles").addEventListener("click", () => showTab("profiles"));
  $("profile-kind").addEventListener("change", loadProfileNames);
  $("profile-form").addEventListener("submit", (event) => { event.preventDefault(); loadProfile(); });
  $("add-name").addEventListener("input", () => { clearTimeout(conceptTimer); conceptTimer = setTimeout(suggestConcepts, 150); });
  $("add-concept").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("add-name").value.trim();
    if (!name || !state.editing) return;
    const { weights, scale } = state.editing;
    if (!weights.has(name)) weights.set(name, scale / 2);
    $("add-name").value = "";
    renderSliders();
    scheduleLike();
  });
  $("reset").addEventListener("click", () => {
    if (!state.editing) return;
    state.editing.weights = new Map(state.editing.original);
    renderSliders();
    scheduleLike();
  });
  setMode("browse");
  try {
    state.info = await api("/api/info");
    const i = state.info;
    const vocabulary = i.vocabulary && !/^\d+ concepts$/.test(i.vocabulary) ? ` (${i.vocabulary})` : "";
    $("info").textContent = `${plural(i.clips, "clip")} · ${plural(i.concepts, "concept")}${vocabulary} · ` +
      `λ ${i.l1_penalty} · ${i.model}`;
    state.limit = Math.min(20, i.max_limit);
    updateTextNote();
  } catch (error) {
    showError($("error"), error);
  }
  await loadResults();
  document.body.setAttribute("data-ready", "1");
}

document.addEventListener("DOMContentLoaded", init);

// The page of `rnnzoo serve`: ask the model, draw its answer and its inside.
// Plain JavaScript, no build step, no library: every view the server sends (rnnzoo/serve/views.py)
// has a `kind`, drawn by one function below. Heatmaps are canvases carrying data-rows and
// data-cols (their dimensions), so a test can check them.
"use strict";

const $ = (id) => document.getElementById(id);
const COMMON = new Set(["text", "inside"]);

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

async function loadInfo() {
  const info = await (await fetch("/info")).json();
  $("task").textContent = info.task;
  const model = info.model && info.model.name ? info.model.name : "";
  const sizes = Object.entries(info.vocab_sizes).map(([k, v]) => `${k} ${v}`).join(", ");
  $("model").textContent = `${model} · ${info.parameters.toLocaleString()} parameters · ${sizes}` +
    ` · step ${info.metrics.step}` + (info.metrics.best != null ? ` · best ${info.metrics.monitor} ${(+info.metrics.best).toFixed(4)}` : "");
  if (info.example) $("text").value = info.example;
  for (const field of info.request_fields) {
    if (COMMON.has(field)) continue;
    const label = el("label", {}, field);
    label.appendChild(el("input", {id: "opt-" + field, "data-field": field, type: "text", placeholder: "default"}));
    $("options").appendChild(label);
  }
}

function request() {
  const body = {text: $("text").value, inside: $("inside").checked};
  for (const input of document.querySelectorAll("#options input")) {
    const raw = input.value.trim();
    if (raw !== "") body[input.dataset.field] = isNaN(Number(raw)) ? raw : Number(raw);
  }
  return body;
}

async function ask(event) {
  event.preventDefault();
  $("submit").disabled = true;
  $("error").hidden = true;
  try {
    const response = await fetch("/api/predict", {method: "POST", headers: {"Content-Type": "application/json"},
                                                  body: JSON.stringify(request())});
    const reply = await response.json();
    if (!response.ok) throw new Error(reply.error || response.statusText);
    show(reply);
  } catch (error) {
    $("error").textContent = error.message;
    $("error").hidden = false;
  } finally {
    $("submit").disabled = false;
  }
}

function answerText(task, answer) {
  switch (task) {
    case "tagging": return answer.words.map((w, i) => `${w}/${answer.tags[i]}`).join(" ");
    case "classification": return `${answer.label}  (p = ${answer.probabilities[answer.label].toFixed(3)})`;
    case "generation": return answer.continuation;
    case "translation": return `${answer.translation}  (log p = ${answer.score.toFixed(3)})`;
    case "associative": return `nearest pattern ${answer.nearest_pattern}, overlap ${answer.overlap.toFixed(3)}, ` +
      `${answer.energies.length - 1} steps, energy ${answer.energies[0].toFixed(2)} -> ${answer.energies.at(-1).toFixed(2)}`;
    default: return JSON.stringify(answer);
  }
}

function show(reply) {
  $("answer-text").textContent = answerText(reply.task, reply.answer);
  $("answer").hidden = false;
  const box = $("views");
  box.replaceChildren();
  for (const view of reply.views) {
    const section = el("div", {class: "view", "data-kind": view.kind, "data-title": view.title});
    section.appendChild(el("h3", {}, view.title));
    section.appendChild(DRAW[view.kind](view));
    box.appendChild(section);
  }
}

// --- the kinds of views --------------------------------------------------------------------------
function color(t) {  // 0 -> white, 1 -> dark blue
  const c = (a, b) => Math.round(a + (b - a) * t);
  return `rgb(${c(255, 8)},${c(255, 48)},${c(255, 107)})`;
}

const shown = (label) => (label.trim() === "" ? "␣" : label);  // a space token as ␣

function heatmap(view) {
  view = {...view, rows: view.rows.map(shown), cols: view.cols.map(shown)};
  const rows = view.values.length, cols = rows ? view.values[0].length : 0;
  const flat = view.values.flat();
  const lo = Math.min(...flat), hi = Math.max(...flat), span = hi - lo || 1;
  const cell = Math.max(3, Math.min(28, Math.floor(900 / Math.max(cols, 1))));
  const rowLabels = rows <= 80, colLabels = cols <= 60;
  const left = rowLabels ? 8 + 7 * Math.max(...view.rows.map((r) => r.length), 1) : 4;
  const top = colLabels ? 8 + 7 * Math.max(...view.cols.map((c) => c.length), 1) : 4;
  const canvas = el("canvas", {class: "heatmap", "data-rows": rows, "data-cols": cols, "data-name": view.title,
                               width: left + cols * cell, height: top + rows * Math.max(cell, rowLabels ? 12 : 3)});
  const height = Math.max(cell, rowLabels ? 12 : 3);
  const g = canvas.getContext("2d");
  g.font = "11px monospace";
  g.fillStyle = "#333";
  view.values.forEach((row, i) => {
    if (rowLabels) { g.fillStyle = "#333"; g.textAlign = "right"; g.fillText(view.rows[i], left - 4, top + i * height + height * 0.75); }
    row.forEach((value, j) => { g.fillStyle = color((value - lo) / span); g.fillRect(left + j * cell, top + i * height, cell, height); });
  });
  if (colLabels) {
    g.fillStyle = "#333";
    view.cols.forEach((label, j) => {
      g.save(); g.translate(left + j * cell + cell * 0.7, top - 4); g.rotate(-Math.PI / 2);
      g.textAlign = "left"; g.fillText(label, 0, 0); g.restore();
    });
  }
  canvas.addEventListener("mousemove", (event) => {
    const box = canvas.getBoundingClientRect(), scale = canvas.width / box.width;
    const j = Math.floor(((event.clientX - box.left) * scale - left) / cell);
    const i = Math.floor(((event.clientY - box.top) * scale - top) / height);
    if (i >= 0 && i < rows && j >= 0 && j < cols) canvas.title = `${view.rows[i]} × ${view.cols[j]}: ${view.values[i][j].toFixed(4)}`;
  });
  const wrap = el("div");
  wrap.appendChild(canvas);
  wrap.appendChild(el("div", {class: "axis"}, `rows: ${view.row_axis} (${rows}) · columns: ${view.col_axis} (${cols}) · ` +
                                               `white ${lo.toFixed(3)} … blue ${hi.toFixed(3)}`));
  return wrap;
}

function bars(view) {
  const table = el("table", {class: "bars"});
  view.labels.forEach((label, i) => {
    const tr = el("tr");
    tr.appendChild(el("td", {}, label));
    const td = el("td");
    td.appendChild(el("div", {class: "bar", style: `width:${Math.round(300 * view.values[i])}px`}));
    tr.appendChild(td);
    tr.appendChild(el("td", {}, view.values[i].toFixed(3)));
    table.appendChild(tr);
  });
  return table;
}

function curve(view) {
  const w = 520, h = 220, pad = 40, n = view.values.length;
  const lo = Math.min(...view.values), hi = Math.max(...view.values), span = hi - lo || 1;
  const x = (i) => pad + (n > 1 ? i * (w - 2 * pad) / (n - 1) : 0);
  const y = (v) => h - pad - (v - lo) * (h - 2 * pad) / span;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "curve");
  svg.setAttribute("width", w); svg.setAttribute("height", h); svg.setAttribute("data-points", n);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", view.values.map((v, i) => `${x(i)},${y(v)}`).join(" "));
  line.setAttribute("fill", "none"); line.setAttribute("stroke", "#2b6cb0"); line.setAttribute("stroke-width", "2");
  svg.appendChild(line);
  view.values.forEach((v, i) => {
    const dot = document.createElementNS(ns, "circle");
    dot.setAttribute("cx", x(i)); dot.setAttribute("cy", y(v)); dot.setAttribute("r", 3); dot.setAttribute("fill", "#2b6cb0");
    svg.appendChild(dot);
  });
  const text = (s, tx, ty) => { const t = document.createElementNS(ns, "text"); t.textContent = s;
    t.setAttribute("x", tx); t.setAttribute("y", ty); t.setAttribute("font-size", "11"); svg.appendChild(t); };
  text(hi.toFixed(2), 2, pad); text(lo.toFixed(2), 2, h - pad);
  text(`${view.x_axis} →`, w / 2, h - 8); text(view.y_axis, 2, 14);
  return svg;
}

function tokens(view) {
  const box = el("div", {class: "tokens", "data-count": view.tokens.length});
  for (const token of view.tokens) {
    const span = el("span", {class: "token"}, token.text);
    span.appendChild(el("span", {class: "label"}, token.label));
    span.appendChild(el("span", {class: "p"}, token.p.toFixed(3)));
    box.appendChild(span);
  }
  return box;
}

function steps(view) {
  const table = el("table", {class: "steps", "data-rows": view.steps.length});
  const head = el("tr");
  ["step", "drawn", "p", "most likely next tokens"].forEach((h) => head.appendChild(el("th", {}, h)));
  table.appendChild(head);
  view.steps.forEach((step, i) => {
    const tr = el("tr");
    tr.appendChild(el("td", {}, String(i + 1)));
    tr.appendChild(el("td", {class: "chosen"}, JSON.stringify(step.token)));
    tr.appendChild(el("td", {}, step.p.toFixed(3)));
    tr.appendChild(el("td", {}, step.top.map((t) => `${JSON.stringify(t.token)} ${t.p.toFixed(2)}`).join("  ")));
    table.appendChild(tr);
  });
  return table;
}

const DRAW = {heatmap, bars, curve, tokens, steps};

$("ask").addEventListener("submit", ask);
loadInfo();

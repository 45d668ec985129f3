// The tangshi page: builds its controls from /api/forms and /api/rhyme-groups, sends the options
// to /api/poems or /api/couplet (the command line's long names), shows the answer, and lets the
// reader lock characters and write a line again (a template: locked characters kept, □ elsewhere).
"use strict";

const $ = (sel) => document.querySelector(sel);
const POEM_FIELDS = ["title", "form", "start", "template", "acrostic", "at", "keywords", "rhyme", "rhyme_group", "tone",
                     "parallel", "strategy", "temperature", "seed", "n", "candidates", "script"];
const COUPLET_FIELDS = ["first", "tone", "parallel", "strategy", "temperature", "seed", "n", "candidates", "script"];
const PAGE_FORM = "qijue"; // the page opens on a Tang form (the API's default is free verse)
const REWRITE_CANDIDATES = 8; // versions of a rewritten line, ranked by the whole poem's score
// the command line's names in the server's messages, as the page calls those fields
const LABELS = {
  "--acrostic": "「藏頭」", "--at": "「藏字位置」", "--start": "「開頭」", "--template": "「模板」",
  "--keywords": "「關鍵字」", "--rhyme-group": "「韻部」", "--no-rhyme": "取消「押韻」", "--rhyme": "「押韻」",
  "--tone": "「平仄」", "--parallel": "「對仗」", "--strategy": "「取樣」", "--temperature": "「溫度」",
  "--seed": "「種子」", "--n": "「首數」", "--candidates": "「擇優」", "--form": "「體裁」", "--revise": "「改寫」",
  "--top-p": "top-p", "--top-k": "top-k", "--script": "「字體」", "--title": "「題目」",
};
let schema = null;
let last = null; // the last answer, for copying and the picture
let lastBody = null; // the request that wrote it

function mode() { return document.querySelector("input[name=mode]:checked").value; }

function fill(select, values, labels) {
  select.replaceChildren(...values.map((v, i) => {
    const o = document.createElement("option");
    o.value = v;
    o.textContent = labels ? labels[i] : v;
    return o;
  }));
}

function showMode() {
  const couplet = mode() === "couplet";
  document.querySelectorAll(".poem-only").forEach((e) => { e.hidden = couplet; });
  document.querySelectorAll(".couplet-only").forEach((e) => { e.hidden = !couplet; });
  const props = schema[couplet ? "couplet" : "poems"];
  const keep = $("#tone").value;
  fill($("#tone"), enumOf(props.tone), enumOf(props.tone).map((t) => ({ off: "不限 off", loose: "寬 loose",
                                                                          strict: "嚴 strict" }[t] || t)));
  $("#tone").value = enumOf(props.tone).includes(keep) ? keep : props.tone.default;
  const strategies = enumOf(props.strategy).filter((s) => s !== "seed"); // "seed" is an alias of "original"
  const s = $("#strategy").value;
  fill($("#strategy"), strategies);
  $("#strategy").value = strategies.includes(s) ? s : props.strategy.default;
  $("#parallel").placeholder = props.parallel.default;
}

function enumOf(prop) {
  if (prop.enum) return prop.enum;
  const e = (prop.anyOf || []).find((x) => x.enum);
  return e ? e.enum : [];
}

function value(name) {
  if (name === "script") return document.querySelector("input[name=script]:checked").value;
  const el = document.getElementById(name);
  if (el.type === "checkbox") return el.checked;
  if (el.type === "number") return el.value === "" ? null : Number(el.value);
  return el.value.trim();
}

function setValue(name, v) {
  if (name === "script") {
    const r = document.querySelector(`input[name=script][value="${v}"]`);
    if (r) r.checked = true;
    return;
  }
  const el = document.getElementById(name);
  if (!el) return;
  if (el.type === "checkbox") el.checked = v === "true" || v === true;
  else el.value = v;
}

function request() {
  const fields = mode() === "couplet" ? COUPLET_FIELDS : POEM_FIELDS;
  const body = {};
  for (const f of fields) {
    const v = value(f);
    if (v === "" || v === null) continue; // not given: the command line's default
    if (f === "at" && !value("acrostic")) continue;
    body[f] = v;
  }
  return body;
}

function inPageWords(message) {
  return message.replace(/--[a-z-]+/g, (flag) => LABELS[flag] || flag);
}

function clearErrors() {
  document.querySelectorAll(".error").forEach((e) => { e.textContent = ""; });
  document.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
}

function showError(message, field) {
  message = inPageWords(message);
  const slot = field && document.getElementById("error-" + field);
  const input = field && document.getElementById(field);
  if (slot && input && !input.closest(".poem-only[hidden], .couplet-only[hidden]")) {
    if (input.closest("details")) input.closest("details").open = true;
    slot.textContent = message;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", "error-" + field);
    input.focus();
  } else {
    $("#error-general").textContent = message;
  }
}

let queueTimer = null;
let asking = null; // this page's name for the request on its way (X-Tangshi-Request): the server says its place

function busy(on) {
  $("#busy").hidden = !on;
  $("#busy").textContent = "寫作中…";
  $("#write").disabled = on;
  $("#ask").setAttribute("aria-busy", on ? "true" : "false");
  $("#poems").classList.toggle("stale", on); // the old poems stay, dimmed, until the new ones come
  clearInterval(queueTimer);
  if (on) queueTimer = setInterval(showQueue, 700);
}

// while this page's request waits for the server, its place: how many wait before it
async function showQueue() {
  if (!asking) return;
  const res = await fetch("/api/health?request=" + encodeURIComponent(asking)).catch(() => null);
  if (!res || !res.ok) return;
  const ahead = (await res.json()).ahead;
  $("#busy").textContent = typeof ahead === "number"
    ? `排隊中：前面還有 ${ahead} 個請求，您是第 ${ahead + 1} 位…` : "寫作中…";
}

async function ask(url, body) {
  asking = Math.random().toString(36).slice(2) + Date.now().toString(36);
  try {
    const res = await fetch(url, { method: "POST", body: JSON.stringify(body),
                                   headers: { "Content-Type": "application/json", "X-Tangshi-Request": asking } });
    const data = await res.json().catch(() => ({ error: `伺服器回應 ${res.status}` }));
    return { ok: res.ok, data };
  } finally {
    asking = null;
  }
}

async function write(event) {
  if (event) event.preventDefault();
  clearErrors();
  const body = request();
  const url = mode() === "couplet" ? "/api/couplet" : "/api/poems";
  busy(true);
  try {
    const { ok, data } = await ask(url, body);
    if (!ok) {
      showError(data.error || "伺服器未能回應", data.field);
      return;
    }
    last = data;
    lastBody = body;
    const query = new URLSearchParams({ mode: mode(), ...body });
    history.replaceState(null, "", "?" + query.toString());
    $("#permalink").href = "?" + query.toString();
    await render(data);
  } catch (e) {
    showError("無法連上伺服器：" + e.message);
  } finally {
    busy(false);
  }
}

async function tonesOf(text) {
  const res = await fetch("/api/tones?text=" + encodeURIComponent(text));
  return res.ok ? (await res.json()).tones : [];
}

function lineElement(text, tones, rhymeAt, k, editable) {
  const line = document.createElement("div");
  line.className = "line";
  line.dataset.text = text;
  line.dataset.k = k;
  [...text].forEach((ch, i) => {
    const span = document.createElement("span");
    const mark = /[，。？！；]/.test(ch);
    span.className = "ch" + (i === rhymeAt ? " rhyme" : "") + (mark ? " mark" : "");
    const c = document.createElement("span");
    c.className = "char";
    c.textContent = ch;
    const t = document.createElement("span");
    t.className = "tone";
    t.textContent = tones[i] || "";
    t.setAttribute("aria-hidden", "true");
    span.append(c, t);
    if (editable && !mark) {
      span.tabIndex = 0;
      span.setAttribute("role", "button");
      span.setAttribute("aria-pressed", "false");
      span.title = "鎖定 lock";
    }
    line.append(span);
  });
  if (editable) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "redo";
    b.textContent = "改";
    b.title = "重寫這一句 write this line again";
    b.setAttribute("aria-label", `重寫第 ${k + 1} 句`);
    line.append(b);
  }
  return line;
}

function explain(item) {
  const parts = [];
  if (item.rhyme_group) parts.push("韻部 " + item.rhyme_group);
  if (item.tone_pattern) {
    const p = item.tone_pattern.replace("首句入韻", "，首句入韻").replace("首句不入韻", "，首句不入韻");
    parts.push(`${p}（平仄合律 ${Math.round(item.tone_conformance * 100)}%）`);
  }
  if (item.couplet) parts.push(`平仄相對 ${item.couplet.opposed}/${item.couplet.checked}`);
  const score = item.score !== undefined ? item.score : item.couplet && item.couplet.score;
  if (score !== undefined) parts.push(`模型把握 ${score.toFixed(2)}（每字平均對數機率，越近 0 越有把握）`);
  return parts.join(" · ");
}

async function poemElement(item, index, editable) {
  const lines = item.lines && item.lines.length ? item.lines : [item.text];
  const tones = await tonesOf(lines.join(""));
  const div = document.createElement("article");
  div.className = "poem";
  div.dataset.index = index;
  const body = document.createElement("div");
  body.className = "lines";
  let offset = 0;
  lines.forEach((text, k) => {
    // the rhyme characters: the last character of each even line of a rhymed poem
    const rhymeAt = item.rhyme_group && k % 2 === 1 ? text.length - 2 : -1;
    body.append(lineElement(text, tones.slice(offset, offset + text.length), rhymeAt, k, editable));
    offset += text.length;
  });
  const meta = document.createElement("p");
  meta.className = "meta";
  meta.textContent = explain(item);
  if (item.title) {
    const title = document.createElement("h3");
    title.className = "title";
    title.textContent = item.title;
    div.append(title);
  }
  div.append(body, meta);
  if (editable) {
    const rest = document.createElement("button");
    rest.type = "button";
    rest.className = "rest";
    rest.hidden = true;
    rest.textContent = "重寫其餘 rewrite the rest";
    div.append(rest);
    lockAcrostic(div);
  }
  return div;
}

function lockAcrostic(div) {
  const text = lastBody && lastBody.acrostic;
  if (!text) return;
  const at = lastBody.at || 1;
  div.querySelectorAll(".line").forEach((line) => {
    const chars = [...line.querySelectorAll(".ch:not(.mark)")];
    const ch = chars[at > 0 ? at - 1 : chars.length + at];
    if (ch) toggleLock(ch, true);
  });
}

function toggleLock(span, on) {
  const locked = on === undefined ? !span.classList.contains("locked") : on;
  span.classList.toggle("locked", locked);
  span.setAttribute("aria-pressed", locked ? "true" : "false");
  const poem = span.closest(".poem");
  poem.querySelector(".rest").hidden = !poem.querySelector(".ch.locked");
}

async function render(data) {
  const editable = !!data.poems && data.form !== "free";
  const items = data.poems || data.couplets.map((c) => ({ text: c.text, lines: [c.first + "，", c.second + "。"],
                                                            couplet: c }));
  const out = $("#poems");
  const made = [];
  for (const [i, item] of items.entries()) made.push(await poemElement(item, i, editable));
  out.replaceChildren(...made);
  $("#view").hidden = items.length === 0;
  $("#how").hidden = !editable || items.length === 0;
}

// a template of the poem: □ where it is written again, the character elsewhere
function templateOf(poem, open) {
  return [...poem.querySelectorAll(".line")].map((line, k) =>
    [...line.querySelectorAll(".ch")].map((span) => {
      const ch = span.querySelector(".char").textContent;
      return span.classList.contains("mark") || span.classList.contains("locked") || !open(k) ? ch : "□";
    }).join("")).join("");
}

async function rewrite(poem, open) {
  clearErrors();
  const keep = ["title", "form", "rhyme", "rhyme_group", "tone", "parallel", "strategy", "temperature", "script"];
  const body = Object.fromEntries(Object.entries(lastBody).filter(([k]) => keep.includes(k)));
  Object.assign(body, { template: templateOf(poem, open), n: 1, candidates: REWRITE_CANDIDATES,
                        seed: Math.floor(Math.random() * 1e6) });
  busy(true);
  try {
    const { ok, data } = await ask("/api/poems", body);
    if (!ok) {
      showError(data.error || "伺服器未能回應", null);
      return;
    }
    const index = Number(poem.dataset.index);
    last.poems[index] = data.poems[0];
    const fresh = await poemElement(data.poems[0], index, true);
    poem.querySelectorAll(".ch.locked").forEach((span) => { // the locks stay where they were
      const k = span.closest(".line").dataset.k;
      const i = [...span.parentNode.children].indexOf(span);
      const same = fresh.querySelector(`.line[data-k="${k}"]`).children[i];
      if (same) toggleLock(same, true);
    });
    poem.replaceWith(fresh);
  } catch (e) {
    showError("無法連上伺服器：" + e.message);
  } finally {
    busy(false);
  }
}

function onPoemClick(event) {
  const poem = event.target.closest(".poem");
  if (!poem || !poem.querySelector(".rest")) return;
  const redo = event.target.closest(".redo");
  if (redo) {
    const k = Number(redo.closest(".line").dataset.k);
    rewrite(poem, (j) => j === k);
    return;
  }
  if (event.target.closest(".rest")) {
    rewrite(poem, () => true);
    return;
  }
  const ch = event.target.closest(".ch[role=button]");
  if (ch) toggleLock(ch);
}

// double-click a character to change it: it is locked as typed, and the rest of its line follows
function onPoemDoubleClick(event) {
  const ch = event.target.closest(".ch[role=button]");
  if (!ch) return;
  const typed = (prompt("改為 change to", ch.querySelector(".char").textContent) || "").trim();
  if ([...typed].length !== 1) return;
  ch.querySelector(".char").textContent = typed;
  toggleLock(ch, true);
  const k = Number(ch.closest(".line").dataset.k);
  rewrite(ch.closest(".poem"), (j) => j === k);
}

// each poem's lines, then what the meta line says, then where it came from
function copyText() {
  const items = last.poems || last.couplets.map((c) => ({ lines: [c.first + "，", c.second + "。"], couplet: c }));
  return items.map((p) => {
    const lines = p.lines && p.lines.length ? p.lines.join("\n") : p.text;
    const meta = explain(p);
    return (p.title ? "《" + p.title + "》\n" : "") + lines + (meta ? "\n（" + meta + "）" : "");
  }).join("\n\n") + "\n\n—— tangshi";
}

async function copy() {
  const text = copyText();
  try {
    await navigator.clipboard.writeText(text);
  } catch (e) { // no clipboard permission: select a copy and use the old command
    const area = document.createElement("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  $("#copied").textContent = "已複製";
  setTimeout(() => { $("#copied").textContent = ""; }, 1500);
}

// the first poem as a picture, drawn in the browser: its title, its lines, its 韻部, and "tangshi"
function share() {
  const item = (last.poems || last.couplets.map((c) => ({ lines: [c.first + "，", c.second + "。"] })))[0];
  const lines = item.lines && item.lines.length ? item.lines : [item.text];
  const size = 40, pad = 48, head = item.title ? size * 1.8 : 0;
  const canvas = document.createElement("canvas");
  const width = Math.max(...lines.map((l) => [...l].length), item.title ? [...item.title].length + 2 : 0) * size;
  canvas.width = Math.max(width + 2 * pad, 360);
  canvas.height = pad * 2 + head + lines.length * size * 1.6 + 70;
  const g = canvas.getContext("2d");
  g.fillStyle = "#fbf8f1";
  g.fillRect(0, 0, canvas.width, canvas.height);
  g.fillStyle = "#1f1a17";
  g.textAlign = "center";
  if (item.title) {
    g.font = `bold ${size}px "Noto Serif CJK TC", "Noto Serif CJK SC", serif`;
    g.fillText("《" + item.title + "》", canvas.width / 2, pad + size);
  }
  g.font = `${size}px "Noto Serif CJK TC", "Noto Serif CJK SC", serif`;
  lines.forEach((l, k) => g.fillText(l, canvas.width / 2, pad + head + size + k * size * 1.6));
  g.font = `18px "Noto Sans CJK TC", sans-serif`;
  g.fillStyle = "#6b6259";
  const foot = (item.rhyme_group ? "韻部 " + item.rhyme_group + " · " : "") + "tangshi";
  g.fillText(foot, canvas.width / 2, canvas.height - pad / 2);
  const link = $("#png");
  link.href = canvas.toDataURL("image/png");
  link.click(); // the hidden link downloads it
}

async function init() {
  schema = await (await fetch("/api/forms")).json();
  fill($("#form"), schema.forms.map((f) => f.name), schema.forms.map((f) => f.label));
  $("#form").value = PAGE_FORM;
  $("#n").max = schema.limits.n;
  $("#candidates").max = schema.limits.samples; // the server bounds n × candidates by it
  const groups = (await (await fetch("/api/rhyme-groups")).json()).groups;
  for (const g of groups) {
    const o = document.createElement("option");
    o.value = g.group;
    o.textContent = `${g.name}（模型識 ${g.known} 字）`;
    $("#rhyme_group").append(o);
  }
  document.querySelectorAll("input[name=mode]").forEach((r) => r.addEventListener("change", showMode));
  const params = new URLSearchParams(location.search);
  if (params.get("mode") === "couplet") document.querySelector("input[name=mode][value=couplet]").checked = true;
  showMode();
  for (const [k, v] of params) if (k !== "mode") setValue(k, v);
  $("#ask").addEventListener("submit", write);
  $("#random").addEventListener("click", () => { $("#seed").value = Math.floor(Math.random() * 1e6); write(); });
  $("#vertical").addEventListener("change", (e) => $("#out").classList.toggle("vertical", e.target.checked));
  $("#show-tones").addEventListener("change", (e) => $("#out").classList.toggle("show-tones", e.target.checked));
  $("#copy").addEventListener("click", copy);
  $("#share").addEventListener("click", share);
  $("#poems").addEventListener("click", onPoemClick);
  $("#poems").addEventListener("dblclick", onPoemDoubleClick);
  $("#poems").addEventListener("keydown", (e) => { // a locked character by keyboard (buttons click themselves)
    if ((e.key === "Enter" || e.key === " ") && !e.target.closest("button")) {
      e.preventDefault();
      onPoemClick(e);
    }
  });
  document.body.dataset.ready = "true";
  if ([...params.keys()].some((k) => k !== "mode")) write();
}

init().catch((e) => showError("頁面無法載入選項：" + e.message));

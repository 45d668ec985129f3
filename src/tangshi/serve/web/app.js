// The tangshi page: builds its controls from /api/forms and /api/rhyme-groups, sends the options
// to /api/poems or /api/couplet (the command line's long names), and shows the answer.
"use strict";

const $ = (sel) => document.querySelector(sel);
const POEM_FIELDS = ["form", "start", "acrostic", "at", "keywords", "rhyme", "rhyme_group", "tone", "strategy",
                     "temperature", "seed", "n", "candidates", "script"];
const COUPLET_FIELDS = ["first", "tone", "strategy", "temperature", "seed", "n", "candidates", "script"];
let schema = null;
let last = null; // the last answer, for copying

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
  fill($("#tone"), enumOf(props.tone));
  $("#tone").value = enumOf(props.tone).includes(keep) ? keep : props.tone.default;
  const strategies = enumOf(props.strategy).filter((s) => s !== "seed"); // "seed" is an alias of "original"
  const s = $("#strategy").value;
  fill($("#strategy"), strategies);
  $("#strategy").value = strategies.includes(s) ? s : props.strategy.default;
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

function clearErrors() {
  document.querySelectorAll(".error").forEach((e) => { e.textContent = ""; });
  document.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
}

function showError(message, field) {
  const slot = field && document.getElementById("error-" + field);
  const input = field && document.getElementById(field);
  if (slot && input && !input.closest("[hidden]")) {
    slot.textContent = message;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", "error-" + field);
    input.focus();
  } else {
    $("#error-general").textContent = message;
  }
}

function busy(on) {
  $("#busy").hidden = !on;
  $("#write").disabled = on;
  $("#ask").setAttribute("aria-busy", on ? "true" : "false");
}

async function write(event) {
  if (event) event.preventDefault();
  clearErrors();
  const body = request();
  const url = mode() === "couplet" ? "/api/couplet" : "/api/poems";
  busy(true);
  try {
    const res = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" },
                                   body: JSON.stringify(body) });
    const data = await res.json().catch(() => ({ error: `the server answered ${res.status}` }));
    if (!res.ok) {
      showError(data.error || `the server answered ${res.status}`, data.field);
      return;
    }
    last = data;
    const query = new URLSearchParams({ mode: mode(), ...body });
    history.replaceState(null, "", "?" + query.toString());
    $("#permalink").href = "?" + query.toString();
    await render(data);
  } catch (e) {
    showError("the server cannot be reached: " + e.message);
  } finally {
    busy(false);
  }
}

async function tonesOf(text) {
  const res = await fetch("/api/tones?text=" + encodeURIComponent(text));
  return res.ok ? (await res.json()).tones : [];
}

function lineElement(text, tones, rhymeAt) {
  const line = document.createElement("div");
  line.className = "line";
  line.dataset.text = text;
  [...text].forEach((ch, i) => {
    const span = document.createElement("span");
    span.className = "ch" + (i === rhymeAt ? " rhyme" : "");
    const c = document.createElement("span");
    c.className = "char";
    c.textContent = ch;
    const t = document.createElement("span");
    t.className = "tone";
    t.textContent = tones[i] || "";
    t.setAttribute("aria-hidden", "true");
    span.append(c, t);
    line.append(span);
  });
  return line;
}

async function render(data) {
  const items = data.poems || data.couplets.map((c) => ({ text: c.text, lines: [c.first + "，", c.second + "。"],
                                                            couplet: c }));
  const out = $("#poems");
  out.replaceChildren();
  for (const item of items) {
    const lines = item.lines && item.lines.length ? item.lines : [item.text];
    const tones = await tonesOf(lines.join(""));
    const div = document.createElement("article");
    div.className = "poem";
    const body = document.createElement("div");
    body.className = "lines";
    let offset = 0;
    lines.forEach((text, k) => {
      // the rhyme characters: the last character of each even line of a rhymed poem
      const rhymeAt = item.rhyme_group && k % 2 === 1 ? text.length - 2 : -1;
      body.append(lineElement(text, tones.slice(offset, offset + text.length), rhymeAt));
      offset += text.length;
    });
    const meta = document.createElement("p");
    meta.className = "meta";
    const parts = [];
    if (item.rhyme_group) parts.push("韻 " + item.rhyme_group);
    if (item.tone_pattern) parts.push(item.tone_pattern + " " + item.tone_conformance);
    if (item.couplet) parts.push(`平仄 opposed ${item.couplet.opposed}/${item.couplet.checked}`);
    const score = item.score !== undefined ? item.score : item.couplet && item.couplet.score;
    if (score !== undefined) parts.push("score " + score);
    meta.textContent = parts.join(" · ");
    div.append(body, meta);
    out.append(div);
  }
  $("#view").hidden = items.length === 0;
}

async function copy() {
  const items = last.poems || last.couplets;
  const text = items.map((p) => (p.lines && p.lines.length ? p.lines.join("\n") : p.text)).join("\n\n");
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
  $("#copied").textContent = "copied";
  setTimeout(() => { $("#copied").textContent = ""; }, 1500);
}

async function init() {
  schema = await (await fetch("/api/forms")).json();
  fill($("#form"), schema.forms.map((f) => f.name), schema.forms.map((f) => `${f.label} ${f.name}`));
  $("#form").value = schema.poems.form.default;
  $("#n").max = schema.limits.n;
  const groups = (await (await fetch("/api/rhyme-groups")).json()).groups;
  for (const g of groups) {
    const o = document.createElement("option");
    o.value = g.group;
    o.textContent = `${g.name} (${g.known} known)`;
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
  document.body.dataset.ready = "true";
  if ([...params.keys()].some((k) => k !== "mode")) write();
}

init().catch((e) => showError("the page could not load its controls: " + e.message));

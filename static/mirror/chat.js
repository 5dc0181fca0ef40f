// The chat page: conversations, a model picker, streamed answers rendered as sanitized Markdown.
// Talks only to the page's own endpoints under /chat/api/ (session cookie + CSRF header).
import { marked } from "../vendor/marked.esm.js";
import DOMPurify from "../vendor/purify.es.mjs";

const $ = (id) => document.getElementById(id);
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const MAX_IMAGE_BYTES = 8 * 1024 * 1024;
const state = { conversations: [], current: null, models: [], controller: null, attachments: [], error: null };
const emptyState = $("empty");

marked.setOptions({ gfm: true });
let hljs = null; // highlight.js is the largest library: loaded with the first code block
let hljsLoading = null;

// -- talking to the server ---------------------------------------------------------------------------
async function request(path, { method = "GET", body, signal } = {}) {
  const headers = { "X-CSRFToken": csrf };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/chat/api/${path}`, {
    method, headers, signal, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    location.assign("/login");
    throw { status: 401, message: "You are not logged in." };
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

async function api(path, options) {
  const response = await request(path, options);
  return response.status === 204 ? null : response.json();
}

async function errorOf(response) {
  let error = {};
  try {
    error = (await response.json()).error || {};
  } catch {
    // not JSON: a CSRF refusal or a proxy's error page
  }
  return { status: response.status, code: error.code || "", message: error.message || `The server answered ${response.status}.` };
}

// Yields each `data:` payload of an SSE body: a parsed object, or the string "[DONE]".
async function* events(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (data) yield data === "[DONE]" ? data : JSON.parse(data);
    }
  }
}

function explain(error) {
  const { status = 0, code = "", message = "" } = error;
  if (status === 429 || code === "rate_limit_exceeded")
    return ["Rate limited", `${message} Wait a moment, then press Regenerate.`];
  if (code === "upstream_challenge_required")
    return ["Challenge required", "The upstream asked this account to pass a human check, which this server never solves. Try another model, or again later."];
  if (code === "no_credential" || status === 503) return ["No account available", message];
  if (code === "invalid_api_key") return ["Token refused", message];
  if (code === "model_not_found") return ["Model not available", message];
  if (status === 403) return ["Request refused", "The page's security token is stale. Reload the page."];
  if (status === 413) return ["Too large", message];
  if (!status) return ["Connection lost", message || "The connection to the server was lost."];
  return ["Something went wrong", message];
}

// -- rendering ---------------------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = el("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  button.textContent = "Copied";
  setTimeout(() => (button.textContent = "Copy"), 1200);
}

function highlight(target) {
  if (!hljs) {
    hljsLoading ||= import("../vendor/highlight.mjs").then((module) => {
      hljs = module.default;
      hljs.configure({ ignoreUnescapedHTML: true });
    });
    hljsLoading.then(() => highlight(target));
    return;
  }
  for (const code of target.querySelectorAll("pre > code:not([data-highlighted])")) hljs.highlightElement(code);
}

function renderMarkdown(target, text) {
  target.innerHTML = DOMPurify.sanitize(marked.parse(text));
  const blocks = target.querySelectorAll("pre > code");
  if (blocks.length) highlight(target);
  for (const code of blocks) {
    const button = el("button", { type: "button", class: "copy", text: "Copy" });
    button.addEventListener("click", () => copy(code.textContent, button));
    code.parentElement.prepend(button);
  }
  for (const link of target.querySelectorAll("a[href]")) {
    link.target = "_blank";
    link.rel = "noopener noreferrer";
  }
}

function partsOf(content) {
  return typeof content === "string" ? [{ type: "text", text: content }] : content || [];
}

function userView(message) {
  const bubble = el("div", { class: "bubble" });
  for (const part of partsOf(message.content)) {
    if (part.type === "text" && part.text) bubble.append(el("p", { class: "text", text: part.text }));
    if (part.type === "image_url") bubble.append(el("img", { class: "attachment", src: part.image_url.url, alt: "attached image" }));
  }
  return el("article", { class: "message user" }, bubble);
}

// An answer view that can be updated while it streams.
function answerView() {
  const reasoning = el("details", { class: "reasoning", hidden: "" }, el("summary", { text: "Reasoning" }));
  const reasoningBody = el("div", { class: "markdown" });
  reasoning.append(reasoningBody);
  const body = el("div", { class: "markdown answer-body" });
  const copyButton = el("button", { type: "button", class: "small", text: "Copy" });
  const status = el("span", { class: "status" });
  const foot = el("div", { class: "answer-foot" }, copyButton, status);
  const node = el("article", { class: "message assistant" }, reasoning, body, foot);
  let text = "", thought = "", pending = false;
  copyButton.addEventListener("click", () => copy(text, copyButton));
  const paint = () => {
    pending = false;
    if (thought) {
      reasoning.hidden = false;
      renderMarkdown(reasoningBody, thought);
    }
    renderMarkdown(body, text);
    scrollDown();
  };
  return {
    node,
    update(content, reasoningText) {
      text = content;
      thought = reasoningText;
      if (!pending) {
        pending = true;
        requestAnimationFrame(paint);
      }
    },
    finish(label) {
      node.classList.remove("streaming");
      status.textContent = label || "";
      paint();
    },
    streaming() {
      node.classList.add("streaming");
    },
  };
}

function assistantView(message) {
  const view = answerView();
  view.update(message.content || "", message.reasoning || "");
  view.finish(message.stopped ? "Stopped" : "");
  return view.node;
}

function errorView(error) {
  const [title, detail] = explain(error);
  return el("div", { class: "error", role: "alert" }, el("strong", { text: title }), el("span", { text: ` ${detail}` }));
}

function scrollDown() {
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
}

function renderMessages() {
  const box = $("messages");
  const messages = state.current ? state.current.messages : [];
  box.replaceChildren(...messages.map((m) => (m.role === "user" ? userView(m) : assistantView(m))));
  if (!messages.length) box.append(emptyState);
  if (state.error) box.append(errorView(state.error));
  $("title").textContent = state.current?.title || "New chat";
  updateButtons();
  scrollDown();
}

function renderConversations() {
  const list = $("conversations");
  list.replaceChildren(
    ...state.conversations.map((conv) => {
      const open = el("button", { type: "button", class: "conv-title", text: conv.title, title: conv.title, onclick: () => openConversation(conv.id) });
      const rename = el("button", { type: "button", class: "icon small", "aria-label": "Rename", title: "Rename", text: "✎", onclick: () => startRename(item, conv) });
      const remove = el("button", { type: "button", class: "icon small", "aria-label": "Delete", title: "Delete", text: "×", onclick: () => removeConversation(conv) });
      const item = el("li", { class: conv.id === state.current?.id ? "active" : "", "data-id": conv.id }, open, rename, remove);
      return item;
    }),
  );
}

function startRename(item, conv) {
  const input = el("input", { type: "text", class: "rename", "aria-label": "New title" });
  input.value = conv.title;
  const done = async (save) => {
    if (save && input.value.trim() && input.value !== conv.title) {
      await api(`conversations/${conv.id}`, { method: "PATCH", body: { title: input.value } });
      if (state.current?.id === conv.id) state.current.title = input.value.trim();
    }
    await loadConversations();
    $("title").textContent = state.current?.title || "New chat";
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") done(true);
    if (event.key === "Escape") done(false);
  });
  input.addEventListener("blur", () => done(true), { once: true });
  item.replaceChildren(input);
  input.focus();
  input.select();
}

function updateButtons() {
  const busy = Boolean(state.controller);
  $("send").hidden = busy;
  $("stop").hidden = !busy;
  $("new-chat").disabled = busy;
  const messages = state.current?.messages || [];
  $("regenerate").hidden = busy || !messages.length;
}

// -- actions -----------------------------------------------------------------------------------------
async function loadConversations() {
  state.conversations = (await api("conversations")).conversations;
  const current = state.conversations.find((c) => c.id === state.current?.id);
  if (current) {
    state.current.title = current.title;
    $("title").textContent = current.title;
  }
  renderConversations();
}

async function loadModels() {
  state.models = (await api("models")).models;
  const select = $("model");
  select.replaceChildren(...state.models.map((name) => el("option", { value: name, text: name })));
  if (!state.models.length) select.append(el("option", { value: "", text: "No model available" }));
  chooseModel(localStorage.getItem("mirror.model"));
}

function chooseModel(name) {
  if (name && state.models.includes(name)) $("model").value = name;
}

async function openConversation(id) {
  if (state.controller) return;
  state.current = await api(`conversations/${id}`);
  state.error = null;
  history.replaceState(null, "", `/#${id}`);
  chooseModel(state.current.model);
  renderConversations();
  renderMessages();
  closeMenu();
}

function newConversation() {
  if (state.controller) return;
  state.current = null;
  state.error = null;
  history.replaceState(null, "", "/");
  renderConversations();
  renderMessages();
  closeMenu();
  $("input").focus();
}

async function removeConversation(conv) {
  if (!confirm(`Delete "${conv.title}"?`)) return;
  await api(`conversations/${conv.id}`, { method: "DELETE" });
  if (state.current?.id === conv.id) newConversation();
  await loadConversations();
}

function composeContent() {
  const text = $("input").value.trim();
  if (!state.attachments.length) return text;
  const parts = text ? [{ type: "text", text }] : [];
  return [...parts, ...state.attachments.map((url) => ({ type: "image_url", image_url: { url } }))];
}

async function send(options = {}) {
  if (state.controller) return;
  try {
    await sendNow(options);
  } catch (error) {
    state.controller = null;
    state.error = error;
    renderMessages();
  }
}

async function sendNow({ regenerate = false }) {
  const content = regenerate ? null : composeContent();
  if (!regenerate && !content.length) return;
  const model = $("model").value;
  if (!model) {
    state.error = { status: 503, code: "no_credential", message: "There is no model to send to." };
    return renderMessages();
  }
  if (!state.current) {
    state.current = await api("conversations", { method: "POST", body: { model } });
    history.replaceState(null, "", `/#${state.current.id}`);
  }
  const messages = state.current.messages;
  if (regenerate) {
    while (messages.length && messages[messages.length - 1].role === "assistant") messages.pop();
  } else {
    messages.push({ role: "user", content });
    $("input").value = "";
    state.attachments = [];
    renderAttachments();
    autosize();
  }
  state.error = null;
  state.controller = new AbortController();
  renderMessages();
  const view = answerView();
  view.streaming();
  $("messages").append(view.node);
  scrollDown();
  await stream(view, { model, content, regenerate });
}

async function stream(view, payload) {
  let text = "", thought = "", finished = false, error = null;
  try {
    const response = await request(`conversations/${state.current.id}/send`, { method: "POST", body: payload, signal: state.controller.signal });
    loadConversations().catch(() => {}); // the first message named the conversation
    for await (const event of events(response.body)) {
      if (event === "[DONE]") {
        finished = true;
        break;
      }
      if (event.error) {
        error = { status: 502, code: event.error.code || "", message: event.error.message };
        break;
      }
      const delta = event.choices?.[0]?.delta || {};
      text += delta.content || "";
      thought += delta.reasoning_content || "";
      view.update(text, thought);
    }
  } catch (caught) {
    if (caught.name !== "AbortError") error = caught.status !== undefined ? caught : { status: 0, message: "" };
  }
  state.controller = null;
  if (text || thought) state.current.messages.push({ role: "assistant", content: text, reasoning: thought, stopped: !finished });
  if (error) {
    state.error = error;
    if (!text && !thought) view.node.remove();
    $("messages").append(errorView(error));
  }
  view.finish(!finished && !error && (text || thought) ? "Stopped" : "");
  updateButtons();
  scrollDown();
}

// -- attachments -------------------------------------------------------------------------------------
function addImages(files) {
  for (const file of files) {
    if (!file.type.startsWith("image/")) continue;
    if (file.size > MAX_IMAGE_BYTES) {
      state.error = { status: 413, message: `${file.name || "The image"} is larger than 8 MB.` };
      renderMessages();
      continue;
    }
    const reader = new FileReader();
    reader.addEventListener("load", () => {
      state.attachments.push(reader.result);
      renderAttachments();
    });
    reader.readAsDataURL(file);
  }
}

function renderAttachments() {
  $("attachments").replaceChildren(
    ...state.attachments.map((url, i) => {
      const remove = el("button", { type: "button", class: "icon small", "aria-label": "Remove image", text: "×" });
      remove.addEventListener("click", () => {
        state.attachments.splice(i, 1);
        renderAttachments();
      });
      return el("div", { class: "thumb" }, el("img", { src: url, alt: "image to send" }), remove);
    }),
  );
}

// -- wiring ------------------------------------------------------------------------------------------
function autosize() {
  const input = $("input");
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 220)}px`;
}

function closeMenu() {
  document.body.classList.remove("nav-open");
}

function wire() {
  $("composer-form").addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  $("input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  $("input").addEventListener("input", autosize);
  $("input").addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files || [])].filter((f) => f.type.startsWith("image/"));
    if (files.length) {
      event.preventDefault();
      addImages(files);
    }
  });
  $("attach").addEventListener("click", () => $("file").click());
  $("file").addEventListener("change", (event) => {
    addImages(event.target.files);
    event.target.value = "";
  });
  $("stop").addEventListener("click", () => state.controller?.abort());
  $("regenerate").addEventListener("click", () => send({ regenerate: true }));
  $("new-chat").addEventListener("click", newConversation);
  $("model").addEventListener("change", () => localStorage.setItem("mirror.model", $("model").value));
  $("menu").addEventListener("click", () => document.body.classList.toggle("nav-open"));
  $("scrim").addEventListener("click", closeMenu);
}

async function start() {
  wire();
  try {
    await Promise.all([loadModels(), loadConversations()]);
    const id = location.hash.slice(1);
    if (id && state.conversations.some((c) => c.id === id)) await openConversation(id);
    else renderMessages();
  } catch (error) {
    state.error = error;
    renderMessages();
  }
  document.body.dataset.ready = "true";
  $("input").focus();
}

start();

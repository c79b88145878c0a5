// DOM for the page's lists: conversations, messages, and errors in words.
import { renderMarkdown, renderPlain } from "./markdown.js";

export const $ = (id) => document.getElementById(id);

const WORDS = {
  busy: "An answer is still being written in this conversation; wait for it or press Stop.",
  rate_limited: "Too many requests at once; try again in a moment.",
  upstream_unavailable: "The AI or speech service cannot be reached right now.",
  upstream_error: "The AI or speech service failed to answer.",
  unsupported_audio: "That recording cannot be used.",
  not_found: "That conversation no longer exists.",
  disconnected: "Not connected to the server; try again once it says Connected.",
  timeout: "The server did not answer in time.",
  internal_error: "Something went wrong on the server.",
};

export function describeError(error) {
  const code = error && error.code;
  const detail = error && error.message && error.message !== code ? error.message : "";
  const words = WORDS[code];
  if (!words) return detail || "Something went wrong.";
  if (!detail || code === "not_found" || code === "disconnected") return words;
  return `${words} (${detail})`;
}

export function showError(text) {
  const box = $("error");
  box.textContent = text;
  box.hidden = !text;
}

function activity(conversation) {
  return conversation.updated_at || conversation.created_at || "";
}

export function sortConversations(list) {
  return list.sort((a, b) => (activity(a) < activity(b) ? 1 : activity(a) > activity(b) ? -1 : 0));
}

export function renderConversations(conversations, currentId, onOpen) {
  const list = $("conversation-list");
  const items = sortConversations([...conversations.values()]).map((conversation) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "conversation";
    button.dataset.id = conversation.id;
    button.textContent = conversation.title || "Untitled";
    if (conversation.id === currentId) button.setAttribute("aria-current", "true");
    button.addEventListener("click", () => onOpen(conversation.id));
    item.append(button);
    return item;
  });
  list.replaceChildren(...items);
}

const STATUS_WORDS = {
  cancelled: "Stopped",
  interrupted: "Interrupted",
  error: "The answer failed",
};

// One message's <li>; `body` is re-rendered as its text grows.
export function messageElement(message, onPlay) {
  const item = document.createElement("li");
  item.className = `message ${message.role}`;
  item.dataset.id = message.id;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = message.role === "user" ? "You" : "PiChat";
  const body = document.createElement("div");
  body.className = "body";
  const meta = document.createElement("div");
  meta.className = "meta";
  item.append(who, body, meta);
  if (message.role === "assistant") {
    const play = document.createElement("button");
    play.type = "button";
    play.className = "play quiet";
    play.textContent = "Play";
    play.setAttribute("aria-label", "Play answer");
    play.addEventListener("click", () => onPlay(item, play));
    meta.append(play);
  }
  updateMessage(item, message);
  return item;
}

export function updateMessage(item, message) {
  item.dataset.text = message.content;
  item.dataset.status = message.status;
  renderBody(item);
  const meta = item.querySelector(".meta");
  let note = meta.querySelector(".note");
  const words = [
    message.is_audio ? "Voice message" : "",
    STATUS_WORDS[message.status] || "",
  ].filter(Boolean);
  if (words.length) {
    if (!note) {
      note = document.createElement("span");
      note.className = "note";
      meta.prepend(note);
    }
    note.textContent = words.join(" · ");
  } else if (note) {
    note.remove();
  }
}

export function renderBody(item) {
  const body = item.querySelector(".body");
  const text = item.dataset.text || "";
  body.replaceChildren(item.classList.contains("assistant") ? renderMarkdown(text) : renderPlain(text));
}

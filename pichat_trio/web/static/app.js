// The PiChat page: sign-in, conversations, the streamed chat, voice, settings and live
// updates from the user's other devices, over one WebSocket (connection.js).
import { Recorder, StreamPlayer, toBase64 } from "./audio.js";
import { Connection } from "./connection.js";
import { HandsFree } from "./handsfree.js";
import {
  $,
  describeError,
  messageElement,
  renderBody,
  renderConversations,
  showError,
  updateMessage,
} from "./view.js";

const TOKEN_KEY = "pichat.token";
const CURRENT_KEY = "pichat.conversation";
const PAGE_CONVERSATIONS = 30;
const PAGE_MESSAGES = 50;
const DEFAULT_MODELS = ["gpt-4", "gpt-3.5"];
const DEFAULT_ACCENTS = ["polish", "american", "british", "german", "french", "spanish", "italian"];

const state = {
  connection: null,
  conversations: new Map(),
  moreConversations: false,
  current: null,
  oldestMessage: null,
  generating: new Set(), // conversation ids with an answer being written
  settings: null,
  models: DEFAULT_MODELS,
  accents: DEFAULT_ACCENTS,
  recorder: null,
  player: null,
  handsFree: null, // the voice session, while hands-free is on
};

// ---- sign-in ------------------------------------------------------------------------

function tokenFromAddress() {
  const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (!match) return null;
  history.replaceState(null, "", location.pathname + location.search);
  return decodeURIComponent(match[1]);
}

function showSignIn(message) {
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
  $("token-input").focus();
}

function signIn(token) {
  localStorage.setItem(TOKEN_KEY, token);
  $("signin").hidden = true;
  $("app").hidden = false;
  state.connection = new Connection(token, {
    onState: setStatus,
    onFrame: handleFrame,
    onOpen: () => {
      endHandsFree(true); // a session does not outlive its connection
      return refresh();
    },
    onRejected: (why) => {
      localStorage.removeItem(TOKEN_KEY);
      showSignIn(why);
    },
  });
  state.connection.start();
  $("message").focus();
}

function signOut() {
  state.connection?.stop();
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(CURRENT_KEY);
  state.conversations.clear();
  state.current = null;
  showSignIn("");
}

function setStatus(name, text) {
  const status = $("status");
  status.dataset.state = name;
  status.textContent = text;
}

const request = (action, payload, options) => state.connection.request(action, payload, options);

// ---- loading (on every connect: what changed while we were away) ---------------------

async function refresh() {
  showError("");
  state.generating.clear(); // what is still being written comes back with the messages
  await Promise.all([loadOptions(), loadSettings(), loadConversations(true)]).catch(report);
  const wanted = state.current || localStorage.getItem(CURRENT_KEY);
  if (wanted && state.conversations.has(wanted)) await openConversation(wanted);
  else if (wanted) await openConversation(wanted).catch(() => closeConversation());
}

async function loadOptions() {
  try {
    const hello = await request("hello", { client: "pichat-web" });
    if (hello.models?.length) state.models = hello.models;
    if (hello.accents?.length) state.accents = hello.accents;
  } catch {
    // a v1 server has no hello: the defaults it documents
  }
}

async function loadSettings() {
  state.settings = await request("get_settings");
}

async function loadConversations(reset) {
  const payload = { limit: PAGE_CONVERSATIONS };
  if (!reset) {
    const oldest = [...state.conversations.values()].map((c) => c.updated_at).sort()[0];
    if (oldest) payload.before = oldest;
  }
  const reply = await request("get_conversations", payload);
  if (reset) state.conversations.clear();
  for (const conversation of reply.conversations) state.conversations.set(conversation.id, conversation);
  state.moreConversations = reply.conversations.length === PAGE_CONVERSATIONS;
  $("more-conversations").hidden = !state.moreConversations;
  drawConversations();
}

function drawConversations() {
  renderConversations(state.conversations, state.current, (id) => {
    openConversation(id).catch(report);
    closeSidebar();
  });
}

// ---- a conversation ------------------------------------------------------------------

async function openConversation(id) {
  const reply = await request("get_messages", { conversation_id: id, limit: PAGE_MESSAGES });
  if (!state.conversations.has(id)) {
    state.conversations.set(id, await request("get_conversation", { id }));
  }
  state.current = id;
  localStorage.setItem(CURRENT_KEY, id);
  $("messages").replaceChildren();
  addMessages(reply.messages, false);
  setOlder(reply);
  drawConversations();
  drawCurrent();
  scrollToEnd();
}

function closeConversation() {
  state.current = null;
  localStorage.removeItem(CURRENT_KEY);
  $("messages").replaceChildren();
  $("load-older").hidden = true;
  drawConversations();
  drawCurrent();
}

function setOlder(reply) {
  state.oldestMessage = reply.messages.length ? reply.messages[0].id : null;
  $("load-older").hidden = !reply.has_more;
}

async function loadOlder() {
  if (!state.current || !state.oldestMessage) return;
  const id = state.current;
  const reply = await request("get_messages", {
    conversation_id: id,
    limit: PAGE_MESSAGES,
    before: state.oldestMessage,
  });
  if (state.current !== id) return;
  addMessages(reply.messages, true);
  setOlder(reply);
}

function addMessages(messages, atTop) {
  const list = $("messages");
  const items = messages.map((message) => messageElement(message, play));
  if (atTop) list.prepend(...items);
  else list.append(...items);
  for (const message of messages) {
    if (message.status === "streaming") state.generating.add(message.conversation_id);
  }
}

function drawCurrent() {
  const conversation = state.conversations.get(state.current);
  $("conversation-title").textContent = conversation ? conversation.title || "Untitled" : "PiChat";
  $("conversation-actions").hidden = !conversation;
  $("empty").hidden = Boolean(conversation && $("messages").children.length);
  const busy = Boolean(conversation && state.generating.has(conversation.id));
  $("typing").hidden = !busy;
  $("stop").hidden = !busy;
  $("send").hidden = busy;
}

function scrollToEnd() {
  const chat = $("chat");
  chat.scrollTop = chat.scrollHeight;
}

function messageItem(id) {
  return $("messages").querySelector(`li[data-id="${CSS.escape(id)}"]`);
}

function upsertMessage(message) {
  if (message.conversation_id !== state.current) return;
  const item = messageItem(message.id);
  if (item) updateMessage(item, message);
  else $("messages").append(messageElement(message, play));
  drawCurrent();
  scrollToEnd();
}

// ---- sending -------------------------------------------------------------------------

async function ensureConversation(firstText) {
  if (state.current) return state.current;
  const plain = firstText.replace(/[*_`#>~[\]]/g, "").replace(/\s+/g, " ").trim();
  const title = plain.slice(0, 60) || "New conversation";
  const conversation = await request("create_conversation", { title });
  state.conversations.set(conversation.id, conversation);
  await openConversation(conversation.id);
  return conversation.id;
}

async function sendText(content, audio) {
  const conversationId = await ensureConversation(content);
  const payload = { conversation_id: conversationId, content };
  if (audio) Object.assign(payload, { is_audio: true, audio_data: audio });
  upsertMessage(await request("send_message", payload, { until: "message_sent" }));
}

async function submit() {
  const box = $("message");
  const content = box.value;
  if (!content.trim()) return;
  showError("");
  box.value = "";
  try {
    await sendText(content);
  } catch (error) {
    if (!box.value) box.value = content; // nothing typed is lost
    report(error);
  }
}

async function stopAnswer() {
  if (state.handsFree?.interrupt()) return; // the answer being spoken: barge-in
  if (!state.current) return;
  try {
    await request("cancel_generation", { conversation_id: state.current });
  } catch (error) {
    if (error.code !== "not_found") report(error); // it had just finished
  }
}

function report(error) {
  showError(describeError(error));
}

// ---- what the server pushes (this device's answers and other devices' doings) -----

let renderQueued = new Set();

function handleFrame(frame, answered) {
  state.handsFree?.onFrame(frame);
  const p = frame.payload || {};
  switch (frame.action) {
    case "conversation_created":
    case "conversation_updated":
    case "conversation":
      state.conversations.set(p.id, p);
      drawConversations();
      if (p.id === state.current) drawCurrent();
      break;
    case "conversation_deleted":
      state.conversations.delete(p.id);
      if (p.id === state.current) closeConversation();
      else drawConversations();
      break;
    case "new_message":
      upsertMessage(p.message);
      break;
    case "message_sent":
      upsertMessage(p);
      break;
    case "typing_indicator":
      if (p.is_typing) state.generating.add(p.conversation_id);
      else state.generating.delete(p.conversation_id);
      drawCurrent();
      break;
    case "message_stream":
      streamed(p);
      break;
    case "settings":
    case "settings_updated":
      state.settings = p;
      break;
    case "error":
      if (!answered) report(p);
      break;
    default:
      break;
  }
}

function streamed(p) {
  if (p.conversation_id !== state.current) return;
  let item = messageItem(p.message_id);
  if (!item) {
    item = messageElement(
      { id: p.message_id, conversation_id: p.conversation_id, role: "assistant", content: "", status: "streaming" },
      play,
    );
    $("messages").append(item);
    drawCurrent();
  }
  item.dataset.text = (item.dataset.text || "") + (p.token || "");
  if (p.finished) item.dataset.status = p.finish_reason === "stop" ? "complete" : p.finish_reason;
  if (!renderQueued.size) requestAnimationFrame(flushRenders);
  renderQueued.add(item);
}

function flushRenders() {
  const items = renderQueued;
  renderQueued = new Set();
  for (const item of items) renderBody(item);
  scrollToEnd();
}

// ---- rename, delete, settings --------------------------------------------------------

function openRename() {
  const conversation = state.conversations.get(state.current);
  if (!conversation) return;
  $("rename-input").value = conversation.title || "";
  $("rename-dialog").showModal();
}

async function saveRename(event) {
  event.preventDefault();
  const title = $("rename-input").value.trim();
  if (!title) return;
  $("rename-dialog").close();
  try {
    await request("update_conversation", { id: state.current, title });
  } catch (error) {
    report(error);
  }
}

function openDelete() {
  const conversation = state.conversations.get(state.current);
  if (!conversation) return;
  $("delete-what").textContent = `“${conversation.title || "Untitled"}” and all its messages will be deleted.`;
  $("delete-dialog").returnValue = "";
  $("delete-dialog").showModal();
}

async function confirmDelete() {
  if ($("delete-dialog").returnValue !== "delete" || !state.current) return;
  try {
    await request("delete_conversation", { id: state.current });
  } catch (error) {
    report(error);
  }
}

function fillSelect(select, values, selected) {
  const names = values.includes(selected) || !selected ? values : [selected, ...values];
  select.replaceChildren(
    ...names.map((name) => {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      return option;
    }),
  );
  select.value = selected;
}

function openSettings() {
  const s = state.settings;
  if (!s) return;
  fillSelect($("setting-model"), state.models, s.selected_model);
  $("setting-gender").value = s.voice_settings.gender;
  fillSelect($("setting-accent"), state.accents, s.voice_settings.accent);
  $("setting-speed").value = String(s.voice_settings.speed);
  $("setting-speed-value").textContent = `${s.voice_settings.speed}×`;
  $("setting-personality").value = s.assistant_personality || "";
  $("settings-error").textContent = "";
  $("settings-dialog").showModal();
}

async function saveSettings(event) {
  event.preventDefault();
  try {
    state.settings = await request("update_settings", {
      selected_model: $("setting-model").value,
      voice_settings: {
        gender: $("setting-gender").value,
        accent: $("setting-accent").value,
        speed: Number($("setting-speed").value),
      },
      assistant_personality: $("setting-personality").value,
    });
    $("settings-dialog").close();
  } catch (error) {
    $("settings-error").textContent = describeError(error);
  }
}

// ---- voice ---------------------------------------------------------------------------

let recordTicker = null;
let pressedAt = 0;

async function startRecording() {
  if (state.recorder) return;
  showError("");
  const recorder = new Recorder();
  state.recorder = recorder;
  try {
    await recorder.start();
  } catch (error) {
    state.recorder = null;
    showError(`The microphone cannot be used: ${error.message}`);
    return;
  }
  const button = $("record");
  button.setAttribute("aria-pressed", "true");
  button.textContent = "Send recording";
  recordTicker = setInterval(() => {
    setStatus("recording", `Recording… ${Math.floor(recorder.seconds)} s`);
  }, 250);
}

async function stopRecording() {
  const recorder = state.recorder;
  if (!recorder || !recorder.context) return;
  state.recorder = null;
  clearInterval(recordTicker);
  const button = $("record");
  button.setAttribute("aria-pressed", "false");
  button.textContent = "Talk";
  setStatus("transcribing", "Transcribing…");
  try {
    const audio = toBase64(await recorder.stop());
    const heard = await request("speech_to_text", { audio_data: audio });
    if (!heard.text.trim()) {
      showError("Nothing was heard in the recording; try again, closer to the microphone.");
      return;
    }
    await sendText(heard.text, audio);
  } catch (error) {
    report(error);
  } finally {
    if (state.connection.connected) setStatus("connected", "Connected");
  }
}

// Held down, the button is push-to-talk: release sends. A short press (or Enter/Space on
// the focused button) toggles: press to start, press again to send.
let startedByPress = false;
let releaseSent = false;

function onRecordPointerDown() {
  pressedAt = performance.now();
  if (!state.recorder) {
    startedByPress = true;
    startRecording();
  }
}

function onRecordPointerUp() {
  if (state.recorder && performance.now() - pressedAt > 600) {
    releaseSent = true;
    stopRecording();
  }
}

function onRecordClick() {
  if (releaseSent || startedByPress) {
    releaseSent = false;
    startedByPress = false;
    return;
  }
  if (state.recorder) stopRecording();
  else startRecording();
}

async function play(item, button) {
  if (state.player) {
    state.player.stop();
    const wasMine = state.player.button === button;
    finishPlaying();
    if (wasMine) return;
  }
  const text = item.dataset.text || "";
  if (!text.trim()) return;
  const player = new StreamPlayer();
  player.button = button;
  state.player = player;
  button.textContent = "Stop playing";
  button.setAttribute("aria-pressed", "true");
  try {
    await request("text_to_speech", { text, stream: true }, {
      onChunk: (chunk) => {
        if (state.player === player) player.push(chunk.audio_data);
        if (player.chunks === 1) button.dataset.playing = "true";
      },
      chunkAction: "text_to_speech_chunk",
    });
    if (state.player === player) {
      button.dataset.played = String(player.chunks);
      await player.finished();
    }
  } catch (error) {
    report(error);
  }
  if (state.player === player) finishPlaying();
}

function finishPlaying() {
  const { button } = state.player;
  button.textContent = "Play";
  button.setAttribute("aria-pressed", "false");
  delete button.dataset.playing;
  state.player = null;
}

// Hands-free: a voice session. The page listens all the time, answers aloud sentence by
// sentence, and stops an answer when the user talks over it or presses Stop.
async function toggleHandsFree() {
  if (state.handsFree) {
    await endHandsFree(false);
    return;
  }
  showError("");
  const button = $("handsfree");
  const handsFree = new HandsFree(state.connection, {
    onStatus: (text) => setStatus("listening", text),
    onHeard: (text) => setStatus("listening", text ? `You said: ${text}` : "Nothing was heard"),
    onChunk: (count) => {
      button.dataset.chunks = String(count);
    },
  });
  try {
    const started = await handsFree.start(state.current);
    state.handsFree = handsFree;
    button.setAttribute("aria-pressed", "true");
    button.textContent = "Stop hands-free";
    if (started.conversation_id !== state.current) await openConversation(started.conversation_id);
  } catch (error) {
    handsFree.lost = true;
    await handsFree.stop().catch(() => {});
    showError(`Hands-free cannot start: ${error.message}`);
  }
}

async function endHandsFree(lost) {
  const handsFree = state.handsFree;
  if (!handsFree) return;
  state.handsFree = null;
  handsFree.lost = lost;
  const button = $("handsfree");
  button.setAttribute("aria-pressed", "false");
  button.textContent = "Hands-free";
  try {
    await handsFree.stop();
  } catch (error) {
    if (!lost) report(error);
  }
  if (state.connection.connected) setStatus("connected", "Connected");
}

// ---- the phone layout's sidebar --------------------------------------------------

function toggleSidebar() {
  const open = !document.body.classList.contains("sidebar-open");
  document.body.classList.toggle("sidebar-open", open);
  $("menu-toggle").setAttribute("aria-expanded", String(open));
}

function closeSidebar() {
  document.body.classList.remove("sidebar-open");
  $("menu-toggle").setAttribute("aria-expanded", "false");
}

// ---- wiring --------------------------------------------------------------------------

function wire() {
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (token) signIn(token);
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  $("stop").addEventListener("click", stopAnswer);
  $("new-conversation").addEventListener("click", () => {
    closeConversation();
    closeSidebar();
    $("message").focus();
  });
  $("more-conversations").addEventListener("click", () => loadConversations(false).catch(report));
  $("load-older").addEventListener("click", () => loadOlder().catch(report));
  $("rename").addEventListener("click", openRename);
  $("rename-form").addEventListener("submit", saveRename);
  $("rename-cancel").addEventListener("click", () => $("rename-dialog").close());
  $("delete").addEventListener("click", openDelete);
  $("delete-dialog").addEventListener("close", confirmDelete);
  $("settings-open").addEventListener("click", openSettings);
  $("settings-form").addEventListener("submit", saveSettings);
  $("settings-cancel").addEventListener("click", () => $("settings-dialog").close());
  $("setting-speed").addEventListener("input", () => {
    $("setting-speed-value").textContent = `${$("setting-speed").value}×`;
  });
  $("sign-out").addEventListener("click", signOut);
  $("menu-toggle").addEventListener("click", toggleSidebar);
  const record = $("record");
  record.addEventListener("pointerdown", onRecordPointerDown);
  record.addEventListener("pointerup", onRecordPointerUp);
  record.addEventListener("click", onRecordClick);
  $("handsfree").addEventListener("click", () => toggleHandsFree().catch(report));
}

wire();
const token = tokenFromAddress() || localStorage.getItem(TOKEN_KEY);
if (token) signIn(token);
else showSignIn("");

// One WebSocket to the server (PROTOCOL.md), kept open: requests with their replies,
// pushed events to listeners, reconnection with backoff, and the state for the page.

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000, 30000];
const REPLY_TIMEOUT_MS = 60000;
const POLICY_VIOLATION = 1008; // close code: the token was revoked

export class ProtocolError extends Error {
  constructor(payload) {
    super(payload.message || payload.code || "error");
    this.code = payload.code;
    this.payload = payload;
  }
}

export class Connection {
  constructor(token, { onState, onFrame, onOpen, onRejected }) {
    this.token = token;
    this.onState = onState;
    this.onFrame = onFrame;
    this.onOpen = onOpen;
    this.onRejected = onRejected;
    this.pending = new Map(); // request_id -> {resolve, reject, timer, onChunk}
    this.nextId = 1;
    this.attempt = 0;
    this.ws = null;
    this.closed = false;
    this.everOpened = false;
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/ws?token=${encodeURIComponent(this.token)}`;
  }

  start() {
    this.closed = false;
    this.connect();
  }

  stop() {
    this.closed = true;
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close(1000);
    this.failPending("signed out");
  }

  connect() {
    this.onState("connecting", this.attempt ? `Reconnecting…` : "Connecting…");
    const ws = new WebSocket(this.url());
    this.ws = ws;
    let opened = false;
    ws.addEventListener("open", () => {
      opened = true;
      this.everOpened = true;
      this.attempt = 0;
      this.refusals = 0;
      this.onState("connected", "Connected");
      this.onOpen();
    });
    ws.addEventListener("message", (event) => this.receive(event.data));
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.failPending("the connection was lost");
      if (this.closed) return;
      if (event.code === POLICY_VIOLATION) {
        // the server's word that this token no longer holds (it was revoked)
        this.closed = true;
        this.onRejected("This token is no longer accepted; sign in again.");
        return;
      }
      if (!opened) {
        this.checkRejected();
        return;
      }
      this.retry();
    });
  }

  // A handshake refused with 401 looks like any failed connection to a page: ask /healthz
  // whether the server is up. Up and refusing us means the token (or origin) is wrong.
  async checkRejected() {
    let up = false;
    try {
      const response = await fetch("/healthz", { cache: "no-store" });
      up = response.ok;
    } catch {
      up = false;
    }
    if (this.closed) return;
    // Once signed in, a server that is draining for a restart refuses too: be patient then.
    const refusals = this.everOpened ? 5 : 2;
    this.refusals = up ? (this.refusals || 0) + 1 : 0;
    if (this.refusals >= refusals) {
      this.closed = true;
      this.onRejected(
        "The server did not accept this token (or too many of your devices are connected).",
      );
      return;
    }
    this.retry();
  }

  retry() {
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    const delay = base / 2 + Math.random() * (base / 2);
    this.attempt += 1;
    this.onState("reconnecting", `Reconnecting in ${Math.ceil(delay / 1000)} s…`);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  failPending(reason) {
    for (const [, waiter] of this.pending) {
      clearTimeout(waiter.timer);
      waiter.reject(new ProtocolError({ code: "disconnected", message: reason }));
    }
    this.pending.clear();
  }

  receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    const waiter = frame.request_id ? this.pending.get(frame.request_id) : undefined;
    const answered = waiter !== undefined;
    if (waiter) {
      if (frame.action === "error") {
        this.settle(frame.request_id);
        waiter.reject(new ProtocolError(frame.payload || {}));
      } else if (waiter.onChunk && frame.action === waiter.chunkAction) {
        waiter.onChunk(frame.payload);
        if (frame.payload.final) {
          this.settle(frame.request_id);
          waiter.resolve(frame.payload);
        } else {
          waiter.arm(); // a long stream is alive while its chunks come
        }
      } else if (!waiter.until || frame.action === waiter.until) {
        this.settle(frame.request_id);
        waiter.resolve(frame.payload);
      }
    }
    this.onFrame(frame, answered);
  }

  settle(requestId) {
    const waiter = this.pending.get(requestId);
    if (waiter) clearTimeout(waiter.timer);
    this.pending.delete(requestId);
  }

  get connected() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  // A binary frame (a voice session's microphone); dropped while disconnected.
  sendBinary(bytes) {
    if (this.connected) this.ws.send(bytes);
  }

  // An action that gets no reply unless it is wrong (voice_interrupt, voice_playback).
  send(action, payload) {
    if (this.connected) this.ws.send(JSON.stringify({ action, payload }));
  }

  // Send an action; resolves with the payload of its reply (the frame carrying the same
  // request_id, or the one named `until`), rejects with a ProtocolError.
  request(action, payload, { until, onChunk, chunkAction } = {}) {
    if (!this.connected) {
      return Promise.reject(new ProtocolError({ code: "disconnected", message: "not connected" }));
    }
    const requestId = `p-${this.nextId++}`;
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject, until, onChunk, chunkAction };
      waiter.arm = () => {
        clearTimeout(waiter.timer);
        waiter.timer = setTimeout(() => {
          this.pending.delete(requestId);
          reject(new ProtocolError({ code: "timeout", message: "the server did not answer" }));
        }, REPLY_TIMEOUT_MS);
      };
      waiter.arm();
      this.pending.set(requestId, waiter);
      const frame = { action, request_id: requestId };
      if (payload !== undefined) frame.payload = payload;
      this.ws.send(JSON.stringify(frame));
    });
  }
}

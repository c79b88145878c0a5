// Hands-free on the page: one voice session (protocol v1.1) over the page's connection.
// The microphone streams to the server in 40 ms frames of 16 kHz PCM; the server finds
// the end of each utterance and speaks the answer sentence by sentence as it is written.
// Talking over an answer stops it (the server hears it), and so does the Stop button;
// the page reports how far it has played, so only what was heard is kept.

const RATE = 16000;
const FRAME = 640; // samples: 40 ms (each frame costs the server alike, whatever its size)
const REPORT_MS = 250;

export class HandsFree {
  constructor(connection, hooks) {
    this.connection = connection;
    this.hooks = hooks; // onStatus(text), onHeard(text), onChunk(count)
    this.voiceId = null;
    this.pending = new Int16Array(FRAME);
    this.filled = 0;
    this.answer = null; // {messageId, start, sentMs, sources}
    this.chunks = 0;
  }

  get active() {
    return this.voiceId !== null;
  }

  async start(conversationId) {
    const hello = await this.connection.request("hello", { client: "pichat page" });
    if (!(hello.features || []).includes("voice")) {
      throw new Error("this server offers no voice sessions");
    }
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true },
    });
    // The browser resamples the microphone (and our playback) to this context's rate.
    this.context = new AudioContext({ sampleRate: RATE });
    await this.context.audioWorklet.addModule("/static/recorder-worklet.js");
    const payload = { sample_rate: RATE, echo_cancellation: true };
    if (conversationId) payload.conversation_id = conversationId;
    const started = await this.connection.request("voice_start", payload);
    this.voiceId = started.voice_id;
    this.source = this.context.createMediaStreamSource(this.stream);
    this.tap = new AudioWorkletNode(this.context, "pichat-recorder");
    this.tap.port.onmessage = (event) => this.microphone(event.data);
    this.source.connect(this.tap);
    this.reporter = setInterval(() => this.report(), REPORT_MS);
    this.hooks.onStatus("Listening…");
    return started;
  }

  microphone(samples) {
    for (let i = 0; i < samples.length; i++) {
      const s = Math.max(-1, Math.min(1, samples[i]));
      this.pending[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
      if (this.filled === FRAME) {
        this.connection.sendBinary(this.pending.buffer.slice(0));
        this.filled = 0;
      }
    }
  }

  onFrame(frame) {
    const p = frame.payload || {};
    if (!this.active || (p.voice_id && p.voice_id !== this.voiceId)) return;
    if (frame.action === "voice_transcript") {
      if (p.final) this.hooks.onHeard(p.text);
      else this.hooks.onStatus(`Hearing: ${p.text}`);
    } else if (frame.action === "voice_audio") {
      this.play(p);
    } else if (frame.action === "message_stream" && p.finished && this.answer
      && p.message_id === this.answer.messageId && p.finish_reason === "interrupted") {
      this.silence(); // a barge-in the server heard: stop at once
    }
  }

  play(chunk) {
    if (!this.answer || this.answer.messageId !== chunk.message_id) {
      this.silence();
      this.answer = { messageId: chunk.message_id, start: null, next: 0, sentMs: 0, sources: new Set() };
    }
    if (chunk.final || !chunk.audio_data) return;
    const binary = atob(chunk.audio_data);
    const frames = binary.length >> 1;
    if (!frames) return;
    const buffer = this.context.createBuffer(1, frames, RATE);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < frames; i++) {
      let v = binary.charCodeAt(2 * i) | (binary.charCodeAt(2 * i + 1) << 8);
      if (v >= 0x8000) v -= 0x10000;
      channel[i] = v / 0x8000;
    }
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    const answer = this.answer;
    const at = Math.max(answer.next, this.context.currentTime + 0.05);
    if (answer.start === null) answer.start = at;
    source.start(at);
    answer.next = at + buffer.duration;
    answer.sentMs += buffer.duration * 1000;
    answer.sources.add(source);
    source.addEventListener("ended", () => answer.sources.delete(source));
    this.chunks += 1;
    this.hooks.onChunk(this.chunks);
  }

  playedMs() {
    const answer = this.answer;
    if (!answer || answer.start === null) return 0;
    return Math.max(0, Math.min(answer.sentMs, (this.context.currentTime - answer.start) * 1000));
  }

  report() {
    const answer = this.answer;
    if (!answer || answer.start === null || answer.sources.size === 0) return;
    const position = { voice_id: this.voiceId, message_id: answer.messageId };
    this.connection.send("voice_playback", { ...position, played_ms: this.playedMs() });
  }

  // The Stop button while an answer plays: barge-in by hand.
  interrupt() {
    const answer = this.answer;
    if (!this.active || !answer || answer.sources.size === 0) return false;
    const position = { voice_id: this.voiceId, message_id: answer.messageId };
    this.connection.send("voice_interrupt", { ...position, played_ms: this.playedMs() });
    this.silence();
    return true;
  }

  silence() {
    if (!this.answer) return;
    for (const source of this.answer.sources) source.stop();
    this.answer.sources.clear();
  }

  async stop() {
    const voiceId = this.voiceId;
    this.voiceId = null;
    clearInterval(this.reporter);
    this.silence();
    this.answer = null;
    if (this.source) this.source.disconnect();
    if (this.tap) this.tap.port.onmessage = null;
    for (const track of this.stream?.getTracks() || []) track.stop();
    await this.context?.close();
    if (voiceId && this.connection.connected && !this.lost) {
      await this.connection.request("voice_stop", { voice_id: voiceId });
    }
  }
}

// Voice on the page: a push-to-talk recorder that makes a 16 kHz mono 16-bit WAV (what
// speech_to_text takes), and a player for text_to_speech's streamed chunks that starts
// with the first one.

const TARGET_RATE = 16000;

export class Recorder {
  async start() {
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true },
    });
    this.context = new AudioContext();
    await this.context.audioWorklet.addModule("/static/recorder-worklet.js");
    this.source = this.context.createMediaStreamSource(this.stream);
    this.tap = new AudioWorkletNode(this.context, "pichat-recorder");
    this.blocks = [];
    this.samples = 0;
    this.tap.port.onmessage = (event) => {
      this.blocks.push(event.data);
      this.samples += event.data.length;
    };
    this.source.connect(this.tap);
    this.startedAt = performance.now();
  }

  get seconds() {
    return this.context ? this.samples / this.context.sampleRate : 0;
  }

  // Stop and return the recording as WAV bytes.
  async stop() {
    const rate = this.context.sampleRate;
    this.source.disconnect();
    this.tap.port.onmessage = null;
    for (const track of this.stream.getTracks()) track.stop();
    await this.context.close();
    const joined = new Float32Array(this.samples);
    let offset = 0;
    for (const block of this.blocks) {
      joined.set(block, offset);
      offset += block.length;
    }
    this.blocks = [];
    return encodeWav(resample(joined, rate, TARGET_RATE), TARGET_RATE);
  }
}

function resample(samples, from, to) {
  if (from === to) return samples;
  const ratio = from / to;
  const out = new Float32Array(Math.floor(samples.length / ratio));
  for (let i = 0; i < out.length; i++) {
    // the mean of the input samples this output sample covers: a simple low-pass
    const start = Math.floor(i * ratio);
    const end = Math.min(samples.length, Math.floor((i + 1) * ratio));
    let sum = 0;
    for (let j = start; j < end; j++) sum += samples[j];
    out[i] = end > start ? sum / (end - start) : 0;
  }
  return out;
}

function encodeWav(samples, rate) {
  const buffer = new ArrayBuffer(44 + samples.length * 2);
  const view = new DataView(buffer);
  const text = (offset, value) => {
    for (let i = 0; i < value.length; i++) view.setUint8(offset + i, value.charCodeAt(i));
  };
  text(0, "RIFF");
  view.setUint32(4, 36 + samples.length * 2, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  text(36, "data");
  view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Uint8Array(buffer);
}

export function toBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function fromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

// Plays the chunks of one streamed WAV (a header with an open length, then PCM) as they
// come: each chunk's whole samples are scheduled right after the previous ones.
export class StreamPlayer {
  constructor() {
    this.context = new AudioContext();
    this.pending = new Uint8Array(0);
    this.format = null;
    this.nextTime = 0;
    this.sources = new Set();
    this.chunks = 0;
  }

  push(base64) {
    if (!base64) return;
    this.chunks += 1;
    const bytes = fromBase64(base64);
    const joined = new Uint8Array(this.pending.length + bytes.length);
    joined.set(this.pending);
    joined.set(bytes, this.pending.length);
    this.pending = joined;
    if (!this.format && !this.readHeader()) return;
    this.playPending();
  }

  readHeader() {
    const data = this.pending;
    if (data.length < 12) return false;
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    let offset = 12;
    while (offset + 8 <= data.length) {
      const id = String.fromCharCode(...data.subarray(offset, offset + 4));
      const size = view.getUint32(offset + 4, true);
      if (id === "fmt ") {
        if (offset + 8 + 16 > data.length) return false;
        this.format = {
          channels: view.getUint16(offset + 10, true),
          rate: view.getUint32(offset + 12, true),
        };
      } else if (id === "data") {
        if (!this.format) throw new Error("WAV data before its format");
        this.pending = data.slice(offset + 8);
        return true;
      }
      offset += 8 + size + (size % 2);
    }
    this.format = null;
    return false;
  }

  playPending() {
    const { channels, rate } = this.format;
    const frameBytes = 2 * channels;
    const frames = Math.floor(this.pending.length / frameBytes);
    if (!frames) return;
    const view = new DataView(this.pending.buffer, this.pending.byteOffset, frames * frameBytes);
    const buffer = this.context.createBuffer(channels, frames, rate);
    for (let c = 0; c < channels; c++) {
      const channel = buffer.getChannelData(c);
      for (let i = 0; i < frames; i++) channel[i] = view.getInt16((i * channels + c) * 2, true) / 0x8000;
    }
    this.pending = this.pending.slice(frames * frameBytes);
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    const at = Math.max(this.nextTime, this.context.currentTime + 0.05);
    source.start(at);
    this.nextTime = at + buffer.duration;
    this.sources.add(source);
    source.addEventListener("ended", () => this.sources.delete(source));
  }

  // Resolves when everything scheduled has played.
  finished() {
    const left = Math.max(0, this.nextTime - this.context.currentTime);
    return new Promise((resolve) => setTimeout(resolve, left * 1000 + 50));
  }

  stop() {
    for (const source of this.sources) source.stop();
    this.sources.clear();
    this.context.close();
  }
}

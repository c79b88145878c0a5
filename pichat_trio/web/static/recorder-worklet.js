// The microphone's samples, copied out of the audio thread in blocks for the recorder.
class RecorderTap extends AudioWorkletProcessor {
  process(inputs) {
    const input = inputs[0];
    if (input && input.length) this.port.postMessage(input[0].slice(0));
    return true;
  }
}
registerProcessor("pichat-recorder", RecorderTap);

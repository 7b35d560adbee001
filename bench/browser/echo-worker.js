// The baseline: a bare worker that answers every message with itself (one postMessage
// round trip main ↔ worker, structured clone both ways, nothing else).
self.onmessage = ({ data }) => self.postMessage(data);

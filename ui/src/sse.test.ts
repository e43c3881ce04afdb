import { describe, expect, it } from 'vitest';
import { readEvents, SseDecoder, type SseMessage } from './sse';

const BODY =
  ': keep-alive\nevent: start\ndata: {"conversation_id":"conv_1"}\n\nevent: text\ndata: {"delta":"héllo ✓","step":1}\n\n' +
  'data: first\ndata:  second\ndata\n\nid: 7\nretry: 10\nevent: done\ndata: {}\n\nevent: never\n\n';

const WANT: SseMessage[] = [
  { event: 'start', data: '{"conversation_id":"conv_1"}' },
  { event: 'text', data: '{"delta":"héllo ✓","step":1}' },
  { event: 'message', data: 'first\n second\n' },
  { event: 'done', data: '{}' },
];

function decodeIn(text: string, size: number): SseMessage[] {
  const d = new SseDecoder();
  const out: SseMessage[] = [];
  for (let i = 0; i < text.length; i += size) out.push(...d.push(text.slice(i, i + size)));
  return out;
}

/** A body that sends `bytes` in pieces of `size` bytes. */
function body(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(c) {
      for (let i = 0; i < bytes.length; i += size) c.enqueue(bytes.slice(i, i + size));
      c.close();
    },
  });
}

describe('server-sent events', () => {
  it('give the same events for every line ending and every split', () => {
    for (const eol of ['\n', '\r\n', '\r']) {
      const text = BODY.replace(/\n/g, eol);
      for (let size = 1; size <= text.length; size += 1) {
        expect(decodeIn(text, size), `${JSON.stringify(eol)} / ${size}`).toEqual(WANT);
      }
    }
  });

  it('drop a byte-order mark and an event the body never finished', () => {
    expect(decodeIn('\ufeffdata: x\n\ndata: cut', 3)).toEqual([{ event: 'message', data: 'x' }]);
  });

  it('are read from a body cut inside characters and CRLFs', async () => {
    const bytes = new TextEncoder().encode(BODY.replace(/\n/g, '\r\n'));
    for (const size of [1, 2, 3, 5, 64]) {
      const seen: SseMessage[] = [];
      await readEvents(body(bytes, size), (e) => seen.push(e));
      expect(seen, String(size)).toEqual(WANT);
    }
  });
});

// Server-sent events read from a fetch response's body (EventSource cannot POST). The
// parsing follows the HTML standard: lines end in CRLF, LF or CR; `field: value` lines
// (one space after the colon dropped); `data` lines joined by newlines; `:` comments
// (the server's keep-alives); a blank line dispatches. The body arrives in arbitrary
// pieces, so a line, a CRLF or a UTF-8 character may be split between two of them.

/** One dispatched event: its `event:` name (`message` when none) and its data. */
export interface SseMessage {
  event: string;
  data: string;
}

/** Turns pieces of text into events; keeps what an unfinished line or event holds. */
export class SseDecoder {
  private line = '';
  private afterCr = false;
  private started = false;
  private event: string | null = null;
  private data: string | null = null;

  /** Feeds `text`, returning the events it completes. */
  push(text: string): SseMessage[] {
    const out: SseMessage[] = [];
    let rest = text;
    if (this.afterCr && rest.length > 0) {
      this.afterCr = false;
      if (rest[0] === '\n') rest = rest.slice(1);
    }
    for (;;) {
      const at = rest.search(/[\r\n]/);
      if (at < 0) break;
      this.line += rest.slice(0, at);
      this.endLine(out);
      if (rest[at] === '\r') {
        if (at + 1 === rest.length) {
          this.afterCr = true;
          rest = '';
          break;
        }
        rest = rest.slice(rest[at + 1] === '\n' ? at + 2 : at + 1);
      } else {
        rest = rest.slice(at + 1);
      }
    }
    this.line += rest;
    return out;
  }

  private endLine(out: SseMessage[]) {
    let line = this.line;
    this.line = '';
    if (!this.started) {
      this.started = true;
      if (line.startsWith('\ufeff')) line = line.slice(1);
    }
    if (line === '') {
      if (this.data !== null) out.push({ event: this.event ?? 'message', data: this.data });
      this.event = null;
      this.data = null;
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data = this.data === null ? value : `${this.data}\n${value}`;
  }
}

/**
 * Reads `body` to its end, handing each event to `onEvent` as it completes. Rejects
 * with the reader's error (an `AbortError` when the fetch's signal aborted it).
 */
export async function readEvents(body: ReadableStream<Uint8Array>, onEvent: (e: SseMessage) => void): Promise<void> {
  const reader = body.getReader();
  const text = new TextDecoder();
  const sse = new SseDecoder();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      sse.push(text.decode(value, { stream: true })).forEach(onEvent);
    }
    sse.push(text.decode()).forEach(onEvent);
  } finally {
    reader.releaseLock();
  }
}

// The live connection: Server-Sent Events from /live/events. EventSource cannot send headers; the
// browser sends the session cookie (see api.js), so no token is ever part of the URL. The browser
// reconnects by itself after a dropped or ended stream; a stream refused outright (e.g. 401, or
// 503 when too many are open) is retried here after a pause.

const RETRY_CLOSED_MS = 5000;

export class LiveConnection {
  constructor(handlers) {
    this.handlers = handlers; // { onState(state, text), onEvent(name, data), onOpen() }
    this.source = null;
    this.retryTimer = null;
  }

  url() {
    return "/live/events";
  }

  start() {
    this.stop();
    this.handlers.onState("connecting", "connecting…");
    const source = new EventSource(this.url());
    this.source = source;
    source.addEventListener("open", () => {
      this.handlers.onState("live", "live");
      this.handlers.onOpen();
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        this.handlers.onState("down", "live updates off — retrying");
        this.retryTimer = setTimeout(() => this.start(), RETRY_CLOSED_MS);
      } else {
        this.handlers.onState("connecting", "reconnecting…");
      }
    });
    for (const name of ["hello", "summary", "alert", "status", "resync"]) {
      source.addEventListener(name, (event) => {
        let data = null;
        try {
          data = JSON.parse(event.data);
        } catch {
          return; // a malformed event is dropped; the next summary arrives within a second
        }
        this.handlers.onEvent(name, data);
      });
    }
  }

  stop() {
    clearTimeout(this.retryTimer);
    if (this.source) this.source.close();
    this.source = null;
  }
}

// The live connection: Server-Sent Events from /live/events. EventSource cannot send headers, so
// the token travels as `?token=` on this one URL. The browser reconnects by itself after a
// dropped or ended stream; a stream refused outright (e.g. 401) is retried here after a pause.

import { getToken } from "./api.js";

const RETRY_CLOSED_MS = 5000;

export class LiveConnection {
  constructor(handlers) {
    this.handlers = handlers; // { onState(state, text), onEvent(name, data), onOpen() }
    this.source = null;
    this.retryTimer = null;
  }

  url() {
    const token = getToken();
    return token ? `/live/events?token=${encodeURIComponent(token)}` : "/live/events";
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

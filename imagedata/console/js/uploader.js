// A resumable browser upload: PUT .../file with slices of the file (Blobs read by the
// browser from disk as they are sent, never held in memory), continued after a drop from
// the service's Upload-Offset with Content-Range, by itself and without a click.
import { ApiError, api, authHeaders, imagePath } from "./api.js";

const RETRY_DELAYS = [500, 1000, 2000, 4000]; // then every 5 s: back within 30 s of the network
const SAVING_WAIT_MS = 120000; // a cut upload is put aside (saving -> queued) before it can go on
const FIND_WAIT_MS = 30000; // how long a same-named upload still saving is waited for after a reload
const SPEED_WINDOW_MS = 5000;

class NetworkError extends Error {}

export class Upload {
  /** ``onchange(upload)`` is called on every change of progress or state. */
  constructor(file, image, offset, onchange) {
    Object.assign(this, { file, image, offset, onchange });
    this.sent = offset; // bytes the service has, as far as this tab knows
    this.wireBytes = 0; // bytes handed to the network, over every attempt
    this.state = "starting"; // starting, sending, reconnecting, done, cancelled, failed
    this.message = "";
    this.samples = [];
    this.xhr = null;
    this.cancelled = false;
  }

  get size() { return this.file.size; }

  /** MiB/s over the last few seconds, and the seconds left at that rate. */
  rate() {
    const now = performance.now();
    this.samples = this.samples.filter(([t]) => now - t <= SPEED_WINDOW_MS);
    if (this.samples.length < 2) return { mibs: 0, left: Infinity };
    const [t0, b0] = this.samples[0], [t1, b1] = this.samples.at(-1);
    const perSecond = (b1 - b0) / Math.max((t1 - t0) / 1000, 0.001);
    return { mibs: perSecond / 1048576, left: perSecond > 0 ? (this.size - this.sent) / perSecond : Infinity };
  }

  async run() {
    let failures = 0;
    while (!this.cancelled) {
      try {
        this.set("sending");
        await this.send();
        return this.set("done");
      } catch (error) {
        if (this.cancelled) return;
        if (error instanceof ApiError && error.status === 409 && error.headers?.get("Upload-Offset") !== null) {
          this.offset = this.sent = Number(error.headers.get("Upload-Offset"));
          continue;
        }
        if (!(error instanceof NetworkError) && !(error instanceof ApiError && error.status >= 500)) {
          return this.set("failed", error.message);
        }
        this.set("reconnecting", `Connection lost at ${Math.round(100 * this.sent / this.size)} %; continuing by itself…`);
        await this.pause(RETRY_DELAYS[failures] ?? 5000);
        failures = Math.min(failures + 1, RETRY_DELAYS.length);
        try {
          if (await this.askOffset()) return this.set("done");
        } catch { /* still unreachable: try again after the next pause */ }
      }
    }
  }

  /** Stop sending now; the service keeps what it received for a later resume. */
  cancel() {
    this.cancelled = true;
    if (this.xhr) this.xhr.abort();
    this.set("cancelled", `Cancelled: the image stays queued with the bytes received kept; choose the same file and name to continue.`);
  }

  set(state, message = "") {
    this.state = state;
    this.message = message;
    this.onchange(this);
  }

  pause(ms) {
    return new Promise((resolve) => {
      const done = () => { clearTimeout(timer); window.removeEventListener("online", done); resolve(); };
      const timer = setTimeout(done, ms);
      window.addEventListener("online", done);
    });
  }

  /** After a drop: wait until the service has put the upload aside, then read its offset.
   * True when the image turned out to be complete. */
  async askOffset() {
    const deadline = performance.now() + SAVING_WAIT_MS;
    for (;;) {
      const image = await api("GET", imagePath(this.image.id));
      if (image.status === "active") return true;
      if (image.status !== "saving" || performance.now() > deadline) break;
      await this.pause(1000);
    }
    const response = await api("HEAD", `${imagePath(this.image.id)}/file`, { raw: true });
    this.offset = this.sent = Number(response.headers.get("Upload-Offset") || 0);
    return false;
  }

  /** One PUT of the rest of the file, from this.offset. */
  send() {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      this.xhr = xhr;
      const start = this.offset;
      xhr.open("PUT", `${imagePath(this.image.id)}/file`);
      for (const [name, value] of Object.entries(authHeaders({ "Content-Type": "application/octet-stream" }))) {
        xhr.setRequestHeader(name, value);
      }
      if (start > 0) xhr.setRequestHeader("Content-Range", `bytes ${start}-${this.size - 1}/${this.size}`);
      let handed = 0;
      xhr.upload.onprogress = (event) => {
        this.wireBytes += event.loaded - handed;
        handed = event.loaded;
        this.sent = start + event.loaded;
        this.samples.push([performance.now(), this.sent]);
        this.onchange(this);
      };
      xhr.onload = () => {
        this.xhr = null;
        if (xhr.status === 204 || xhr.status === 200) {
          this.sent = this.size;
          return resolve();
        }
        const headers = new Headers();
        for (const name of ["Upload-Offset", "Upload-Length", "Retry-After"]) {
          if (xhr.getResponseHeader(name) !== null) headers.set(name, xhr.getResponseHeader(name));
        }
        let message = `${xhr.status} ${xhr.statusText}`;
        try { message = JSON.parse(xhr.responseText).message || message; } catch { /* not JSON */ }
        reject(new ApiError(xhr.status, message, headers));
      };
      xhr.onerror = xhr.ontimeout = () => { this.xhr = null; reject(new NetworkError("network")); };
      xhr.onabort = () => { this.xhr = null; reject(new NetworkError("aborted")); };
      xhr.send(this.file.slice(start)); // a Blob: the browser streams it from the file
    });
  }
}

/** An earlier upload of the same file and name that this project can continue, if any:
 * ``{image, offset}`` (waits while the service is still putting a cut upload aside). */
export async function findResumable(name, size, project) {
  const query = new URLSearchParams({ name, limit: 50, sort_key: "updated_at", sort_dir: "desc" });
  const { images } = await api("GET", `/v2/images?${query}`);
  const candidates = images.filter((image) => image.owner === project && ["queued", "saving"].includes(image.status));
  for (let image of candidates) {
    const deadline = performance.now() + FIND_WAIT_MS;
    while (image.status === "saving" && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      image = await api("GET", imagePath(image.id));
    }
    if (image.status !== "queued") continue;
    const response = await api("HEAD", `${imagePath(image.id)}/file`, { raw: true });
    const offset = Number(response.headers.get("Upload-Offset") || 0);
    if (offset > 0 && Number(response.headers.get("Upload-Length")) === size) return { image, offset };
  }
  return null;
}

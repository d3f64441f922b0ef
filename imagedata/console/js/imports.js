// Interoperable import from the console: a new image fetched from a URL (web-download), a
// copy of an image into another store (copy-image, admins), and an image's import tasks,
// refreshed while one runs.
import { api, imagePath, session } from "./api.js";
import { field, h, notify, show, when } from "./dom.js";
import { DISK_FORMATS } from "./sniff.js";

const offered = (method) => (session.config.import_methods || []).includes(method);
const RUNNING = new Set(["pending", "processing"]);

/** The "Import from a URL" page (#/import). */
export function urlImportView() {
  if (!offered("web-download")) {
    show(h("h2", {}, "Import from a URL"), h("p", {}, "This service does not offer web-download "
      + "(IMAGEDATA_IMPORT_METHODS): upload the file instead."), h("a", { href: "#/upload" }, "Upload image"));
    return;
  }
  const url = h("input", { type: "url", required: true, placeholder: "https://mirror.example/disk.qcow2" });
  const name = h("input", { required: true });
  const format = h("select", {}, DISK_FORMATS.map((f) => h("option", { value: f }, f)));
  url.addEventListener("change", () => {
    if (!name.value) name.value = decodeURIComponent(url.value.split("?")[0].split("/").pop() || "");
    const guess = DISK_FORMATS.find((f) => url.value.split("?")[0].toLowerCase().endsWith(`.${f}`));
    if (guess) format.value = guess;
  });
  const button = h("button", { type: "submit" }, "Import");
  show(h("h2", {}, "Import from a URL"), h("p", { className: "muted" }, "The service downloads the image itself "
    + "(web-download), checks it as it would an upload, and resumes a dropped connection; the image page shows how "
    + "far it got."), h("form", { onsubmit: async (event) => {
    event.preventDefault();
    button.disabled = true;
    notify("");
    let image = null;
    try {
      image = await api("POST", "/v2/images",
        { json: { name: name.value.trim(), disk_format: format.value, container_format: "bare" } });
      await api("POST", `${imagePath(image.id)}/import`, { json: { method: { name: "web-download", uri: url.value.trim() } } });
      location.hash = `#/image/${image.id}`;
    } catch (error) {
      notify(error.message); // (a refused URL: the image made for it goes again)
      if (image) api("DELETE", imagePath(image.id)).catch(() => {});
    } finally { button.disabled = false; }
  } }, field("URL", url), field("Name", name), field("Disk format", format), h("div", { className: "actions" }, button,
    h("button", { type: "button", className: "secondary", onclick: () => { location.hash = "#/images"; } }, "Back"))));
}

/** "Copy to store" on an active image's page (copy-image is for admins, as in Glance). */
export function copyForm(image, onStarted) {
  const held = new Set((image.stores || "").split(",").filter(Boolean));
  const targets = (session.config.stores || []).filter((store) => !held.has(store));
  if (!session.me.admin || image.status !== "active" || !offered("copy-image") || !targets.length) return "";
  const store = h("select", {}, targets.map((s) => h("option", { value: s }, s)));
  return h("form", { className: "row", onsubmit: async (event) => {
    event.preventDefault();
    notify("");
    try {
      await api("POST", `${imagePath(image.id)}/import`,
        { json: { method: { name: "copy-image" }, stores: [store.value], all_stores_must_succeed: true } });
      notify(`Copying to ${store.value}.`, "info");
      onStarted();
    } catch (error) { notify(error.message); }
  } }, field("Copy to store", store), h("div", {}, h("button", { type: "submit", className: "secondary" }, "Copy")));
}

/** The image's import tasks, newest first: ``section`` to show, then ``start()`` once it is on
 * the page; refreshed every 2 s while one runs and the page still shows it; ``onEnded`` once a
 * task that was running has ended. */
export function tasksSection(image, onEnded) {
  const section = h("section", { "aria-label": "Import tasks" });
  const page = location.hash;
  let wasRunning = false;
  const refresh = async () => {
    if (location.hash !== page) return;
    let tasks;
    try {
      tasks = (await api("GET", `${imagePath(image.id)}/tasks`)).tasks;
    } catch { return; } // (no access to the image's tasks: no section)
    if (!section.isConnected) return; // the page was drawn again: its new section goes on
    const running = tasks.some((task) => RUNNING.has(task.status));
    section.replaceChildren(...(tasks.length ? [h("h3", {}, "Import tasks"), h("div", { className: "table-wrap" },
      h("table", {}, h("thead", {}, h("tr", {}, ["Method", "Status", "Message", "Updated"].map(
        (c) => h("th", { scope: "col" }, c)))), h("tbody", {}, tasks.map((task) => h("tr", { "data-status": task.status },
        h("td", {}, task.input?.import_req?.method?.name || task.type), h("td", {}, task.status),
        h("td", {}, task.message || ""), h("td", {}, when(task.updated_at)))))))] : []));
    if (wasRunning && !running) return onEnded();
    wasRunning = running;
    if (running || image.status === "importing") setTimeout(refresh, 2000);
  };
  return { section, start: refresh };
}

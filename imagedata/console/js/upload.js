// The upload form and the transfers panel (which stays on screen while you browse).
import { api, session } from "./api.js";
import { bytes, duration, field, flash, h, notify, show } from "./dom.js";
import { DISK_FORMATS, sniffDiskFormat } from "./sniff.js";
import { Upload, findResumable } from "./uploader.js";

export function uploadView() {
  const file = h("input", { type: "file", required: true });
  const name = h("input", { required: true });
  const format = h("select", {}, DISK_FORMATS.map((f) => h("option", { value: f }, f)));
  const hint = h("p", { className: "muted", "aria-live": "polite" });
  file.addEventListener("change", async () => {
    const chosen = file.files[0];
    if (!chosen) return;
    if (!name.value) name.value = chosen.name;
    format.value = await sniffDiskFormat(chosen);
    hint.textContent = `${bytes(chosen.size)}; its first bytes look like ${format.value}.`;
  });
  const button = h("button", { type: "submit" }, "Upload");
  show(h("h2", {}, "Upload image"),
    h("p", { className: "muted" }, "An upload cut off by the network continues by itself. After closing or reloading "
      + "the page, choose the same file and the same name to continue where it stopped."),
    h("form", { onsubmit: async (event) => {
      event.preventDefault();
      button.disabled = true;
      try {
        await startUpload(file.files[0], name.value.trim(), format.value);
        location.hash = "#/images";
      } catch (error) {
        notify(error.message);
      } finally { button.disabled = false; }
    } }, field("Image file", file), hint, field("Name", name), field("Disk format", format),
    h("div", { className: "actions" }, button,
      h("button", { type: "button", className: "secondary", onclick: () => { location.hash = "#/images"; } }, "Back"))));
}

async function startUpload(file, name, diskFormat) {
  if (!file || !name) throw new Error("Choose a file and give the image a name.");
  const earlier = await findResumable(name, file.size, session.me.project);
  let image, offset = 0;
  if (earlier) {
    ({ image, offset } = earlier);
    flash(`Continuing the earlier upload of "${name}" from ${bytes(offset)}.`);
  } else {
    image = await api("POST", "/v2/images", { json: { name, disk_format: diskFormat, container_format: "bare" } });
  }
  const upload = new Upload(file, image, offset, render);
  const card = transferCard(upload);
  upload.card = card;
  document.getElementById("transfers").hidden = false;
  document.getElementById("transfers").append(card.root);
  window.consoleUploads = [...(window.consoleUploads || []), upload]; // for the tests' measurements
  upload.run();
}

function transferCard(upload) {
  const label = `Upload of ${upload.image.name}`;
  const progress = h("progress", { max: upload.size, value: upload.sent, "aria-label": label });
  const figures = h("span", {});
  const message = h("span", { className: "muted", role: "status" });
  const cancel = h("button", { type: "button", className: "secondary", "aria-label": `Cancel upload of ${upload.image.name}`,
    onclick: () => upload.cancel() }, "Cancel");
  const root = h("div", { className: "transfer" },
    h("strong", {}, label), progress, h("div", { className: "row" }, figures, cancel), message);
  return { root, progress, figures, message, cancel };
}

function render(upload) {
  const { progress, figures, message, cancel, root } = upload.card || {};
  if (!progress) return;
  progress.value = upload.sent;
  const { mibs, left } = upload.rate();
  const percent = Math.floor((100 * upload.sent) / Math.max(upload.size, 1));
  if (upload.state === "sending") {
    figures.textContent = `${bytes(upload.sent)} of ${bytes(upload.size)} (${percent} %) · ${mibs.toFixed(1)} MiB/s · ${duration(left)} left`;
  } else if (upload.state === "done") {
    figures.replaceChildren("Uploaded ", h("a", { href: `#/image/${upload.image.id}` }, upload.image.name), ` (${bytes(upload.size)}).`);
  }
  message.textContent = upload.message;
  root.dataset.state = upload.state;
  cancel.hidden = ["done", "cancelled", "failed"].includes(upload.state);
}

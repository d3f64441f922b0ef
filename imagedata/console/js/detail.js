// One image: every attribute, its properties (edited with Key/Value and Save), name, tags and
// visibility, the Download link, deactivate/reactivate, delete, and its members.
import { api, imagePath, patchImage, session } from "./api.js";
import { bytes, confirmDialog, field, flash, h, notify, show, when } from "./dom.js";
import { copyForm, tasksSection } from "./imports.js";
import { membersSection } from "./members.js";

// Glance's own attributes; every other key of an image is a property.
const CORE = new Set(["id", "name", "status", "visibility", "protected", "os_hidden", "checksum", "os_hash_algo",
  "os_hash_value", "owner", "size", "virtual_size", "min_ram", "min_disk", "created_at", "updated_at", "tags",
  "self", "file", "schema", "disk_format", "container_format", "locations", "direct_url", "stores"]);
const SHOWN = ["id", "status", "size", "virtual_size", "disk_format", "container_format", "checksum", "os_hash_algo",
  "os_hash_value", "owner", "visibility", "protected", "os_hidden", "min_disk", "min_ram", "stores", "created_at",
  "updated_at"];
const VISIBILITIES = ["private", "shared", "community", "public"];

/** The reserved os_glance_* properties (the import's progress): shown, never edited. */
const reserved = (key) => key.startsWith("os_glance_");

/** A JSON pointer to a top-level key. */
const pointer = (key) => `/${key.replaceAll("~", "~0").replaceAll("/", "~1")}`;

export async function detailView(id) {
  const image = await api("GET", imagePath(id));
  const mine = session.me.admin || image.owner === session.me.project;
  const properties = Object.fromEntries(Object.entries(image).filter(([key]) => !CORE.has(key)));
  const attrs = h("dl", { className: "attrs" }, SHOWN.flatMap((key) => [h("dt", {}, key),
    h("dd", {}, key === "size" || key === "virtual_size" ? `${bytes(image[key])}${image[key] ? ` (${image[key]} bytes)` : ""}`
      : key.endsWith("_at") ? when(image[key]) : String(image[key] ?? ""))]));

  const redraw = () => detailView(id).catch((error) => notify(error.message));
  const buttons = await actions(image, mine), members = await membersSection(image, mine);
  const tasks = tasksSection(image, redraw);
  show(h("h2", {}, image.name || "(no name)"), h("p", {}, h("a", { href: "#/images" }, "All images")),
    buttons, copyForm(image, redraw), h("h3", {}, "Attributes"), attrs,
    tasks.section, editForm(image, properties, mine), members);
  tasks.start();
}

async function actions(image, mine) {
  const box = h("div", { className: "actions" });
  if (image.status === "active") {
    try {
      const link = await api("POST", `${imagePath(image.id)}/file/links`, { json: {} });
      const url = new URL(link.url);
      box.append(h("a", { href: url.pathname + url.search, download: image.name || image.id, className: "button",
        title: `A signed link, valid until ${when(link.expires_at)}` }, "Download"));
    } catch (error) {
      box.append(h("span", { className: "muted" }, `No download link: ${error.message}`));
    }
  }
  if (mine && image.status === "active") box.append(actionButton(image, "deactivate", "Deactivate"));
  if (mine && image.status === "deactivated") box.append(actionButton(image, "reactivate", "Reactivate"));
  if (mine) {
    box.append(h("button", { type: "button", className: "danger", onclick: async () => {
      if (!await confirmDialog(`Delete image "${image.name || image.id}" and its data? This cannot be undone.`, "Delete")) return;
      try {
        await api("DELETE", imagePath(image.id));
        flash(`Image "${image.name || image.id}" deleted.`);
        location.hash = "#/images";
      } catch (error) { notify(error.message); }
    } }, "Delete"));
  }
  return box;
}

function actionButton(image, action, label) {
  return h("button", { type: "button", className: "secondary", onclick: async () => {
    notify("");
    try {
      await api("POST", `${imagePath(image.id)}/actions/${action}`);
      await detailView(image.id);
      notify(`Image ${action}d.`, "info");
    } catch (error) { notify(error.message); }
  } }, label);
}

function editForm(image, properties, mine) {
  const name = h("input", { value: image.name || "", disabled: !mine });
  const tags = h("input", { value: (image.tags || []).join(", "), disabled: !mine, placeholder: "comma, separated" });
  const visibility = h("select", { disabled: !mine },
    VISIBILITIES.map((v) => h("option", { value: v, selected: v === image.visibility }, v)));
  const values = {}; // property key -> its Value input (null once removed)
  const body = h("tbody");
  const addRow = (key, value) => {
    const editable = mine && !reserved(key); // the import's own properties are the service's to write
    const input = h("input", { value, disabled: !editable, "aria-label": `Value of ${key}` });
    values[key] = input;
    const row = h("tr", {}, h("th", { scope: "row" }, key), h("td", {}, input),
      h("td", {}, editable ? h("button", { type: "button", className: "secondary", "aria-label": `Remove property ${key}`,
        onclick: () => { values[key] = null; row.remove(); } }, "Remove") : ""));
    body.append(row);
  };
  Object.entries(properties).forEach(([key, value]) => addRow(key, String(value)));
  const key = h("input", {}), value = h("input", {});
  const add = h("button", { type: "button", className: "secondary", onclick: () => {
    const k = key.value.trim();
    if (!k) return notify("A property needs a key.");
    if (CORE.has(k)) return notify(`"${k}" is an image attribute, not a property.`);
    if (reserved(k)) return notify(`"${k}" is reserved: the service sets the os_glance_* properties.`);
    if (values[k]) values[k].value = value.value;
    else addRow(k, value.value);
    key.value = value.value = "";
    key.focus();
  } }, "Add property");

  const form = h("form", { onsubmit: async (event) => {
    event.preventDefault();
    notify("");
    const ops = [];
    if (name.value !== (image.name || "")) ops.push({ op: "replace", path: "/name", value: name.value });
    const newTags = [...new Set(tags.value.split(",").map((t) => t.trim()).filter(Boolean))];
    if (newTags.join("\n") !== (image.tags || []).join("\n")) ops.push({ op: "replace", path: "/tags", value: newTags });
    if (visibility.value !== image.visibility) ops.push({ op: "replace", path: "/visibility", value: visibility.value });
    for (const [k, input] of Object.entries(values)) {
      if (reserved(k)) continue;
      if (input === null && k in properties) ops.push({ op: "remove", path: pointer(k) });
      else if (input && !(k in properties)) ops.push({ op: "add", path: pointer(k), value: input.value });
      else if (input && input.value !== String(properties[k])) ops.push({ op: "replace", path: pointer(k), value: input.value });
    }
    if (!ops.length) return notify("Nothing changed.", "info");
    try {
      await patchImage(image.id, ops);
      await detailView(image.id);
      notify("Saved.", "info");
    } catch (error) { notify(error.message); }
  } },
  h("h3", {}, "Edit"),
  h("div", { className: "row" }, field("Name", name), field("Tags", tags), field("Visibility", visibility)),
  h("h3", {}, "Properties"),
  h("div", { className: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {},
    h("th", { scope: "col" }, "Property"), h("th", { scope: "col" }, "Value"), h("th", { scope: "col" }, ""))), body)),
  mine ? h("div", { className: "row" }, field("Key", key), field("Value", value), h("div", {}, add)) : "",
  mine ? h("div", { className: "actions" }, h("button", { type: "submit" }, "Save")) : "");
  return form;
}

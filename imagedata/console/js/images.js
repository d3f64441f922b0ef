// The images table: filter by name and status, the API's pages (limit and marker).
import { api, session } from "./api.js";
import { bytes, field, h, show, when } from "./dom.js";

const PAGE_SIZE = 20;
const STATUSES = ["", "queued", "saving", "active", "deactivated", "killed", "uploading", "importing"];
// What the filters and the page stack were, so "back" from an image returns to the same page.
const state = { name: "", status: "", markers: [] };

export async function imagesView() {
  const name = h("input", { type: "search", value: state.name, placeholder: "exact name" });
  const status = h("select", {}, STATUSES.map((s) => h("option", { value: s, selected: s === state.status }, s || "any")));
  const filters = h("form", { className: "row", role: "search", onsubmit: (event) => {
    event.preventDefault();
    Object.assign(state, { name: name.value.trim(), status: status.value, markers: [] });
    imagesView();
  } }, field("Filter by name", name), field("Status", status),
  h("div", {}, h("button", { type: "submit", className: "secondary" }, "Filter")));

  const query = new URLSearchParams({ limit: PAGE_SIZE, sort_key: "updated_at", sort_dir: "desc" });
  if (state.name) query.set("name", state.name);
  if (state.status) query.set("status", state.status);
  const marker = state.markers.at(-1);
  if (marker) query.set("marker", marker);
  const page = await api("GET", `/v2/images?${query}`);
  const next = page.next ? new URLSearchParams(page.next.split("?")[1] || "").get("marker") : null;

  const rows = page.images.map((image) => h("tr", {},
    h("td", {}, h("a", { href: `#/image/${image.id}` }, image.name || "(no name)")),
    h("td", {}, h("span", { className: `status ${image.status}` }, image.status)),
    h("td", { className: "num" }, bytes(image.size)),
    h("td", {}, image.disk_format || ""),
    h("td", { className: "optional" }, image.visibility),
    h("td", { className: "optional" }, when(image.updated_at))));
  const table = h("div", { className: "table-wrap" }, h("table", {},
    h("caption", { className: "muted" }, rows.length ? `Images, page ${state.markers.length + 1}` : "No image matches."),
    h("thead", {}, h("tr", {}, ["Name", "Status", "Size", "Disk format", "Visibility", "Updated"].map((title, i) =>
      h("th", { scope: "col", className: [i === 2 ? "num" : "", i > 3 ? "optional" : ""].join(" ").trim() || undefined }, title)))),
    h("tbody", {}, rows)));
  const pager = h("nav", { className: "pager", "aria-label": "Pages" },
    h("button", { type: "button", className: "secondary", disabled: !state.markers.length,
      onclick: () => { state.markers.pop(); imagesView(); } }, "Previous page"),
    h("button", { type: "button", className: "secondary", disabled: !next,
      onclick: () => { state.markers.push(next); imagesView(); } }, "Next page"));
  show(h("h2", {}, "Images"),
    h("div", { className: "actions" }, h("button", { type: "button", onclick: () => { location.hash = "#/upload"; } }, "Upload image"),
      (session.config.import_methods || []).includes("web-download")
        ? h("button", { type: "button", className: "secondary", onclick: () => { location.hash = "#/import"; } },
          "Import from a URL") : ""),
    filters, table, pager);
}

// Admins: stores (health and free space), quotas and usage per project, tokens.
import { api, authHeaders, errorOf, session } from "./api.js";
import { bytes, field, h, notify, show, when } from "./dom.js";

const table = (caption, headers, rows, empty) => h("div", { className: "table-wrap" }, h("table", {},
  h("caption", { className: "muted" }, caption),
  h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
  h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colSpan: headers.length, className: "muted" }, empty)))));

export async function adminView() {
  if (!session.me.admin) return show(h("h2", {}, "Admin"), h("p", {}, "These pages are for admins."));
  show(h("h2", {}, "Admin"), await storesSection(), await quotasSection(), await tokensSection());
}

async function storesSection() {
  // A degraded service answers 503 with the same report.
  const response = await fetch("/v2/info/health", { headers: authHeaders(), cache: "no-store" });
  if (!response.ok && response.status !== 503) throw await errorOf(response);
  const report = await response.json();
  const rows = (report.stores || []).map((s) => h("tr", {},
    h("td", {}, s.id), h("td", {}, s.type), h("td", {}, s.default ? "yes" : ""), h("td", {}, s.writable ? "yes" : "no"),
    h("td", { className: "num" }, s.free_bytes === null || s.free_bytes === undefined ? "unknown" : bytes(s.free_bytes)),
    h("td", {}, s.problem || "healthy")));
  const db = report.database || {};
  return h("section", { "aria-label": "Stores" }, h("h3", {}, "Stores"),
    h("p", {}, `Service ${report.status}; database ${db.reachable ? "reachable" : "unreachable"}`
      + (db.latency_ms !== undefined ? ` (${db.latency_ms} ms)` : "") + (db.problem ? `: ${db.problem}` : "")),
    table("Stores, their health and free space", ["Store", "Type", "Default", "Writable", "Free space", "Health"], rows,
      "No store."));
}

async function quotasSection() {
  const { projects } = await api("GET", "/console/api/projects");
  const limit = (u) => (u.limit < 0 ? "unlimited" : u.limit);
  const rows = projects.map(({ project, usage }) => h("tr", {},
    h("td", {}, project),
    h("td", { className: "num" }, `${bytes(usage.image_size_total.usage)} of ${usage.image_size_total.limit < 0 ? "unlimited" : bytes(usage.image_size_total.limit)}`),
    h("td", { className: "num" }, `${usage.image_count_total.usage} of ${limit(usage.image_count_total)}`),
    h("td", { className: "num" }, `${usage.image_count_uploading.usage} of ${limit(usage.image_count_uploading)}`)));
  const project = h("input", { required: true });
  const size = h("input", { type: "number", min: 0 }), count = h("input", { type: "number", min: 0 });
  const uploading = h("input", { type: "number", min: 0 });
  const form = h("form", { className: "row", onsubmit: async (event) => {
    event.preventDefault();
    const body = {};
    for (const [key, input] of [["image_size_total", size], ["image_count_total", count], ["image_count_uploading", uploading]]) {
      if (input.value !== "") body[key] = Number(input.value);
    }
    try {
      await api("PUT", `/console/api/projects/${encodeURIComponent(project.value.trim())}/quota`, { json: body });
      await adminView();
      notify(`Quota of ${project.value.trim()} set.`, "info");
    } catch (error) { notify(error.message); }
  } }, field("Quota project", project), field("Image size total (bytes, 0 = unlimited)", size),
  field("Image count total", count), field("Uploads at once", uploading),
  h("div", {}, h("button", { type: "submit" }, "Set quota")));
  return h("section", { "aria-label": "Quotas" }, h("h3", {}, "Quotas and usage"),
    table("Quotas and usage per project", ["Project", "Stored", "Images", "Uploading"], rows, "No project yet."), form);
}

async function tokensSection() {
  const section = h("section", { "aria-label": "Tokens" }, h("h3", {}, "Tokens"));
  if (session.config.auth !== "token") {
    section.append(h("p", { className: "muted" }, `Tokens are issued by ${session.config.auth === "keystone" ? "Keystone" : "the identity proxy"} in this deployment.`));
    return section;
  }
  const { tokens } = await api("GET", "/console/api/tokens");
  const rows = tokens.map((t) => h("tr", {},
    h("td", {}, t.id), h("td", {}, t.project), h("td", { className: "optional" }, t.user), h("td", {}, t.roles.join(", ")),
    h("td", { className: "optional" }, t.expires_at ? when(t.expires_at) : "never"), h("td", {}, t.revoked ? "revoked" : "active"),
    h("td", {}, t.revoked ? "" : h("button", { type: "button", className: "secondary", "aria-label": `Revoke token ${t.id}`,
      onclick: async () => {
        try {
          await api("DELETE", `/console/api/tokens/${encodeURIComponent(t.id)}`);
          await adminView();
          notify(`Token ${t.id} revoked (its download links stop working too).`, "info");
        } catch (error) { notify(error.message); }
      } }, "Revoke"))));
  const project = h("input", { required: true }), roles = h("input", { value: "member,reader" });
  const expires = h("input", { type: "number", min: 1 });
  const form = h("form", { className: "row", onsubmit: async (event) => {
    event.preventDefault();
    try {
      const body = { project: project.value.trim(), roles: roles.value.split(",").map((r) => r.trim()).filter(Boolean) };
      if (expires.value) body.expires_in = Number(expires.value);
      const made = await api("POST", "/console/api/tokens", { json: body });
      await adminView();
      notify(`New token ${made.id} for ${made.project} (shown once, copy it now): ${made.token}`, "info");
    } catch (error) { notify(error.message); }
  } }, field("Token project", project), field("Roles", roles), field("Expires in (seconds)", expires),
  h("div", {}, h("button", { type: "submit" }, "Create token")));
  section.append(table("API tokens", ["Id", "Project", "User", "Roles", "Expires", "State", ""], rows, "No token."), form);
  return section;
}

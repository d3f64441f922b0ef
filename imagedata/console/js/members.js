// Sharing: the members of an image (its owner adds and removes projects).
import { api, imagePath } from "./api.js";
import { field, h, notify, when } from "./dom.js";

export async function membersSection(image, mine) {
  const section = h("section", { "aria-label": "Members" }, h("h3", {}, "Members"));
  if (image.visibility !== "shared") {
    section.append(h("p", { className: "muted" },
      "Only images with visibility \"shared\" have members: change the visibility to share this image."));
    return section;
  }
  const { members } = await api("GET", `${imagePath(image.id)}/members`);
  section.append(h("div", { className: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, ["Project", "Status", "Updated", ""].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, members.length ? members.map((m) => h("tr", {},
      h("td", {}, m.member_id), h("td", {}, m.status), h("td", {}, when(m.updated_at)),
      h("td", {}, mine ? h("button", { type: "button", className: "secondary", "aria-label": `Remove member ${m.member_id}`,
        onclick: () => change("DELETE", `${imagePath(image.id)}/members/${encodeURIComponent(m.member_id)}`) }, "Remove") : "")))
      : h("tr", {}, h("td", { colSpan: 4, className: "muted" }, "Not shared with any project yet."))))));
  if (mine) {
    const project = h("input", { required: true });
    section.append(h("form", { className: "row", onsubmit: (event) => {
      event.preventDefault();
      change("POST", `${imagePath(image.id)}/members`, { member: project.value.trim() });
    } }, field("Member project", project), h("div", {}, h("button", { type: "submit" }, "Add member"))));
  }
  return section;

  async function change(method, path, json) {
    try {
      await api(method, path, json ? { json } : {});
      const { detailView } = await import("./detail.js");
      await detailView(image.id);
      notify(method === "POST" ? `Shared with ${json.member}.` : "Member removed.", "info");
    } catch (error) { notify(error.message); }
  }
}

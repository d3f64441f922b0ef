// Images other projects shared with mine: accept or reject each.
import { api, imagePath, session } from "./api.js";
import { bytes, h, notify, show } from "./dom.js";

export async function sharedView() {
  const { images } = await api("GET", "/v2/images?visibility=shared&member_status=all&limit=200");
  const others = images.filter((image) => image.owner !== session.me.project);
  const me = encodeURIComponent(session.me.project || "");
  const states = await Promise.all(others.map((image) =>
    api("GET", `${imagePath(image.id)}/members/${me}`).then((m) => m.status, () => "unknown")));
  const rows = others.map((image, i) => h("tr", {},
    h("td", {}, h("a", { href: `#/image/${image.id}` }, image.name || "(no name)")),
    h("td", {}, image.owner), h("td", { className: "num" }, bytes(image.size)), h("td", {}, states[i]),
    h("td", {}, h("div", { className: "actions" },
      decide(image, "accepted", "Accept", states[i]), decide(image, "rejected", "Reject", states[i])))));
  show(h("h2", {}, "Shared with me"),
    h("p", { className: "muted" }, "Images other projects shared with yours. Accepted ones appear in your image list."),
    h("div", { className: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Name", "Owner", "Size", "Your answer", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colSpan: 5, className: "muted" }, "Nothing is shared with your project."))))));

  function decide(image, status, label, current) {
    return h("button", { type: "button", className: status === "rejected" ? "secondary" : undefined,
      disabled: current === status, "aria-label": `${label} ${image.name || image.id}`, onclick: async () => {
        try {
          await api("PUT", `${imagePath(image.id)}/members/${me}`, { json: { status } });
          await sharedView();
          notify(`${label}ed "${image.name || image.id}".`, "info");
        } catch (error) { notify(error.message); }
      } }, label);
  }
}

// Sign in: a token (IMAGEDATA_AUTH=token), or Keystone credentials the service exchanges
// for a token (IMAGEDATA_AUTH=keystone). The password is sent once and never kept.
import { api, session } from "./api.js";
import { field, h, notify, show } from "./dom.js";

export function signInView(done) {
  const keystone = session.config.auth === "keystone";
  const inputs = keystone
    ? { username: h("input", { autocomplete: "username", required: true }),
        password: h("input", { type: "password", autocomplete: "current-password", required: true }),
        project: h("input", { required: true }),
        domain: h("input", { value: "Default", required: true }) }
    : { token: h("input", { type: "password", autocomplete: "off", required: true }) };
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { className: "signin", onsubmit: submit },
    h("h2", {}, "Sign in"),
    keystone
      ? [field("Username", inputs.username), field("Password", inputs.password),
         field("Project", inputs.project), field("Domain", inputs.domain)]
      : [h("p", { className: "muted" }, "Paste an API token (from `imagedata token create`)."), field("Token", inputs.token)],
    h("div", { className: "actions" }, button));
  show(form);

  async function submit(event) {
    event.preventDefault();
    button.disabled = true;
    notify("");
    try {
      if (keystone) {
        const answer = await api("POST", "/console/api/session", { json: {
          username: inputs.username.value, password: inputs.password.value,
          project: inputs.project.value, domain: inputs.domain.value } });
        inputs.password.value = "";
        session.token = answer.token;
      } else {
        session.token = inputs.token.value.trim();
        inputs.token.value = "";
      }
      await done();
    } catch (error) {
      notify(error.message);
    } finally {
      button.disabled = false;
    }
  }
}

// The sandbox's Slack page: reads /slack/ui/state once a second and renders the Slack record like a
// channel; buttons, menus, the modal and /commands go back to the sandbox, which sends the app what Slack
// would (signed block_actions, view_submission and slash-command requests; see slack_client.py).
"use strict";

const POLL_MS = 1000;
const view = { channel: "cs-alerts", user: localStorage.getItem("mm-user") || "", last: "", modalKey: "",
               pressing: false };
const $ = (id) => document.getElementById(id);

function esc(text) {
  return String(text ?? "").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function unslack(text) {
  // Slack escapes &, < and > in message text; undo that before our own HTML escaping
  return String(text ?? "").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

function control(inner) {
  // <@U1>, <#C1|name>, <!here>, <!subteam^S1>, <!date^epoch^format|fallback>, <url|label>
  const [target, label] = inner.split("|", 2);
  if (target.startsWith("@")) return `<span class="mention">@${esc(label || target.slice(1))}</span>`;
  if (target.startsWith("#")) return `<span class="mention">#${esc(label || target.slice(1))}</span>`;
  if (target.startsWith("!subteam^")) return `<span class="mention">@${esc(label || target.slice(9))}</span>`;
  if (target.startsWith("!date^")) {
    const epoch = Number(target.split("^")[1]);
    return esc(Number.isFinite(epoch) ? new Date(epoch * 1000).toLocaleString() : label || "");
  }
  if (target.startsWith("!")) return `<span class="mention">@${esc(label || target.slice(1))}</span>`;
  if (!/^(https?:|mailto:)/i.test(target)) return esc(label || target);  // never a javascript: link
  return `<a href="${esc(target)}" target="_blank" rel="noopener noreferrer">${esc(label || target)}</a>`;
}

function inline(html) {
  return html
    .replace(/`([^`\n]+)`/g, "<code>$1</code>")
    .replace(/(^|[\s(>])\*([^*\n]+)\*(?=[\s).,!?:;<]|$)/g, "$1<b>$2</b>")
    .replace(/(^|[\s(>])_([^_\n]+)_(?=[\s).,!?:;<]|$)/g, "$1<i>$2</i>")
    .replace(/(^|[\s(>])~([^~\n]+)~(?=[\s).,!?:;<]|$)/g, "$1<s>$2</s>");
}

function mrkdwn(text) {
  const parts = String(text ?? "").split(/<([^<>\n]+)>/);
  let html = parts.map((part, i) => (i % 2 ? control(unslack(part)) : esc(unslack(part)))).join("");
  html = html.replace(/```([\s\S]*?)```/g, (_, code) => `<pre>${code}</pre>`);
  return html.split("\n").map((line) => {
    const quoted = line.match(/^&gt;\s?(.*)$/);
    return quoted ? `<blockquote>${inline(quoted[1])}</blockquote>` : inline(line);
  }).join("<br>").replace(/<\/blockquote><br>/g, "</blockquote>");
}

function textObject(obj) {
  if (!obj) return "";
  return obj.type === "mrkdwn" ? mrkdwn(obj.text) : esc(unslack(obj.text));
}

function element(el, where) {
  const data = `data-action-id="${esc(el.action_id)}" data-block-id="${esc(where.block)}" ` +
               `data-ts="${esc(where.ts)}" data-channel="${esc(where.channel)}"`;
  if (el.type === "button") {
    const style = el.style ? ` ${esc(el.style)}` : "";
    if (el.url && /^https?:/i.test(el.url)) return `<a class="bk-button${style}" href="${esc(el.url)}" target="_blank" rel="noopener">${textObject(el.text)}</a>`;
    return `<button type="button" class="bk-button${style}" ${data} data-value="${esc(el.value ?? "")}">${textObject(el.text)}</button>`;
  }
  if (el.type === "static_select" || el.type === "overflow") {
    const first = el.type === "overflow" ? "⋯" : textObject(el.placeholder) || "Choose…";
    const options = (el.options || []).map((o) => `<option value="${esc(o.value)}">${textObject(o.text)}</option>`);
    return `<select class="bk-select" ${data} aria-label="${esc(el.action_id)}"><option value="">${first}</option>${options.join("")}</select>`;
  }
  if (el.type === "image") return `<span class="hint">[${esc(el.alt_text || "image")}]</span>`;
  if (el.type === "mrkdwn" || el.type === "plain_text") return `<span>${textObject(el)}</span>`;
  return `<span class="hint">[${esc(el.type)}]</span>`;
}

function blocks(list, where) {
  return list.map((block) => {
    const at = { ...where, block: block.block_id || "" };
    switch (block.type) {
      case "section": {
        const fields = (block.fields || []).map((f) => `<div>${textObject(f)}</div>`).join("");
        return `<div class="bk-section"><div class="text">${textObject(block.text)}` +
               `${fields ? `<div class="bk-fields">${fields}</div>` : ""}</div>` +
               `${block.accessory ? element(block.accessory, at) : ""}</div>`;
      }
      case "context":
        return `<div class="bk-context">${(block.elements || []).map((e) => element(e, at)).join("")}</div>`;
      case "actions":
        return `<div class="bk-actions">${(block.elements || []).map((e) => element(e, at)).join("")}</div>`;
      case "header":
        return `<div class="bk-header">${textObject(block.text)}</div>`;
      case "divider":
        return `<hr class="bk-divider">`;
      case "input": {
        const el = block.element || {};
        const id = `input-${esc(block.block_id)}`;
        const field = el.multiline
          ? `<textarea id="${id}" data-block-id="${esc(block.block_id)}" data-action-id="${esc(el.action_id)}"></textarea>`
          : `<input id="${id}" data-block-id="${esc(block.block_id)}" data-action-id="${esc(el.action_id)}">`;
        return `<div class="bk-input"><label for="${id}">${textObject(block.label)}</label>${field}` +
               `<p class="error" data-error-for="${esc(block.block_id)}"></p></div>`;
      }
      default:
        return `<div class="hint">[${esc(block.type)} block]</div>`;
    }
  }).join("");
}

function message(m) {
  const when = new Date(Number(m.ts) * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const body = m.blocks && m.blocks.length ? blocks(m.blocks, { ts: m.ts, channel: m.channel }) : mrkdwn(m.text);
  const note = m.ephemeral ? `<div class="only-you">Only visible to you</div>` : "";
  return `<div class="message${m.ephemeral ? " ephemeral" : ""}" data-ts="${esc(m.ts)}">` +
         `<span class="who">mention-monitor</span><span class="when">${esc(when)}</span>${note}` +
         `<div class="body">${body}</div></div>`;
}

const HOME = "__home";  // the app's Home tab, shown where a channel's messages would be

function renderHome(state) {
  const home = state.home;
  $("messages").innerHTML = home ? `<div class="message home">${blocks(home.blocks || [], { ts: "", channel: "" })}</div>`
    : `<p class="hint">Opening the app's Home tab…</p>`;
}

function renderMessages(state) {
  if (view.channel === HOME) return renderHome(state);
  const inChannel = state.messages.filter((m) => m.channel === view.channel);
  const top = inChannel.filter((m) => !m.thread_ts || m.thread_ts === m.ts);
  const replies = (ts) => inChannel.filter((m) => m.thread_ts === ts && m.ts !== ts);
  const list = $("messages");
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 40;  // follow new messages, as Slack does
  list.innerHTML = top.length ? top.map((m) => {
    const thread = replies(m.ts);
    return message(m) + (thread.length ? `<div class="thread" data-thread="${esc(m.ts)}">${thread.map(message).join("")}</div>` : "");
  }).join("") : `<p class="hint">Nothing in #${esc(view.channel)} yet.</p>`;
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function renderSidebar(state) {
  const users = state.users.length ? state.users : ["U0SANDBOXUSER"];
  if (!users.includes(view.user)) view.user = users[0];
  const picker = $("user");
  if (picker.dataset.users !== users.join(",")) {
    picker.innerHTML = users.map((u) => `<option value="${esc(u)}">${esc(u)}</option>`).join("");
    picker.dataset.users = users.join(",");
  }
  picker.value = view.user;
  $("channels").innerHTML = state.channels.map((c) => {
    const count = state.messages.filter((m) => m.channel === c && !m.ephemeral && (!m.thread_ts || m.thread_ts === m.ts)).length;
    return `<button type="button" data-channel="${esc(c)}" class="${c === view.channel ? "current" : ""}"># ${esc(c)}` +
           `<span class="count">${count || ""}</span></button>`;
  }).join("") + `<button type="button" data-channel="${HOME}" class="${view.channel === HOME ? "current" : ""}">` +
    `⌂ mention-monitor (Home)</button>`;
  $("composer").hidden = view.channel === HOME;  // the Home tab has no message box
  $("channel-title").textContent = view.channel === HOME ? "mention-monitor · Home" : `#${view.channel}`;
  $("app-status").textContent = state.app_connected ? "The app is connected: buttons and /mentions reach it."
    : "No app is connected: clicks go nowhere (run mention-monitor run --sandbox).";
  $("clock").textContent = state.now ? `sandbox time ${new Date(state.now * 1000).toLocaleString()}` : "";
}

function renderPosts(id, posts) {
  $(id).innerHTML = posts.length ? posts.map((p) => {
    const where = p.in_reply_to || p.in_reply_to_tweet_id || p.parent_id || p.recipient || p.to || "";
    return `<li><span class="meta">${esc(p.kind || p.type || "post")}${where ? ` → ${esc(where)}` : ""}</span>` +
           `${esc(p.text || p.message || "")}</li>`;
  }).join("") : `<li class="hint">nothing yet</li>`;
}

function renderModal(modal) {
  const backdrop = $("modal-backdrop");
  if (!modal) {
    backdrop.hidden = true;
    view.modalKey = "";
    return;
  }
  const key = `${modal.id}:${modal.hash}`;
  if (view.modalKey !== key) {  // a new modal (or an update): draw it; otherwise keep what was typed
    view.modalKey = key;
    $("modal-title").textContent = unslack(modal.title?.text || "");
    $("modal-blocks").innerHTML = blocks(modal.blocks || [], { ts: "", channel: "" });
    $("modal-submit").textContent = unslack(modal.submit?.text || "Submit");
    $("modal-close").textContent = unslack(modal.close?.text || "Cancel");
    $("modal").dataset.viewId = modal.id;
    backdrop.hidden = false;
  }
  const errors = modal.errors || {};
  document.querySelectorAll("#modal [data-error-for]").forEach((p) => { p.textContent = errors[p.dataset.errorFor] || ""; });
  $("modal-error").textContent = errors[""] || "";
}

async function refresh() {
  try {
    const answer = await fetch(`/slack/ui/state?user=${encodeURIComponent(view.user)}`, { cache: "no-store" });
    const state = await answer.json();
    renderSidebar(state);
    const shown = JSON.stringify([view.channel, view.user, view.channel === HOME ? state.home : state.messages]);
    // no redraw under a pressed mouse button or an open menu: the click or the choice would be lost
    if (shown !== view.last && !view.pressing && !document.activeElement?.classList.contains("bk-select")) {
      view.last = shown;
      renderMessages(state);
    }
    renderPosts("x-posts", state.x_posts || []);
    renderPosts("fb-posts", state.fb_posts || []);
    renderModal(state.modal);
  } catch (err) {
    $("app-status").textContent = `The sandbox did not answer (${err}).`;
  }
}

async function send(route, body) {
  const answer = await fetch(`/slack/ui/${route}`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user: view.user, ...body }),
  });
  const result = await answer.json();
  if (!answer.ok) $("composer-hint").textContent = result.error || `HTTP ${answer.status}`;
  else if (result.status && result.status !== 200) $("composer-hint").textContent = `The app answered HTTP ${result.status}.`;
  await refresh();
  return result;
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button.bk-button");
  if (button) {
    button.disabled = true;
    await send("press", { channel: button.dataset.channel, ts: button.dataset.ts, action_id: button.dataset.actionId,
                          block_id: button.dataset.blockId, value: button.dataset.value });
    button.disabled = false;
    return;
  }
  const channel = event.target.closest("#channels button");
  if (channel) {
    view.channel = channel.dataset.channel;
    view.last = "";
    if (view.channel === HOME) await send("home", {});  // as Slack does each time the tab is opened
    else refresh();
  }
});

document.addEventListener("change", async (event) => {
  const select = event.target.closest("select.bk-select");
  if (!select || !select.value) return;
  const chosen = select.value;
  select.blur();
  await send("press", { channel: select.dataset.channel, ts: select.dataset.ts, action_id: select.dataset.actionId,
                        block_id: select.dataset.blockId, selected: chosen });
});

$("messages").addEventListener("pointerdown", () => { view.pressing = true; });
document.addEventListener("pointerup", () => { setTimeout(() => { view.pressing = false; }, 0); });

$("user").addEventListener("change", (event) => {
  view.user = event.target.value;
  localStorage.setItem("mm-user", view.user);
  view.last = "";
  refresh();
});

$("composer").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("command").value.trim();
  if (!text.startsWith("/")) {
    $("composer-hint").textContent = "The bot reads no messages here: type a command, like /mentions stats.";
    return;
  }
  $("composer-hint").textContent = "";
  $("command").value = "";
  await send("command", { channel: view.channel, text });
});

$("modal-submit").addEventListener("click", async () => {
  const values = {};
  document.querySelectorAll("#modal-blocks [data-block-id][data-action-id]").forEach((input) => {
    values[input.dataset.blockId] = { ...(values[input.dataset.blockId] || {}), [input.dataset.actionId]: input.value };
  });
  $("modal-submit").disabled = true;
  await send("submit", { view_id: $("modal").dataset.viewId, values });
  $("modal-submit").disabled = false;
});

$("modal-close").addEventListener("click", () => send("close", { view_id: $("modal").dataset.viewId }));

refresh();
setInterval(refresh, POLL_MS);

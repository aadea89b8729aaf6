// The chat page: one WebSocket to the chat API, reconnecting with exponential backoff and jitter.
//
// Server frames (see docs/client.md): {"type": "message", ...} broadcasts, {"type": "error", ...} refusals sent to
// this connection alone, and API Gateway's {"message": "Internal server error", ...} when a handler failed.
// Everything the server sends is rendered with textContent, never as HTML.
"use strict";

(() => {
  const DEFAULT_STAGE = "dev";
  const LOCAL_URL = `ws://127.0.0.1:3001/${DEFAULT_STAGE}`;
  const FIRST_RETRY_MS = 500;
  const LONGEST_RETRY_MS = 30000;
  const GATEWAY_FAILURE = "Internal server error";
  const FRAME_LIMIT_BYTES = 32 * 1024; // API Gateway's WebSocket frame quota (app/settings.py FRAME_LIMIT_BYTES)
  const NAME_KEY = "chat.displayName";
  const CHAT_PROTOCOL = "websocket-chat"; // handlers/subprotocol.py CHAT
  const TOKEN_PROTOCOL_PREFIX = "bearer."; // handlers/subprotocol.py TOKEN_PREFIX
  const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

  const elements = {
    status: document.getElementById("status"),
    statusText: document.getElementById("status-text"),
    retryNow: document.getElementById("retry-now"),
    connection: document.getElementById("connection"),
    url: document.getElementById("url"),
    name: document.getElementById("name"),
    token: document.getElementById("token"),
    connect: document.getElementById("connect"),
    urlProblem: document.getElementById("url-problem"),
    messages: document.getElementById("messages"),
    empty: document.getElementById("empty"),
    composer: document.getElementById("composer"),
    message: document.getElementById("message"),
    send: document.getElementById("send"),
  };

  const session = {
    socket: null,
    wanted: false, // the user asked to be connected: unexpected closes are retried
    failures: 0, // consecutive failed attempts, for the backoff
    retryTimer: null,
    myConnectionId: null, // learned from the echo of our first message
    unconfirmed: [], // texts we sent whose echo has not come back yet
    everConnected: false,
  };

  // The emulator serves this page from the API's own host, so ws://<host>/<stage> is the API; ?stage= picks the
  // stage. No ?url=: a crafted link could point the page, and the token typed into it, at another server. Opened from
  // a file, the page points at the local emulator's default; any other server is typed in by the user.
  function defaultUrl() {
    const query = new URLSearchParams(window.location.search);
    if (window.location.protocol !== "http:" && window.location.protocol !== "https:") {
      return LOCAL_URL;
    }
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const stage = query.get("stage") || DEFAULT_STAGE;
    return `${scheme}://${window.location.host}/${encodeURIComponent(stage)}`;
  }

  function connectionUrl() {
    const raw = elements.url.value.trim();
    let url;
    try {
      url = new URL(raw);
    } catch {
      return { problem: "Enter a URL like ws://127.0.0.1:3001/dev or wss://…/dev." };
    }
    if (url.protocol !== "ws:" && url.protocol !== "wss:") {
      return { problem: `The URL must start with ws:// or wss://, not ${url.protocol}//.` };
    }
    const name = elements.name.value.trim();
    const token = elements.token.value.trim();
    if (name) {
      url.searchParams.set("name", name);
    }
    if (!token) {
      return { url: url.toString(), protocols: [] };
    }
    // Unencrypted, a token could be read on the way; only this machine is trusted with plain ws://.
    if (url.protocol === "ws:" && !LOOPBACK_HOSTS.has(url.hostname)) {
      return { problem: `A token is only sent over wss://, or ws:// to this machine; ${url.host} is neither.` };
    }
    // Browsers cannot set an Authorization header on a WebSocket: the token travels as a subprotocol, never in the
    // URL (where logs and history keep it); the server selects the chat's own protocol (handlers/subprotocol.py).
    return { url: url.toString(), protocols: [CHAT_PROTOCOL, `${TOKEN_PROTOCOL_PREFIX}${token}`] };
  }

  // --- connection state ---------------------------------------------------------------------------------------

  function showState(state, text) {
    elements.status.dataset.state = state;
    elements.statusText.textContent = text;
    elements.retryNow.hidden = state !== "disconnected" || !session.wanted;
    const connected = state === "connected";
    const busy = session.wanted;
    elements.connect.textContent = busy ? "Disconnect" : "Connect";
    elements.connect.classList.toggle("button-primary", !busy);
    for (const field of [elements.url, elements.name, elements.token]) {
      field.disabled = busy;
    }
    elements.message.disabled = !connected;
    elements.send.disabled = !connected;
    elements.message.placeholder = connected ? "Write a message" : "Connect to start chatting";
  }

  function connect() {
    clearTimers();
    const { url, protocols, problem } = connectionUrl();
    elements.urlProblem.hidden = !problem;
    elements.urlProblem.textContent = problem || "";
    elements.url.setAttribute("aria-invalid", problem ? "true" : "false");
    if (problem) {
      session.wanted = false;
      elements.url.focus();
      return;
    }
    session.wanted = true;
    session.myConnectionId = null;
    session.unconfirmed = [];
    showState("connecting", session.failures ? `Connecting (attempt ${session.failures + 1})…` : "Connecting…");
    let socket;
    try {
      socket = new WebSocket(url, protocols);
    } catch (error) {
      addNotice("error", "Cannot connect", String(error.message || error));
      session.wanted = false;
      showState("disconnected", "Disconnected");
      return;
    }
    session.socket = socket;
    socket.addEventListener("open", () => {
      if (session.socket !== socket) {
        return;
      }
      session.failures = 0;
      session.everConnected = true;
      const name = elements.name.value.trim();
      showState("connected", "Connected");
      // With a token, the server takes the display name from the token, not from the name field.
      if (elements.token.value.trim()) {
        addNotice("info", "Connected with a token: your name is the one it carries");
      } else {
        addNotice("info", name ? `Connected as ${name}` : "Connected");
      }
      elements.message.focus();
    });
    socket.addEventListener("message", (event) => {
      if (session.socket === socket) {
        receive(event.data);
      }
    });
    socket.addEventListener("close", (event) => {
      if (session.socket !== socket) {
        return;
      }
      const wasOpen = elements.status.dataset.state === "connected";
      session.socket = null;
      if (wasOpen) {
        addNotice("warning", `Connection lost${event.code ? ` (code ${event.code})` : ""}`);
      } else if (!session.everConnected && session.failures === 0) {
        // Browsers hide why a handshake failed (refused, wrong stage, token denied): say what to check, once.
        addNotice("warning", "Cannot connect",
          "Check the server URL, its stage, the display name and the token. Retrying…");
      }
      if (session.wanted) {
        scheduleRetry();
      } else {
        showState("disconnected", "Disconnected");
      }
    });
  }

  function disconnect() {
    session.wanted = false;
    clearTimers();
    session.failures = 0;
    const socket = session.socket;
    session.socket = null;
    if (socket) {
      socket.close(1000, "bye");
      addNotice("info", "Disconnected");
    }
    showState("disconnected", "Disconnected");
  }

  // Exponential backoff with "equal jitter": half the delay is fixed, half random, so many pages dropped by the
  // same outage do not all come back in the same instant.
  function retryDelay(failures) {
    const ceiling = Math.min(LONGEST_RETRY_MS, FIRST_RETRY_MS * 2 ** failures);
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  function scheduleRetry() {
    const delay = retryDelay(session.failures);
    session.failures += 1;
    // Announced once per attempt, not counted down: the status is a live region read out by screen readers.
    const label = session.everConnected ? "Disconnected" : "Cannot connect";
    showState("disconnected", `${label}, retrying in ${Math.max(1, Math.round(delay / 1000))} s`);
    session.retryTimer = window.setTimeout(connect, delay);
  }

  function clearTimers() {
    window.clearTimeout(session.retryTimer);
    session.retryTimer = null;
  }

  // --- frames -----------------------------------------------------------------------------------------------------

  function receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      addNotice("error", "Unexpected frame from the server", String(data));
      return;
    }
    if (frame && frame.type === "message" && typeof frame.message === "string") {
      addMessage(frame);
    } else if (frame && frame.type === "error") {
      const kept = keepRefused();
      addNotice("error", "The server refused the message", frame.error || "No reason given.", frame.requestId,
        expectedOf(frame), kept);
    } else if (frame && frame.type === undefined && frame.message === GATEWAY_FAILURE) {
      const kept = keepRefused();
      addNotice("error", `API Gateway: ${GATEWAY_FAILURE}`, "The server failed to handle the message.",
        frame.requestId, "", kept);
    } else {
      addNotice("error", "Unexpected frame from the server", String(data));
    }
  }

  function expectedOf(frame) {
    const expected = frame.expected && typeof frame.expected.message === "string" ? frame.expected.message : "";
    return expected ? `Expected: ${expected}` : "";
  }

  // Error frames answer this connection's oldest unanswered message; give its text back unless the user is
  // already typing something else, so a refused message is never lost.
  function keepRefused() {
    const refused = session.unconfirmed.shift();
    if (refused === undefined || elements.message.value) {
      return false;
    }
    elements.message.value = refused;
    fitComposer();
    return true;
  }

  function isMine(frame) {
    if (session.myConnectionId) {
      return frame.connectionId === session.myConnectionId;
    }
    const index = session.unconfirmed.indexOf(frame.message);
    if (index === -1) {
      return false;
    }
    session.unconfirmed.splice(index, 1);
    session.myConnectionId = frame.connectionId || null;
    return true;
  }

  // --- rendering (textContent only) ----------------------------------------------------------------------------

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function colourOf(name) {
    let hash = 0;
    for (const character of name) {
      hash = (hash * 31 + character.codePointAt(0)) % 360;
    }
    return `hsl(${hash} 55% 45%)`;
  }

  function append(item) {
    const list = elements.messages;
    const container = list.parentElement;
    const nearBottom = container.scrollHeight - container.scrollTop - container.clientHeight < 80;
    list.append(item);
    elements.empty.hidden = true;
    if (nearBottom || item.classList.contains("mine")) {
      item.scrollIntoView({ block: "end" });
    }
  }

  function addMessage(frame) {
    const mine = isMine(frame);
    const sender = typeof frame.from === "string" && frame.from ? frame.from : frame.connectionId || "unknown";
    const item = element("li", `message ${mine ? "mine" : "theirs"}`);
    if (typeof frame.id === "string") {
      item.dataset.id = frame.id;
    }
    const avatar = element("span", "avatar", Array.from(sender)[0].toUpperCase());
    avatar.setAttribute("aria-hidden", "true");
    avatar.style.backgroundColor = colourOf(sender);
    const bubble = element("div", "bubble");
    const meta = element("div", "meta");
    meta.append(element("span", "sender", mine ? `${sender} (you)` : sender));
    const sentAt = new Date(typeof frame.sentAt === "string" ? frame.sentAt : Date.now());
    const moment = Number.isNaN(sentAt.getTime()) ? new Date() : sentAt;
    const time = element("time", "time", moment.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
    time.dateTime = moment.toISOString();
    time.title = moment.toLocaleString();
    meta.append(time);
    bubble.append(meta, element("p", "text", frame.message));
    item.append(avatar, bubble);
    append(item);
  }

  function addNotice(kind, title, detail, requestId, hint, kept) {
    const item = element("li", `notice ${kind}`);
    item.append(element("strong", "notice-title", title));
    if (detail) {
      item.append(element("span", "notice-detail", detail));
    }
    if (hint) {
      item.append(element("span", "notice-hint", hint));
    }
    if (kept) {
      item.append(element("span", "notice-hint", "Your message is back in the box below."));
    }
    if (requestId) {
      item.append(element("span", "notice-request", `Request id ${requestId}`));
    }
    append(item);
  }

  // --- input ----------------------------------------------------------------------------------------------------

  function send() {
    const text = elements.message.value;
    const socket = session.socket;
    if (!text.trim() || !socket || socket.readyState !== WebSocket.OPEN) {
      return;
    }
    const frame = JSON.stringify({ action: "sendmessage", message: text });
    const size = new TextEncoder().encode(frame).length;
    if (size > FRAME_LIMIT_BYTES) {
      // API Gateway would close the whole connection (1009) rather than answer; keep the text for editing.
      addNotice("error", "Not sent", `This message makes a ${size}-byte frame; API Gateway closes the connection ` +
        `on frames over ${FRAME_LIMIT_BYTES} bytes. Shorten it and send again.`);
      return;
    }
    socket.send(frame);
    session.unconfirmed.push(text);
    elements.message.value = "";
    fitComposer();
  }

  function fitComposer() {
    const box = elements.message;
    box.style.height = "auto";
    box.style.height = `${Math.min(box.scrollHeight, 160)}px`;
  }

  elements.connection.addEventListener("submit", (event) => {
    event.preventDefault();
    if (session.wanted) {
      disconnect();
    } else {
      try {
        window.localStorage.setItem(NAME_KEY, elements.name.value.trim());
      } catch {
        // Storage can be disabled (private windows, file:// in some browsers); the name is just not remembered.
      }
      session.failures = 0;
      session.everConnected = false;
      connect();
    }
  });

  elements.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });

  elements.message.addEventListener("keydown", (event) => {
    // Enter sends; Shift+Enter adds a line; Enter that confirms an input-method composition does neither.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });

  elements.message.addEventListener("input", fitComposer);

  elements.retryNow.addEventListener("click", () => {
    if (session.wanted && !session.socket) {
      connect();
    }
  });

  // Back online: do not sit out the rest of a long backoff.
  window.addEventListener("online", () => {
    if (session.wanted && !session.socket) {
      connect();
    }
  });

  elements.url.value = defaultUrl();
  try {
    elements.name.value = window.localStorage.getItem(NAME_KEY) || "";
  } catch {
    // As above: without storage the name field simply starts empty.
  }
  showState("disconnected", "Disconnected");
})();

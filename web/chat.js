// The chat page: one WebSocket to the chat API, reconnecting with exponential backoff and jitter.
//
// Server frames (schemas/ and docs/handlers.md): room messages, joined/left/presence/presence-off/members/history,
// whispers, error frames to this connection alone, and API Gateway's {"message": "Internal server error", ...} when
// a handler failed. Frame types the page does not know are ignored; repeats of a message (same id) are shown once.
// Everything the server sends is rendered with textContent, never as HTML.
"use strict";

(() => {
  const DEFAULT_STAGE = "dev";
  const LOCAL_URL = `ws://127.0.0.1:3001/${DEFAULT_STAGE}`;
  const FIRST_RETRY_MS = 500;
  const LONGEST_RETRY_MS = 30000;
  const JOIN_WAIT_MS = 10000;
  const GATEWAY_FAILURE = "Internal server error";
  const FRAME_LIMIT_BYTES = 32 * 1024; // API Gateway's WebSocket frame quota (app/settings.py FRAME_LIMIT_BYTES)
  const NAME_KEY = "chat.displayName";
  const CHAT_PROTOCOL = "websocket-chat"; // handlers/subprotocol.py CHAT
  const TOKEN_PROTOCOL_PREFIX = "bearer."; // handlers/subprotocol.py TOKEN_PREFIX
  const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);
  const LOBBY = "lobby";
  const ROOM_NAME = /^[A-Za-z0-9._-]{1,64}$/;

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
    rooms: document.getElementById("rooms"),
    join: document.getElementById("join"),
    roomName: document.getElementById("room-name"),
    joinButton: document.getElementById("join-button"),
    members: document.getElementById("members"),
    membersRoom: document.getElementById("members-room"),
    membersNote: document.getElementById("members-note"),
    membersNoteText: document.getElementById("members-note-text"),
    membersRefresh: document.getElementById("members-refresh"),
  };

  const session = {
    socket: null,
    wanted: false, // the user asked to be connected: unexpected closes are retried
    failures: 0, // consecutive failed attempts, for the backoff
    retryTimer: null,
    joinTimer: null, // gives up waiting for the answer to the join at connect
    joining: false, // open, and the join at connect not answered yet: the composer waits for it
    myConnectionId: null, // only ever from the server's `joined` frame: a name or a text can be copied
    pending: [], // requests sent and not answered yet, oldest first: {kind, key, text}
    everConnected: false,
    rooms: new Map(), // room -> Map(connectionId -> name), the rooms this connection is in
    notLive: new Map(), // room -> its presence cap, for rooms too big for presence: their lists are snapshots
    partial: new Set(), // rooms whose last member list was cut short (`truncated`)
    current: LOBBY, // where the composer sends
    seen: new Set(), // message and whisper ids already shown
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
    elements.roomName.disabled = !connected;
    elements.joinButton.disabled = !connected;
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
    session.joining = false;
    session.pending = [];
    session.rooms.clear();
    session.notLive.clear();
    session.partial.clear();
    renderRooms();
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
      // With a token, the server takes the display name from the token, not from the name field.
      if (elements.token.value.trim()) {
        addNotice("info", "Connected with a token: your name is the one it carries");
      } else {
        addNotice("info", name ? `Connected as ${name}` : "Connected");
      }
      // $connect cannot post to the connection it opens: this join tells the page its own id (and the lobby).
      // The composer waits for its answer: after a reconnect this join re-enters the room it sends to.
      const room = session.current || LOBBY;
      session.joining = true;
      showState("connecting", `Joining #${room}…`);
      request({ action: "join", room }, { quiet: true });
      session.joinTimer = window.setTimeout(() => {
        addNotice("warning", `No answer to joining #${room}`, "Messages may be refused until you /join a room.");
        joinAnswered();
      }, JOIN_WAIT_MS);
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
      const wasOpen = elements.status.dataset.state === "connected" || session.joining;
      session.socket = null;
      session.joining = false;
      window.clearTimeout(session.joinTimer);
      session.joinTimer = null;
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
    window.clearTimeout(session.joinTimer);
    session.joinTimer = null;
  }

  // The join at connect was answered (or refused, or went unanswered too long): the composer is ready.
  function joinAnswered() {
    window.clearTimeout(session.joinTimer);
    session.joinTimer = null;
    if (!session.joining) {
      return;
    }
    session.joining = false;
    showState("connected", "Connected");
    elements.message.focus();
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
    if (!frame || typeof frame !== "object") {
      return;
    }
    const handlers = {
      message: onMessage,
      whisper: onWhisper,
      joined: onJoined,
      left: onLeft,
      presence: onPresence,
      "presence-off": onPresenceOff,
      members: onMembers,
      history: onHistory,
      error: onError,
    };
    if (typeof frame.type === "string") {
      // Forward compatible: a frame type this page does not know is ignored.
      (Object.hasOwn(handlers, frame.type) ? handlers[frame.type] : () => {})(frame);
    } else if (frame.message === GATEWAY_FAILURE) {
      refused(undefined, `API Gateway: ${GATEWAY_FAILURE}`, "The server failed to handle the message.",
        frame.requestId, "");
    }
  }

  function firstSeen(frame) {
    if (typeof frame.id !== "string") {
      return true;
    }
    if (session.seen.has(frame.id)) {
      return false; // a post retried after it was delivered, or a history entry already shown
    }
    session.seen.add(frame.id);
    return true;
  }

  function onMessage(frame) {
    if (typeof frame.message !== "string" || !firstSeen(frame)) {
      return;
    }
    if (isMine(frame)) {
      settle("message", `${roomOf(frame)}:${frame.message}`);
    }
    addMessage(frame);
  }

  function onWhisper(frame) {
    if (typeof frame.message !== "string" || !firstSeen(frame)) {
      return;
    }
    if (isMine(frame)) {
      settle("whisper", frame.message);
    }
    addMessage(frame, { whisper: true });
  }

  function onJoined(frame) {
    const quiet = settle("join", frame.room)?.quiet;
    if (typeof frame.connectionId === "string" && frame.connectionId) {
      session.myConnectionId = frame.connectionId;
    }
    session.rooms.set(frame.room, memberMap(frame.members));
    markList(frame);
    if (frame.presence === false) {
      session.notLive.set(frame.room, undefined); // a server without the field still announces every join
    } else {
      session.notLive.delete(frame.room);
    }
    if (quiet) {
      joinAnswered();
    } else {
      addNotice("presence", `You joined #${frame.room}`, "", "", "", false, frame.room);
    }
    for (const message of Array.isArray(frame.history) ? frame.history : []) {
      onMessage(message);
    }
    switchTo(frame.room);
  }

  function onLeft(frame) {
    settle("leave", frame.room);
    session.rooms.delete(frame.room);
    session.notLive.delete(frame.room);
    session.partial.delete(frame.room);
    addNotice("presence", `You left #${frame.room}`);
    switchTo(session.current === frame.room ? (session.rooms.keys().next().value || LOBBY) : session.current);
  }

  function onPresence(frame) {
    const members = session.rooms.get(frame.room);
    if (!members) {
      return;
    }
    if (frame.event === "joined") {
      members.set(frame.connectionId, frame.name);
    } else {
      members.delete(frame.connectionId);
    }
    addNotice("presence", `${frame.name} ${frame.event === "joined" ? "joined" : "left"} #${frame.room}`, "", "",
      "", false, frame.room);
    renderRooms();
  }

  // The room has grown too big for presence: joins and leaves stop coming, so the list becomes a snapshot.
  function onPresenceOff(frame) {
    if (!session.rooms.has(frame.room)) {
      return;
    }
    const cap = Number.isInteger(frame.maxMembers) ? frame.maxMembers : undefined;
    const wasLive = !session.notLive.has(frame.room);
    session.notLive.set(frame.room, cap);
    if (wasLive) { // a room going back and forth across the cap says so once
      addNotice("presence", `#${frame.room} ${cap === undefined ? "is big" : `has over ${cap} members`} now: ` +
        "joins and leaves are no longer shown", "", "", "", false, frame.room);
    }
    renderRooms();
  }

  function onMembers(frame) {
    settle("who", frame.room);
    if (session.rooms.has(frame.room)) {
      session.rooms.set(frame.room, memberMap(frame.members));
      markList(frame);
      if (frame.presence === true) { // a fresh list in a room small enough again: presence keeps it current
        session.notLive.delete(frame.room);
      } else if (frame.presence === false && !session.notLive.has(frame.room)) {
        session.notLive.set(frame.room, undefined);
      }
      renderRooms();
    }
  }

  function markList(frame) {
    if (frame.truncated === true) {
      session.partial.add(frame.room);
    } else {
      session.partial.delete(frame.room);
    }
  }

  function onHistory(frame) {
    settle("history", frame.room);
    for (const message of Array.isArray(frame.messages) ? frame.messages : []) {
      onMessage(message);
    }
  }

  function onError(frame) {
    const action = frame.expected && typeof frame.expected.action === "string" ? frame.expected.action : undefined;
    refused(action, "The server refused the message", frame.error || "No reason given.", frame.requestId,
      expectedOf(frame));
  }

  // A refusal answers the oldest unanswered request of the action it names (`expected.action`), else the oldest.
  // The page's own join at connect is not the user's message: its refusal is only a warning.
  function refused(action, title, detail, requestId, hint) {
    const kind = action === "sendmessage" ? "message" : action;
    const index = kind ? session.pending.findIndex((entry) => entry.kind === kind) : 0;
    const answered = index === -1 ? undefined : session.pending.splice(index, 1)[0];
    if (answered && answered.quiet) {
      addNotice("warning", `Could not join #${answered.key}`, detail, requestId, hint);
      joinAnswered();
      return;
    }
    addNotice("error", title, detail, requestId, hint, keepRefused(answered));
  }

  function memberMap(members) {
    const map = new Map();
    for (const member of Array.isArray(members) ? members : []) {
      if (member && typeof member.connectionId === "string") {
        map.set(member.connectionId, typeof member.name === "string" ? member.name : member.connectionId);
      }
    }
    return map;
  }

  function roomOf(frame) {
    return typeof frame.room === "string" ? frame.room : LOBBY;
  }

  function expectedOf(frame) {
    const expected = frame.expected && typeof frame.expected.message === "string" ? frame.expected.message : "";
    return expected ? `Expected: ${expected}` : "";
  }

  // The answer to a request: forget it. Returns the request, or undefined when none was waiting.
  function settle(kind, key) {
    const index = session.pending.findIndex((entry) => entry.kind === kind && entry.key === key);
    return index === -1 ? undefined : session.pending.splice(index, 1)[0];
  }

  // Give a refused request's text back unless the user is already typing something else, so nothing is lost.
  function keepRefused(refused) {
    if (refused === undefined || refused.text === undefined || elements.message.value) {
      return false;
    }
    elements.message.value = refused.text;
    fitComposer();
    return true;
  }

  // "Yours" is the connection id the server gave this connection in `joined`, and nothing else.
  function isMine(frame) {
    return Boolean(session.myConnectionId) && frame.connectionId === session.myConnectionId;
  }

  // --- rooms ------------------------------------------------------------------------------------------------------

  function switchTo(room) {
    session.current = room;
    for (const item of elements.messages.children) {
      item.hidden = Boolean(item.dataset.room) && item.dataset.room !== room;
    }
    elements.message.placeholder = session.socket ? `Message #${room}` : "Connect to start chatting";
    renderRooms();
  }

  function renderRooms() {
    elements.rooms.replaceChildren();
    for (const room of session.rooms.keys()) {
      const button = element("button", "", `#${room}`);
      button.type = "button";
      button.dataset.room = room;
      button.setAttribute("aria-current", room === session.current ? "true" : "false");
      button.addEventListener("click", () => switchTo(room));
      const item = element("li");
      item.append(button);
      elements.rooms.append(item);
    }
    elements.membersRoom.textContent = session.rooms.has(session.current) ? `of #${session.current}` : "";
    elements.members.replaceChildren();
    const members = session.rooms.get(session.current) || new Map();
    for (const [connectionId, name] of members) {
      const mine = connectionId === session.myConnectionId;
      const button = element("button", "", mine ? `${name} (you)` : name);
      button.type = "button";
      button.title = `Whisper to ${name}`;
      button.addEventListener("click", () => {
        elements.message.value = `/msg ${name} `;
        elements.message.focus();
      });
      const item = element("li");
      item.append(button);
      elements.members.append(item);
    }
    renderMembersNote();
  }

  // A member list that presence does not keep current says so, and offers `who` to refresh it.
  function renderMembersNote() {
    const room = session.current;
    const live = session.rooms.has(room) && !session.notLive.has(room);
    const partial = session.partial.has(room);
    elements.membersNote.hidden = live && !partial;
    if (elements.membersNote.hidden) {
      return;
    }
    const sentences = [];
    if (!live && session.rooms.has(room)) {
      const cap = session.notLive.get(room);
      sentences.push(`Not live: #${room} is too big for join and leave notices` +
        `${cap === undefined ? "" : ` (over ${cap} members)`}.`);
    }
    if (partial) {
      sentences.push("Only the first members are listed.");
    }
    elements.membersNoteText.textContent = sentences.join(" ");
    elements.membersRefresh.hidden = !session.rooms.has(room);
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

  function addMessage(frame, { whisper = false } = {}) {
    const mine = isMine(frame);
    const from = typeof frame.from === "string" && frame.from ? frame.from : frame.connectionId || "unknown";
    const sender = whisper ? `${from} → ${frame.to}` : from;
    const item = element("li", `message ${mine ? "mine" : "theirs"}${whisper ? " whisper" : ""}`);
    if (typeof frame.id === "string") {
      item.dataset.id = frame.id;
    }
    if (!whisper) {
      item.dataset.room = roomOf(frame);
      item.hidden = item.dataset.room !== session.current;
    }
    const avatar = element("span", "avatar", Array.from(sender)[0].toUpperCase());
    avatar.setAttribute("aria-hidden", "true");
    avatar.style.backgroundColor = colourOf(sender);
    const bubble = element("div", "bubble");
    const meta = element("div", "meta");
    const label = frame.published ? `${sender} (bot)` : sender;
    meta.append(element("span", "sender", mine && !whisper ? `${label} (you)` : label));
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

  function addNotice(kind, title, detail, requestId, hint, kept, room) {
    const item = element("li", `notice ${kind}`);
    if (room) {
      item.dataset.room = room;
      item.hidden = room !== session.current;
    }
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

  // The request a composed text makes: a message to the current room, or a command.
  function requestFor(text) {
    const command = /^\/(\S+)\s*([\s\S]*)$/.exec(text.trim());
    if (!command) {
      return { body: { action: "sendmessage", room: session.current, message: text } };
    }
    const [, verb, rest] = command;
    if (verb === "msg") {
      const whisper = /^(\S+)\s+([\s\S]+)$/.exec(rest);
      return whisper ? { body: { action: "whisper", to: whisper[1], message: whisper[2] } } :
        { problem: "Write /msg NAME text." };
    }
    if (["join", "leave", "who", "history"].includes(verb)) {
      const room = rest.trim() || (verb === "join" ? "" : session.current);
      return ROOM_NAME.test(room) ? { body: { action: verb, room } } :
        { problem: "Room names are 1 to 64 characters of A-Z a-z 0-9 . _ -" };
    }
    return { problem: `Unknown command /${verb}: try /join, /leave, /who, /history or /msg NAME text.` };
  }

  function request(body, { text, quiet = false } = {}) {
    const socket = session.socket;
    const frame = JSON.stringify(body);
    socket.send(frame);
    const kinds = { sendmessage: "message" };
    const kind = kinds[body.action] || body.action;
    const key = body.action === "sendmessage" ? `${body.room}:${body.message}` :
      body.action === "whisper" ? body.message : body.room;
    session.pending.push({ kind, key, text, quiet });
  }

  function send() {
    const text = elements.message.value;
    const socket = session.socket;
    if (!text.trim() || !socket || socket.readyState !== WebSocket.OPEN) {
      return;
    }
    const { body, problem } = requestFor(text);
    if (problem) {
      addNotice("error", "Not sent", problem);
      return;
    }
    const size = new TextEncoder().encode(JSON.stringify(body)).length;
    if (size > FRAME_LIMIT_BYTES) {
      // API Gateway would close the whole connection (1009) rather than answer; keep the text for editing.
      addNotice("error", "Not sent", `This message makes a ${size}-byte frame; API Gateway closes the connection ` +
        `on frames over ${FRAME_LIMIT_BYTES} bytes. Shorten it and send again.`);
      return;
    }
    request(body, { text });
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

  elements.join.addEventListener("submit", (event) => {
    event.preventDefault();
    const room = elements.roomName.value.trim();
    if (!ROOM_NAME.test(room) || !session.socket) {
      addNotice("error", "Not joined", "Room names are 1 to 64 characters of A-Z a-z 0-9 . _ -");
      return;
    }
    request({ action: "join", room });
    elements.roomName.value = "";
  });

  elements.membersRefresh.addEventListener("click", () => {
    if (session.socket && session.socket.readyState === WebSocket.OPEN && session.rooms.has(session.current)) {
      request({ action: "who", room: session.current });
    }
  });

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

// The rapidws demo chat: one WebSocket to /ws, JSON messages (see rapidws/app/chat.py).
// It reconnects after the server restarts, and joins again with the same name and room.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { ws: null, joined: false, delay: 500, name: "", room: "" };

function url(path) {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
}

function note(text) {
  const li = document.createElement("li");
  li.className = "note";
  li.textContent = text;
  append(li);
}

function append(li) {
  const list = $("messages");
  const atEnd = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  list.appendChild(li);
  while (list.children.length > 500) list.removeChild(list.firstChild);
  if (atEnd) list.scrollTop = list.scrollHeight;
}

function said(message) {
  const li = document.createElement("li");
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = message.name;
  const text = document.createElement("span");
  text.textContent = message.text;
  const when = document.createElement("span");
  when.className = "when";
  when.textContent = new Date(message.time * 1000).toLocaleTimeString();
  li.append(who, text, when);
  append(li);
}

function online(names) {
  const list = $("online");
  list.replaceChildren(...names.map((name) => {
    const li = document.createElement("li");
    li.textContent = name;
    return li;
  }));
}

function setJoined(joined) {
  state.joined = joined;
  $("text").disabled = !joined;
  $("send").disabled = !joined;
}

function connect() {
  const ws = new WebSocket(url("/ws"));
  state.ws = ws;
  $("status").textContent = "connecting…";
  ws.onopen = () => {
    state.delay = 500;
    $("status").textContent = "connected";
    if (state.name && state.room) join();
  };
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "joined") {
      setJoined(true);
      $("room-name").textContent = message.room;
      note(`You joined ${message.room} as ${message.name}.`);
      $("text").focus();
    } else if (message.type === "online") {
      online(message.names);
    } else if (message.type === "said") {
      said(message);
    }
  };
  ws.onclose = (event) => {
    setJoined(false);
    state.ws = null;
    const why = event.reason ? ` (${event.reason})` : "";
    $("status").textContent = `disconnected${why}; retrying…`;
    setTimeout(connect, state.delay);
    state.delay = Math.min(state.delay * 2, 8000);
  };
}

function join() {
  state.ws.send(JSON.stringify({ type: "join", name: state.name, room: state.room }));
}

$("join").addEventListener("submit", (event) => {
  event.preventDefault();
  state.name = $("name").value.trim();
  state.room = $("room").value.trim();
  if (!state.name || !state.room) return;
  localStorage.setItem("rapidws-chat", JSON.stringify({ name: state.name, room: state.room }));
  if (state.joined && state.ws) {
    state.ws.close(1000, "changing room");  // reconnects and joins the new room
  } else if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    join();
  }
});

$("say").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value;
  if (!text.trim() || !state.joined) return;
  state.ws.send(JSON.stringify({ type: "say", text }));
  $("text").value = "";
});

const saved = JSON.parse(localStorage.getItem("rapidws-chat") || "null");
if (saved) {  // back again: join where we were
  $("name").value = state.name = saved.name;
  $("room").value = state.room = saved.room;
}
connect();

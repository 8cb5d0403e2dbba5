// The call page: join a room, send camera and microphone, see and hear every other participant in
// the language picked — the LiveDub bot's dubbed tracks ("<identity>:<lang>:video"/"audio") where
// it publishes them, the participant's own tracks otherwise (the fallback).
// Plain JS over the LiveKit client's UMD build; window.livedub is the page's state, for tests.
"use strict";

const { Room, RoomEvent, Track } = LivekitClient;
const params = new URLSearchParams(location.search);
const form = document.getElementById("join");
const tiles = document.getElementById("tiles");
const status = document.getElementById("status");
const state = (window.livedub = { joined: false, tiles: {}, error: null });
const AGENT = 4; // ParticipantInfo.Kind.AGENT: the bot, never shown as a person

const isBot = (p) => p.isAgent ?? p.kind === AGENT;

function dubName(identity, lang, kind) { return `${identity}:${lang}:${kind}`; }

async function languages() {
  const select = form.elements.lang;
  const names = new Intl.DisplayNames(["en"], { type: "language" });
  for (const code of await (await fetch("languages")).json()) select.add(new Option(names.of(code), code));
}

function tile(identity) {
  let t = state.tiles[identity];
  if (!t) {
    const fig = document.createElement("figure");
    const video = Object.assign(document.createElement("video"), { autoplay: true, playsInline: true, muted: true });
    const audio = Object.assign(document.createElement("audio"), { autoplay: true });
    const caption = document.createElement("figcaption");
    fig.append(video, audio, caption);
    tiles.append(fig);
    t = state.tiles[identity] = { fig, video, audio, caption, source: "none", track: null, frames: 0 };
    const count = () => { t.frames += 1; video.requestVideoFrameCallback(count); };
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(count);
  }
  return t;
}

// What each person is shown from: the dub in `lang` if the bot publishes it, else their own tracks.
function render(room, lang) {
  const people = [...room.remoteParticipants.values()].filter((p) => !isBot(p));
  const bots = [...room.remoteParticipants.values()].filter(isBot);
  for (const p of people) {
    const t = tile(p.identity);
    let video = null, audio = null, source = "original";
    for (const bot of bots) {
      for (const pub of bot.trackPublications.values()) {
        if (lang && pub.trackName === dubName(p.identity, lang, "video")) video = pub;
        if (lang && pub.trackName === dubName(p.identity, lang, "audio")) audio = pub;
      }
    }
    if (video && audio) source = "dub";
    else {
      video = p.getTrackPublication(Track.Source.Camera);
      audio = p.getTrackPublication(Track.Source.Microphone);
    }
    const wanted = new Set([video, audio].filter(Boolean));
    for (const other of [p, ...bots]) {
      for (const pub of other.trackPublications.values()) {
        const mine = other === p || pub.trackName.startsWith(`${p.identity}:`);
        if (mine) pub.setSubscribed(wanted.has(pub));
      }
    }
    if (video && video.track) video.track.attach(t.video);
    if (audio && audio.track) audio.track.attach(t.audio);
    t.source = video && video.track ? source : "none";
    const label = lang ? form.elements.lang.selectedOptions[0].text : "original";
    t.caption.className = source;
    t.caption.textContent = `${p.name || p.identity} — ${source === "dub" ? `${label} (dubbed)` : "original"}`;
  }
  for (const [identity, t] of Object.entries(state.tiles)) {
    if (!people.some((p) => p.identity === identity)) { t.fig.remove(); delete state.tiles[identity]; }
  }
}

async function join(room_, identity, lang, publish) {
  status.textContent = "joining…";
  const resp = await fetch(`token?room=${encodeURIComponent(room_)}&identity=${encodeURIComponent(identity)}`);
  if (!resp.ok) throw new Error(`token: ${resp.status} ${await resp.text()}`);
  const { url, token } = await resp.json();
  const room = new Room({ adaptiveStream: false, dynacast: false });
  const again = () => render(room, lang);
  for (const ev of [RoomEvent.ParticipantConnected, RoomEvent.ParticipantDisconnected, RoomEvent.TrackPublished,
                    RoomEvent.TrackUnpublished, RoomEvent.TrackSubscribed, RoomEvent.TrackUnsubscribed]) {
    room.on(ev, again);
  }
  room.on(RoomEvent.Disconnected, () => { status.textContent = "left the call"; state.joined = false; });
  await room.connect(url, token, { autoSubscribe: false });
  if (publish) await room.localParticipant.enableCameraAndMicrophone();
  state.joined = true;
  status.textContent = `in room ${room_} as ${identity}${lang ? `, hearing ${lang}` : ""}`;
  again();
  window.livedubRoom = room;
}

form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = form.elements;
  join(f.room.value, f.identity.value, f.lang.value, f.publish.checked).catch((e) => {
    state.error = String(e); status.textContent = `error: ${e}`;
  });
});

languages().then(() => {
  const f = form.elements;
  for (const k of ["room", "identity", "lang"]) if (params.has(k)) f[k].value = params.get(k);
  if (params.has("publish")) f.publish.checked = params.get("publish") !== "0";
  if (!f.identity.value) f.identity.value = `guest-${Math.random().toString(36).slice(2, 6)}`;
  if (params.get("join") === "1") form.requestSubmit();
});

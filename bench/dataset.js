// The notes every engine writes: same shapes and sizes for all, from a seeded generator,
// so runs are comparable. A note: { title, body (~200 chars), tags, done, editedAt }.

export const NOTE_COUNT = 10_000;
export const SINGLE_WRITES = 200;
/** editedAt steps one second per note, so a range of 100 s holds exactly 100 notes. */
export const EDITED_BASE = Date.UTC(2025, 0, 1);
export const EDITED_STEP = 1000;

const WORDS = (
  "tide harbour ferry morning draft meeting budget garden sketch coffee train river " +
  "lighthouse invoice kitchen recipe plan review chapter letter market bicycle museum " +
  "ticket window summer winter notes idea travel weekend project client design paint " +
  "music reading errand dentist birthday gift postcard shelf lamp journal"
).split(" ");
const TAGS = ["work", "home", "ideas", "todo", "travel", "reading", "family", "later"];

function generator(seed) {
  // mulberry32: tiny, deterministic, good enough to pick words.
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function words(random, count) {
  const out = [];
  for (let i = 0; i < count; i++) out.push(WORDS[Math.floor(random() * WORDS.length)]);
  return out.join(" ");
}

function body(random) {
  let text = "";
  while (text.length < 190) text += (text ? " " : "") + capitalise(words(random, 6 + Math.floor(random() * 6))) + ".";
  return text.slice(0, 200 + Math.floor(random() * 20));
}

function capitalise(s) {
  return s[0].toUpperCase() + s.slice(1);
}

function uuid(random) {
  const hex = () => Math.floor(random() * 16).toString(16);
  const part = (n) => Array.from({ length: n }, hex).join("");
  return `${part(8)}-${part(4)}-4${part(3)}-a${part(3)}-${part(12)}`;
}

/**
 * `count` notes as `{ id, data }`, numbered from `first` (their editedAt follows the number).
 * The same seed gives the same notes.
 */
export function makeNotes(count, { seed = 1, first = 0 } = {}) {
  const random = generator(seed);
  const notes = new Array(count);
  for (let i = 0; i < count; i++) {
    const n = first + i;
    notes[i] = {
      id: uuid(random),
      data: {
        title: capitalise(words(random, 2 + Math.floor(random() * 4))),
        body: body(random),
        tags: TAGS.filter(() => random() < 0.25),
        done: false,
        editedAt: EDITED_BASE + n * EDITED_STEP,
      },
    };
  }
  return notes;
}

/** A deterministic sample of `count` ids, drawn with repeats allowed from `notes`. */
export function sampleIds(notes, count, seed) {
  const random = generator(seed);
  return Array.from({ length: count }, () => notes[Math.floor(random() * notes.length)].id);
}

/** `count` editedAt windows [lo, hi) each holding `size` of the bulk-written notes. */
export function rangeWindows(count, size, seed) {
  const random = generator(seed);
  return Array.from({ length: count }, () => {
    const start = Math.floor(random() * (NOTE_COUNT - size));
    const lo = EDITED_BASE + start * EDITED_STEP;
    return [lo, lo + size * EDITED_STEP];
  });
}

/** The protocol's largest push. */
const MAX_PUSH = 1000;

/** `notes` as the puts of pushes of `MAX_PUSH` mutations, new to the server, numbered from 1. */
export function putBatches(notes) {
  const batches = [];
  for (let first = 0; first < notes.length; first += MAX_PUSH) {
    batches.push(
      notes.slice(first, first + MAX_PUSH).map(({ id, data }, i) => ({
        mutationId: first + i + 1,
        collection: "notes",
        id,
        op: "put",
        data,
        baseVersion: 0,
      })),
    );
  }
  return batches;
}

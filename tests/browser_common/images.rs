//! The database's image: every entity's doc as stored at one commit mark,
//! saved in parts once a context has been quiet for a while (or closes),
//! which an open reads in a few requests instead of every record while no
//! commit of entities was made since.

use tideway::core::Store;
use tideway::js::{Collection, Tideway};
use tideway::store::indexeddb::{IdbStore, ImageTiming};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::{js, notes_schema, open, put, settle, title_of};

#[wasm_bindgen(inline_js = r#"
function withMeta(name, mode, work) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(name);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const tx = db.transaction("meta", mode);
      let result;
      work(tx.objectStore("meta"), (value) => { result = value; });
      tx.oncomplete = () => { db.close(); resolve(result); };
      tx.onabort = () => { db.close(); reject(tx.error); };
    };
  });
}

const PARTS = () => IDBKeyRange.bound(["image"], ["image", []]);

/**
 * `[the last commit mark, the mark the image was saved at, the ids of the
 * image's first store, how many parts hold them, the names of the image's
 * parts, how many parts are stored in all]`.
 */
export function imageState(name) {
  return withMeta(name, "readonly", (meta, done) => {
    const commit = meta.get("commit");
    const imageMark = meta.get("imageMark");
    const image = meta.get("image");
    const keys = meta.getAllKeys(PARTS());
    const parts = meta.getAll(PARTS());
    parts.onsuccess = () => {
      const stored = new Map(keys.result.map((key, i) => [key[1], parts.result[i]]));
      const names = image.result?.parts ?? [];
      const first = names.map((name) => stored.get(name)).filter((part) => part?.store === image.result.stores[0]);
      done([commit.result ?? null, imageMark.result ?? null, first.flatMap((part) => part.ids), first.length, names, keys.result.length]);
    };
  });
}

/** Sets the image's doc of `id` to `change(doc)`, its mark left as it is. */
function changeImage(name, id, change) {
  return withMeta(name, "readwrite", (meta, done) => {
    const cursor = meta.openCursor(PARTS());
    cursor.onsuccess = () => {
      const part = cursor.result.value;
      const at = part.ids.indexOf(id);
      if (at < 0) return cursor.result.continue();
      part.docs[at] = change(part.docs[at]);
      cursor.result.update(part);
      done(true);
    };
  });
}

/** Replaces `from` with `to` in the image's doc of `id`, its mark left as it is. */
export function editImage(name, id, from, to) {
  return changeImage(name, id, (doc) => doc.replace(from, to));
}

/** Makes the image's doc of `id` something other than a doc, its mark left as it is. */
export function breakImage(name, id) {
  return changeImage(name, id, () => 42);
}

/**
 * Makes the page hidden (or visible again) as far as its scripts can tell, and
 * tells them so; false where there is no document.
 */
export function setHidden(hidden) {
  if (typeof document === "undefined") return false;
  if (hidden) Object.defineProperty(document, "visibilityState", { value: "hidden", configurable: true });
  else delete document.visibilityState;
  document.dispatchEvent(new Event("visibilitychange"));
  return true;
}

export function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }
"#)]
extern "C" {
    #[wasm_bindgen(js_name = setHidden)]
    fn set_hidden(hidden: bool) -> bool;
    fn sleep(ms: u32) -> js_sys::Promise;
    #[wasm_bindgen(js_name = imageState)]
    fn image_state(name: &str) -> js_sys::Promise;
    #[wasm_bindgen(js_name = editImage)]
    fn edit_image(name: &str, id: &str, from: &str, to: &str) -> js_sys::Promise;
    #[wasm_bindgen(js_name = breakImage)]
    fn break_image(name: &str, id: &str) -> js_sys::Promise;
}

/// The last commit mark, the image's mark and the ids it holds of `notes`.
async fn image_of(name: &str) -> (Option<String>, Option<String>, Vec<String>) {
    let (commit, image_mark, ids, _) = image_parts_of(name).await;
    (commit, image_mark, ids)
}

/// As `image_of`, with how many parts hold the ids.
async fn image_parts_of(name: &str) -> (Option<String>, Option<String>, Vec<String>, u32) {
    let state = image_state_of(name).await;
    let ids = strings(&state.get(2));
    (state.get(0).as_string(), state.get(1).as_string(), ids, state.get(3).as_f64().unwrap_or_default() as u32)
}

/// The names of the image's parts, in order, and how many parts are stored in all.
async fn part_names_of(name: &str) -> (Vec<String>, u32) {
    let state = image_state_of(name).await;
    (strings(&state.get(4)), state.get(5).as_f64().unwrap_or_default() as u32)
}

async fn image_state_of(name: &str) -> js_sys::Array {
    js_sys::Array::from(&JsFuture::from(image_state(name)).await.expect("read the meta store"))
}

fn strings(array: &JsValue) -> Vec<String> {
    js_sys::Array::from(array).iter().filter_map(|value| value.as_string()).collect()
}

/// How many of `after` are not among `before`.
fn stored_anew(before: &[String], after: &[String]) -> usize {
    after.iter().filter(|name| !before.contains(name)).count()
}

/// Makes images be saved in parts of about `part_length` code units of docs;
/// returns the timing before.
fn set_part_length(part_length: f64) -> ImageTiming {
    let before = IdbStore::set_image_timing(ImageTiming { delay_ms: 0, slice: 0.0, part_length });
    IdbStore::set_image_timing(ImageTiming { part_length, ..before });
    before
}

/// Opens the database and loads it, as a `Tideway` handle does.
async fn open_loaded(name: &str) -> IdbStore {
    let store = IdbStore::open(name, notes_schema()).await.expect("open");
    store.load().await.expect("load");
    store
}

/// The title of note `id` as an open loads it.
async fn loaded_title(store: &IdbStore, id: &str) -> Option<String> {
    let loaded = store.load().await.expect("load");
    title_of(loaded.collections[0].1.iter().find(|entity| entity.id == id).cloned())
}

/// Closing saves the image at the last mark; the next open reads the notes
/// from it (a doc changed in the image alone shows), each once, in id order.
/// An image that holds something other than docs is not read.
pub async fn an_open_reads_the_image_the_last_commit_left() {
    let name = format!("image-{}", uuid::Uuid::new_v4());
    let store = open_loaded(&name).await;
    // Written in an order other than the ids'.
    let ids: Vec<String> = (0..300).rev().map(|i| format!("n{i:03}")).collect();
    store.apply(&ids.iter().map(|id| put(id, &format!("note {id}"))).collect::<Vec<_>>()).await.expect("write");
    // In parts of about 30 notes.
    let timing = set_part_length(3000.0);
    store.close();
    store.closed().await;
    IdbStore::set_image_timing(timing);

    let (commit, image_mark, image_ids, parts) = image_parts_of(&name).await;
    assert!(commit.is_some() && image_mark == commit, "the image is at the last mark: {image_mark:?}, {commit:?}");
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(image_ids, sorted, "every note once, in id order");
    assert!(parts > 5, "in parts: {parts}");

    JsFuture::from(edit_image(&name, "n007", "note n007", "from the image")).await.expect("edit the image");
    let again = IdbStore::open(&name, notes_schema()).await.expect("reopen");
    let loaded = again.load().await.expect("load");
    let loaded_ids: Vec<String> = loaded.collections[0].1.iter().map(|entity| entity.id.clone()).collect();
    assert_eq!(loaded_ids, sorted, "every note once, in id order");
    assert_eq!(loaded_title(&again, "n007").await.as_deref(), Some("from the image"), "the open read the image");
    assert_eq!(loaded_title(&again, "n299").await.as_deref(), Some("note n299"));
    again.close();

    // An image that holds something other than docs is not read: the records are.
    JsFuture::from(break_image(&name, "n007")).await.expect("break the image");
    let (commit, image_mark, _) = image_of(&name).await;
    assert_eq!(image_mark, commit, "still at the last mark");
    let last = IdbStore::open(&name, notes_schema()).await.expect("reopen");
    assert_eq!(loaded_title(&last, "n007").await.as_deref(), Some("note n007"), "read from the records");
    assert_eq!(last.load().await.expect("load").collections[0].1.len(), 300);
    // Having read the records, it saves an image at close, in one part: none
    // of the larger image's parts is left.
    last.close();
    last.closed().await;
    let (commit, image_mark, image_ids, parts) = image_parts_of(&name).await;
    assert!(commit.is_some() && image_mark == commit);
    assert_eq!((image_ids, parts), (sorted, 1));
    IdbStore::delete(&name).await.expect("delete the database");
}

/// An image left before a commit is not read, and a handle whose docs are
/// behind the last commit, which it did not hear of, saves none; a handle
/// that read every record saves one that the next open reads.
pub async fn an_image_older_than_the_last_commit_is_not_read() {
    let name = format!("image-stale-{}", uuid::Uuid::new_v4());
    let first = open_loaded(&name).await;
    first.apply(&(0..50).map(|i| put(&format!("n{i:02}"), "first")).collect::<Vec<_>>()).await.expect("write");
    // Gone without closing, so without saving an image.
    first.lose_connection();

    // Both read every record: both then have an image to save.
    let behind = open_loaded(&name).await;
    let elsewhere = open_loaded(&name).await;
    elsewhere.apply(&[put("n07", "written elsewhere")]).await.expect("write");
    // Gone without closing, so without saving its image; `behind` does not hear of its commit.
    elsewhere.lose_connection();
    IdbStore::save_images_now().await;
    let (commit, image_mark, _) = image_of(&name).await;
    assert!(commit.is_some() && image_mark.is_none(), "the handle whose docs are behind saved no image: {image_mark:?}");

    behind.apply(&[put("n08", "written behind")]).await.expect("write");
    behind.close();
    let (commit, image_mark, _) = image_of(&name).await;
    assert_ne!(image_mark, commit, "the image is older than the last commit");

    let reader = open_loaded(&name).await;
    assert_eq!(loaded_title(&reader, "n07").await.as_deref(), Some("written elsewhere"));
    assert_eq!(loaded_title(&reader, "n08").await.as_deref(), Some("written behind"));
    assert_eq!(loaded_title(&reader, "n09").await.as_deref(), Some("first"));
    // Having read every record, it saves the image.
    IdbStore::save_images_now().await;
    let (commit, image_mark, ids) = image_of(&name).await;
    assert_eq!(image_mark, commit, "saved after a full read");
    assert_eq!(ids.len(), 50);
    reader.close();

    JsFuture::from(edit_image(&name, "n09", "first", "from the image")).await.expect("edit the image");
    let last = IdbStore::open(&name, notes_schema()).await.expect("open");
    assert_eq!(loaded_title(&last, "n09").await.as_deref(), Some("from the image"), "the open read the image");
    assert_eq!(loaded_title(&last, "n07").await.as_deref(), Some("written elsewhere"));
    assert_eq!(loaded_title(&last, "n08").await.as_deref(), Some("written behind"));
    last.close();
    IdbStore::delete(&name).await.expect("delete the database");
}

/// Saved by itself, the image's docs are taken a slice of entities per task:
/// a write made meanwhile goes in between (the save stops), and the image
/// saved in the end holds it.
pub async fn an_image_saved_by_itself_takes_the_docs_a_slice_at_a_time() {
    // Two entities per task, every doc in one part.
    check_a_write_goes_in_while_the_image_is_saved("image-slices", 2.0, 1e9, 10_000, 1).await;
}

/// Saved by itself, the image is stored a part at a time, each in a
/// transaction of its own: a write made meanwhile goes in between, and the
/// image saved in the end holds it.
pub async fn an_image_saved_part_by_part_lets_writes_in_between() {
    // The docs taken at once, a part for each note.
    check_a_write_goes_in_while_the_image_is_saved("image-parts", 1e9, 10.0, 5000, 201).await;
}

/// Writes a note while the image of 200 notes is saved by itself (see
/// [`saving`]), then checks that the write did not wait for the image, and
/// that the image saved in the end (within `within_ms`), in `parts` parts,
/// holds it.
async fn check_a_write_goes_in_while_the_image_is_saved(test: &str, slice: f64, part_length: f64, within_ms: u32, parts: u32) {
    let name = format!("{test}-{}", uuid::Uuid::new_v4());
    let (db, notes, defaults) = saving(&name, slice, part_length).await;
    settle(notes.put(js(r#"{"title": "written meanwhile"}"#), js(r#"{"id": "n999"}"#))).await.expect("put");
    // Had the write waited for the image, it would find it saved.
    let (_, image_mark, _) = image_of(&name).await;
    let saved = image_saved_within(&name, within_ms).await;
    IdbStore::set_image_timing(defaults);
    assert_eq!(image_mark, None, "the write went in while the image was being saved");
    assert!(saved, "saved at the last mark");
    let (_, _, ids, stored_parts) = image_parts_of(&name).await;
    assert_eq!((ids.len(), stored_parts), (201, parts));
    assert_eq!(ids.last().map(String::as_str), Some("n999"));
    settle(db.close()).await.expect("close");
    Tideway::delete_database(name.into()).await.expect("delete the database");
}

/// A close while the image is saved part by part saves it at once, in one
/// transaction that the closing connection still finishes.
pub async fn a_close_takes_over_an_image_saved_part_by_part() {
    let name = format!("image-close-{}", uuid::Uuid::new_v4());
    // The docs taken at once, a part for each note.
    let (db, _, defaults) = saving(&name, 1e9, 10.0).await;
    let (_, image_mark, _) = image_of(&name).await;
    settle(db.close()).await.expect("close");
    IdbStore::set_image_timing(defaults);
    assert_eq!(image_mark, None, "closed while the image was being saved");
    let (commit, image_mark, ids, parts) = image_parts_of(&name).await;
    assert!(commit.is_some() && image_mark == commit, "saved at close");
    assert_eq!((ids.len(), parts), (200, 200));
    Tideway::delete_database(name.into()).await.expect("delete the database");
}

/// A save stores only the parts whose docs changed since the image the handle
/// saved or read last, and deletes the parts they replace: a changed note
/// stores the part it is in, a new one the part it falls in.
pub async fn a_save_stores_only_the_parts_whose_docs_changed() {
    let name = format!("image-kept-{}", uuid::Uuid::new_v4());
    let store = open_loaded(&name).await;
    let ids: Vec<String> = (0..300).map(|i| format!("n{i:03}")).collect();
    store.apply(&ids.iter().map(|id| put(id, &format!("note {id}"))).collect::<Vec<_>>()).await.expect("write");
    let timing = set_part_length(3000.0);
    IdbStore::save_images_now().await;
    let (first, stored) = part_names_of(&name).await;
    assert!(first.len() > 5 && stored as usize == first.len(), "in parts: {first:?}, {stored} stored");

    store.apply(&[put("n150", "changed")]).await.expect("write");
    IdbStore::save_images_now().await;
    let (second, stored) = part_names_of(&name).await;
    assert_eq!((second.len(), stored_anew(&first, &second)), (first.len(), 1), "{first:?} then {second:?}");
    assert_eq!(stored as usize, second.len(), "the part replaced is deleted");

    store.apply(&[put("n150a", "new")]).await.expect("write");
    IdbStore::save_images_now().await;
    let (third, _) = part_names_of(&name).await;
    assert_eq!((third.len(), stored_anew(&second, &third)), (second.len(), 1), "{second:?} then {third:?}");
    store.close();
    store.closed().await;

    // A handle that read the image keeps its parts in the same way.
    let again = open_loaded(&name).await;
    again.apply(&[put("n010", "changed again")]).await.expect("write");
    again.close();
    again.closed().await;
    IdbStore::set_image_timing(timing);
    let (fourth, stored) = part_names_of(&name).await;
    assert_eq!((stored_anew(&third, &fourth), stored as usize), (1, fourth.len()), "{third:?} then {fourth:?}");

    JsFuture::from(edit_image(&name, "n007", "note n007", "from the image")).await.expect("edit the image");
    let last = open_loaded(&name).await;
    assert_eq!(loaded_title(&last, "n007").await.as_deref(), Some("from the image"), "the open read the image");
    let loaded = last.load().await.expect("load");
    let mut expected = ids.clone();
    expected.push("n150a".into());
    expected.sort();
    assert_eq!(loaded.collections[0].1.iter().map(|entity| entity.id.clone()).collect::<Vec<_>>(), expected);
    for (id, title) in [("n150", "changed"), ("n150a", "new"), ("n010", "changed again"), ("n299", "note n299")] {
        assert_eq!(loaded_title(&last, id).await.as_deref(), Some(title), "{id}");
    }
    last.close();
    IdbStore::delete(&name).await.expect("delete the database");
}

/// A handle keeps only parts still stored: where another handle's image
/// replaced the one it saved, it stores anew what it would have kept.
pub async fn a_save_stores_anew_the_parts_another_handles_image_replaced() {
    let name = format!("image-others-{}", uuid::Uuid::new_v4());
    let (db, notes) = open_with_notes(&name, 300).await;
    let timing = set_part_length(3000.0);
    IdbStore::save_images_now().await;
    let (first, _) = part_names_of(&name).await;

    // The other handle cannot read that image: it reads the records, and its
    // image replaces every part.
    JsFuture::from(break_image(&name, "n007")).await.expect("break the image");
    let other = open(&name).await;
    settle(other.collection("notes".into()).unwrap().put(js(r#"{"title": "from the other"}"#), js(r#"{"id": "n100"}"#)))
        .await
        .expect("put");
    IdbStore::save_images_now().await;
    let (second, _) = part_names_of(&name).await;
    assert_eq!(stored_anew(&first, &second), second.len(), "{first:?} then {second:?}");
    for _ in 0..100 {
        if title_in(&notes, "n100").as_deref() == Some("from the other") {
            break;
        }
        JsFuture::from(sleep(10)).await.unwrap();
    }
    assert_eq!(title_in(&notes, "n100").as_deref(), Some("from the other"), "the first handle took in the other's write");

    // The first handle's parts are gone: it stores every part anew.
    settle(notes.put(js(r#"{"title": "from the first"}"#), js(r#"{"id": "n200"}"#))).await.expect("put");
    IdbStore::save_images_now().await;
    let (commit, image_mark, _) = image_of(&name).await;
    let (third, stored) = part_names_of(&name).await;
    assert!(commit.is_some() && image_mark == commit, "saved at the last mark");
    assert_eq!((stored_anew(&second, &third), stored as usize), (third.len(), third.len()), "{second:?} then {third:?}");
    settle(other.close()).await.expect("close");
    settle(db.close()).await.expect("close");
    IdbStore::set_image_timing(timing);

    JsFuture::from(edit_image(&name, "n007", "note 7", "from the image")).await.expect("edit the image");
    let last = open_loaded(&name).await;
    for (id, title) in [("n007", "from the image"), ("n100", "from the other"), ("n200", "from the first"), ("n299", "note 299")] {
        assert_eq!(loaded_title(&last, id).await.as_deref(), Some(title), "{id}");
    }
    assert_eq!(last.load().await.expect("load").collections[0].1.len(), 300);
    last.close();
    IdbStore::delete(&name).await.expect("delete the database");
}

/// The title of note `id` in the collection's mirror.
fn title_in(notes: &Collection, id: &str) -> Option<String> {
    let record = notes.get(id.into(), JsValue::UNDEFINED).ok()?;
    let data = js_sys::Reflect::get(&record, &"data".into()).ok()?;
    js_sys::Reflect::get(&data, &"title".into()).ok()?.as_string()
}

/// Opens the database `name`, makes its image be saved 20 ms after the last
/// commit, taking the docs of `slice` entities per task, in parts of about
/// `part_length`, writes 200 notes and waits until that save has begun;
/// returns the database, its notes and the image's timing before.
async fn saving(name: &str, slice: f64, part_length: f64) -> (Tideway, Collection, ImageTiming) {
    let defaults = IdbStore::set_image_timing(ImageTiming { delay_ms: 20, slice, part_length });
    let (db, notes) = open_with_notes(name, 200).await;
    JsFuture::from(sleep(40)).await.unwrap();
    (db, notes, defaults)
}

/// Opens the database `name` and writes `count` notes to it in one `bulkPut`:
/// `n000` titled `note 0`, and so on.
async fn open_with_notes(name: &str, count: usize) -> (Tideway, Collection) {
    let db = open(name).await;
    let notes = db.collection("notes".into()).unwrap();
    let many: Vec<String> = (0..count).map(|i| format!(r#"{{"id": "n{i:03}", "data": {{"title": "note {i}"}}}}"#)).collect();
    settle(notes.bulk_put(js(&format!("[{}]", many.join(","))))).await.expect("bulkPut");
    (db, notes)
}

/// Whether the image of database `name` is at its last mark within `ms`.
async fn image_saved_within(name: &str, ms: u32) -> bool {
    for _ in 0..ms / 20 {
        let (commit, image_mark, _) = image_of(name).await;
        if commit.is_some() && image_mark == commit {
            return true;
        }
        JsFuture::from(sleep(20)).await.unwrap();
    }
    false
}

/// Once the page is hidden (switched away from, and perhaps never shown
/// again), a handle saves the image of what it wrote at once, rather than once
/// the database has been quiet for a while.
pub async fn a_hidden_page_saves_the_image_at_once() {
    let name = format!("image-hidden-{}", uuid::Uuid::new_v4());
    let db = open(&name).await;
    let notes = db.collection("notes".into()).unwrap();
    settle(notes.put(js(r#"{"title": "written"}"#), js(r#"{"id": "n1"}"#))).await.expect("put");
    let (commit, image_mark, _) = image_of(&name).await;
    assert!(commit.is_some() && image_mark.is_none(), "not saved yet, the database has not been quiet for long");
    if set_hidden(true) {
        let mut saved = false;
        // Well before the two quiet seconds after which it is saved anyway.
        for _ in 0..50 {
            let (commit, image_mark, _) = image_of(&name).await;
            saved = image_mark == commit;
            if saved {
                break;
            }
            JsFuture::from(sleep(20)).await.unwrap();
        }
        set_hidden(false);
        assert!(saved, "saved once the page was hidden");
    }
    settle(db.close()).await.expect("close");
    let (commit, image_mark, ids) = image_of(&name).await;
    assert_eq!((image_mark, ids), (commit, vec!["n1".to_owned()]), "saved, at the latest, at close");
    Tideway::delete_database(name.into()).await.expect("delete the database");
}

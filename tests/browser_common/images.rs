//! The database's image: every entity's doc as stored at one commit mark,
//! saved in one record once a context has been quiet for a while (or closes),
//! which an open reads in one request instead of every record while no
//! commit of entities was made since.

use tideway::core::Store;
use tideway::js::Tideway;
use tideway::store::indexeddb::IdbStore;
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

/** `[the last commit mark, the mark the image was saved at, the ids of the image's first store]`. */
export function imageState(name) {
  return withMeta(name, "readonly", (meta, done) => {
    const commit = meta.get("commit");
    const imageMark = meta.get("imageMark");
    const image = meta.get("image");
    image.onsuccess = () => done([commit.result ?? null, imageMark.result ?? null, image.result?.ids?.[0] ?? []]);
  });
}

/** Replaces `from` with `to` in the image's doc of `id` (first store), its mark left as it is. */
export function editImage(name, id, from, to) {
  return withMeta(name, "readwrite", (meta, done) => {
    const read = meta.get("image");
    read.onsuccess = () => {
      const image = read.result;
      const at = image.ids[0].indexOf(id);
      image.docs[0][at] = image.docs[0][at].replace(from, to);
      meta.put(image, "image");
      done(true);
    };
  });
}

/** Makes the image's doc of `id` (first store) something other than a doc, its mark left as it is. */
export function breakImage(name, id) {
  return withMeta(name, "readwrite", (meta, done) => {
    const read = meta.get("image");
    read.onsuccess = () => {
      const image = read.result;
      image.docs[0][image.ids[0].indexOf(id)] = 42;
      meta.put(image, "image");
      done(true);
    };
  });
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
    let state = js_sys::Array::from(&JsFuture::from(image_state(name)).await.expect("read the meta store"));
    let ids = js_sys::Array::from(&state.get(2)).iter().filter_map(|id| id.as_string()).collect();
    (state.get(0).as_string(), state.get(1).as_string(), ids)
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
    store.close();

    let (commit, image_mark, image_ids) = image_of(&name).await;
    assert!(commit.is_some() && image_mark == commit, "the image is at the last mark: {image_mark:?}, {commit:?}");
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(image_ids, sorted, "every note once, in id order");

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
    last.close();
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

/// Saved by itself once the database has been quiet for a while, an image
/// larger than a set size is not: saving it would hold the thread too long.
/// It waits for the page to be hidden, or for the database to close.
pub async fn a_large_image_waits_for_the_page_to_be_hidden_or_the_database_to_close() {
    let name = format!("image-large-{}", uuid::Uuid::new_v4());
    let db = open(&name).await;
    let notes = db.collection("notes".into()).unwrap();
    let defaults = IdbStore::set_image_timing(20, 1e12);
    settle(notes.put(js(r#"{"title": "small"}"#), js(r#"{"id": "n1"}"#))).await.expect("put");
    assert!(image_saved_within(&name, 1000).await, "a small image is saved once the database is quiet");

    IdbStore::set_image_timing(20, 10.0);
    settle(notes.put(js(r#"{"title": "larger than ten characters"}"#), js(r#"{"id": "n2"}"#))).await.expect("put");
    assert!(!image_saved_within(&name, 300).await, "a large image is not saved once the database is quiet");
    let in_page = set_hidden(true);
    if in_page {
        let saved = image_saved_within(&name, 1000).await;
        set_hidden(false);
        assert!(saved, "saved once the page was hidden");
        settle(notes.put(js(r#"{"title": "written again"}"#), js(r#"{"id": "n3"}"#))).await.expect("put");
        assert!(!image_saved_within(&name, 300).await, "not saved once the database is quiet again");
    }
    settle(db.close()).await.expect("close");
    IdbStore::set_image_timing(defaults.0, defaults.1);
    let (commit, image_mark, ids) = image_of(&name).await;
    assert!(commit.is_some() && image_mark == commit, "saved at close");
    assert_eq!(ids.len(), if in_page { 3 } else { 2 });
    Tideway::delete_database(name.into()).await.expect("delete the database");
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

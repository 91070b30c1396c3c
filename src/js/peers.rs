//! The other contexts of one open database, as this one sees them: it
//! announces each of its commits on the database's channel, takes theirs into
//! its mirror (from the message while what it carries is still what is stored,
//! else read back from IndexedDB), and hands sync messages to its syncer.
//! What was committed before it could hear of it (while it loaded, until the
//! browser registered its end of the channel, while it was frozen or in the
//! back/forward cache) it reads from IndexedDB: what changed since it last
//! read. A page leaves the channel while it is in the back/forward cache,
//! since a message arriving there would make the browser evict it.

use std::cell::RefCell;
use std::future::Future;
use std::rc::{Rc, Weak};

use gloo_events::EventListener;
use wasm_bindgen::JsCast;

use super::handles::Repo;
use super::sync::Syncer;
use crate::contexts::{self, Channel, Message};
use crate::core::Committed;

pub struct Peers {
    name: String,
    repository: Repo,
    channel: RefCell<Option<Channel>>,
    syncer: RefCell<Weak<Syncer>>,
    /// `pagehide`, `pageshow`, `resume` and `visibilitychange` in a page:
    /// when it leaves for the back/forward cache, when it may have missed
    /// messages, and when it is hidden.
    lifecycle: RefCell<Vec<EventListener>>,
}

impl Peers {
    /// Joins the channel of the database `name`; from now on the
    /// repository's commits are announced on it. Once the channel hears the
    /// other contexts, takes in what they committed since the repository was
    /// loaded. A database kept in memory shares nothing with other contexts,
    /// and joins no channel.
    pub async fn join(name: &str, repository: Repo) -> Rc<Peers> {
        let peers = Rc::new(Peers {
            name: contexts::lock_name(name),
            repository,
            channel: RefCell::new(None),
            syncer: RefCell::new(Weak::new()),
            lifecycle: RefCell::default(),
        });
        if peers.repository.store().indexed_db().is_none() {
            return peers;
        }
        let joined = peers.join_channel();
        let weak = Rc::downgrade(&peers);
        peers.repository.on_commit(Box::new(move |committed: &Committed| {
            if let Some(peers) = weak.upgrade() {
                // Told right after the store's commit returns: the marks are that commit's.
                let with_docs = peers.channel.borrow().as_ref().is_some_and(Channel::heard_others);
                let taken = peers.repository.store().indexed_db().and_then(|store| store.take_commit_marks(&committed.keys, with_docs));
                let (marks, docs) = taken.map_or((None, None), |taken| (Some(taken.marks), taken.docs));
                peers.post(&Message::Committed { keys: committed.keys.clone(), local: committed.local, marks, docs });
            }
        }));
        peers.watch_lifecycle();
        joined.await;
        peers.take_in_unheard().await;
        peers
    }

    /// Joins the channel; the future resolves once it hears the other
    /// contexts (see [`Channel::join`]).
    fn join_channel(self: &Rc<Self>) -> impl Future<Output = ()> + 'static {
        let weak = Rc::downgrade(self);
        let joined = Channel::join(&self.name, move |message| {
            if let Some(peers) = weak.upgrade() {
                peers.receive(message);
            }
        });
        let (channel, joined) = joined.unzip();
        *self.channel.borrow_mut() = channel;
        async move {
            if let Some(joined) = joined {
                joined.await;
            }
        }
    }

    /// In a page: leaves the channel when the page enters the back/forward
    /// cache (`pagehide` with `persisted`), and catches up when it comes back
    /// (`pageshow` with `persisted`, joining again) or from being frozen
    /// (`resume`). Once the page is hidden (switched away from, and perhaps
    /// never shown again), saves the database's image of what it wrote rather
    /// than when the database has been quiet for a while, as it does at any
    /// size.
    fn watch_lifecycle(self: &Rc<Self>) {
        let global = js_sys::global();
        let Some(document) = js_sys::Reflect::get(&global, &"document".into()).ok().filter(|d| d.is_object()) else { return };
        let on = |peers: &Rc<Peers>, act: fn(&Rc<Peers>)| {
            let weak = Rc::downgrade(peers);
            move |event: &web_sys::Event| {
                let persisted = js_sys::Reflect::get(event, &"persisted".into()).ok().and_then(|p| p.as_bool());
                if event.type_() == "resume" || persisted == Some(true) {
                    if let Some(peers) = weak.upgrade() {
                        act(&peers);
                    }
                }
            }
        };
        let mut listeners = Vec::new();
        if let Some(window) = global.dyn_ref::<web_sys::EventTarget>() {
            listeners.push(EventListener::new(window, "pagehide", on(self, |peers| drop(peers.channel.borrow_mut().take()))));
            listeners.push(EventListener::new(
                window,
                "pageshow",
                on(self, |peers| {
                    let joined = peers.join_channel();
                    peers.catch_up(joined);
                }),
            ));
        }
        listeners.push(EventListener::new(
            document.unchecked_ref::<web_sys::EventTarget>(),
            "resume",
            on(self, |peers| peers.catch_up(async {})),
        ));
        let weak = Rc::downgrade(self);
        let page: web_sys::Document = document.clone().unchecked_into();
        listeners.push(EventListener::new(document.unchecked_ref::<web_sys::EventTarget>(), "visibilitychange", move |_| {
            if page.visibility_state() != web_sys::VisibilityState::Hidden {
                return;
            }
            if let Some(store) = weak.upgrade().as_ref().and_then(|peers| peers.repository.store().indexed_db()) {
                store.save_image_now();
            }
        }));
        *self.lifecycle.borrow_mut() = listeners;
    }

    /// Takes in what other contexts committed while this one heard nothing,
    /// once the channel hears them (`joined`), and asks whoever syncs to say
    /// so again.
    fn catch_up(self: &Rc<Self>, joined: impl Future<Output = ()> + 'static) {
        self.post(&Message::Hello);
        self.take_in_unheard_after(joined);
    }

    /// [`Peers::take_in_unheard`] in the background, once `first` resolves.
    pub fn take_in_unheard_after(self: &Rc<Self>, first: impl Future<Output = ()> + 'static) {
        let peers = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            first.await;
            peers.take_in_unheard().await;
        });
    }

    /// Takes in the commits of other contexts that this one has not heard of:
    /// those made while it was frozen, or after its load and before its
    /// channel heard the others. One read of the last commit mark when there
    /// were none.
    async fn take_in_unheard(&self) {
        let Some(store) = self.repository.store().indexed_db() else { return };
        // On an error the database is closed or gone: this context's own calls say so.
        if let Ok(changed) = store.read_changed().await {
            self.repository.absorb_elsewhere(&changed);
        }
    }

    /// Hands the sync messages to `syncer` from now on.
    pub fn attach(&self, syncer: &Rc<Syncer>) {
        *self.syncer.borrow_mut() = Rc::downgrade(syncer);
    }

    pub fn post(&self, message: &Message) {
        if let Some(channel) = &*self.channel.borrow() {
            channel.post(message);
        }
    }

    /// Leaves the channel: nothing is announced or heard any more.
    pub fn close(&self) {
        self.channel.borrow_mut().take();
        self.lifecycle.borrow_mut().clear();
    }

    fn receive(self: &Rc<Self>, message: Message) {
        let syncer = self.syncer.borrow().upgrade();
        match message {
            Message::Committed { keys, local, marks, docs } => {
                if local {
                    if let Some(syncer) = &syncer {
                        syncer.written_elsewhere();
                    }
                }
                let repository = self.repository.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    // From the message's docs when this commit is all this context
                    // misses (later commits' messages follow), else as stored now, so
                    // a late message never brings back an older version.
                    let Some(store) = repository.store().indexed_db() else { return };
                    // On an error the database is closed or gone: this context's own calls say so.
                    if let Ok(stored) = store.read_stored(keys, marks.as_ref(), docs.as_ref()).await {
                        repository.absorb_elsewhere(&stored);
                    }
                });
            }
            other => {
                if other == Message::Leading {
                    // The context before it may have stopped (its page closed)
                    // between a commit and that commit's message.
                    self.take_in_unheard_after(async {});
                }
                if let Some(syncer) = syncer {
                    syncer.receive(other);
                }
            }
        }
    }
}

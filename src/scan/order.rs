//! The order of a scan's entries, built while the walk runs.
//!
//! Each folder's task sorts its own items, and a subfolder is represented among its parent's
//! items by places ([`Slot`]) that the subfolder's task fills: its own entry, which sorts by
//! its zip path, and its contents, which sort as if that path ended in '/'. Reading the items
//! depth first ([`flatten`]) then gives zip paths in byte order, whatever order the tasks ran
//! in, without sorting the whole listing.

use std::cmp::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use super::ScannedEntry;

/// An entry of a folder's sorted listing: a scanned entry, or a place that a subfolder's task
/// fills.
#[derive(Debug)]
pub(super) enum Item {
    Entry(ScannedEntry),
    /// The subfolder's own entry, for a subfolder whose task takes its stat data.
    Own(Arc<Slot>),
    /// The subfolder's contents, which sort as if its zip path ended in '/'.
    Contents(Arc<Slot>),
}

/// What a subfolder's task found, for its parent's listing.
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) zip_path: String,
    found: Mutex<SlotFound>,
}

#[derive(Debug, Default)]
pub(super) struct SlotFound {
    pub(super) own: Option<ScannedEntry>,
    pub(super) items: Vec<Item>,
}

impl Slot {
    pub(super) fn new(zip_path: String) -> Arc<Slot> {
        Arc::new(Slot {
            zip_path,
            found: Mutex::default(),
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, SlotFound> {
        self.found
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Orders the items of one folder so that reading them depth first gives zip paths in byte
/// order. A subfolder's contents sort by its zip path followed by '/', not right after its own
/// entry: `a`, `a-b`, `a/c` is byte order, since '-' sorts before '/'. All the zip paths start
/// with the folder's own and a '/', `prefix` bytes that are not compared.
pub(super) fn compare_items(a: &Item, b: &Item, prefix: usize) -> Ordering {
    let (a, a_is_subtree) = sort_key(a);
    let (b, b_is_subtree) = sort_key(b);
    let (a, b) = (&a[prefix..], &b[prefix..]);
    let common = a.len().min(b.len());
    match a[..common].cmp(&b[..common]) {
        Ordering::Equal => {}
        unequal => return unequal,
    }
    let a_tail = a[common..].iter().chain(a_is_subtree.then_some(&b'/'));
    let b_tail = b[common..].iter().chain(b_is_subtree.then_some(&b'/'));
    a_tail.cmp(b_tail)
}

fn sort_key(item: &Item) -> (&[u8], bool) {
    match item {
        Item::Entry(entry) => (entry.zip_path.as_bytes(), false),
        Item::Own(slot) => (slot.zip_path.as_bytes(), false),
        Item::Contents(slot) => (slot.zip_path.as_bytes(), true),
    }
}

/// Appends the entries of `items` to `entries`, each subtree's where its slot is, without
/// recursing on the stack.
///
/// TODO: this runs on one thread after the walk and moves every entry once more, and until it
/// is done each entry's bytes sit both in a slot and in `entries` (about 10 MB more fresh pages
/// for 75,000 entries than appending to one vector); counting each subtree's entries would let
/// the pool move them into place in parallel.
pub(super) fn flatten(items: Vec<Item>, entries: &mut Vec<ScannedEntry>) {
    let mut pending = vec![items.into_iter()];
    while let Some(items) = pending.last_mut() {
        match items.next() {
            Some(Item::Entry(entry)) => entries.push(entry),
            Some(Item::Own(slot)) => entries.extend(slot.lock().own.take()),
            Some(Item::Contents(slot)) => {
                pending.push(std::mem::take(&mut slot.lock().items).into_iter());
            }
            None => {
                pending.pop();
            }
        }
    }
}

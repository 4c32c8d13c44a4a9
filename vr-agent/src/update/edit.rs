//! An edit of one NIC's ACL list made item by item: EditNetworkAcl (the
//! items it brings and the ids it takes out), and a whole list that differs
//! from the one held in a few items. Only the items that come are checked
//! (with the errors the whole list would give), the held list is changed in
//! place, and what changed is known without comparing the lists again.

use vpc_proto::v1 as pb;

use super::{Undo, edited_acl};
use crate::model::{Invalid, Limits, Router};

/// Items put into a list, each with its index in the list after the change.
pub type Placed<'a> = Vec<(usize, &'a pb::AclItem)>;

/// Changed items at most for which a whole list is checked item by item.
const FEW_CHANGES: usize = 32;

/// The indexes of `items` in number order (equal numbers in list order).
/// A list is sent in number order, or nearly (an item renumbered in its
/// place): the sort finds the few runs and merges them.
fn by_number(items: &[pb::AclItem]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    if !items.is_sorted_by_key(|i| i.number) {
        order.sort_by_key(|&k| items[k].number);
    }
    order
}

/// How `new` differs from `old`: the numbers of the items of `old` that go
/// or change, and the items of `new` that come or change, with their
/// indexes in `new`, in list order; `None` when more than
/// [`FEW_CHANGES`] items differ. One walk over both lists in number order,
/// comparing items of the same number, nothing copied.
pub(super) fn few_changes<'a>(
    old: &pb::NetworkAcl,
    new: &'a pb::NetworkAcl,
) -> Option<(Vec<u32>, Placed<'a>)> {
    let (a, b) = (&old.items, &new.items);
    let (in_a, in_b) = (by_number(a), by_number(b));
    let at_a = |i: usize| in_a.get(i).map(|&k| &a[k]);
    let at_b = |j: usize| in_b.get(j).map(|&k| (k, &b[k]));
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    loop {
        match (at_a(i), at_b(j)) {
            (Some(x), Some((k, y))) if x.number == y.number => {
                if x != y {
                    removed.push(x.number);
                    added.push((k, y));
                }
                i += 1;
                j += 1;
            }
            (Some(x), Some((_, y))) if x.number < y.number => {
                removed.push(x.number);
                i += 1;
            }
            (Some(x), None) => {
                removed.push(x.number);
                i += 1;
            }
            (_, Some((k, y))) => {
                added.push((k, y));
                j += 1;
            }
            (None, None) => break,
        }
        if removed.len() + added.len() > FEW_CHANGES {
            return None;
        }
    }
    // Checked in list order, so that the first bad item is the one the
    // whole list's check names.
    added.sort_by_key(|(k, _)| *k);
    Some((removed, added))
}

/// A list's labels, without its items.
pub(super) fn labels_of(acl: &pb::NetworkAcl) -> pb::NetworkAcl {
    pb::NetworkAcl {
        device_index: acl.device_index,
        mac_address: acl.mac_address.clone(),
        private_gateway: acl.private_gateway,
        acl_id: acl.acl_id.clone(),
        acl_name: acl.acl_name.clone(),
        items: Vec::new(),
    }
}

/// Whether two lists have the same labels (their items aside).
pub(super) fn labels_equal(a: &pb::NetworkAcl, b: &pb::NetworkAcl) -> bool {
    a.device_index == b.device_index
        && a.mac_address == b.mac_address
        && a.private_gateway == b.private_gateway
        && a.acl_id == b.acl_id
        && a.acl_name == b.acl_name
}

/// How an edit of one NIC's list was taken ([`apply_edit_in_place`]).
#[derive(Debug)]
pub enum Edit {
    /// The NIC holds no list, or another one than the edit's.
    NotHeld,
    /// Made in place: the new validated router (boxed: it is large beside
    /// the other answers) and what undoes it.
    Applied(Box<Router>, Undo),
    /// Not one the in-place path takes (the list held is not in number
    /// order, or the edit empties it): the whole list after the edit, to
    /// be applied as a [`Change::SetNetworkAcl`].
    Whole(pb::NetworkAcl),
}

/// Ids at most this many are looked for one by one; more through a set.
const FEW_IDS: usize = 16;

/// An edit of one NIC's list (EditNetworkAcl: `edit`'s items added or
/// replacing the items with their ids, the items with the ids `removed`
/// taken out), made to `config` in place and validated against `router`
/// (the validated form of `config`) by checking only the items that come:
/// the same list, and the same errors, as [`edited_acl`] then
/// [`apply_in_place`] would give, with work in proportion to the edit
/// (besides one look at each item's id and number).
pub fn apply_edit_in_place(
    config: &mut pb::RouterConfig,
    router: &Router,
    edit: pb::NetworkAcl,
    removed: &[String],
    limits: &Limits,
) -> Result<Edit, Invalid> {
    let Some(at) = config
        .network_acls
        .iter()
        .position(|a| a.device_index == edit.device_index)
    else {
        return Ok(Edit::NotHeld);
    };
    let held = &config.network_acls[at];
    if edit.acl_id.is_empty() || held.acl_id != edit.acl_id {
        return Ok(Edit::NotHeld);
    }
    let gone: Vec<&str> = removed
        .iter()
        .map(String::as_str)
        .chain(edit.items.iter().map(|i| i.id.as_str()))
        .collect();
    let set: std::collections::HashSet<&str> = if gone.len() > FEW_IDS {
        gone.iter().copied().collect()
    } else {
        Default::default()
    };
    let goes = |id: &str| {
        if gone.len() > FEW_IDS {
            set.contains(id)
        } else {
            gone.contains(&id)
        }
    };
    let taken: Vec<usize> = held
        .items
        .iter()
        .enumerate()
        .filter(|(_, i)| goes(&i.id))
        .map(|(k, _)| k)
        .collect();
    let len = held.items.len() - taken.len() + edit.items.len();
    if len == 0 || !held.items.is_sorted_by_key(|i| i.number) {
        let whole = edited_acl(config, edit, removed);
        return Ok(whole.map_or(Edit::NotHeld, Edit::Whole));
    }
    // Each added item's index in the list after the edit: the items that
    // stay come first among equal numbers, then the edit's in its order
    // (what sorting the whole list by number gives).
    let mut order: Vec<usize> = (0..edit.items.len()).collect();
    order.sort_by_key(|&k| edit.items[k].number);
    let mut added: Vec<(usize, &pb::AclItem)> = Vec::with_capacity(order.len());
    for (rank, &k) in order.iter().enumerate() {
        let number = edit.items[k].number;
        let held_before = held.items.partition_point(|i| i.number <= number);
        let taken_before = taken
            .iter()
            .filter(|&&t| held.items[t].number <= number)
            .count();
        added.push((held_before - taken_before + rank, &edit.items[k]));
    }
    limits.check_acl_edit("acl", len, &added)?;
    let numbers: Vec<u32> = taken.iter().map(|&t| held.items[t].number).collect();
    let labels = labels_of(&edit);
    let Some(next) = router.with_acl_edit(&labels, &numbers, &added, limits.acl_elements_per_entry)
    else {
        let whole = edited_acl(config, edit, removed);
        return Ok(whole.map_or(Edit::NotHeld, Edit::Whole));
    };
    let next = next?;
    let positions: Vec<u32> = added.iter().map(|(i, _)| *i as u32).collect();
    let inserted: Vec<u32> = added.iter().map(|(_, item)| item.number).collect();
    // Valid: the list is changed in place.
    let list = &mut config.network_acls[at];
    let mut taken_items = Vec::with_capacity(taken.len());
    for &k in taken.iter().rev() {
        taken_items.push(list.items.remove(k));
    }
    taken_items.reverse();
    let mut items = edit.items;
    let mut placed: Vec<(u32, pb::AclItem)> = order
        .iter()
        .zip(&positions)
        .map(|(&k, &i)| (i, std::mem::take(&mut items[k])))
        .collect();
    placed.sort_by_key(|(i, _)| *i);
    for (i, item) in placed {
        list.items.insert(i as usize, item);
    }
    let old_items = std::mem::take(&mut list.items);
    let before = std::mem::replace(
        list,
        pb::NetworkAcl {
            items: old_items,
            ..labels
        },
    );
    let mut positions = positions;
    positions.sort_unstable();
    Ok(Edit::Applied(
        Box::new(next),
        Undo::AclEdit {
            index: before.device_index,
            labels: before,
            taken: taken_items,
            inserted,
            at: positions,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{mac, sample_config};
    use crate::update::{Change, apply_in_place};

    /// The sample with ids on the web list's items (`i10`, `i20`, ...).
    fn with_ids() -> pb::RouterConfig {
        let mut config = sample_config();
        for item in &mut config.network_acls[0].items {
            item.id = format!("i{}", item.number);
        }
        config
    }

    fn web_edit(items: Vec<pb::AclItem>) -> pb::NetworkAcl {
        let held = &with_ids().network_acls[0];
        pb::NetworkAcl {
            items,
            ..labels_of(held)
        }
    }

    fn held_item(number: u32) -> pb::AclItem {
        with_ids().network_acls[0]
            .items
            .iter()
            .find(|i| i.number == number)
            .cloned()
            .unwrap()
    }

    /// The edit made in place and made whole (the edited list, set) give
    /// the same state and router, or the same error and nothing changed;
    /// the undo gives the state back, and the journal record replays to
    /// the state after. Returns whether the edit was made in place.
    fn both_ways(edit: pb::NetworkAcl, removed: &[&str]) -> Result<bool, Invalid> {
        let config = with_ids();
        let router = Router::from_config(&config).unwrap();
        let removed: Vec<String> = removed.iter().map(|s| s.to_string()).collect();
        let whole = edited_acl(&config, edit.clone(), &removed).expect("held");
        let expected = crate::update::apply(
            &config,
            &router,
            Change::SetNetworkAcl(Some(whole)),
            &Limits::default(),
        );
        let mut in_place = config.clone();
        let got = apply_edit_in_place(&mut in_place, &router, edit, &removed, &Limits::default());
        match (expected, got) {
            (Ok((next, next_router)), Ok(Edit::Applied(got_router, undo))) => {
                assert_eq!(in_place, next);
                assert_eq!(*got_router, next_router);
                let (index, numbers, at) = match &undo {
                    Undo::AclEdit {
                        index, taken, at, ..
                    } => (
                        *index,
                        taken.iter().map(|i| i.number).collect::<Vec<_>>(),
                        at,
                    ),
                    other => panic!("{other:?}"),
                };
                let dir = tempfile::tempdir().unwrap();
                let store = crate::state::StateStore::open(dir.path()).unwrap();
                let first = crate::state::Desired {
                    generation: 1,
                    config: config.clone(),
                };
                store.save(&first).unwrap();
                let second = crate::state::Desired {
                    generation: 2,
                    config: in_place.clone(),
                };
                let replaced = crate::state::Replaced::AclEdit {
                    index,
                    removed: &numbers,
                    at,
                };
                store.save_replaced(replaced, &second).unwrap();
                assert!(store.journal_path().exists(), "journaled");
                let loaded = crate::state::StateStore::open(dir.path())
                    .unwrap()
                    .load()
                    .unwrap();
                assert_eq!(loaded, Some(second));
                let mut back = in_place.clone();
                undo.undo(&mut back);
                assert_eq!(back, config);
                Ok(true)
            }
            (Ok((next, next_router)), Ok(Edit::Whole(acl))) => {
                let (got, got_router) = crate::update::apply(
                    &config,
                    &router,
                    Change::SetNetworkAcl(Some(acl)),
                    &Limits::default(),
                )
                .unwrap();
                assert_eq!((got, got_router), (next, next_router));
                Ok(false)
            }
            (Err(want), Err(got)) => {
                assert_eq!(got.to_string(), want.to_string());
                assert_eq!(in_place, config, "a refused edit changes nothing");
                Err(got)
            }
            (want, got) => panic!("whole: {want:?}\nin place: {got:?}"),
        }
    }

    #[test]
    fn an_edit_in_place_gives_the_list_the_whole_list_gives() {
        use pb::{AclAction::*, Protocol::*, TrafficType::*};
        let mut port = held_item(20);
        port.start_port = Some(2222);
        port.end_port = Some(2222);
        assert_eq!(both_ways(web_edit(vec![port]), &[]), Ok(true), "update");
        let mut new =
            crate::testing::item(25, Allow, Ingress, Udp, &["10.9.0.0/16"], Some((53, 53)));
        new.id = "n25".into();
        assert_eq!(both_ways(web_edit(vec![new.clone()]), &[]), Ok(true), "add");
        assert_eq!(both_ways(web_edit(vec![]), &["i30"]), Ok(true), "delete");
        let mut moved = held_item(10);
        moved.number = 60;
        assert_eq!(
            both_ways(web_edit(vec![moved.clone()]), &[]),
            Ok(true),
            "move"
        );
        let mut flipped = held_item(40);
        flipped.action = Deny as i32;
        assert_eq!(both_ways(web_edit(vec![flipped]), &[]), Ok(true), "flip");
        let mut first = new.clone();
        first.number = 1;
        first.id = "n1".into();
        assert_eq!(
            both_ways(
                web_edit(vec![moved, new, first]),
                &["i30", "i50", "nothing"]
            ),
            Ok(true),
            "several at once"
        );
        let mut relabelled = web_edit(vec![]);
        relabelled.acl_name = "renamed".into();
        assert_eq!(both_ways(relabelled, &[]), Ok(true), "labels");
        let all: Vec<&str> = ["i10", "i20", "i30", "i40", "i50"].into();
        assert_eq!(both_ways(web_edit(vec![]), &all), Ok(false), "emptied");
    }

    #[test]
    fn an_edit_in_place_refuses_what_the_whole_list_refuses() {
        use pb::{AclAction::*, Protocol::*, TrafficType::*};
        let mut twice = crate::testing::item(20, Allow, Ingress, Udp, &[], Some((53, 53)));
        twice.id = "other".into();
        let err = both_ways(web_edit(vec![twice.clone()]), &[]).unwrap_err();
        assert!(err.to_string().contains("used by two items"), "{err}");
        let mut zero = twice.clone();
        zero.number = 0;
        both_ways(web_edit(vec![zero]), &[]).unwrap_err();
        let mut bad = twice.clone();
        bad.number = 35;
        bad.cidrs = vec!["10.0.0.0/33".into()];
        both_ways(web_edit(vec![bad]), &[]).unwrap_err();
        let mut no_action = twice.clone();
        no_action.number = 36;
        no_action.action = 0;
        // Two bad items: the one first in the list after the edit names
        // the error.
        let mut earlier = twice;
        earlier.number = 5;
        earlier.id = "bad id!".into();
        let err = both_ways(web_edit(vec![no_action, earlier]), &[]).unwrap_err();
        assert!(err.field.ends_with("[0].id"), "{err}");
        let mut wrong_mac = web_edit(vec![]);
        wrong_mac.mac_address = mac(3);
        both_ways(wrong_mac, &[]).unwrap_err();
        let mut wide = held_item(20);
        wide.cidrs = (0..2000)
            .map(|k| format!("10.{}.{}.0/24", k / 250, k % 250))
            .collect();
        both_ways(web_edit(vec![wide]), &[]).unwrap_err();
    }

    #[test]
    fn an_edit_that_changes_nothing_is_unchanged() {
        let config = with_ids();
        let router = Router::from_config(&config).unwrap();
        let mut in_place = config.clone();
        let edit = web_edit(vec![held_item(30)]);
        let Ok(Edit::Applied(_, undo)) =
            apply_edit_in_place(&mut in_place, &router, edit, &[], &Limits::default())
        else {
            panic!("made in place");
        };
        assert!(undo.unchanged(&in_place));
        assert_eq!(in_place, config);
        let mut other = held_item(30);
        other.start_port = Some(81);
        other.end_port = Some(81);
        let Ok(Edit::Applied(_, undo)) = apply_edit_in_place(
            &mut in_place,
            &router,
            web_edit(vec![other]),
            &[],
            &Limits::default(),
        ) else {
            panic!("made in place");
        };
        assert!(!undo.unchanged(&in_place));
    }

    #[test]
    fn an_edit_of_another_list_is_not_held() {
        let config = with_ids();
        let router = Router::from_config(&config).unwrap();
        let mut edit = web_edit(vec![]);
        edit.acl_id = "another".into();
        let mut in_place = config.clone();
        let got = apply_edit_in_place(
            &mut in_place,
            &router,
            edit,
            &["i10".into()],
            &Limits::default(),
        );
        assert!(matches!(got, Ok(Edit::NotHeld)), "{got:?}");
        assert_eq!(in_place, config);
    }

    /// A whole list that differs from the one held in a few items gives
    /// the router (or the error) that checking every item gives, and a
    /// journal record that replays to it.
    fn set_both_ways(items: Vec<pb::AclItem>) -> Result<(), Invalid> {
        let config = with_ids();
        let router = Router::from_config(&config).unwrap();
        let acl = web_edit(items);
        let held = &config.network_acls[0];
        let want = router.with_acl_from(&acl, Limits::default().acl_elements_per_entry, Some(held));
        let mut got_config = config.clone();
        let got = apply_in_place(
            &mut got_config,
            &router,
            Change::SetNetworkAcl(Some(acl.clone())),
            &Limits::default(),
        );
        match (want, got) {
            (Ok(want), Ok((got, undo))) => {
                assert_eq!(got, want);
                let Undo::Acl {
                    index,
                    delta: Some((removed, at)),
                    ..
                } = &undo
                else {
                    panic!("found item by item: {undo:?}");
                };
                let dir = tempfile::tempdir().unwrap();
                let store = crate::state::StateStore::open(dir.path()).unwrap();
                store
                    .save(&crate::state::Desired {
                        generation: 1,
                        config: config.clone(),
                    })
                    .unwrap();
                let second = crate::state::Desired {
                    generation: 2,
                    config: got_config.clone(),
                };
                let replaced = crate::state::Replaced::AclEdit {
                    index: *index,
                    removed,
                    at,
                };
                store.save_replaced(replaced, &second).unwrap();
                let loaded = crate::state::StateStore::open(dir.path())
                    .unwrap()
                    .load()
                    .unwrap();
                assert_eq!(loaded, Some(second));
                Ok(())
            }
            (Err(want), Err(got)) => {
                assert_eq!(got.to_string(), want.to_string());
                assert_eq!(got_config, config, "a refused list changes nothing");
                Err(got)
            }
            (want, got) => panic!("whole: {want:?}\nitem by item: {got:?}"),
        }
    }

    #[test]
    fn a_whole_list_with_a_few_changes_is_checked_in_those_alone() {
        use pb::{AclAction::*, Protocol::*, TrafficType::*};
        let held = with_ids().network_acls[0].items.clone();
        let mut update = held.clone();
        update[1].start_port = Some(2222);
        update[1].end_port = Some(2222);
        set_both_ways(update).unwrap();
        let mut add = held.clone();
        let mut new =
            crate::testing::item(25, Allow, Ingress, Udp, &["10.9.0.0/16"], Some((53, 53)));
        new.id = "n25".into();
        add.insert(2, new.clone());
        set_both_ways(add).unwrap();
        let mut delete = held.clone();
        delete.remove(2);
        set_both_ways(delete).unwrap();
        let mut moved = held.clone();
        let mut first = moved.remove(0);
        first.number = 60;
        moved.push(first);
        set_both_ways(moved).unwrap();
        // Renumbered in its place: the list is sent out of number order.
        let mut renumbered = held.clone();
        renumbered[1].number = 70;
        set_both_ways(renumbered.clone()).unwrap();
        // And from that list back.
        let mut config = with_ids();
        config.network_acls[0].items = renumbered;
        let router = Router::from_config(&config).unwrap();
        let (_, undo) = apply_in_place(
            &mut config.clone(),
            &router,
            Change::SetNetworkAcl(Some(web_edit(held.clone()))),
            &Limits::default(),
        )
        .unwrap();
        assert!(
            matches!(undo, Undo::Acl { delta: Some(_), .. }),
            "found item by item: {undo:?}"
        );
        // Two bad items out of number order: the first in the list is named.
        let mut two_bad = held.clone();
        two_bad[4].number = 1;
        two_bad[4].cidrs = vec!["nowhere".into()];
        two_bad[2].cidrs = vec!["nowhere either".into()];
        let err = set_both_ways(two_bad).unwrap_err();
        assert!(err.field.starts_with("acl.items[2]"), "{err:?}");
        let mut flip = held.clone();
        flip[3].action = Deny as i32;
        set_both_ways(flip).unwrap();
        let mut twice = held.clone();
        let mut again = new.clone();
        again.number = 20;
        twice.insert(2, again);
        let err = set_both_ways(twice).unwrap_err();
        assert!(err.to_string().contains("used by two items"), "{err}");
        let mut bad = held.clone();
        bad[4].cidrs = vec!["nowhere".into()];
        set_both_ways(bad).unwrap_err();
    }
}

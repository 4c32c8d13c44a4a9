//! Where two versions of a list differ, found without hashing or
//! formatting anything: the items both versions begin and end with are
//! skipped, and what lies between is the change.
//!
//! The NAT lists (port forwards, static NATs) arrive whole at every change
//! (issue 17: a change at 10,000 forwards in 5 ms). A one-rule change
//! leaves every other rule where it was, so the splice is that rule alone:
//! validation parses it alone, the journal records it alone and the planner
//! renders its map elements alone.

/// `removed` items of the old list from index `at` are replaced by
/// `inserted` items of the new list, from the same index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Splice {
    pub at: usize,
    pub removed: usize,
    pub inserted: usize,
}

impl Splice {
    /// The narrowest splice turning `old` into `new`: one pass over the
    /// items they share at each end (compared, never hashed).
    pub fn of<T: PartialEq>(old: &[T], new: &[T]) -> Splice {
        let at = old.iter().zip(new).take_while(|(a, b)| a == b).count();
        let tail = old[at..]
            .iter()
            .rev()
            .zip(new[at..].iter().rev())
            .take_while(|(a, b)| a == b)
            .count();
        Splice {
            at,
            removed: old.len() - at - tail,
            inserted: new.len() - at - tail,
        }
    }

    /// Everything of `old` replaced by all of a list of `len` items.
    pub fn whole(old_len: usize, len: usize) -> Splice {
        Splice {
            at: 0,
            removed: old_len,
            inserted: len,
        }
    }

    /// True when the lists are the same.
    pub fn is_empty(&self) -> bool {
        self.removed == 0 && self.inserted == 0
    }

    /// The indexes of the old list's items that go.
    pub fn removed_range(&self) -> std::ops::Range<usize> {
        self.at..self.at + self.removed
    }

    /// The indexes of the new list's items that come.
    pub fn inserted_range(&self) -> std::ops::Range<usize> {
        self.at..self.at + self.inserted
    }

    /// `old` with `inserted` (the new list's items of
    /// [`Splice::inserted_range`]) in place of the items that go.
    pub fn apply<T: Clone>(&self, old: &[T], inserted: impl IntoIterator<Item = T>) -> Vec<T> {
        let kept = old.len() - self.removed;
        let mut out = Vec::with_capacity(kept + self.inserted);
        out.extend_from_slice(&old[..self.at]);
        out.extend(inserted);
        out.extend_from_slice(&old[self.at + self.removed..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_one_item_change_is_that_item_alone() {
        let old = [1, 2, 3, 4, 5];
        assert_eq!(
            Splice::of(&old, &[1, 2, 9, 4, 5]),
            Splice {
                at: 2,
                removed: 1,
                inserted: 1
            }
        );
        assert_eq!(
            Splice::of(&old, &[1, 2, 3, 4, 5, 6]),
            Splice {
                at: 5,
                removed: 0,
                inserted: 1
            }
        );
        assert_eq!(
            Splice::of(&old, &[1, 3, 4, 5]),
            Splice {
                at: 1,
                removed: 1,
                inserted: 0
            }
        );
        assert!(Splice::of(&old, &old).is_empty());
    }

    #[test]
    fn repeated_items_at_the_seam_are_counted_once() {
        // [1, 1] -> [1]: the head takes one 1, the tail none of what is left.
        let s = Splice::of(&[1, 1], &[1]);
        assert_eq!((s.removed, s.inserted), (1, 0));
        assert_eq!(s.apply(&[1, 1], []), vec![1]);
    }

    proptest! {
        #[test]
        fn applying_the_splice_gives_the_new_list_back(
            old in proptest::collection::vec(0u8..4, 0..12),
            new in proptest::collection::vec(0u8..4, 0..12),
        ) {
            let s = Splice::of(&old, &new);
            let inserted = new[s.inserted_range()].iter().copied();
            prop_assert_eq!(s.apply(&old, inserted), new.clone());
            prop_assert_eq!(s.is_empty(), old == new);
        }
    }
}

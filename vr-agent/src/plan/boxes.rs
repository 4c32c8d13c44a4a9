//! Disjoint boxes for nft interval sets.
//!
//! The kernel's set type for concatenated intervals (pipapo) refuses an element
//! whose start lies inside an element already added, even within one
//! transaction ("File exists"). ACL items of one run overlap freely (a /8 and a
//! /16 of it, "all ports" and port 22), and within a run they share one
//! verdict, so only their union matters. This module turns a list of boxes
//! (one interval per key field) into pairwise-disjoint boxes with the same
//! union, which the kernel accepts in any order.

/// An inclusive interval of one key field (addresses as integers).
pub type Span = (u128, u128);

/// One element of a concatenated interval set: a span per key field.
pub type Box3 = [Span; 3];

fn intersects(a: &Box3, b: &Box3) -> bool {
    a.iter().zip(b).all(|(x, y)| x.0 <= y.1 && y.0 <= x.1)
}

fn contains(outer: &Box3, inner: &Box3) -> bool {
    outer
        .iter()
        .zip(inner)
        .all(|(o, i)| o.0 <= i.0 && i.1 <= o.1)
}

/// `b` minus `a`: at most two pieces per field, all disjoint from `a`.
fn subtract(b: &Box3, a: &Box3) -> Vec<Box3> {
    if !intersects(b, a) {
        return vec![*b];
    }
    let mut pieces = Vec::new();
    let mut rest = *b;
    for d in 0..3 {
        if rest[d].0 < a[d].0 {
            let mut below = rest;
            below[d] = (rest[d].0, a[d].0 - 1);
            pieces.push(below);
            rest[d].0 = a[d].0;
        }
        if rest[d].1 > a[d].1 {
            let mut above = rest;
            above[d] = (a[d].1 + 1, rest[d].1);
            pieces.push(above);
            rest[d].1 = a[d].1;
        }
    }
    // What remains of `rest` lies inside `a` and is dropped.
    pieces
}

fn volume_order(b: &Box3) -> (u128, u128, u128) {
    // Wider first: most overlaps in ACLs are containment, and a box that
    // arrives after the box containing it simply vanishes instead of splitting
    // the bigger one.
    (
        u128::MAX - (b[0].1 - b[0].0),
        u128::MAX - (b[2].1 - b[2].0),
        u128::MAX - (b[1].1 - b[1].0),
    )
}

/// Pairwise-disjoint boxes covering exactly the union of `boxes`, in a stable
/// order (sorted), without duplicates.
///
/// Boxes whose address spans do not overlap cannot intersect, so a sort and
/// one sweep split the input into groups of address-overlapping boxes, and
/// only within a group are boxes compared pairwise. ACLs are mostly disjoint
/// prefixes, which makes this O(n log n) in practice instead of O(n²).
pub fn disjoint(mut boxes: Vec<Box3>) -> Vec<Box3> {
    boxes.sort_unstable();
    boxes.dedup();
    let mut out = Vec::with_capacity(boxes.len());
    let mut group: Vec<Box3> = Vec::new();
    let mut group_end = 0u128;
    for b in boxes {
        if !group.is_empty() && b[0].0 > group_end {
            disjoint_group(std::mem::take(&mut group), &mut out);
        }
        group_end = if group.is_empty() {
            b[0].1
        } else {
            group_end.max(b[0].1)
        };
        group.push(b);
    }
    disjoint_group(group, &mut out);
    out.sort_unstable();
    out
}

/// Appends the disjoint decomposition of one group of boxes to `out`.
fn disjoint_group(mut boxes: Vec<Box3>, out: &mut Vec<Box3>) {
    if boxes.len() <= 1 {
        out.extend(boxes);
        return;
    }
    boxes.sort_by_key(|b| (volume_order(b), *b));
    let start = out.len();
    for b in boxes {
        if out[start..].iter().any(|o| contains(o, &b)) {
            continue;
        }
        let mut pieces = vec![b];
        for o in &out[start..] {
            if !intersects(o, &b) {
                continue;
            }
            pieces = pieces.iter().flat_map(|p| subtract(p, o)).collect();
            if pieces.is_empty() {
                break;
            }
        }
        out.extend(pieces);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covered(boxes: &[Box3], point: [u128; 3]) -> usize {
        boxes
            .iter()
            .filter(|b| b.iter().zip(point).all(|(s, p)| s.0 <= p && p <= s.1))
            .count()
    }

    #[test]
    fn disjoint_address_groups_are_kept_apart_and_sorted() {
        let a = [(10, 20), (6, 6), (22, 22)];
        let b = [(30, 40), (6, 6), (22, 22)];
        let c = [(15, 35), (17, 17), (53, 53)];
        assert_eq!(disjoint(vec![b, a]), vec![a, b]);
        // c bridges a and b by address but not by protocol: nothing splits.
        assert_eq!(disjoint(vec![c, b, a]), vec![a, c, b]);
    }

    #[test]
    fn contained_boxes_vanish() {
        let all = [(0, 255), (6, 6), (1, 65535)];
        let inner = [(10, 20), (6, 6), (22, 22)];
        assert_eq!(disjoint(vec![inner, all]), vec![all]);
        assert_eq!(disjoint(vec![all, inner, all]), vec![all]);
    }

    #[test]
    fn partial_overlaps_split_into_disjoint_pieces_with_the_same_union() {
        let a = [(0, 100), (6, 6), (20, 80)];
        let b = [(50, 150), (6, 6), (60, 100)];
        let c = [(90, 95), (0, 255), (0, 0)];
        let out = disjoint(vec![a, b, c]);
        for (i, x) in out.iter().enumerate() {
            for y in &out[i + 1..] {
                assert!(!intersects(x, y), "{x:?} overlaps {y:?}");
            }
        }
        // Every point of the union is covered exactly once, nothing else is.
        for addr in [0, 49, 50, 100, 101, 150, 151, 92] {
            for proto in [0, 6, 17] {
                for port in [0, 19, 20, 59, 60, 80, 81, 100, 101] {
                    let want = [a, b, c]
                        .iter()
                        .any(|bx| covered(&[*bx], [addr, proto, port]) == 1);
                    assert_eq!(
                        covered(&out, [addr, proto, port]),
                        usize::from(want),
                        "{addr} {proto} {port}"
                    );
                }
            }
        }
    }
}

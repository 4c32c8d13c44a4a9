//! Elements for nft's concatenated interval sets, in an order the kernel
//! takes.
//!
//! What the kernel's set type for concatenated intervals (pipapo) accepts,
//! tried on this project's kernel (6.18, nft 1.0.6) in a throw-away namespace:
//! an element is refused ("File exists", and the whole transaction with it)
//! when its start point (every field's low end) or its end point (every
//! field's high end) lies inside an element already in the set, including
//! one added earlier in the same transaction; an exact duplicate is ignored.
//! Anything else is taken: an element added *after* a smaller one it contains,
//! and two elements that cross (a port from a /8 and every port from a /24
//! of it) in either order. Deleting either of two overlapping elements works.
//! Lookups in a set only ask "is some element hit", so overlapping elements
//! of one set are harmless once loaded.
//!
//! So instead of cutting a set's boxes into disjoint pieces (which multiplies
//! crossing boxes: a thousand one-port /8s over a thousand /24s made a
//! million pieces), boxes are placed widest first and a box is cut only
//! where one of its two corners lies in a box already placed: a box inside a
//! placed one vanishes, a crossing one goes in whole, and only a "staircase"
//! overlap is cut, into the pieces outside the box it hit. The elements are
//! listed in placement order, which is the order nft sends them in.

use std::ops::ControlFlow;

use crate::plan::acl::index::{Index, holds};
pub use crate::plan::acl::index::{Span, intersects};

/// One element of a concatenated interval set: a span per key field (a
/// two-field key leaves the third at `(0, 0)`).
pub type Box3 = [Span; 3];

fn contains(outer: &Box3, inner: &Box3) -> bool {
    outer
        .iter()
        .zip(inner)
        .all(|(o, i)| o.0 <= i.0 && i.1 <= o.1)
}

fn low(b: &Box3) -> [u128; 3] {
    [b[0].0, b[1].0, b[2].0]
}

fn high(b: &Box3) -> [u128; 3] {
    [b[0].1, b[1].1, b[2].1]
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

fn width_order(b: &Box3) -> (u128, u128, u128) {
    // Wider first: most overlaps in ACLs are containment, and a box placed
    // after the box containing it simply vanishes.
    (
        u128::MAX - (b[0].1 - b[0].0),
        u128::MAX - (b[2].1 - b[2].0),
        u128::MAX - (b[1].1 - b[1].0),
    )
}

/// The elements of one set and, per input box, how many elements it became
/// (0 when it vanished inside others).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub elements: Vec<Box3>,
    /// Per element, the input box it came from (a piece of a cut box
    /// belongs to that box).
    pub owners: Vec<usize>,
    pub pieces: Vec<u32>,
    /// Cuts made.
    pub cuts: usize,
}

/// The order boxes are placed in (and their elements listed in).
pub fn placement_order(b: &Box3) -> ((u128, u128, u128), Box3) {
    (width_order(b), *b)
}

/// The set needed more elements than the budget left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverBudget {
    /// Pieces per input box so far: the boxes that were being cut.
    pub pieces: Vec<u32>,
}

/// Places `boxes` as elements of one set whose union is the union of
/// `boxes`, each element's corners outside every element before it, using
/// at most `*budget` elements (and taking them from it).
///
/// The work is bounded too: every cut costs budget, so a list built to make
/// pieces stops at the bound instead of running on.
pub fn place(boxes: &[Box3], budget: &mut usize) -> Result<Placement, OverBudget> {
    let mut index = Index::new(boxes);
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by_key(|&i| placement_order(&boxes[i]));
    // Elements placed so far, kept at the leaf of the box they came from.
    let mut placed: Vec<Vec<Box3>> = vec![Vec::new(); boxes.len()];
    let mut pieces = vec![0u32; boxes.len()];
    let mut elements = Vec::with_capacity(boxes.len());
    let mut owners = Vec::with_capacity(boxes.len());
    // Cuts allowed before giving up, beside the element budget: each cut
    // makes up to six pieces, most of which vanish in the next steps.
    let budget_cuts = budget.saturating_mul(2);
    let mut cuts = budget_cuts;
    for id in order {
        let mut queue = vec![boxes[id]];
        while let Some(piece) = queue.pop() {
            let hit = stab(&index, &placed, &low(&piece))
                .or_else(|| stab(&index, &placed, &high(&piece)));
            match hit {
                None => {
                    if *budget == 0 {
                        pieces[id] += 1;
                        return Err(OverBudget { pieces });
                    }
                    *budget -= 1;
                    placed[id].push(piece);
                    index.mark(id, 0, 1);
                    pieces[id] += 1;
                    elements.push(piece);
                    owners.push(id);
                }
                // Both corners inside one box: the whole piece is.
                Some(other) if contains(&other, &piece) => {}
                Some(other) => {
                    if cuts == 0 {
                        pieces[id] += 1;
                        return Err(OverBudget { pieces });
                    }
                    cuts -= 1;
                    queue.extend(subtract(&piece, &other));
                }
            }
        }
    }
    Ok(Placement {
        elements,
        owners,
        pieces,
        cuts: budget_cuts - cuts,
    })
}

/// A placed element holding `point`, if any.
fn stab(index: &Index<3>, placed: &[Vec<Box3>], point: &[u128; 3]) -> Option<Box3> {
    index.find(
        |bounds, marks| marks[0] > 0 && holds(bounds, point),
        |leaf| match placed[leaf].iter().find(|e| holds(e, point)) {
            Some(e) => ControlFlow::Break(*e),
            None => ControlFlow::Continue(()),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covered(boxes: &[Box3], point: [u128; 3]) -> bool {
        boxes.iter().any(|b| holds(b, &point))
    }

    /// What the kernel checks, element by element in order.
    fn kernel_accepts(elements: &[Box3]) -> bool {
        elements.iter().enumerate().all(|(i, e)| {
            elements[..i]
                .iter()
                .all(|p| !holds(p, &low(e)) && !holds(p, &high(e)))
        })
    }

    fn place_all(boxes: &[Box3]) -> Placement {
        let mut budget = usize::MAX;
        place(boxes, &mut budget).expect("no bound")
    }

    #[test]
    fn contained_boxes_vanish_and_crossing_boxes_go_in_whole() {
        let all = [(0, 255), (6, 6), (1, 65535)];
        let inner = [(10, 20), (6, 6), (22, 22)];
        assert_eq!(place_all(&[inner, all, all]).elements, vec![all]);
        // A port from a wide range beside every port from a narrow one.
        let one_port = [(0, 255), (6, 6), (22, 22)];
        let all_ports = [(16, 31), (6, 6), (1, 65535)];
        let out = place_all(&[all_ports, one_port]);
        assert_eq!(out.elements, vec![one_port, all_ports]);
        assert!(kernel_accepts(&out.elements));
    }

    #[test]
    fn a_staircase_overlap_is_cut_where_a_corner_lands_and_keeps_the_union() {
        let a = [(0, 100), (6, 6), (20, 80)];
        let b = [(50, 150), (6, 6), (60, 100)];
        let c = [(90, 95), (0, 255), (0, 0)];
        let out = place_all(&[a, b, c]);
        assert!(kernel_accepts(&out.elements), "{:?}", out.elements);
        // Each element (whole or a cut piece) lies inside the box it is
        // counted for, and every box that did not vanish owns one.
        let boxes = [a, b, c];
        assert_eq!(out.owners.len(), out.elements.len());
        for (element, &owner) in out.elements.iter().zip(&out.owners) {
            assert!(contains(&boxes[owner], element), "{element:?} in {owner}");
        }
        for (k, pieces) in out.pieces.iter().enumerate() {
            let owned = out.owners.iter().filter(|&&o| o == k).count();
            assert_eq!(owned, *pieces as usize, "box {k}");
        }
        for addr in [0, 49, 50, 100, 101, 150, 151, 92] {
            for proto in [0, 6, 17] {
                for port in [0, 19, 20, 59, 60, 80, 81, 100, 101] {
                    let p = [addr, proto, port];
                    assert_eq!(covered(&out.elements, p), covered(&[a, b, c], p), "{p:?}");
                }
            }
        }
    }

    #[test]
    fn a_set_over_its_budget_is_refused_naming_the_boxes_being_cut() {
        // Ten one-port boxes over a wide range, and a narrower all-port box
        // whose low corner lands in them: it is cut once per port.
        let mut boxes: Vec<Box3> = (0..10).map(|p| [(0, 1000), (6, 6), (p, p)]).collect();
        boxes.push([(100, 200), (6, 6), (0, 65535)]);
        let mut budget = 10;
        let err = place(&boxes, &mut budget).unwrap_err();
        assert_eq!(err.pieces[10], 1, "{:?}", err.pieces);
        // With one more element it fits: the narrow box lost ports 0-9.
        let mut budget = 11;
        let out = place(&boxes, &mut budget).expect("fits");
        assert_eq!(
            out.elements.last(),
            Some(&[(100, 200), (6, 6), (10, 65535)])
        );
        assert_eq!(budget, 0);
    }
}

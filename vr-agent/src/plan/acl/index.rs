//! A static index of boxes for the ACL compiler: a balanced tree over the
//! boxes sorted by their first field (the address), each node holding the
//! bounding box of its leaves and two marks that the caller raises.
//!
//! The compiler asks two kinds of question, both answered by walking only the
//! nodes whose bounding box can hold an answer: "the highest layer among
//! marked boxes of the other action that intersect this box" (layering) and
//! "a placed element that contains this point" (element placement). Sorting
//! by address keeps the bounding boxes tight for ACLs, whose items are
//! mostly disjoint prefixes, so a question costs about the tree's depth plus
//! the boxes that really overlap, instead of a pass over every item.

use std::ops::ControlFlow;

/// An inclusive interval of one key field (addresses as integers).
pub type Span = (u128, u128);

/// What the walk does at a node.
pub enum Step {
    /// Look at the node's children (or, at a leaf, nothing more).
    Descend,
    /// Leave the node's subtree out.
    Skip,
    /// End the walk.
    Stop,
}

/// A node as the walk shows it.
pub struct Node<'a, const D: usize> {
    /// The union of the boxes below.
    pub bounds: &'a [Span; D],
    /// The highest mark of each kind below (0 when none).
    pub marks: [u32; 2],
    /// The box's position in the input when the node is a leaf.
    pub leaf: Option<usize>,
}

/// The tree: node 1 is the root, node n has children 2n and 2n+1, leaves
/// start at `size` (a power of two).
pub struct Index<const D: usize> {
    size: usize,
    bounds: Vec<Option<[Span; D]>>,
    marks: Vec<[u32; 2]>,
    /// Input position of each leaf, and leaf of each input position.
    input_of_leaf: Vec<usize>,
    leaf_of_input: Vec<usize>,
}

fn union<const D: usize>(a: &[Span; D], b: &[Span; D]) -> [Span; D] {
    let mut out = *a;
    for (o, s) in out.iter_mut().zip(b) {
        o.0 = o.0.min(s.0);
        o.1 = o.1.max(s.1);
    }
    out
}

/// Whether two boxes share a point.
pub fn intersects<const D: usize>(a: &[Span; D], b: &[Span; D]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.0 <= y.1 && y.0 <= x.1)
}

/// Whether `point` lies in `b`.
pub fn holds<const D: usize>(b: &[Span; D], point: &[u128; D]) -> bool {
    b.iter().zip(point).all(|(s, p)| s.0 <= *p && *p <= s.1)
}

impl<const D: usize> Index<D> {
    /// Indexes `boxes` (their positions are the ids the walk reports).
    pub fn new(boxes: &[[Span; D]]) -> Self {
        let mut order: Vec<usize> = (0..boxes.len()).collect();
        order.sort_by_key(|&i| (boxes[i][0].0, boxes[i][0].1, i));
        let size = boxes.len().next_power_of_two().max(1);
        let mut bounds = vec![None; 2 * size];
        let mut leaf_of_input = vec![0; boxes.len()];
        for (leaf, &input) in order.iter().enumerate() {
            bounds[size + leaf] = Some(boxes[input]);
            leaf_of_input[input] = leaf;
        }
        for node in (1..size).rev() {
            bounds[node] = match (&bounds[2 * node], &bounds[2 * node + 1]) {
                (Some(a), Some(b)) => Some(union(a, b)),
                (Some(a), None) => Some(*a),
                (None, b) => *b,
            };
        }
        Index {
            size,
            bounds,
            marks: vec![[0, 0]; 2 * size],
            input_of_leaf: order,
            leaf_of_input,
        }
    }

    /// Raises mark `kind` of box `input` (and of the nodes above it) to at
    /// least `value`.
    pub fn mark(&mut self, input: usize, kind: usize, value: u32) {
        let mut node = self.size + self.leaf_of_input[input];
        while node >= 1 && self.marks[node][kind] < value {
            self.marks[node][kind] = value;
            node /= 2;
        }
    }

    /// Walks the tree depth first; `visit` decides at each node.
    pub fn walk(&self, visit: impl FnMut(Node<'_, D>) -> Step) {
        self.walk_preferring(None, visit)
    }

    /// Walks the tree depth first, entering first the child with the higher
    /// mark of kind `prefer`: a search for the highest mark finds it early
    /// and then skips the rest (without this, a list where every item
    /// overlaps every other one costs a pass over the tree per item).
    pub fn walk_preferring(
        &self,
        prefer: Option<usize>,
        mut visit: impl FnMut(Node<'_, D>) -> Step,
    ) {
        let mut stack = Vec::with_capacity(64);
        stack.push(1usize);
        while let Some(node) = stack.pop() {
            let Some(bounds) = &self.bounds[node] else {
                continue;
            };
            let leaf = (node >= self.size).then(|| self.input_of_leaf[node - self.size]);
            match visit(Node {
                bounds,
                marks: self.marks[node],
                leaf,
            }) {
                Step::Stop => return,
                Step::Skip => {}
                Step::Descend if leaf.is_none() => {
                    let (left, right) = (2 * node, 2 * node + 1);
                    let right_first =
                        prefer.is_some_and(|k| self.marks[right][k] > self.marks[left][k]);
                    if right_first {
                        stack.push(left);
                        stack.push(right);
                    } else {
                        stack.push(right);
                        stack.push(left);
                    }
                }
                Step::Descend => {}
            }
        }
    }

    /// The first leaf (by `visit`'s own test) that answers, walking only
    /// nodes `enter` admits.
    pub fn find<T>(
        &self,
        mut enter: impl FnMut(&[Span; D], [u32; 2]) -> bool,
        mut at_leaf: impl FnMut(usize) -> ControlFlow<T>,
    ) -> Option<T> {
        let mut found = None;
        self.walk(|node| {
            if !enter(node.bounds, node.marks) {
                return Step::Skip;
            }
            match node.leaf.map(&mut at_leaf) {
                Some(ControlFlow::Break(t)) => {
                    found = Some(t);
                    Step::Stop
                }
                _ => Step::Descend,
            }
        });
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_rise_to_the_root_and_a_walk_skips_unmarked_subtrees() {
        let boxes: Vec<[Span; 2]> = (0..10u128)
            .map(|i| [(i * 10, i * 10 + 5), (0, 9)])
            .collect();
        let mut index = Index::new(&boxes);
        index.mark(7, 1, 3);
        let mut seen = Vec::new();
        index.walk(|node| {
            if node.marks[1] == 0 {
                return Step::Skip;
            }
            if let Some(leaf) = node.leaf {
                seen.push(leaf);
            }
            Step::Descend
        });
        assert_eq!(seen, [7]);
    }

    #[test]
    fn find_returns_the_box_holding_a_point_among_overlapping_ones() {
        let boxes: Vec<[Span; 2]> =
            vec![[(0, 100), (5, 5)], [(10, 20), (0, 9)], [(50, 60), (0, 9)]];
        let index = Index::new(&boxes);
        let point = [55, 7];
        let hit = index.find(
            |b, _| holds(b, &point),
            |leaf| {
                if holds(&boxes[leaf], &point) {
                    ControlFlow::Break(leaf)
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        assert_eq!(hit, Some(2));
        assert_eq!(
            index.find(|b, _| holds(b, &[30, 7]), |_| ControlFlow::Break(0)),
            None
        );
    }
}
